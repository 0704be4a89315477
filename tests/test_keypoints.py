"""Keypoint sets against their published sources, and the helpers that build sets from names and COCO categories.

Sources of the constants checked here:
- COCO-17 sigmas: pycocotools ``COCOeval`` ``Params.kpt_oks_sigmas`` (imported, not copied).
- COCO-17 flip pairs, half-body ids and joint weights: official HRNet ``lib/dataset/coco.py``.
- AI Challenger sigmas: ``AI_Challenger_2017/Evaluation/keypoint_eval/keypoint_eval.py``, whose
  ``delta = 2 * [...]``; its OKS ``exp(-d² / 2 / delta² / area)`` equals COCO's with these values as sigmas.
- MPII flip pairs and half-body ids: official HRNet ``lib/dataset/mpii.py``.
- CrowdPose sigmas: ``crowdposetools/cocoeval.py`` (``computeOks``).
"""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from pycocotools.cocoeval import Params

from hrnet.errors import DataError
from hrnet.keypoints import (
    AIC14,
    COCO17,
    CROWDPOSE14,
    DEFAULT_SIGMA,
    MPII16,
    KeypointSet,
    derive_flip_pairs,
    from_coco_category,
    get_keypoint_set,
    shipped_keypoint_sets,
)

AIC_EVAL_SIGMAS = (
    0.01388152, 0.01515228, 0.01057665, 0.01417709, 0.01497891, 0.01402144, 0.03909642, 0.03686941, 0.01981803,
    0.03843971, 0.03412318, 0.02415081, 0.01291456, 0.01236173,
)  # fmt: skip
CROWDPOSE_EVAL_SIGMAS = tuple(
    v / 10 for v in (0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89, 0.79, 0.79)
)

# The human body sets, whose names say left and right and whose keypoints all belong to the upper or lower body; every
# shipped set is checked in test_keypoint_sets.py.
BODY_SETS = [n for n in shipped_keypoint_sets() if get_keypoint_set(n).task == "body"]


def category(datasets_dir: Path, name: str) -> dict:
    return json.loads((datasets_dir / name).read_text())["categories"][0]


@pytest.mark.parametrize("kset", [get_keypoint_set(n) for n in BODY_SETS], ids=BODY_SETS)
def test_flip_index_is_an_involution(kset):
    index = kset.flip_index
    assert sorted(index) == list(range(kset.num_keypoints))
    assert all(index[index[k]] == k for k in range(kset.num_keypoints))
    assert any(index[k] != k for k in range(kset.num_keypoints))
    members = [i for pair in kset.flip_pairs for i in pair]
    assert len(members) == len(set(members)), "a keypoint may belong to one flip pair only"


@pytest.mark.parametrize("kset", [get_keypoint_set(n) for n in BODY_SETS], ids=BODY_SETS)
def test_flip_pairs_swap_left_and_right(kset):
    assert set(derive_flip_pairs(kset.names)) == set(kset.flip_pairs)
    for a, b in kset.flip_pairs:
        assert {kset.names[a].split("_")[0], kset.names[b].split("_")[0]} == {"left", "right"}
        assert kset.names[a].split("_")[1:] == kset.names[b].split("_")[1:]


@pytest.mark.parametrize("kset", [get_keypoint_set(n) for n in BODY_SETS], ids=BODY_SETS)
def test_half_body_split_and_skeleton(kset):
    upper, lower = set(kset.upper_body), set(kset.lower_body)
    assert upper.isdisjoint(lower) and upper | lower == set(range(kset.num_keypoints))
    assert all(a != b for a, b in kset.skeleton)
    assert len({frozenset(link) for link in kset.skeleton}) == len(kset.skeleton)
    undrawn = {"posetrack18_17": ("left_ear", "right_ear")}.get(kset.name, ())  # posetrack18.py links no ear
    drawn = set(range(kset.num_keypoints)) - {kset.names.index(name) for name in undrawn}
    assert {i for link in kset.skeleton for i in link} == drawn, "every point is drawn"


def test_coco17_against_pycocotools_and_the_official_code(datasets_dir):
    np.testing.assert_allclose(COCO17.sigmas, Params(iouType="keypoints").kpt_oks_sigmas, rtol=0, atol=1e-12)
    assert COCO17.flip_pairs == ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
    assert COCO17.upper_body == tuple(range(11)) and COCO17.lower_body == tuple(range(11, 17))
    assert COCO17.weights == (1, 1, 1, 1, 1, 1, 1, 1.2, 1.2, 1.5, 1.5, 1, 1, 1.2, 1.2, 1.5, 1.5)
    cat = category(datasets_dir, "coco/test_coco.json")
    assert tuple(cat["keypoints"]) == COCO17.names
    assert COCO17.skeleton == tuple((a - 1, b - 1) for a, b in cat["skeleton"])


def test_aic14_against_the_challenge_evaluation(datasets_dir):
    assert AIC14.sigmas == AIC_EVAL_SIGMAS
    cat = category(datasets_dir, "aic/test_aic.json")
    assert tuple(n.lower().replace(" ", "_") for n in cat["keypoints"]) == AIC14.names
    assert AIC14.skeleton == tuple((a - 1, b - 1) for a, b in cat["skeleton"])


