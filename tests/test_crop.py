"""The crop geometry against the official code's outputs (../shared/reference/parity) and its own invariants."""

from pathlib import Path

import numpy as np
import pytest
import torch

from hrnet.crop import (
    MEAN,
    STD,
    Crop,
    affine_points,
    box_to_center_size,
    get_affine_transform,
    heatmap_to_image,
    warp_crop,
)

PIXEL_STD = 200.0  # the official "scale" unit


@pytest.fixture(scope="module")
def post(reference_dir: Path) -> dict[str, np.ndarray]:
    return dict(np.load(reference_dir / "parity" / "postprocess.npz"))


def test_box_to_center_size_matches_official(post):
    centers, sizes = box_to_center_size(post["boxes_xywh"], (256, 192))
    # Box 3 is centered at x == -1, where the official _xywh2cs skips the 1.25 enlargement (a sentinel test that
    # misfires on a real box). We do not reproduce that quirk: boxes 0-2 must match, box 3 must be 1.25× larger.
    np.testing.assert_allclose(centers, post["box_centers"], rtol=1e-6)
    np.testing.assert_allclose(sizes[:3], post["box_scales"][:3] * PIXEL_STD, rtol=1e-6)
    np.testing.assert_allclose(sizes[3], post["box_scales"][3] * PIXEL_STD * 1.25, rtol=1e-6)


def test_box_to_center_size_single_box_and_aspect():
    center, size = box_to_center_size([10.0, 20.0, 30.0, 100.0], (256, 192), padding=1.0)
    assert center.shape == size.shape == (2,)
    np.testing.assert_allclose(center, [25.0, 70.0])
    np.testing.assert_allclose(size, [75.0, 100.0])  # widened to 192/256 of the height
    _, size = box_to_center_size([0.0, 0.0, 300.0, 100.0], (256, 192), padding=2.0)
    np.testing.assert_allclose(size, [600.0, 800.0])  # heightened, then doubled


def test_box_to_center_size_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"boxes must have shape \(4,\) or \(N, 4\)"):
        box_to_center_size(np.zeros((3, 5)), (256, 192))


def _official_args(post, i):
    """Fixture i in our convention: size in pixels, output size (height, width)."""
    return dict(
        center=post["affine_center"][i],
        size=post["affine_scale"][i].astype(np.float64) * PIXEL_STD,
        rotation=post["affine_rot"][i],
        output_size=tuple(int(v) for v in post["affine_output_size"][i][::-1]),
        shift=post["affine_shift"][i],
        inverse=bool(post["affine_inv"][i]),
    )


def test_get_affine_transform_matches_official(post):
    for i in range(len(post["affine_trans"])):
        matrix = get_affine_transform(**_official_args(post, i))
        assert matrix.shape == (2, 3) and matrix.dtype == np.float64
        np.testing.assert_allclose(matrix, post["affine_trans"][i], rtol=0, atol=1e-6, err_msg=f"case {i}")


def test_get_affine_transform_batched_equals_single(post):
    forward = [i for i in range(len(post["affine_inv"])) if not post["affine_inv"][i]]
    same_output = [i for i in forward if tuple(post["affine_output_size"][i]) == (192, 256)]
    args = [_official_args(post, i) for i in same_output]
    batched = get_affine_transform(
        np.stack([a["center"] for a in args]),
        np.stack([a["size"] for a in args]),
        np.array([a["rotation"] for a in args]),
        (256, 192),
        shift=np.stack([a["shift"] for a in args]),
    )
    assert batched.shape == (len(args), 2, 3)
    for matrix, i in zip(batched, same_output, strict=True):
        np.testing.assert_allclose(matrix, post["affine_trans"][i], rtol=0, atol=1e-6)


@pytest.mark.parametrize("unbiased", [False, True])
def test_inverse_undoes_forward(unbiased):
    args = dict(center=(120.5, 80.25), size=(150.0, 200.0), rotation=33.0, output_size=(256, 192), shift=(0.1, -0.2))
    forward = get_affine_transform(**args, unbiased=unbiased)
    backward = get_affine_transform(**args, inverse=True, unbiased=unbiased)
    points = np.random.default_rng(0).uniform(-50, 300, (20, 2))
    np.testing.assert_allclose(affine_points(affine_points(points, forward), backward), points, atol=1e-9)


