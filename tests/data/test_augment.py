"""Training augmentation helpers: the flipped keypoints of a mirrored image."""

import numpy as np
import pytest

from hrnet.data.augment import flip_keypoints
from hrnet.keypoints import COCO17


def test_flip_keypoints_mirrors_x_and_swaps_pairs():
    rng = np.random.default_rng(4)
    keypoints = rng.uniform(0, 100, (17, 2))
    visibility = np.full(17, 2)
    visibility[3] = 0
    flipped, flipped_vis = flip_keypoints(keypoints, visibility, 640, COCO17.flip_pairs)
    # Keypoint 4 (right ear) of the mirror image is keypoint 3 (left ear) of the original, unlabelled: zeroed.
    np.testing.assert_array_equal(flipped[4], [0.0, 0.0])
    assert flipped_vis[4] == 0 and flipped_vis[3] == 2
    np.testing.assert_allclose(flipped[3], [639 - keypoints[4, 0], keypoints[4, 1]])
    np.testing.assert_allclose(flipped[0], [639 - keypoints[0, 0], keypoints[0, 1]])
    back, back_vis = flip_keypoints(flipped, flipped_vis, 640, COCO17.flip_pairs)
    labelled = visibility > 0
    np.testing.assert_allclose(back[labelled], keypoints[labelled])
    np.testing.assert_array_equal(back_vis, visibility)
    assert keypoints[3, 0] != 0  # the input is not modified


def test_flip_keypoints_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"keypoints must be \(K, 2\) and visibility \(K,\)"):
        flip_keypoints(np.zeros((17, 2)), np.zeros(16), 640, COCO17.flip_pairs)
