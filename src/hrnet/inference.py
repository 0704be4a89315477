"""Pose estimation on your own images: ``PoseEstimator`` (Python) behind ``hrnet predict`` (command line).

Top-down, as in training and evaluation: each person box is cropped by the codec's crop (``hrnet.crop.Crop``),
the network (or an ONNX Runtime session) predicts heatmaps, the flip test and the codec turn them into keypoints
in image pixels.

Nothing here changes process-wide state; for the CPU speed of ``hrnet predict``, call
``hrnet.runtime.keep_freed_memory()`` once at start-up (see there for its price).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from hrnet.codec import HeatmapCodec, codec_from_config, merge_flip
from hrnet.config import ExperimentConfig, TestConfig, load_config
from hrnet.data.images import read_image
from hrnet.detect import Detector, load_detector
from hrnet.errors import ConfigError, DataError
from hrnet.keypoints import BUILTIN, KeypointSet, get_keypoint_set
from hrnet.metrics.nms import rescore
from hrnet.precision import HeatmapFn, heatmap_model


def predict_keypoints(
    model: HeatmapFn,
    images: torch.Tensor,
    codec: HeatmapCodec,
    flip_index: Sequence[int],
    test: TestConfig,
    centers: np.ndarray,
    sizes: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3, H, W) normalised crops → keypoints (N, K, 2) in image pixels and scores (N, K), as the official
    test: with ``test.flip_test`` the mirrored crops' heatmaps are flipped back (shifted one pixel when
    ``test.shift_heatmap``) and averaged on the model's device (``codec.merge_flip``), then decoded by
    ``test.decode``.
    """
    heatmaps = model(images)
    if test.flip_test:
        heatmaps = merge_flip(heatmaps, model(images.flip(3)), flip_index, shift=test.shift_heatmap)
    return codec.decode(
        heatmaps.float().numpy(force=True),
        centers,
        sizes,
        method=test.decode,
        post_process=test.post_process,
        threshold=test.detection_threshold,
    )


@dataclass(frozen=True)
class PersonPose:
    """One person found in an image.

    Attributes:
        box: (4,) the person box (x, y, w, h), image pixels.
        keypoints: (K, 2) keypoints (x, y), image pixels.
        scores: (K,) keypoint confidences (heatmap peak values, about 0-1).
        score: the person's confidence, as the official rescoring: box score × the mean of the keypoint scores
            above ``test.in_vis_threshold`` (0 when none is).
    """

    box: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray
    score: float