def test_unbiased_geometry_maps_region_edges_to_first_and_last_pixel():
    matrix = get_affine_transform((100.0, 50.0), (60.0, 80.0), 0.0, (64, 48), unbiased=True)
    corners = affine_points(np.array([[70.0, 10.0], [130.0, 90.0]]), matrix)
    np.testing.assert_allclose(corners, [[0.0, 0.0], [47.0, 63.0]], atol=1e-12)


@pytest.mark.parametrize("unbiased", [False, True])
def test_rotation_direction(unbiased):
    # A positive angle brings the content right of the center to the top of the crop, in both geometries.
    matrix = get_affine_transform((100.0, 100.0), (80.0, 80.0), 90.0, (64, 64), unbiased=unbiased)
    center, right = affine_points(np.array([[100.0, 100.0], [120.0, 100.0]]), matrix)
    step = right - center
    assert abs(step[0]) < 1e-9 and step[1] < -10


def test_udp_flip_is_exact_and_official_flip_is_one_pixel_off():
    # Mirroring the image (x -> W - 1 - x) and the crop center mirrors the crop exactly in the UDP geometry;
    # in the official geometry it lands one pixel off, which the flip test's heatmap shift compensates.
    image_width, output_size = 640, (256, 192)
    center, size = np.array([300.0, 200.0]), np.array([150.0, 200.0])
    points = np.random.default_rng(1).uniform(200, 400, (10, 2))
    mirrored = points * [-1, 1] + [image_width - 1, 0]
    mirrored_center = center * [-1, 1] + [image_width - 1, 0]
    for unbiased, offset in ((True, 1.0), (False, 0.0)):
        crop = affine_points(points, get_affine_transform(center, size, 0.0, output_size, unbiased=unbiased))
        crop_of_mirror = affine_points(
            mirrored, get_affine_transform(mirrored_center, size, 0.0, output_size, unbiased=unbiased)
        )
        np.testing.assert_allclose(crop_of_mirror[:, 0], output_size[1] - offset - crop[:, 0], atol=1e-4)
        np.testing.assert_allclose(crop_of_mirror[:, 1], crop[:, 1], atol=1e-4)


def test_get_affine_transform_rejects_bad_input():
    with pytest.raises(ValueError, match="crop sizes must be positive"):
        get_affine_transform((10.0, 10.0), (0.0, 5.0), 0.0, (64, 48))
    with pytest.raises(ValueError, match="crop sizes must be positive"):
        get_affine_transform((10.0, 10.0), (5.0, 0.0), 0.0, (64, 48), unbiased=True)
    with pytest.raises(ValueError, match=r"center and size must have shape \(\.\.\., 2\)"):
        get_affine_transform((10.0, 10.0, 1.0), (5.0, 5.0), 0.0, (64, 48))


@pytest.mark.parametrize("unbiased", [False, True])
def test_warp_crop_puts_an_image_point_where_the_matrix_says(unbiased):
    image = np.zeros((300, 400, 3), np.uint8)
    image[120, 230] = 255  # a dot at x = 230, y = 120
    center, size, rotation, output_size = (220.0, 130.0), (96.0, 128.0), 20.0, (128, 96)
    crop = warp_crop(image, center, size, rotation, output_size, unbiased=unbiased)
    assert crop.shape == (128, 96, 3) and crop.dtype == np.uint8
    matrix = get_affine_transform(center, size, rotation, output_size, unbiased=unbiased)
    expected = affine_points(np.array([230.0, 120.0]), matrix)
    weights = crop[..., 0].astype(np.float64)
    ys, xs = np.mgrid[: crop.shape[0], : crop.shape[1]]
    found = np.array([(weights * xs).sum(), (weights * ys).sum()]) / weights.sum()
    np.testing.assert_allclose(found, expected, atol=0.1)


