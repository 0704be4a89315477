import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from hrnet.drawing import curves, heatmaps, skeletons
from hrnet.errors import DataError
from hrnet.io import images
from hrnet.keypoints import AIC14, COCO17, KeypointSet

BACKGROUND = 100


def _canvas(height: int = 240, width: int = 320) -> np.ndarray:
    return np.full((height, width, 3), BACKGROUND, dtype=np.uint8)


def _coco_person() -> np.ndarray:
    """A front-facing COCO-17 pose in a 240×320 image (the person's left side on the image's right)."""
    return np.array(
        [
            [160, 30], [170, 25], [150, 25], [180, 30], [140, 30], [190, 60], [130, 60], [210, 100], [110, 100],
            [220, 140], [100, 140], [180, 130], [140, 130], [185, 180], [135, 180], [190, 225], [130, 225],
        ],
        dtype=np.float64,
    )[None]  # fmt: skip


def _changed(a: np.ndarray, b: np.ndarray, x: float, y: float) -> bool:
    return bool((a[round(y), round(x)] != b[round(y), round(x)]).any())


def _midpoint(points: np.ndarray, a: int, b: int) -> tuple[float, float]:
    return tuple((points[0, a] + points[0, b]) / 2)


def test_draw_poses_marks_shown_keypoints_and_hides_low_scores() -> None:
    image = _canvas()
    keypoints = _coco_person()
    scores = np.ones((1, 17))
    scores[0, 9] = 0.1  # left wrist below the threshold
    out = skeletons.draw_poses(image, keypoints, scores, COCO17, threshold=0.3, thickness=3)

    assert out.shape == image.shape and out.dtype == np.uint8
    assert (image == BACKGROUND).all(), "the input must not be drawn on"
    for k in range(17):
        assert _changed(out, image, *keypoints[0, k]) == (k != 9), COCO17.names[k]
    # The forearm (left elbow → left wrist) is hidden with its wrist; the upper arm is drawn.
    assert not _changed(out, image, *_midpoint(keypoints, 7, 9))
    assert _changed(out, image, *_midpoint(keypoints, 5, 7))


def test_draw_poses_without_scores_draws_everything_and_skips_non_finite_points() -> None:
    original = _coco_person()
    keypoints = original.copy()
    keypoints[0, 0] = np.nan
    keypoints[0, 16] = [100, -np.inf]
    keypoints[0, 10] = [1e12, 100]  # finite but far outside: the limb runs off the image
    out = skeletons.draw_poses(_canvas(), keypoints, None, COCO17, thickness=1)
    assert _changed(out, _canvas(), *keypoints[0, 15])
    assert not _changed(out, _canvas(), *_midpoint(original, 0, 1))
    assert not _changed(out, _canvas(), *_midpoint(original, 14, 16))
    assert _changed(out, _canvas(), 300, 100)


def test_keypoints_are_drawn_at_a_sixteenth_of_a_pixel_rounded_half_to_even() -> None:
    """Sub-pixel keypoints land on OpenCV's 1/16-pixel grid, ties to the even sixteenth (Python's rounding): 10.03125
    (160.5 sixteenths) is drawn as 10.0, 10.09375 (161.5) as 10.125; a box's corners likewise."""
    keypoints, boxes = _coco_person(), np.array([[40.03125, 20.09375, 200.0, 190.0]])
    on_grid = keypoints.copy()
    keypoints[0, :, 0] += 0.03125  # every x half-way between two sixteenths above an even one
    keypoints[0, 5] += [0.125, 0.09375]  # x: 2.5 sixteenths above the integer → 2 (even); y: 1.5 → 2
    on_grid[0, 5] += [0.125, 0.125]
    grid_boxes = np.array([[40.0, 20.125, 200.0, 190.0]])
    for order in ("rgb", "bgr"):
        drawn = skeletons.draw_poses(_canvas(), keypoints, None, COCO17, boxes=boxes, channel_order=order)
        expected = skeletons.draw_poses(_canvas(), on_grid, None, COCO17, boxes=grid_boxes, channel_order=order)
        assert (drawn == expected).all()
        moved = skeletons.draw_poses(_canvas(), on_grid + 0.0625, None, COCO17, boxes=grid_boxes, channel_order=order)
        assert (moved != expected).any()  # a sixteenth of a pixel shows


