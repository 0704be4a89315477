"""A synthetic video for the tracking tests: stick figures of ``hrnet.data.synthetic`` walking across a still,
cluttered background, with their true boxes and keypoints in every frame."""

from dataclasses import dataclass

import cv2
import numpy as np

from hrnet.data.synthetic import background, draw_figure, pose_keypoints
from hrnet.detect import Detections


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


class TruthDetector:
    """A person detector that returns the clip's true boxes: it recognises the frame it is shown as the clip's
    frame nearest to it (decoded video differs a little from what was encoded). It records the frames asked."""

    def __init__(self, clip: Clip):
        self.clip = clip
        self.calls: list[int] = []

    def __call__(self, image_bgr: np.ndarray) -> Detections:
        distances = [np.abs(image_bgr.astype(np.int16) - f).mean() for f in self.clip.frames]
        index = int(np.argmin(distances))
        self.calls.append(index)
        boxes = self.clip.boxes[index]
        return Detections(boxes, np.full(len(boxes), 0.9))


def write_clip(clip: Clip, path, fourcc: str = "MJPG") -> None:
    """The frames as a video file OpenCV writes (Motion-JPEG in .avi by default: nearly lossless, streamable)."""
    height, width = clip.frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), clip.fps, (width, height))
    assert writer.isOpened()
    for frame in clip.frames:
        writer.write(frame)
    writer.release()