def test_affine_points_single_and_batched_matrices():
    rng = np.random.default_rng(2)
    matrices = rng.normal(size=(4, 2, 3))
    points = rng.normal(size=(4, 7, 2))
    batched = affine_points(points, matrices)
    for n in range(4):
        expected = points[n] @ matrices[n, :, :2].T + matrices[n, :, 2]
        np.testing.assert_allclose(batched[n], expected)
        np.testing.assert_allclose(affine_points(points[n], matrices[n]), expected)


def test_heatmap_to_image_matches_official_transform_preds(post):
    # The fixture's center and scale are float32, as the official data set stores them.
    center = np.array([[210.5, 180.25]], np.float32)
    size = np.array([[1.1, 1.4666667]], np.float32).astype(np.float64) * PIXEL_STD
    out = heatmap_to_image(post["transform_preds_coords"][None], center, size, (64, 48))
    np.testing.assert_allclose(out[0], post["transform_preds_out"], rtol=1e-6)


@pytest.mark.parametrize("unbiased", [False, True])
@pytest.mark.parametrize("heatmap_size", [(64, 48), (96, 72), (64, 64), (7, 5)])
def test_heatmap_to_image_equals_the_inverse_affine_transform(unbiased, heatmap_size):
    # The closed form against the general route (three points, one solved 3 × 3 system a person).
    rng = np.random.default_rng(3)
    coords = rng.uniform(-5, 100, (200, 17, 2))
    centers = rng.uniform(-100, 2000, (200, 2))
    sizes = rng.uniform(1, 900, (200, 2))
    closed = heatmap_to_image(coords, centers, sizes, heatmap_size, unbiased=unbiased)
    matrices = get_affine_transform(centers, sizes, 0.0, heatmap_size, inverse=True, unbiased=unbiased)
    np.testing.assert_allclose(closed, affine_points(coords, matrices), rtol=0, atol=1e-9)


def test_heatmap_to_image_rejects_empty_crops():
    with pytest.raises(ValueError, match="crop sizes must be positive"):
        heatmap_to_image(np.zeros((1, 17, 2)), np.zeros((1, 2)), np.array([[0.0, 10.0]]), (64, 48))


def test_regions_round_as_the_official_code():
    # Boxes whose float64 centers and sizes are not float32 numbers: the official _xywh2cs stores the center in
    # float32, the scale (size / 200) in float32, enlarges it by 1.25 in float32 and get_affine_transform takes
    # scale × 200 in float32 again. Working in float64 moves keypoints by up to ~1e-4 px.
    boxes = np.array([[101.37, 57.91, 33.33, 211.7], [0.1, 0.2, 480.3, 97.77]])
    centers, sizes = box_to_center_size(boxes, (256, 192), float32=True)
    x, y, w, h = boxes.T
    exact_centers = np.stack([x + w * 0.5, y + h * 0.5], axis=1)
    width = np.where(w < 0.75 * h, h * 0.75, w)
    height = np.where(w > 0.75 * h, w / 0.75, h)
    scale = (np.stack([width, height], axis=1) / 200.0).astype(np.float32)
    official_sizes = (scale * np.float32(1.25)) * np.float32(200)
    np.testing.assert_array_equal(centers, exact_centers.astype(np.float32))
    np.testing.assert_array_equal(sizes, official_sizes)
    assert not np.array_equal(centers, exact_centers)  # the fixture does exercise the rounding ...
    assert not np.array_equal(sizes, np.stack([width, height], axis=1) * 1.25)  # ... of both
    assert centers.dtype == sizes.dtype == np.float64
    np.testing.assert_array_equal(Crop((256, 192)).regions(boxes)[1], sizes)  # the crop rounds so by default
    np.testing.assert_array_equal(box_to_center_size(boxes, (256, 192))[0], exact_centers)  # MPII's float64


