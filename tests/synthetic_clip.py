"""A synthetic video for the tracking tests: stick figures of ``hrnet.data.synthetic`` walking across a still,
cluttered background, with their true boxes and keypoints in every frame; detectors (a perfect one, one as weak
as HOG) and a pose estimator that stand in for trained ones on it."""

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from hrnet.data.synthetic import background, draw_figure, pose_keypoints
from hrnet.keypoints import COCO17
from hrnet.pose.detect import Detections, Detector
from hrnet.pose.persons import PersonBoxes, PersonPose


@dataclass
class Clip:
    frames: list  # (H, W, 3) uint8 BGR, as OpenCV decodes
    boxes: list  # per frame (F, 4) true boxes (x, y, w, h) of the visible pixels of each figure
    keypoints: list  # per frame (F, 17, 2) true keypoints
    fps: float = 10.0


def moving_figures(
    num_frames: int = 12,
    size: tuple[int, int] = (192, 320),
    starts: tuple[float, ...] = (60.0, 165.0, 265.0),
    speeds: tuple[float, ...] = (3.0, 0.0, -3.0),
    seed: int = 0,
    noise: float = 0.0,
) -> Clip:
    """Figures (one per start x, pixels) moving ``speeds`` pixels a frame sideways; ``noise`` adds Gaussian pixel
    noise of that standard deviation to every frame (a camera's sensor noise)."""
    height = size[0]
    rng = np.random.default_rng(seed)
    scene = background(rng, size)
    people = []
    for i, x in enumerate(starts):
        body = height * 0.7
        pelvis = np.array([x, height * 0.55])
        people.append((pose_keypoints(np.random.default_rng([seed, i]), body, pelvis, True), body, i))
    clip = Clip([], [], [])
    for f in range(num_frames):
        canvas = scene.copy()
        masks, points = [], []
        for (keypoints, body, i), speed in zip(people, speeds, strict=True):
            moved = keypoints + np.array([speed * f, 0.0])
            masks.append(draw_figure(np.random.default_rng([seed, i, 1]), canvas, moved, body, True))
            points.append(moved)
        boxes = []
        for i, mask in enumerate(masks):
            visible = mask & ~np.any(masks[i + 1 :], axis=0) if i + 1 < len(masks) else mask
            ys, xs = np.nonzero(visible)
            boxes.append([xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1])
        if noise:
            canvas = np.clip(canvas + rng.normal(0, noise, canvas.shape), 0, 255).astype(np.uint8)
        clip.frames.append(cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
        clip.boxes.append(np.array(boxes, dtype=np.float64))
        clip.keypoints.append(np.stack(points))
    return clip


def frame_index(clip: Clip, image_bgr: np.ndarray) -> int:
    """The clip's frame nearest to ``image_bgr`` (decoded video differs a little from what was encoded)."""
    return int(np.argmin([np.abs(image_bgr.astype(np.int16) - f).mean() for f in clip.frames]))


class TruthDetector:
    """A person detector that returns the clip's true boxes in the frame it is shown (``frame_index``). It
    records the frames asked."""

    def __init__(self, clip: Clip):
        self.clip = clip
        self.calls: list[int] = []

    def __call__(self, image_bgr: np.ndarray) -> Detections:
        index = frame_index(self.clip, image_bgr)
        self.calls.append(index)
        boxes = self.clip.boxes[index]
        return Detections(boxes, np.full(len(boxes), 0.9))


class WeakDetector:
    """A detector as weak as HOG on the clip: it misses every figure on every other call, boxes a figure it finds
    with a wide margin that jitters (its true box scaled 1.3 to 2 times about a centre moved up to 6 px), and
    finds the ``background`` boxes (x, y, w, h) on every call. It records the frames asked."""

    def __init__(self, clip: Clip, background: Sequence[Sequence[float]], seed: int = 0):
        self.clip, self.background = clip, np.asarray(background, dtype=np.float64).reshape(-1, 4)
        self.rng = np.random.default_rng(seed)
        self.calls: list[int] = []

    def __call__(self, image_bgr: np.ndarray) -> Detections:
        index = frame_index(self.clip, image_bgr)
        self.calls.append(index)
        boxes = [self.background]
        if len(self.calls) % 2 == 1:
            truth = self.clip.boxes[index]
            scale = self.rng.uniform(1.3, 2.0, (len(truth), 1))
            centre = truth[:, :2] + truth[:, 2:] / 2 + self.rng.uniform(-6, 6, (len(truth), 2))
            size = truth[:, 2:] * scale
            boxes.insert(0, np.concatenate([centre - size / 2, size], axis=1))
        found = np.concatenate(boxes)
        return Detections(found, np.full(len(found), 0.7))


class TruthEstimator:
    """A stand-in for a trained pose estimator on the clip (``PoseEstimator``'s call, ``keypoint_set``,
    ``detector`` and ``person_boxes``): in a box that holds true keypoints of a figure, it finds that figure's
    keypoints (with a pixel of noise), scoring 0.9 those inside the box and 0.1 the others; in a box on the
    background it finds nothing sure (every keypoint at the box's centre, scoring 0.1), as a trained network's
    heatmaps are flat there."""

    keypoint_set = COCO17

    def __init__(self, clip: Clip, detector: Detector | None = None, seed: int = 0):
        self.clip = clip
        self.person_boxes = PersonBoxes(detector)
        self.rng = np.random.default_rng(seed)

    @property
    def detector(self) -> Detector | None:
        return self.person_boxes.detector

    def __call__(
        self, image_bgr: np.ndarray, boxes: np.ndarray, box_scores: np.ndarray, channel_order: str = "bgr"
    ) -> list[PersonPose]:
        truth = self.clip.keypoints[frame_index(self.clip, image_bgr)]  # (F, K, 2)
        persons = []
        for box, box_score in zip(np.asarray(boxes, dtype=np.float64), box_scores, strict=True):
            low, high = box[:2], box[:2] + box[2:]
            inside = ((truth >= low) & (truth <= high)).all(axis=2)  # (F, K)
            figure = int(inside.sum(axis=1).argmax())
            if inside[figure].any():
                keypoints = truth[figure] + self.rng.normal(0, 1.0, truth[figure].shape)
                scores = np.where(inside[figure], 0.9, 0.1)
            else:
                keypoints, scores = np.tile(low + box[2:] / 2, (len(truth[0]), 1)), np.full(len(truth[0]), 0.1)
            persons.append(PersonPose(box, keypoints, scores, float(box_score) * float(scores.mean())))
        return persons


def write_clip(clip: Clip, path, fourcc: str = "MJPG") -> None:
    """The frames as a video file OpenCV writes (Motion-JPEG in .avi by default: nearly lossless, streamable)."""
    height, width = clip.frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), clip.fps, (width, height))
    assert writer.isOpened()
    for frame in clip.frames:
        writer.write(frame)
    writer.release()
