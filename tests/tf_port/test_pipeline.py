"""The TF port's data side against its own outputs (../shared/reference/tf_port_parity; see its README)."""

from pathlib import Path

import numpy as np
import pytest

from hrnet.errors import ConfigError, DataError
from hrnet.tf_port.pipeline import (
    decode_tf_port,
    encode_tf_port,
    gaussian_kernel,
    scale_tf_port,
    stretch_crop,
    stretch_points,
    unstretch_points,
    wrap_uint8,
)

PORT_SIZE = (256, 192)  # the port's hard-coded input and heatmap size (height, width)


@pytest.fixture(scope="module")
def parity_dir(reference_dir: Path) -> Path:
    return reference_dir / "tf_port_parity"


@pytest.fixture(scope="module")
def crops(parity_dir: Path) -> dict[str, np.ndarray]:
    return dict(np.load(parity_dir / "crop.npz"))


@pytest.fixture(scope="module")
def targets(parity_dir: Path) -> dict[str, np.ndarray]:
    return dict(np.load(parity_dir / "targets.npz"))


@pytest.fixture(scope="module")
def metric(parity_dir: Path) -> dict[str, np.ndarray]:
    return dict(np.load(parity_dir / "metric.npz"))


def coco_visibility(port_class: np.ndarray) -> np.ndarray:
    """The port's AI Challenger classes (1 visible, 2 occluded, 3 unlabelled) as COCO visibility. Class 0 is not
    an AI Challenger code; the port draws it like any labelled keypoint, so it becomes 2 here."""
    return np.select([port_class == 3, port_class == 2], [0, 1], 2)


def synthetic_image(height: int, width: int) -> np.ndarray:
    return (np.arange(height * width * 3) * 37 % 256).astype(np.uint8).reshape(height, width, 3)


# ----------------------------------------------------------------------------------------------- crop


@pytest.mark.parametrize(("person", "shape"), [(0, (70, 50)), (1, (290, 210))])
def test_stretch_crop_equals_port_crops(crops, person, shape):
    """Person 0's box is upsampled to 256×192, person 1's downsampled; both equal the port's uint8 crops."""
    x1, y1, x2, y2 = crops["boxes"][person]
    assert (y2 - y1, x2 - x1) == shape
    crop = stretch_crop(crops["image"], (x1, y1, x2, y2), PORT_SIZE)
    assert crop.shape == (*PORT_SIZE, 3) and crop.dtype == np.uint8
    assert np.count_nonzero(crop != crops["result"][person]) == 0


# Anti-aliasing with a non-trivial kernel: the fixture's downsampled box shrinks by less than 1.25 per axis, so
# its Gaussian has radius 0. These uint8 crops of synthetic_image come from SciPy 1.17.1's gaussian_filter and zoom
# called as scikit-image 0.26's resize calls them (both axes shrink; a kernel wider than the image; one axis grows).
SCIPY_GOLDEN = [
    ((9, 13), (4, 3), [119, 109, 132, 118, 135, 130, 143, 129, 118, 133, 135, 126, 125, 117, 127, 119, 138, 136,
                       120, 127, 144, 135, 128, 116, 130, 112, 129, 144, 118, 118, 122, 126, 142, 141, 123, 120]),
    ((5, 6), (1, 2), [108, 133, 141, 142, 116, 124]),
    ((3, 20), (5, 4), [124, 105, 113, 112, 121, 133, 121, 129, 123, 138, 130, 114, 127, 110, 121, 114, 127, 138,
                       121, 123, 120, 131, 126, 119, 135, 124, 145, 118, 146, 152, 121, 107, 113, 111, 114, 135,
                       126, 140, 133, 133, 139, 136, 132, 121, 130, 118, 138, 114, 123, 145, 129, 137, 136, 130,
                       136, 126, 136, 121, 146, 108]),
]  # fmt: skip


@pytest.mark.parametrize(("image_size", "output_size", "expected"), SCIPY_GOLDEN)
def test_stretch_crop_antialiasing_equals_scipy(image_size, output_size, expected):
    height, width = image_size
    crop = stretch_crop(synthetic_image(height, width), (0, 0, width, height), output_size)
    np.testing.assert_array_equal(crop.ravel(), expected)