def test_crop_object_uses_one_geometry():
    crop = Crop((256, 192))
    udp = Crop((256, 192), unbiased=True)
    center, size = crop.regions([10.0, 20.0, 90.0, 120.0])
    image = np.arange(300 * 200 * 3, dtype=np.uint8).reshape(300, 200, 3)
    np.testing.assert_array_equal(crop.warp(image, center, size), warp_crop(image, center, size, 0.0, (256, 192)))
    np.testing.assert_array_equal(
        udp.warp(image, center, size), warp_crop(image, center, size, 0.0, (256, 192), unbiased=True)
    )
    points = np.array([[30.0, 40.0], [55.5, 100.25]])
    np.testing.assert_allclose(
        udp.to_input(points, center, size),
        affine_points(points, get_affine_transform(center, size, 0, (256, 192), unbiased=True)),
    )
    # heatmap → input crop: a stride of 4 officially, (input - 1) / (heatmap - 1) with UDP
    np.testing.assert_allclose(crop.heatmap_to_input(np.array([[47.0, 63.0]]), (64, 48)), [[188.0, 252.0]])
    np.testing.assert_allclose(udp.heatmap_to_input(np.array([[47.0, 63.0]]), (64, 48)), [[191.0, 255.0]])


def test_tensor_round_trip():
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (8, 6, 3), dtype=np.uint8)
    tensor = Crop((8, 6)).to_tensor(crop)
    assert tensor.shape == (3, 8, 6) and tensor.dtype == torch.float32
    np.testing.assert_array_equal(Crop((8, 6)).to_image(tensor), crop)
    unit = Crop((8, 6), pixels="unit")
    np.testing.assert_array_equal(
        unit.to_tensor(crop).numpy(), crop.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    )
    np.testing.assert_array_equal(unit.to_image(unit.to_tensor(crop)), crop)


def test_input_is_the_official_normalisation_to_the_bit():
    """ToTensor then Normalize as the official code computes them, in float32 on the (H, W, 3) crop: the same
    bits from every crop, whether the crop is contiguous or a channel-reversed view (a BGR frame's crop), and
    written into a batch's slot."""
    rng = np.random.default_rng(1)
    crop = rng.integers(0, 256, (256, 192, 3), dtype=np.uint8)
    official = np.ascontiguousarray(((crop.astype(np.float32) / 255.0 - MEAN) / STD).transpose(2, 0, 1))
    np.testing.assert_array_equal(Crop((256, 192)).to_tensor(crop).numpy(), official)
    bgr = np.ascontiguousarray(crop[..., ::-1])
    batch = np.full((2, 3, 256, 192), np.nan, dtype=np.float32)
    Crop((256, 192)).to_array(bgr[..., ::-1], out=batch[1])
    np.testing.assert_array_equal(batch[1], official)
    assert np.isnan(batch[0]).all()


def test_stretch_crop_is_the_tf_ports(reference_dir):
    # The readers' clean boxes end on their last pixel: the port's box (x1, y1, x2, y2) is (x1, y1, x2 - x1 - 1, ...)
    fixture = np.load(reference_dir / "tf_port_parity" / "crop.npz")
    crop = Crop((256, 192), stretch=True, pixels="unit")
    boxes = fixture["boxes"].astype(np.float64)
    records_boxes = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2] - 1], axis=1)
    centers, sizes = crop.regions(records_boxes)
    for i in range(len(boxes)):
        np.testing.assert_array_equal(crop.warp(fixture["image"], centers[i], sizes[i]), fixture["result"][i])
    # keypoints: stretched into the crop and back again
    points = np.array([[[boxes[0, 0], boxes[0, 1]], [boxes[0, 2], boxes[0, 3]], [100.0, 120.0]]])
    in_crop = crop.to_input(points[0], centers[0], sizes[0])
    np.testing.assert_allclose(in_crop[:2], [[0.0, 0.0], [192.0, 256.0]])
    back = crop.heatmap_to_image(in_crop[None], centers[:1], sizes[:1], (256, 192))
    np.testing.assert_allclose(back, points, atol=1e-9)
    with pytest.raises(ValueError, match="cannot rotate"):
        crop.warp(fixture["image"], centers[0], sizes[0], rotation=10.0)