def test_mpii16_against_the_official_code():
    assert MPII16.flip_pairs == ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))
    assert MPII16.upper_body == (7, 8, 9, 10, 11, 12, 13, 14, 15)
    assert MPII16.lower_body == (0, 1, 2, 3, 4, 5, 6)
    # The official parent_ids draw the same tree as our skeleton.
    parents = (1, 2, 6, 6, 3, 4, 6, 6, 7, 8, 11, 12, 7, 7, 13, 14)
    tree = {frozenset((k, p)) for k, p in enumerate(parents) if k != p}
    assert {frozenset(link) for link in MPII16.skeleton} == tree


def test_crowdpose14_against_crowdposetools():
    np.testing.assert_allclose(CROWDPOSE14.sigmas, CROWDPOSE_EVAL_SIGMAS, rtol=0, atol=1e-12)
    assert CROWDPOSE14.names[12:] == ("head", "neck")


@pytest.mark.parametrize(
    ("names", "pairs"),
    [
        (COCO17.names, COCO17.flip_pairs),
        (["Right Shoulder", "Right Elbow", "Left Shoulder", "Left Elbow", "Head top", "Neck"], [(0, 2), (1, 3)]),
        (["r ankle", "r knee", "l knee", "l ankle", "pelvis"], [(0, 3), (1, 2)]),
        (["R_Knee", "LEFT_HIP", "L_Knee", "RIGHT_HIP"], [(0, 2), (1, 3)]),
        (["left-eye", "nose", "right-eye"], [(0, 2)]),
        (["leftover", "rightmost", "left", "head"], []),
        (["left_hand", "right_foot"], []),
    ],
    ids=["coco", "aic", "mpii_words", "upper_case", "hyphen", "no_side_word", "no_mirror"],
)
def test_derive_flip_pairs(names, pairs):
    assert derive_flip_pairs(names) == tuple(pairs)


def test_from_coco_category_on_the_shared_files(datasets_dir):
    coco = from_coco_category(category(datasets_dir, "coco/test_coco.json"))
    assert coco.names == COCO17.names
    assert coco.flip_pairs == COCO17.flip_pairs and coco.skeleton == COCO17.skeleton
    assert coco.sigmas == COCO17.sigmas
    assert coco is COCO17  # a known convention is recognised, with its half-body groups and weights
    aic = from_coco_category(category(datasets_dir, "aic/test_aic.json"))
    assert aic is AIC14  # "Right Shoulder", ..., "Head top", "Neck"
    given = from_coco_category(category(datasets_dir, "aic/test_aic.json"), sigmas=AIC_EVAL_SIGMAS)
    assert given.sigmas == AIC_EVAL_SIGMAS and given.upper_body == AIC14.upper_body


def test_from_coco_category_builds_a_new_set_for_unknown_names():
    names = ["Head", "Left Hand", "Right Hand", "left_shoulder", "right_shoulder"]
    made = from_coco_category({"id": 3, "name": "toy", "keypoints": names, "skeleton": [[1, 4], [1, 5]]})
    assert made.name == "toy" and made.flip_pairs == ((1, 2), (3, 4)) and made.skeleton == ((0, 3), (0, 4))
    # COCO-named points take COCO's sigma, the others the documented default
    assert made.sigmas == (DEFAULT_SIGMA, DEFAULT_SIGMA, DEFAULT_SIGMA, 0.079, 0.079)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"keypoints": []}, r"cat\.json: category 1 has no list of keypoint names"),
        ({"keypoints": "nose"}, r"cat\.json: category 1 has no list of keypoint names"),
        ({"skeleton": "1-2"}, r"cat\.json: category 1: skeleton must be a list"),
    ],
)
def test_bad_category(datasets_dir, change, message):
    cat = dict(category(datasets_dir, "coco/test_coco.json"), **change)
    with pytest.raises(DataError, match=message):
        from_coco_category(cat, source="cat.json")


def test_bad_sigmas_and_sets():
    cat = {"id": 3, "keypoints": ["a", "b"]}
    with pytest.raises(DataError, match=r"cat\.json: 3 sigmas given for 2 keypoints"):
        from_coco_category(cat, sigmas=[0.1, 0.1, 0.1], source="cat.json")
    with pytest.raises(DataError, match=r"keypoint set 'x': 1 sigmas for 2 keypoints"):
        KeypointSet(name="x", names=("a", "b"), flip_pairs=(), skeleton=(), sigmas=(0.1,))
    with pytest.raises(DataError, match=r"keypoint set 'x': pair \(0, 2\) is outside 0\.\.1"):
        KeypointSet(name="x", names=("a", "b"), flip_pairs=((0, 2),), skeleton=(), sigmas=(0.1, 0.1))


def test_get_keypoint_set():
    assert get_keypoint_set("mpii16") is MPII16
    unknown = r"unknown keypoint set 'coco18': did you mean 'coco17'\? give a shipped set \(.*aic14, .*coco17, "
    with pytest.raises(DataError, match=unknown):
        get_keypoint_set("coco18")


def test_links_outside_the_keypoints_are_dropped_with_a_warning(caplog):
    links = [[1, 2], [0, 1], [2, 4], [1, 2, 3], [2, 3]]
    cat = {"id": 3, "name": "toy", "keypoints": ["a", "b", "c"], "skeleton": links}
    with caplog.at_level(logging.WARNING, logger="hrnet.keypoints"):
        made = from_coco_category(cat, source="cat.json")
    assert made.skeleton == ((0, 1), (1, 2))
    assert (
        "cat.json: dropped 3 skeleton links that are not pairs of 1-based keypoint indices ≤ 3: [0, 1], [2, 4], "
        "[1, 2, 3]" in caplog.text
    )