def test_stretch_crop_cuts_boxes_at_the_far_edges_as_the_port_slices():
    image = synthetic_image(40, 30)
    past = stretch_crop(image, (5, 8, 45, 60), (16, 12))
    np.testing.assert_array_equal(past, stretch_crop(image, (5, 8, 30, 40), (16, 12)))
    # the keypoint mapping keeps the whole box, as the port's does
    np.testing.assert_allclose(stretch_points(np.array([30.0, 40.0]), (5, 8, 45, 60), (16, 12)), [7.5, 9.846153846])


@pytest.mark.parametrize(
    ("image", "box", "size", "error", "message"),
    [
        (synthetic_image(40, 30), (-5, 0, 20, 20), (16, 12), DataError, r"\(-5, 0, 20, 20\) starts left of or above"),
        (synthetic_image(40, 30), (0, -1, 20, 20), (16, 12), DataError, "wrap to the far side"),
        (synthetic_image(40, 30), (10, 0, 10, 20), (16, 12), DataError, r"box \(10, 0, 10, 20\) is empty"),
        (synthetic_image(40, 30), (10, 20, 15, 5), (16, 12), DataError, "needs x2 > x1 and y2 > y1"),
        (synthetic_image(40, 30), (30, 0, 35, 20), (16, 12), DataError, "covers no pixel of the 30×40 image"),
        (synthetic_image(40, 30), (0.5, 0, 20, 20), (16, 12), DataError, "must be whole pixels"),
        (synthetic_image(40, 30), (0, 0, 20), (16, 12), DataError, "four finite numbers"),
        (synthetic_image(40, 30), (0, 0, np.nan, 20), (16, 12), DataError, "four finite numbers"),
        (synthetic_image(40, 30)[..., 0], (0, 0, 20, 20), (16, 12), DataError, r"\(H, W, 3\) uint8"),
        (synthetic_image(40, 30).astype(np.float32), (0, 0, 20, 20), (16, 12), DataError, "float32"),
        (synthetic_image(40, 30), (0, 0, 20, 20), (0, 12), ConfigError, "output_size must be"),
        (synthetic_image(40, 30), (0, 0, 20, 20), (16.0, 12), ConfigError, "two positive integers"),
    ],
)
def test_stretch_crop_rejects_bad_inputs(image, box, size, error, message):
    with pytest.raises(error, match=message):
        stretch_crop(image, box, size)


def test_stretch_points_equals_the_port_mapping(targets):
    for person in range(2):
        raw = targets["dataset_keypoints_raw"][person]
        mapped = stretch_points(raw[:, :2], tuple(targets["dataset_boxes"][person]), PORT_SIZE)
        np.testing.assert_array_equal(mapped[:, 0], targets["dataset_kp_hor_float"][person])
        np.testing.assert_array_equal(mapped[:, 1], targets["dataset_kp_ver_float"][person])


