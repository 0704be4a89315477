"""Top-down samples: the augmentation recipe, determinism by seed, flips, skipped images."""

import dataclasses

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from hrnet.codec import HeatmapCodec, get_max_preds
from hrnet.config import DataConfig
from hrnet.crop import Crop
from hrnet.data.augment import Augmentation, augment, flip_keypoints, sample_rng
from hrnet.data.coco import read_coco
from hrnet.data.dataset import TopDownDataset, collate
from hrnet.data.sampler import EpochSampler
from hrnet.errors import DataError
from hrnet.keypoints import COCO17

RECIPE = Augmentation.from_config(DataConfig())  # the official recipe
NO_AUG = dataclasses.replace(RECIPE, flip_prob=0.0, scale_factor=0.0, rotation_factor=0.0, half_body_prob=-1.0)
CODEC = HeatmapCodec(Crop((128, 96)), (32, 24), sigma=2.0)


@pytest.fixture(scope="module")
def records(datasets_dir):
    return read_coco(datasets_dir / "coco" / "test_coco.json", datasets_dir / "coco", keypoint_set="coco17")


def test_flip_mirrors_the_keypoints_and_swaps_the_pairs(records):
    record = records[0]
    keypoints, visibility = np.asarray(record.keypoints, np.float64), record.visibility
    width = record.image_size[1]
    params, flipped, flipped_vis = augment(
        sample_rng(0, 0, 0), dataclasses.replace(NO_AUG, flip_prob=1.0), COCO17, keypoints, visibility,
        np.array([100.0, 200.0]), np.array([50.0, 80.0]), width, 0.75,
    )  # fmt: skip
    assert params.flipped and params.center[0] == width - 100.0 - 1
    labelled = visibility > 0
    for a, b in [(0, 0), *COCO17.flip_pairs, *[(q, p) for p, q in COCO17.flip_pairs]]:
        assert flipped_vis[a] == visibility[b]
        if labelled[b]:
            np.testing.assert_allclose(flipped[a], [width - 1 - keypoints[b, 0], keypoints[b, 1]])
    again, _ = flip_keypoints(flipped, flipped_vis, width, COCO17.flip_pairs)
    np.testing.assert_allclose(again[labelled], keypoints[labelled])  # flip twice is identity


def test_flipped_sample_targets_are_the_mirror_image(records):
    plain = TopDownDataset(records, COCO17, CODEC, augmentation=NO_AUG)[0]
    mirrored = TopDownDataset(records, COCO17, CODEC, augmentation=dataclasses.replace(NO_AUG, flip_prob=1.0))[0]
    coords, _ = get_max_preds(plain.target[None].numpy())
    coords_f, _ = get_max_preds(mirrored.target[None].numpy())
    index = COCO17.flip_index
    weights = plain.target_weight.numpy()
    for k in range(17):
        if weights[index[k]] > 0:
            # the official flip maps x to W - 1 - x in the image; at a 4x smaller heatmap that is within a pixel
            assert abs(coords_f[0, k, 0] - (23 - coords[0, index[k], 0])) <= 1
            assert coords_f[0, k, 1] == coords[0, index[k], 1]
    # the crop itself is mirrored (up to the same sub-pixel offset)
    diff = (mirrored.image - plain.image.flip(2)).abs().mean()
    assert diff < 0.5 * (mirrored.image - plain.image).abs().mean()


def test_same_seed_same_batch_with_workers(records):
    aug = RECIPE

    def batch(seed, epoch):
        dataset = TopDownDataset(records, COCO17, CODEC, augmentation=aug, seed=seed)
        dataset.set_epoch(epoch)
        sampler = EpochSampler(len(dataset), seed=seed, epoch=epoch)
        loader = DataLoader(dataset, batch_size=6, sampler=sampler, num_workers=2, collate_fn=collate)
        return next(iter(loader))

    a, b, c = batch(7, 1), batch(7, 1), batch(7, 2)
    assert torch.equal(a.image, b.image) and torch.equal(a.target, b.target) and torch.equal(a.index, b.index)
    assert not torch.equal(a.image, c.image)