class PoseEstimator:
    """Keypoints for the persons in images, from a network (PyTorch module or ONNX Runtime session).

    ``estimator(image, boxes)`` returns one ``PersonPose`` per box. ``boxes=None`` asks the ``detector`` for the
    person boxes (their detector scores become the box scores; an image where it finds nobody has no persons);
    without a detector it means the whole image is one person box (for a photo cropped around one person).
    ``estimator.predict(images, boxes)`` batches the persons of many images together.

    Image arrays are read in ``channel_order``: "bgr" by default, as ``cv2.imread`` and video frames from OpenCV
    come (and as MMPose, rtmlib and ultralytics take them); pass ``channel_order="rgb"`` for arrays from Pillow,
    imageio or matplotlib. A wrong order does not fail, it moves keypoints (the network saw RGB in training), so
    the order is a named choice. Image files are decoded correctly whatever the setting.
    """

    def __init__(
        self,
        model: HeatmapFn,
        codec: HeatmapCodec,
        keypoint_set: KeypointSet,
        test: TestConfig,
        *,
        device: torch.device | str = "cpu",
        detector: Detector | None = None,
        channel_order: str = "bgr",
    ):
        self.model = model
        self.detector = detector
        self.codec = codec
        self.keypoint_set = keypoint_set
        self.test = test
        self.device = torch.device(device)
        self.channel_order = _check_channel_order(channel_order)

    @classmethod
    def from_config(
        cls,
        config: ExperimentConfig | str | Path,
        weights: str | Path,
        *,
        device: str = "auto",
        backend: str = "torch",
        fast: bool = True,
        compile: bool = False,
        keypoint_set: KeypointSet | None = None,
        precision: str = "fp32",
        detector: Detector | str | None = None,
        channel_order: str = "bgr",
    ) -> PoseEstimator:
        """An estimator for an experiment config (or its YAML path) and weights.

        ``weights``: our ``.safetensors`` (training checkpoints too), official or MMPose ``.pth`` files, or with
        ``backend="onnxruntime"`` an ``.onnx`` file from ``hrnet export``. ``device`` "auto" picks a GPU when
        there is one. ``fast`` folds BatchNorm into the convolutions and runs channels-last
        (``models.fuse.prepare_for_inference``; same outputs within 1e-4); ``compile`` adds ``torch.compile`` to
        it (about 1.07× more on a CPU; the first call of each batch size compiles for 10-15 s and needs a C++
        compiler). ``keypoint_set`` is needed when the config builds its set from annotation files
        (``data.keypoint_set: from_annotations``). ``weights`` may also be a registered name (``hrnet weights
        list``), downloaded into the cache on first use. ``detector``: a detector, or a spec for
        ``hrnet.detect.load_detector`` ("hog", an ``.onnx`` file, a registered detector name); None keeps the
        whole image as the person box. ``channel_order``: how image arrays are laid out, "bgr"
        (default, OpenCV's) or "rgb".

        ``precision``: "fp32"; "bf16" (the fast path in bfloat16, heatmaps decoded in fp32); "int8" (``weights``
        an ONNX file from ``hrnet export --precision int8``, run by ONNX Runtime). See ``hrnet.precision``.
        """
        from hrnet.weights import resolve_weights

        weights = resolve_weights(weights)
        if isinstance(detector, str | Path):
            detector = load_detector(detector)
        if not isinstance(config, ExperimentConfig):
            config = load_config(config)
        keypoint_set = keypoint_set or _keypoint_set(config)
        if keypoint_set.num_keypoints != config.model.num_keypoints:
            raise ConfigError(
                f"keypoint set {keypoint_set.name!r} has {keypoint_set.num_keypoints} keypoints but the model "
                f"predicts {config.model.num_keypoints}"
            )
        codec = codec_from_config(config.model, config.data)
        model, torch_device = heatmap_model(
            config.model,
            weights,
            precision,
            device=device,
            backend=backend,
            fast=fast,
            compile=compile,
            batch_size=config.test.batch_size,
        )
        return cls(
            model, codec, keypoint_set, config.test, device=torch_device, channel_order=channel_order, detector=detector
        )

    def __call__(
        self,
        image: npt.ArrayLike | str | Path,
        boxes: npt.ArrayLike | None = None,
        box_scores: npt.ArrayLike | None = None,
        *,
        channel_order: str | None = None,
    ) -> list[PersonPose]:
        """Persons of one image.

        Args:
            image: (H, W, 3) uint8 array in ``channel_order`` (grey (H, W) too), or an image file.
            boxes: (P, 4) person boxes (x, y, w, h) in pixels; None: the detector's boxes, or without a detector
                the whole image as one person box.
            box_scores: (P,) detector scores for the person scores (default 1; with detected boxes, theirs).
            channel_order: "bgr" or "rgb" for this call (default: the estimator's ``channel_order``).
        """
        return self.predict([image], [boxes], [box_scores], channel_order=channel_order)[0]

    def predict(
        self,
        images: Sequence[npt.ArrayLike | str | Path],
        boxes: Sequence[npt.ArrayLike | None] | None = None,
        box_scores: Sequence[npt.ArrayLike | None] | None = None,
        *,
        channel_order: str | None = None,
    ) -> list[list[PersonPose]]:
        """Persons of many images, all persons batched together (``test.batch_size`` crops a forward pass)."""
        order = self.channel_order if channel_order is None else _check_channel_order(channel_order)
        arrays = [read_image(i) if isinstance(i, str | Path) else _rgb(np.asarray(i), order) for i in images]
        boxes = boxes or [None] * len(arrays)
        box_scores = box_scores or [None] * len(arrays)
        owner, all_boxes, all_scores = [], [], []
        for i, (image, b, s) in enumerate(zip(arrays, boxes, box_scores, strict=True)):
            height, width = image.shape[:2]
            if b is None and self.detector is not None:
                found = self.detector(np.ascontiguousarray(image[..., ::-1]))  # detectors read BGR
                b, s = found.boxes, found.scores if s is None else s
            b = np.array([[0.0, 0.0, width, height]]) if b is None else np.asarray(b, dtype=np.float64).reshape(-1, 4)
            s = np.ones(len(b)) if s is None else np.asarray(s, dtype=np.float64).reshape(-1)
            if len(s) != len(b):
                raise DataError(f"image {i}: {len(b)} boxes but {len(s)} box scores")
            if not (np.isfinite(b).all() and np.isfinite(s).all()):
                raise DataError(f"image {i}: a person box or box score is NaN or infinite: {b.tolist()}, {s.tolist()}")
            if len(b) and (b[:, 2:] <= 0).any():
                raise DataError(f"image {i}: a person box has zero or negative size: {b[(b[:, 2:] <= 0).any(1)][0]}")
            owner += [i] * len(b)
            all_boxes.append(b)
            all_scores.append(s)
        results: list[list[PersonPose]] = [[] for _ in arrays]
        if not owner:
            return results
        box_array = np.concatenate(all_boxes)
        centers, sizes = self.codec.crop.regions(box_array)
        keypoints, scores = self._keypoints([arrays[i] for i in owner], centers, sizes)
        person_scores = rescore(np.concatenate(all_scores), scores, self.test.in_vis_threshold)
        for p, i in enumerate(owner):
            results[i].append(PersonPose(box_array[p], keypoints[p], scores[p], float(person_scores[p])))
        return results

    @torch.inference_mode()
    def _keypoints(
        self, images: list[np.ndarray], centers: np.ndarray, sizes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        crop = self.codec.crop
        out_k, out_s = [], []
        size = self.test.batch_size
        for start in range(0, len(images), size):
            chunk = range(start, min(start + size, len(images)))
            crops = torch.stack([crop.to_tensor(crop.warp(images[p], centers[p], sizes[p])) for p in chunk])
            crops = crops.to(self.device)
            k, s = predict_keypoints(
                self.model,
                crops,
                self.codec,
                self.keypoint_set.flip_index,
                self.test,
                centers[chunk.start : chunk.stop],
                sizes[chunk.start : chunk.stop],
            )
            out_k.append(k)
            out_s.append(s)
        return np.concatenate(out_k), np.concatenate(out_s)


def _keypoint_set(config: ExperimentConfig) -> KeypointSet:
    if config.data.keypoint_set in BUILTIN:
        return get_keypoint_set(config.data.keypoint_set)
    raise ConfigError(
        f"data.keypoint_set is {config.data.keypoint_set!r}: pass the KeypointSet to PoseEstimator.from_config "
        "(e.g. hrnet.data.coco.read_coco(...).keypoint_set)"
    )


CHANNEL_ORDERS = ("bgr", "rgb")


def _check_channel_order(order: str) -> str:
    if order not in CHANNEL_ORDERS:
        raise ConfigError(f"channel_order must be one of {CHANNEL_ORDERS}, got {order!r}")
    return order


def _rgb(image: np.ndarray, order: str) -> np.ndarray:
    """An image array in ``order`` → (H, W, 3) uint8 RGB, the order the network was trained on."""
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise DataError(f"expected an (H, W, 3) {order.upper()} uint8 image, got {image.shape} {image.dtype}")
    return np.ascontiguousarray(image[..., ::-1]) if order == "bgr" else image
