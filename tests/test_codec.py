"""The heatmap codec against the official code's outputs (../shared/reference/parity) and round trips."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from hrnet.codec import (
    HeatmapCodec,
    dark_modulate,
    dark_refine,
    decode,
    decode_peaks,
    encode_gaussian,
    encode_tf_port,
    encode_udp,
    flip_heatmaps,
    get_max_preds,
    merge_flip,
)
from hrnet.crop import Crop, affine_points, box_to_center_size, get_affine_transform
from hrnet.errors import ConfigError
from hrnet.keypoints import COCO17

PIXEL_STD = 200.0  # the official "scale" unit
INPUT_SIZE, HEATMAP_SIZE = (256, 192), (64, 48)
PREDS_ATOL = 1e-3  # image pixels; the fixtures' argmax margins are far above float noise (fixtures.json)


@pytest.fixture(scope="module")
def post(reference_dir: Path) -> dict[str, np.ndarray]:
    return dict(np.load(reference_dir / "parity" / "postprocess.npz"))


@pytest.fixture(scope="module")
def parity_io(reference_dir: Path) -> dict[str, np.ndarray]:
    return dict(np.load(reference_dir / "parity" / "parity_io.npz"))


# ----------------------------------------------------------------------------------------------- encoding


def test_encode_gaussian_matches_official_generate_target(post):
    for sample in range(len(post["gt_joints"])):
        heatmaps, weights = encode_gaussian(
            post["gt_joints"][sample, :, :2], post["gt_joints_vis"][sample, :, 0], INPUT_SIZE, HEATMAP_SIZE, 2.0
        )
        assert heatmaps.shape == (17, 64, 48) and heatmaps.dtype == weights.dtype == np.float32
        np.testing.assert_array_equal(weights, post["gt_target_weight"][sample, :, 0], err_msg=f"sample {sample}")
        np.testing.assert_allclose(heatmaps, post["gt_target"][sample], rtol=0, atol=1e-6, err_msg=f"sample {sample}")


def test_encode_weights_follow_coco_visibility_and_finiteness():
    keypoints = np.array([[50.0, 60.0], [50.0, 60.0], [50.0, 60.0], [np.nan, 60.0], [50.0, np.inf]])
    visibility = np.array([0, 1, 2, 2, 2])
    heatmaps, weights = encode_gaussian(keypoints, visibility, INPUT_SIZE, HEATMAP_SIZE)
    np.testing.assert_array_equal(weights, [0, 1, 1, 0, 0])
    np.testing.assert_array_equal(heatmaps.max(axis=(1, 2)), [0, 1, 1, 0, 0])
    np.testing.assert_array_equal(heatmaps[1], heatmaps[2])


def test_encoders_reject_mismatched_shapes():
    with pytest.raises(ValueError, match=r"keypoints must be \(K, 2\) and visibility \(K,\)"):
        encode_gaussian(np.zeros((17, 3)), np.ones(17), INPUT_SIZE, HEATMAP_SIZE)


def test_encode_udp_centers_the_gaussian_on_the_unbiased_position():
    keypoints = np.array([[100.3, 77.9], [3.0, 250.0]])
    heatmaps, weights = encode_udp(keypoints, np.array([2, 2]), INPUT_SIZE, HEATMAP_SIZE, sigma=2.0)
    np.testing.assert_array_equal(weights, [1, 1])
    stride = np.array([191 / 47, 255 / 63])
    mu = keypoints[0] / stride
    ys, xs = np.mgrid[:64, :48]
    expected = np.exp(-((xs - mu[0]) ** 2 + (ys - mu[1]) ** 2) / 8.0)
    window = (np.abs(xs - np.round(mu[0])) <= 6) & (np.abs(ys - np.round(mu[1])) <= 6)
    np.testing.assert_allclose(heatmaps[0], np.where(window, expected, 0.0), atol=1e-6)
    assert heatmaps[0].max() < 1.0  # off-grid center: no pixel reaches the peak


# ----------------------------------------------------------------------------------------------- decoding


def test_get_max_preds_matches_official(post):
    coords, maxvals = get_max_preds(post["heatmaps"])
    np.testing.assert_array_equal(coords, post["max_preds_coords"])
    np.testing.assert_array_equal(maxvals, post["max_preds_maxvals"][..., 0])
    np.testing.assert_array_equal(coords[3, 0], [30, 10])  # a tie goes to the first maximum, row-major
    np.testing.assert_array_equal(coords[1, 5], [0, 0])  # a negative peak is masked


@pytest.mark.parametrize(("post_process", "key"), [(True, "final_preds"), (False, "final_preds_no_postprocess")])
def test_decode_argmax_matches_official_get_final_preds(post, post_process, key):
    keypoints, scores = decode(
        post["heatmaps"], post["box_centers"], post["box_scales"] * PIXEL_STD, post_process=post_process
    )
    assert keypoints.shape == (4, 17, 2) and keypoints.dtype == np.float32
    np.testing.assert_allclose(keypoints, post[key], rtol=0, atol=PREDS_ATOL)
    np.testing.assert_array_equal(scores, post["final_maxvals"][..., 0])


def test_quarter_offset_needs_two_pixels_from_the_left_and_top_edges():
    heatmaps = np.zeros((1, 4, 8, 8), np.float32)
    for k, (x, y) in enumerate([(1, 4), (4, 1), (2, 2), (6, 6)]):
        heatmaps[0, k, y, x] = 1.0
        heatmaps[0, k, y, x + 1] = heatmaps[0, k, y + 1, x] = 0.5  # higher neighbours right and below
    coords, _ = get_max_preds(heatmaps)
    decoded, _ = decode(heatmaps, np.array([[4.0, 4.0]]), np.array([[8.0, 8.0]]))
    # The official rule is 1 < x < W - 1 and 1 < y < H - 1: x = 1 or y = 1 gets no offset at all.
    np.testing.assert_array_equal(decoded[0], coords[0] + [[0, 0], [0, 0], [0.25, 0.25], [0.25, 0.25]])


def test_decode_network_output_matches_official(parity_io):
    sizes = parity_io["scale"] * PIXEL_STD
    keypoints, scores = decode(parity_io["output"], parity_io["center"], sizes)
    np.testing.assert_allclose(keypoints, parity_io["final_preds_noflip"], rtol=0, atol=PREDS_ATOL)
    np.testing.assert_allclose(scores, parity_io["final_maxvals_noflip"][..., 0], rtol=1e-6)
    keypoints, scores = decode(parity_io["output_flip_merged"], parity_io["center"], sizes)
    np.testing.assert_allclose(keypoints, parity_io["final_preds"], rtol=0, atol=PREDS_ATOL)
    np.testing.assert_allclose(scores, parity_io["final_maxvals"][..., 0], rtol=1e-6)


@pytest.mark.parametrize("method", ["argmax", "dark"])
def test_decode_batch_equals_person_by_person(post, method):
    centers, sizes = post["box_centers"], post["box_scales"] * PIXEL_STD
    batched, batched_scores = decode(post["heatmaps"], centers, sizes, method=method)
    for n in range(len(centers)):
        single, scores = decode(post["heatmaps"][n : n + 1], centers[n : n + 1], sizes[n : n + 1], method=method)
        np.testing.assert_array_equal(batched[n], single[0])
        np.testing.assert_array_equal(batched_scores[n], scores[0])


def test_decode_rejects_bad_input(post):
    heatmaps, centers, sizes = post["heatmaps"], post["box_centers"], post["box_scales"] * PIXEL_STD
    with pytest.raises(ConfigError, match=r"decode method must be one of \['argmax', 'dark', 'tf_port'\], got 'udp'"):
        decode(heatmaps, centers, sizes, method="udp")
    with pytest.raises(ValueError, match=r"centers and sizes must be \(4, 2\) for 4 persons"):
        decode(heatmaps, centers[:3], sizes[:3])
    with pytest.raises(ValueError, match=r"heatmaps must be a NumPy array \(N, K, H, W\), got a Tensor"):
        decode(torch.from_numpy(heatmaps), centers, sizes)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"heatmaps must be a NumPy array \(N, K, H, W\), got shape \(17, 64, 48\)"):
        get_max_preds(heatmaps[0])


def _reference_dark(heatmaps: np.ndarray, coords: np.ndarray, kernel: int) -> np.ndarray:
    """DARK as the official code writes it, one map at a time (Zhang et al. 2020)."""
    border = (kernel - 1) // 2
    out = coords.astype(np.float64).copy()
    height, width = heatmaps.shape[2:]
    for n in range(heatmaps.shape[0]):
        for k in range(heatmaps.shape[1]):
            padded = np.zeros((height + 2 * border, width + 2 * border))
            padded[border:-border, border:-border] = heatmaps[n, k]
            blurred = cv2.GaussianBlur(padded, (kernel, kernel), 0)[border:-border, border:-border]
            if blurred.max() != 0:
                blurred *= heatmaps[n, k].max() / blurred.max()
            hm = np.log(np.maximum(blurred, 1e-10))
            px, py = int(coords[n, k, 0]), int(coords[n, k, 1])
            if 1 < px < width - 2 and 1 < py < height - 2:
                gradient = 0.5 * np.array([hm[py, px + 1] - hm[py, px - 1], hm[py + 1, px] - hm[py - 1, px]])
                dxx = 0.25 * (hm[py, px + 2] - 2 * hm[py, px] + hm[py, px - 2])
                dyy = 0.25 * (hm[py + 2, px] - 2 * hm[py, px] + hm[py - 2, px])
                dxy = 0.25 * (hm[py + 1, px + 1] - hm[py - 1, px + 1] - hm[py + 1, px - 1] + hm[py - 1, px - 1])
                hessian = np.array([[dxx, dxy], [dxy, dyy]])
                if np.linalg.det(hessian) != 0:
                    out[n, k] -= np.linalg.solve(hessian, gradient)
    return out


def test_dark_refine_equals_the_per_map_algorithm(post):
    heatmaps = post["heatmaps"]  # includes all-zero, all-negative, border and corner peaks
    coords, _ = get_max_preds(heatmaps)
    np.testing.assert_allclose(dark_refine(heatmaps, coords, 11), _reference_dark(heatmaps, coords, 11), atol=1e-9)


def test_dark_modulate_keeps_each_maximum_and_rejects_even_kernels(post):
    modulated = dark_modulate(post["heatmaps"], 11)
    np.testing.assert_allclose(modulated.max(axis=(2, 3)), post["heatmaps"].max(axis=(2, 3)), rtol=1e-6)
    assert not modulated[0, 3].any()  # the all-zero map stays zero instead of 0 / 0
    with pytest.raises(ValueError, match="positive odd size, got 10"):
        dark_modulate(post["heatmaps"], 10)


# ----------------------------------------------------------------------------------------------- round trips


def _keypoints_in_crop(rng: np.random.Generator, count: int, margin: float = 40.0) -> np.ndarray:
    height, width = INPUT_SIZE
    return np.stack([rng.uniform(margin, width - margin, count), rng.uniform(margin, height - margin, count)], 1)


def _identity_crop(unbiased: bool) -> tuple[np.ndarray, np.ndarray]:
    """Center and size under which image pixels are input-crop pixels."""
    height, width = INPUT_SIZE
    if unbiased:
        return np.array([[(width - 1) / 2, (height - 1) / 2]]), np.array([[width - 1.0, height - 1.0]])
    return np.array([[width / 2, height / 2]]), np.array([[float(width), float(height)]])


def test_round_trip_official_gaussian_recovers_the_rounded_position():
    keypoints = _keypoints_in_crop(np.random.default_rng(0), 40)
    heatmaps, _ = encode_gaussian(keypoints, np.full(40, 2), INPUT_SIZE, HEATMAP_SIZE)
    decoded, _ = decode(heatmaps[None], *_identity_crop(False))
    # A centered Gaussian has equal neighbours: no quarter offset, the argmax is the rounded position.
    np.testing.assert_allclose(decoded[0], 4 * np.floor(keypoints / 4 + 0.5), atol=1e-4)
    assert np.abs(decoded[0] - keypoints).max() <= 2.0 + 1e-4


def test_round_trip_subpixel_argmax_within_a_quarter_pixel():
    keypoints = _keypoints_in_crop(np.random.default_rng(1), 40)
    heatmaps, _ = encode_gaussian(keypoints, np.full(40, 2), INPUT_SIZE, HEATMAP_SIZE, subpixel=True)
    decoded, _ = decode(heatmaps[None], *_identity_crop(False))
    assert np.abs(decoded[0] - keypoints).max() <= 0.25 * 4 + 1e-4  # a quarter heatmap pixel


def test_round_trip_through_the_crop_with_dark_and_udp():
    # Image keypoints → person box → crop → targets → DARK / UDP decoding → image keypoints.
    rng = np.random.default_rng(2)
    boxes = np.array([[40.0, 30.0, 120.0, 260.0], [300.0, 200.0, 90.0, 60.0], [10.5, 400.25, 200.0, 180.0]])
    centers, sizes = box_to_center_size(boxes, INPUT_SIZE)
    crop_points = np.stack([_keypoints_in_crop(rng, 17) for _ in boxes])
    visibility = np.full(17, 2)
    for kind in ("gaussian_subpixel", "udp"):
        unbiased = kind == "udp"
        to_crop = get_affine_transform(centers, sizes, 0.0, INPUT_SIZE, unbiased=unbiased)
        to_image = get_affine_transform(centers, sizes, 0.0, INPUT_SIZE, inverse=True, unbiased=unbiased)
        image_points = affine_points(crop_points, to_image)
        in_crop = affine_points(image_points, to_crop)
        if unbiased:
            targets = [encode_udp(p, visibility, INPUT_SIZE, HEATMAP_SIZE)[0] for p in in_crop]
        else:
            targets = [encode_gaussian(p, visibility, INPUT_SIZE, HEATMAP_SIZE, subpixel=True)[0] for p in in_crop]
        decoded, _ = decode(np.stack(targets), centers, sizes, method="dark", unbiased=unbiased)
        error = np.abs(decoded - image_points) / (sizes[:, None, :1] / HEATMAP_SIZE[1])  # in heatmap pixels
        assert error.max() < 0.01, kind


# ----------------------------------------------------------------------------------------------- flip test


def test_flip_heatmaps_matches_official_flip_back(post):
    flipped = flip_heatmaps(torch.from_numpy(post["heatmaps"]), COCO17.flip_index)
    np.testing.assert_array_equal(flipped.numpy(), post["flip_back_out"])


def test_flip_heatmaps_twice_is_identity():
    heatmaps = torch.randn(2, 17, 8, 6)
    np.testing.assert_array_equal(
        flip_heatmaps(flip_heatmaps(heatmaps, COCO17.flip_index), COCO17.flip_index), heatmaps
    )


def test_merge_flip_matches_official_validate(post):
    merged = merge_flip(
        torch.from_numpy(post["fliptest_output"]),
        torch.from_numpy(post["fliptest_output_flipped_raw"]),
        COCO17.flip_index,
    )
    np.testing.assert_array_equal(merged.numpy(), post["fliptest_merged"])


def test_merge_flip_without_shift_of_a_mirror_image_is_the_original():
    heatmaps = torch.rand(2, 17, 8, 6)
    mirrored = flip_heatmaps(heatmaps, COCO17.flip_index)  # what an ideal network sees in the mirrored input
    torch.testing.assert_close(merge_flip(heatmaps, mirrored, COCO17.flip_index, shift=False), heatmaps)
    shifted = merge_flip(heatmaps, mirrored, COCO17.flip_index)
    torch.testing.assert_close(shifted[..., 1:], (heatmaps[..., 1:] + heatmaps[..., :-1]) / 2)
    torch.testing.assert_close(shifted[..., 0], heatmaps[..., 0])  # column 0 keeps its value


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_merge_flip_on_cuda_equals_cpu(post):
    args = [torch.from_numpy(post["fliptest_output"]), torch.from_numpy(post["fliptest_output_flipped_raw"])]
    on_gpu = merge_flip(args[0].cuda(), args[1].cuda(), COCO17.flip_index)
    np.testing.assert_array_equal(on_gpu.cpu().numpy(), post["fliptest_merged"])


def test_flip_rejects_mismatched_inputs():
    heatmaps = torch.zeros(1, 17, 8, 6)
    with pytest.raises(ConfigError, match="flip_index has 14 entries but the heatmaps have 17 channels"):
        flip_heatmaps(heatmaps, tuple(range(14)))
    with pytest.raises(ValueError, match=r"heatmaps must be \(N, K, H, W\), got \(17, 8, 6\)"):
        flip_heatmaps(heatmaps[0], COCO17.flip_index)
    with pytest.raises(ValueError, match=r"differ in shape"):
        merge_flip(heatmaps, torch.zeros(1, 17, 8, 5), COCO17.flip_index)


# ----------------------------------------------------------------------------------------------- HeatmapCodec


def test_codec_encode_dispatches_on_kind():
    keypoints = _keypoints_in_crop(np.random.default_rng(3), 17)
    visibility = np.full(17, 2)
    for kind, expected in (
        ("gaussian", encode_gaussian(keypoints, visibility, INPUT_SIZE, HEATMAP_SIZE, 3.0)),
        ("udp", encode_udp(keypoints, visibility, INPUT_SIZE, HEATMAP_SIZE, 3.0)),
    ):
        codec = HeatmapCodec(Crop(INPUT_SIZE, unbiased=kind == "udp"), HEATMAP_SIZE, sigma=3.0, kind=kind)
        heatmaps, weights = codec.encode(keypoints, visibility)
        np.testing.assert_array_equal(heatmaps, expected[0])
        np.testing.assert_array_equal(weights, expected[1])
    heatmaps, _ = HeatmapCodec(Crop(INPUT_SIZE), INPUT_SIZE, kind="tf_port").encode(keypoints, visibility)
    np.testing.assert_array_equal(heatmaps, encode_tf_port(keypoints, visibility, INPUT_SIZE)[0])  # the port's


def test_codec_decode_uses_its_geometry_and_blur(post):
    centers, sizes = post["box_centers"], post["box_scales"] * PIXEL_STD
    for kind, unbiased in (("gaussian", False), ("udp", True)):
        codec = HeatmapCodec(Crop(INPUT_SIZE, unbiased=unbiased), HEATMAP_SIZE, kind=kind)
        for method in ("argmax", "dark"):
            got = codec.decode(post["heatmaps"], centers, sizes, method=method)
            expected = decode(post["heatmaps"], centers, sizes, method=method, unbiased=unbiased, blur_kernel=11)
            np.testing.assert_array_equal(got[0], expected[0])
    assert HeatmapCodec(Crop((384, 288)), (96, 72), sigma=3.0).blur_kernel == 17
    assert HeatmapCodec(Crop(INPUT_SIZE), INPUT_SIZE, kind="tf_port").blur_kernel == 5


def test_codec_decode_takes_a_blur_other_than_its_sigmas(post):
    """``blur_kernel`` (test.dark_blur_kernel) overrides the σ rule, as MMPose 1.x blurs 11 at σ 3; 0 keeps it."""
    centers, sizes = post["box_centers"], post["box_scales"] * PIXEL_STD
    codec = HeatmapCodec(Crop(INPUT_SIZE), HEATMAP_SIZE, sigma=3.0)
    got = {k: codec.decode(post["heatmaps"], centers, sizes, method="dark", blur_kernel=k)[0] for k in (0, 11, 17)}
    for kernel in (11, 17):
        expected = decode(post["heatmaps"], centers, sizes, method="dark", blur_kernel=kernel)[0]
        np.testing.assert_array_equal(got[kernel], expected)
    np.testing.assert_array_equal(got[0], got[17])
    assert not np.array_equal(got[11], got[17])


def test_codec_rejects_bad_settings(post):
    with pytest.raises(ConfigError, match=r"kind must be one of \['gaussian', 'udp', 'tf_port'\], got 'dark'"):
        HeatmapCodec(Crop(INPUT_SIZE), HEATMAP_SIZE, kind="dark")
    with pytest.raises(ConfigError, match="heatmap_size \\(64, 48\\) must equal input_size"):
        HeatmapCodec(Crop(INPUT_SIZE), HEATMAP_SIZE, kind="tf_port")
    with pytest.raises(ConfigError, match="positive sigma"):
        HeatmapCodec(Crop(INPUT_SIZE), HEATMAP_SIZE, sigma=0.0)
    with pytest.raises(ConfigError, match="the udp codec needs the UDP crop geometry"):
        HeatmapCodec(Crop(INPUT_SIZE), HEATMAP_SIZE, kind="udp")
    with pytest.raises(ConfigError, match="the gaussian codec needs the official crop geometry"):
        HeatmapCodec(Crop(INPUT_SIZE, unbiased=True), HEATMAP_SIZE)
    codec = HeatmapCodec(Crop((384, 288)), (96, 72))
    with pytest.raises(ValueError, match=r"heatmaps are \(64, 48\), the codec expects \(96, 72\)"):
        codec.decode(post["heatmaps"], post["box_centers"], post["box_scales"] * PIXEL_STD)


def test_tf_port_decoding_is_the_ports_integer_argmax(reference_dir):
    fixture = np.load(reference_dir / "tf_port_parity" / "metric.npz")
    heatmaps = np.ascontiguousarray(fixture["decode_net_output"].transpose(0, 3, 1, 2))
    coords, scores = decode_peaks(heatmaps, method="tf_port", threshold=float(fixture["decode_threshold"]))
    rows = fixture["decode_prediction"].reshape(len(heatmaps), -1, 3)  # [ver, hor, class] × K
    np.testing.assert_array_equal(coords[..., 1], rows[..., 0])
    np.testing.assert_array_equal(coords[..., 0], rows[..., 1])
    np.testing.assert_array_equal(scores, heatmaps.reshape(*heatmaps.shape[:2], -1).max(axis=2))
    # the stretch crop maps them back to the image through the box, as the port's inverse of its stretch
    codec = HeatmapCodec(Crop((256, 192), stretch=True, pixels="unit"), (256, 192), kind="tf_port")
    keypoints, _ = codec.decode(
        heatmaps, np.full((len(heatmaps), 2), 100.5), np.full((len(heatmaps), 2), 97.0), method="tf_port"
    )
    np.testing.assert_allclose(keypoints, coords / np.array([192.0, 256.0]) * 97.0 + 52.0, atol=1e-4)