def test_augmentation_draws_follow_the_recipe():
    aug = RECIPE
    keypoints = np.tile([[50.0, 50.0]], (17, 1)) + np.arange(34).reshape(17, 2)
    visibility = np.full(17, 2)
    draws = [
        augment(sample_rng(0, 0, i), aug, COCO17, keypoints, visibility, np.array([60.0, 70.0]),
                np.array([40.0, 60.0]), 200, 0.75)[0]
        for i in range(400)
    ]  # fmt: skip
    rotations = np.array([d.rotation for d in draws])
    assert 0.5 < np.mean(rotations != 0) < 0.7  # rotation_prob 0.6
    assert np.abs(rotations).max() <= 90.0  # clipped at 2 × 45°
    assert 0.4 < np.mean([d.flipped for d in draws]) < 0.6
    half_body = np.array([d.center[1] != 70.0 for d in draws])  # centered on the selected keypoints instead
    assert 0.2 < half_body.mean() < 0.4  # half_body_prob 0.3
    scales = np.array([d.size[1] / 60.0 for d in draws])[~half_body]
    assert scales.min() >= 0.65 - 1e-9 and scales.max() <= 1.35 + 1e-9  # clip(N(1, 0.35), 0.65, 1.35)
    assert scales.std() > 0.15


def test_targets_weight_only_labelled_keypoints(records):
    sample = TopDownDataset(records, COCO17, CODEC)[1]
    record = records[1]
    assert sample.image.shape == (3, 128, 96) and sample.target.shape == (17, 32, 24)
    assert torch.equal(sample.target_weight == 0, torch.from_numpy(record.visibility == 0))


def test_unreadable_images_are_skipped_in_training_and_errors_in_evaluation(records, tmp_path):
    broken = dataclasses.replace(records[0], image_path=tmp_path / "missing.jpg")
    train = TopDownDataset([broken, records[1]], COCO17, CODEC, augmentation=NO_AUG, skip_bad_images=True)
    batch = collate([train[0], train[1]])
    assert len(batch) == 1 and batch.index.tolist() == [1]
    assert len(batch.skipped) == 1 and "missing.jpg" in batch.skipped[0]
    with pytest.raises(DataError, match=r"missing\.jpg"):
        TopDownDataset([broken], COCO17, CODEC)[0]


def _declared(record, size):
    return dataclasses.replace(record, image_size=size)


def test_declared_image_size_must_match_the_file(records, caplog):
    """The annotation file's width/height (used to clip boxes) is checked when the image is first decoded."""
    record = records[0]  # 000000000785.jpg is 425 × 640 (height × width)
    wrong = _declared(record, (640, 425))
    dataset = TopDownDataset([wrong], COCO17, CODEC)
    with pytest.raises(
        DataError,
        match=r"000000000785\.jpg: the annotation file gives the image as 640 × 425 "
        r"\(height × width\) but the file is 425 × 640.*data\.size_mismatch: warn",
    ):
        dataset[0]
    training = TopDownDataset([wrong], COCO17, CODEC, augmentation=NO_AUG, skip_bad_images=True)
    with pytest.raises(DataError, match="the annotation file gives the image as 640 × 425"):
        training[0]  # an annotation fault, not an unreadable image: never skipped silently
    warning = TopDownDataset([wrong, wrong], COCO17, CODEC, size_mismatch="warn")
    with caplog.at_level("WARNING", logger="hrnet.data"):
        first, second = warning[0], warning[1]
    assert caplog.text.count("the annotation file gives the image as 640 × 425") == 1  # once an image
    assert "using the file's own size" in caplog.text
    same = TopDownDataset([record], COCO17, CODEC)[0]
    torch.testing.assert_close(first.image, same.image)  # the crop comes from the file's pixels either way
    torch.testing.assert_close(second.target, same.target)
    with pytest.raises(ValueError, match="size_mismatch must be 'error' or 'warn'"):
        TopDownDataset([record], COCO17, CODEC, size_mismatch="ignore")