def test_left_right_and_center_limbs_get_distinct_colours() -> None:
    keypoints = _coco_person()
    out = skeletons.draw_poses(_canvas(), keypoints, None, COCO17, thickness=7, channel_order="rgb")
    colours = skeletons.limb_colours(COCO17)  # RGB
    limb = {pair: i for i, pair in enumerate(COCO17.skeleton)}

    def pixel(a: int, b: int) -> np.ndarray:
        x, y = _midpoint(keypoints, a, b)
        return out[round(y), round(x)].astype(int)

    left, right, center = pixel(7, 9), pixel(8, 10), pixel(11, 12)
    assert tuple(left) == colours[limb[(7, 9)]]
    assert tuple(right) == colours[limb[(8, 10)]]
    assert tuple(center) == colours[limb[(11, 12)]]
    assert left[0] > left[2], "left limbs are warm"
    assert right[2] > right[0], "right limbs are cool"
    assert center[1] > max(center[0], center[2]), "center limbs are green"
    assert len(set(colours)) == len(colours), "every limb has its own colour"


def test_sides_come_from_names_whatever_the_order() -> None:
    assert [skeletons.keypoint_side(n) for n in ("left_eye", "L Knee", "RightWrist", "r_hip", "neck")] == [
        "left",
        "left",
        "right",
        "right",
        "center",
    ]
    # AI Challenger lists the right side first; its left forearm (4, 5) must still be warm.
    colour = skeletons.limb_colours(AIC14)[AIC14.skeleton.index((4, 5))]
    assert colour[0] > colour[2]