def test_unstretch_points_inverts_stretch_points():
    points = np.random.default_rng(0).uniform(-50, 350, size=(3, 7, 2))
    box = (10, 20.5, 60, 90)
    back = unstretch_points(stretch_points(points, box, PORT_SIZE), box, PORT_SIZE)
    np.testing.assert_allclose(back, points, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(
        unstretch_points(np.array([[0.0, 0.0], [192.0, 256.0]]), box, PORT_SIZE),
        [
            [10, 20.5],
            [60, 90],
        ],
    )


@pytest.mark.parametrize("function", [stretch_points, unstretch_points])
def test_point_mappings_reject_bad_inputs(function):
    with pytest.raises(DataError, match=r"box \(10, 20, 10, 90\) is empty"):
        function(np.zeros((3, 2)), (10, 20, 10, 90), PORT_SIZE)
    with pytest.raises(DataError, match=r"shape \(\.\.\., 2\).*\(3, 3\)"):
        function(np.zeros((3, 3)), (10, 20, 60, 90), PORT_SIZE)
    with pytest.raises(ConfigError, match="output_size must be"):
        function(np.zeros((3, 2)), (10, 20, 60, 90), (256, -192))


# ----------------------------------------------------------------------------------------------- targets


def test_wrap_uint8_truncates_and_wraps_as_the_port_stores(targets):
    np.testing.assert_array_equal(
        wrap_uint8(np.array([49.92, -0.38, -3.84, 256.0, 268.8, 255.6])), [49, 0, 253, 0, 12, 255]
    )
    for person in range(2):
        np.testing.assert_array_equal(
            wrap_uint8(targets["dataset_kp_hor_float"][person]), targets["keypoint_hor"][3 + person]
        )
        np.testing.assert_array_equal(
            wrap_uint8(targets["dataset_kp_ver_float"][person]), targets["keypoint_ver"][3 + person]
        )


@pytest.mark.parametrize(("kernel_length", "sigma", "name"), [(3, 1.0, "kernel_k3_s1"), (5, 2.0, "kernel_k5_s2")])
def test_gaussian_kernel_equals_the_ports(targets, kernel_length, sigma, name):
    # 1 ulp apart at most: the fixture ran under NumPy 1.23, whose exp or sum rounds a last bit differently; the
    # port's own expression under today's NumPy gives the same values as ours.
    np.testing.assert_allclose(gaussian_kernel(kernel_length, sigma), targets[name], rtol=0, atol=2e-17)


@pytest.mark.parametrize(("kernel_length", "sigma", "name"), [(3, 1.0, "heatmap"), (5, 2.0, "heatmap_k5_s2")])
def test_encode_equals_the_ports_targets(targets, kernel_length, sigma, name):
    """Rows: borders and skip rules, interior points, values past the map edge, the two persons of crop.npz."""
    for row in range(5):
        keypoints = np.stack([targets["keypoint_hor"][row], targets["keypoint_ver"][row]], -1).astype(np.float64)
        visibility = coco_visibility(targets["keypoint_class"][row])
        heatmaps, weights = encode_tf_port(keypoints, visibility, PORT_SIZE, kernel_length, sigma)
        assert heatmaps.dtype == weights.dtype == np.float32
        np.testing.assert_array_equal(heatmaps, np.moveaxis(targets[name][row], -1, 0), err_msg=f"row {row}")
        np.testing.assert_array_equal(weights, heatmaps.sum(axis=(1, 2)) > 0, err_msg=f"row {row}")


def test_encode_after_the_box_mapping_equals_the_ports_targets(targets):
    """Raw image keypoints → stretch_points → encode: mapping, truncation and wrap-around together."""
    for person in range(2):
        raw = targets["dataset_keypoints_raw"][person]
        keypoints = stretch_points(raw[:, :2], tuple(targets["dataset_boxes"][person]), PORT_SIZE)
        heatmaps, _ = encode_tf_port(keypoints, coco_visibility(raw[:, 2].astype(np.int64)), PORT_SIZE)
        np.testing.assert_array_equal(heatmaps, np.moveaxis(targets["heatmap"][3 + person], -1, 0))


def test_encode_weights_and_wrap_on_other_map_sizes():
    keypoints = np.array([[10.7, 5.2], [10.0, 5.0], [-0.5, 3.0], [-1.0, 3.0], [47.0, 63.9], [260.0, 2.0], [np.nan, 2]])
    heatmaps, weights = encode_tf_port(keypoints, np.array([2, 0, 1, 2, 2, 2, 2]), (64, 48))
    np.testing.assert_array_equal(weights, [1, 0, 1, 0, 1, 1, 0])
    kernel = gaussian_kernel().astype(np.float32)
    np.testing.assert_array_equal(heatmaps[0, 4:7, 9:12], kernel)  # truncated to (10, 5), not rounded to (11, 5)
    assert np.count_nonzero(heatmaps[0]) == 9 and np.count_nonzero(heatmaps[1]) == 0
    np.testing.assert_array_equal(heatmaps[2, 2:5, 0:2], kernel[:, 1:])  # -0.5 → column 0, left taps dropped
    np.testing.assert_array_equal(heatmaps[4, 62:64, 46:48], kernel[:2, :2])  # a corner keeps 4 taps
    np.testing.assert_array_equal(heatmaps[5, 1:4, 3:6], kernel)  # 260 wraps to column 4
    assert heatmaps[3].sum() == heatmaps[6].sum() == 0  # -1 wraps to column 255; NaN is not drawn


@pytest.mark.parametrize(
    ("keypoints", "visibility", "kwargs", "error", "message"),
    [
        (np.zeros((3, 3)), np.ones(3), {}, DataError, r"keypoints must be \(K, 2\).*\(3, 3\)"),
        (np.zeros((3, 2)), np.ones(4), {}, DataError, r"visibility \(K,\).*\(4,\)"),
        (np.zeros((3, 2)), np.ones(3), {"kernel_length": 4}, ConfigError, "kernel_length must be a positive odd"),
        (np.zeros((3, 2)), np.ones(3), {"kernel_length": 0}, ConfigError, "kernel_length must be a positive odd"),
        (np.zeros((3, 2)), np.ones(3), {"sigma": 0.0}, ConfigError, "sigma must be a positive finite"),
        (np.zeros((3, 2)), np.ones(3), {"sigma": np.inf}, ConfigError, "sigma must be a positive finite"),
        (np.zeros((3, 2)), np.ones(3), {"heatmap_size": (256,)}, ConfigError, "heatmap_size must be"),
    ],
)
def test_encode_rejects_bad_inputs(keypoints, visibility, kwargs, error, message):
    kwargs = {"heatmap_size": PORT_SIZE, **kwargs}
    with pytest.raises(error, match=message):
        encode_tf_port(keypoints, visibility, **kwargs)


# ----------------------------------------------------------------------------------------------- decoding


def test_decode_equals_the_ports_predictions(metric):
    """Rows of ``decode_prediction`` are [row, column, class] × 14, class 3 for not detected (then at (0, 0))."""
    heatmaps = np.moveaxis(metric["decode_net_output"], -1, 1)
    coords, peaks, detected = decode_tf_port(heatmaps, float(metric["decode_threshold"]))
    expected = metric["decode_prediction"].reshape(len(heatmaps), -1, 3)
    np.testing.assert_array_equal(coords[..., 1], expected[..., 0])
    np.testing.assert_array_equal(coords[..., 0], expected[..., 1])
    np.testing.assert_array_equal(np.where(detected, 1, 3), expected[..., 2])
    np.testing.assert_array_equal(peaks, heatmaps.reshape(*heatmaps.shape[:2], -1).max(axis=2))
    assert peaks[0, 2] == np.float32(0.001) and detected[0, 2]  # float32(0.001) > 0.001 in float64


def test_decode_takes_the_first_maximum_and_the_maps_own_width():
    heatmaps = np.zeros((1, 3, 64, 48), dtype=np.float32)
    heatmaps[0, 0, 10, 30] = heatmaps[0, 0, 20, 5] = 0.5  # tie: row-major order picks (row 10, column 30)
    heatmaps[0, 1, 63, 47] = 0.2
    heatmaps[0, 2, 40, 40] = 0.0015  # below the threshold: not detected, reported at (0, 0)
    coords, peaks, detected = decode_tf_port(heatmaps, threshold=0.002)
    np.testing.assert_array_equal(coords[0], [[30, 10], [47, 63], [0, 0]])
    np.testing.assert_array_equal(detected[0], [True, True, False])
    np.testing.assert_array_equal(peaks[0], np.float32([0.5, 0.2, 0.0015]))
    assert coords.dtype == peaks.dtype == np.float32


@pytest.mark.parametrize("shape", [(2, 14, 64), (1, 2, 0, 48)])
def test_decode_rejects_bad_shapes(shape):
    with pytest.raises(DataError, match=r"\(N, K, H, W\) with H, W ≥ 1, got shape"):
        decode_tf_port(np.zeros(shape, dtype=np.float32))


# ----------------------------------------------------------------------------------------------- input


def test_scale_is_uint8_over_255_in_float32():
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    scaled = scale_tf_port(values)
    assert scaled.dtype == np.float32 and scaled[0, 0] == 0 and scaled[-1, -1] == 1
    np.testing.assert_array_equal(scaled, (np.arange(256) / 255.0).astype(np.float32).reshape(16, 16))
    with pytest.raises(DataError, match=r"uint8 crop .* got float64"):
        scale_tf_port(values / 255.0)