def test_boxes_are_drawn_and_line_width_scales_with_image_size() -> None:
    keypoints = np.zeros((0, 17, 2))
    out = skeletons.draw_poses(_canvas(), keypoints, None, COCO17, boxes=[[40, 50, 100, 80]])
    assert _changed(out, _canvas(), 40, 90) and _changed(out, _canvas(), 90, 130)
    assert not _changed(out, _canvas(), 90, 90)

    def line_width(height: int, width: int) -> int:
        image = _canvas(height, width)
        points = np.zeros((1, 17, 2))
        points[0, :, 0] = width / 2
        points[0, 13, 1], points[0, 15, 1] = height * 0.2, height * 0.8  # the left shin, vertical
        scores = np.zeros((1, 17))
        scores[0, [13, 15]] = 1
        drawn = skeletons.draw_poses(image, points, scores, COCO17)
        return int((drawn[height // 2] != BACKGROUND).any(axis=1).sum())

    assert line_width(1080, 1440) > line_width(480, 640) > line_width(256, 192)


def test_draw_poses_rejects_mismatched_inputs() -> None:
    keypoints = _coco_person()
    with pytest.raises(DataError, match=r"expected shape \(P, 17, 2\).*coco17.*\(1, 14, 2\)"):
        skeletons.draw_poses(_canvas(), keypoints[:, :14], None, COCO17)
    with pytest.raises(DataError, match=r"scores: expected shape \(1, 17\).*\(17,\)"):
        skeletons.draw_poses(_canvas(), keypoints, np.ones(17), COCO17)
    with pytest.raises(DataError, match="expected a uint8 image, got dtype float32"):
        skeletons.draw_poses(_canvas().astype(np.float32), keypoints, None, COCO17)
    with pytest.raises(DataError, match=r"expected shape \(H, W, 3\), got \(4, 4, 4\)"):
        skeletons.draw_poses(np.zeros((4, 4, 4), np.uint8), keypoints, None, COCO17)
    with pytest.raises(DataError, match=r"boxes: expected shape \(B, 4\)"):
        skeletons.draw_poses(_canvas(), keypoints, None, COCO17, boxes=[1, 2, 3, 4])
    with pytest.raises(DataError, match="thickness must be at least 1 pixel, got 0"):
        skeletons.draw_poses(_canvas(), keypoints, None, COCO17, thickness=0)


def _gaussian_maps(k: int, height: int, width: int, centers: list[tuple[int, int]], peak: float = 1.0):
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([peak * np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / 2.0) for cx, cy in centers[:k]]).astype(
        np.float32
    )


def test_heatmap_overlay_colours_the_peaks_only() -> None:
    image = _canvas(64, 48)
    # Two channels on a 16×12 grid; the overlay takes their maximum and stretches it 4× to the image.
    maps = _gaussian_maps(2, 16, 12, [(2, 3), (9, 12)])
    out = heatmaps.heatmap_overlay(image, maps)
    assert out.shape == image.shape and out.dtype == np.uint8
    for cx, cy in [(2, 3), (9, 12)]:
        assert _changed(out, image, cx * 4 + 1.5, cy * 4 + 1.5)
    assert not _changed(out, image, 40, 2), "cold pixels keep the original image"

    faint = 0.02 * maps
    assert np.abs(heatmaps.heatmap_overlay(image, faint).astype(int) - image).max() <= 8
    assert _changed(heatmaps.heatmap_overlay(image, faint, normalize=True), image, 9.5, 13.5)

    with pytest.raises(DataError, match=r"heatmaps: expected shape \(K, H, W\), got \(16, 12\)"):
        heatmaps.heatmap_overlay(image, maps[0])


def test_side_by_side_shows_prediction_then_ground_truth() -> None:
    image = _canvas()
    prediction = _coco_person()
    truth = prediction + np.array([0, 8])
    visibility = np.full((1, 17), 2)
    visibility[0, 15] = 0
    out = heatmaps.side_by_side(image, prediction, np.ones((1, 17)), truth, visibility, COCO17)
    pad = 4
    assert out.shape == (240 + 2 * pad, 2 * 320 + 3 * pad, 3)
    left = out[pad : pad + 240, pad : pad + 320]
    right = out[pad : pad + 240, 2 * pad + 320 : 2 * pad + 640]
    assert _changed(left, image, *prediction[0, 16])
    assert _changed(right, image, *truth[0, 16])
    assert not _changed(right, image, *truth[0, 15]), "unlabelled ground truth is not drawn"
    for half in (left, right):
        assert (half[:24, :150] == 255).all(axis=2).any(), "each half carries its white label"

    with pytest.raises(DataError, match=r"gt_visibility: expected shape \(1, 17\).*\(17,\)"):
        heatmaps.side_by_side(image, prediction, None, truth, visibility[0], COCO17)


def test_image_grid_letterboxes_different_sizes_into_equal_cells() -> None:
    tall = np.full((40, 20, 3), 10, np.uint8)
    wide = np.full((20, 60), 200, np.uint8)  # grey images are accepted
    grid = heatmaps.image_grid([tall, wide, tall], columns=2, pad=2, background=(255, 0, 0))
    assert grid.shape == (2 * 40 + 3 * 2, 2 * 60 + 3 * 2, 3) and grid.dtype == np.uint8
    first = grid[2:42, 2:62]
    assert (first[:, 20:40] == 10).all(), "the tall image keeps its aspect, centered"
    assert (first[:, :20] == (255, 0, 0)).all() and (first[:, 40:] == (255, 0, 0)).all()
    second = grid[2:42, 64:124]
    assert (second[10:30] == 200).all() and (second[:10] == (255, 0, 0)).all()

    assert heatmaps.image_grid([tall], columns=5, pad=0).shape == (40, 20, 3)
    thumbs = heatmaps.image_grid([tall, wide], columns=1, pad=0, cell_size=(10, 10))
    assert thumbs.shape == (20, 10, 3)
    assert (thumbs[:10, 2:7] == 10).all() and (thumbs[:10, 7:] == 255).all(), "shrunk to fit the cell"


def test_image_grid_rejects_bad_arguments() -> None:
    with pytest.raises(DataError, match="no images to arrange"):
        heatmaps.image_grid([], columns=2)
    with pytest.raises(DataError, match="columns must be ≥ 1"):
        heatmaps.image_grid([_canvas()], columns=0)
    with pytest.raises(DataError, match=r"cell_size must be positive.*\(0, 5\)"):
        heatmaps.image_grid([_canvas()], columns=1, cell_size=(0, 5))
    with pytest.raises(DataError, match="image_grid image 1: expected a uint8"):
        heatmaps.image_grid([_canvas(), np.zeros((4, 4, 3))], columns=2)


def _read_png(path: Path) -> np.ndarray:
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def test_plot_curves_writes_a_png_with_missing_validation_values(tmp_path: Path) -> None:
    # As csv.DictReader gives them: strings, empty where no validation ran; also None and an absent column.
    rows = [
        {"epoch": "0", "train_loss": "0.0021", "val_ap": "", "lr": "0.001"},
        {"epoch": "1", "train_loss": "0.0017", "val_ap": "0.41", "lr": "0.001"},
        {"epoch": 2, "train_loss": 0.0015, "val_ap": None, "lr": 1e-4},
        {"epoch": 3, "train_loss": 0.0014, "lr": 1e-4},
        {"epoch": 4, "train_loss": "nan", "val_ap": "0.52", "lr": 1e-5},
    ]
    out = curves.plot_curves(rows, tmp_path / "curves.png")
    assert out == tmp_path / "curves.png"
    assert _read_png(out).shape == (600, 800, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png"], "no temporary file is left"

    no_validation = curves.plot_curves(rows[:1], tmp_path / "first.png")
    assert _read_png(no_validation).shape == (600, 800, 3)


def test_plot_curves_marks_the_lowest_value_of_an_error(tmp_path: Path, monkeypatch) -> None:
    from matplotlib.axes import Axes

    marked: list[str] = []
    real = Axes.annotate
    monkeypatch.setattr(Axes, "annotate", lambda self, text, *a, **k: marked.append(text) or real(self, text, *a, **k))
    rows = [{"epoch": e, "train_loss": 1.0, "val_NME": v, "lr": 0.001} for e, v in ((1, 0.3), (2, 0.1), (3, 0.2))]
    curves.plot_curves(rows, tmp_path / "nme.png", metric="val_NME", lower_is_better=True)
    curves.plot_curves(rows, tmp_path / "higher.png", metric="val_NME")
    assert marked == ["best 0.1 (epoch 2)", "best 0.3 (epoch 1)"]


def test_plot_curves_rejects_unusable_logs(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no training log rows to plot"):
        curves.plot_curves([], tmp_path / "curves.png")
    with pytest.raises(DataError, match="row 1: train_loss='high' is not a number"):
        curves.plot_curves([{"epoch": 0, "train_loss": 1}, {"epoch": 1, "train_loss": "high"}], tmp_path / "c.png")
    with pytest.raises(DataError, match="row 0: the epoch is missing"):
        curves.plot_curves([{"train_loss": 1}], tmp_path / "c.png")
    assert list(tmp_path.iterdir()) == []


def test_plotting_leaves_pyplot_alone(tmp_path: Path) -> None:
    # A fresh interpreter: another test may have imported pyplot into this one. Without pyplot nothing can have
    # created global figures or switched the backend.
    code = (
        "import sys; from hrnet.drawing import curves;"
        f"curves.plot_curves([{{'epoch': 0, 'train_loss': 1.0}}], {str(tmp_path / 'c.png')!r});"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_write_image_round_trips_png_and_jpeg(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    png = images.write_image(tmp_path / "deep" / "er" / "a.PNG", image)
    np.testing.assert_array_equal(cv2.imread(str(png), cv2.IMREAD_COLOR), image)

    smooth = np.zeros((30, 40, 3), np.uint8)
    smooth[..., 2] = 220  # pure red in BGR: a swapped channel order would show as blue
    jpeg = images.write_image(tmp_path / "b.jpeg", smooth)
    back = cv2.imread(str(jpeg), cv2.IMREAD_COLOR).astype(int)
    assert np.abs(back - smooth).max() <= 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.jpeg", "deep"]


def test_rgb_images_are_drawn_and_written_in_the_same_colours(tmp_path: Path) -> None:
    """A BGR image (the default) gets the same drawing as its RGB twin (``channel_order="rgb"``), channels
    reversed; in place when asked (a frame nothing reads after), on a copy by default; written as the same file."""
    rgb = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    keypoints, boxes = _coco_person(), np.array([[90.0, 20.0, 140.0, 210.0]])
    drawn_rgb = skeletons.draw_poses(rgb, keypoints, None, COCO17, boxes=boxes, channel_order="rgb")
    kept = bgr.copy()
    drawn_bgr = skeletons.draw_poses(bgr, keypoints, None, COCO17, boxes=boxes)
    np.testing.assert_array_equal(drawn_bgr[..., ::-1], drawn_rgb)
    np.testing.assert_array_equal(bgr, kept)  # a copy was drawn on
    in_place = skeletons.draw_poses(bgr, keypoints, None, COCO17, boxes=boxes, in_place=True)
    assert in_place is bgr
    np.testing.assert_array_equal(bgr, drawn_bgr)
    a = images.write_image(tmp_path / "a.png", drawn_rgb, channel_order="rgb")
    b = images.write_image(tmp_path / "b.png", drawn_bgr)
    np.testing.assert_array_equal(cv2.imread(str(a)), cv2.imread(str(b)))
    with pytest.raises(DataError, match="channel_order must be 'rgb' or 'bgr'"):
        skeletons.draw_poses(rgb, keypoints, None, COCO17, channel_order="BGR")


def test_write_image_errors_name_the_file_and_leave_nothing_behind(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"a\.gif: unknown image extension '\.gif'; use \.png, \.jpg or \.jpeg"):
        images.write_image(tmp_path / "a.gif", _canvas(4, 4))
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    with pytest.raises(DataError, match=r"file\.txt/a\.png: cannot write the file"):
        images.write_image(blocker / "a.png", _canvas(4, 4))
    (tmp_path / "taken.png").mkdir()  # os.replace cannot put a file over a folder
    with pytest.raises(DataError, match=r"taken\.png: cannot write the file"):
        images.write_image(tmp_path / "taken.png", _canvas(4, 4))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt", "taken.png"]
    with pytest.raises(DataError, match=r"a\.png: expected a uint8 image"):
        images.write_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.float32))


def test_custom_keypoint_set_without_sides_is_drawn_in_center_colours() -> None:
    triangle = KeypointSet(
        name="triangle", names=("a", "b", "c"), flip_pairs=(), skeleton=((0, 1), (1, 2)), sigmas=(0.1,) * 3
    )
    colours = skeletons.limb_colours(triangle)
    assert all(g > max(r, b) for r, g, b in colours)
    out = skeletons.draw_poses(_canvas(), np.array([[[20, 20], [100, 20], [60, 90]]]), None, triangle)
    assert _changed(out, _canvas(), 60, 20)


def test_a_set_with_its_own_limb_colours_is_drawn_in_them() -> None:
    from hrnet.keypoints import load_keypoint_set

    wholebody = load_keypoint_set("coco_wholebody133")
    assert skeletons.limb_colours(wholebody) == list(wholebody.limb_colours) and len(set(wholebody.limb_colours)) > 5
    image = np.zeros((200, 200, 3), np.uint8)
    points = np.full((1, 133, 2), np.nan)
    points[0, 15], points[0, 17] = (50.0, 100.0), (150.0, 100.0)  # left ankle → left big toe: a foot link
    link = wholebody.skeleton.index((15, 17))
    drawn = skeletons.draw_poses(image, points, None, wholebody, channel_order="rgb")
    assert np.abs(drawn[100, 100].astype(int) - wholebody.limb_colours[link]).max() <= 40  # anti-aliased line
