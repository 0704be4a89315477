"""Pose estimation on your own images: ``PoseEstimator`` (Python) behind ``hrnet predict``, videos and
``hrnet serve``.

Top-down, as in training and evaluation: each person box (``hrnet.pose.persons.PersonBoxes``: given, detected, or the
whole image) is cropped by the codec's crop (``hrnet.crop.Crop``), the network (a backend of ``hrnet.runtime.backends``:
PyTorch in fp32 or bf16, ONNX Runtime in fp32 or int8) predicts heatmaps, the flip test and the codec turn them
into keypoints in image pixels.

Nothing here changes process-wide state; for the CPU speed of ``hrnet predict``, call
``hrnet.system.keep_freed_memory()`` once at start-up (see there for its price).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from hrnet.codec import HeatmapCodec, codec_from_config, merge_flip
from hrnet.config import ExperimentConfig, TestConfig, load_config
from hrnet.errors import ConfigError
from hrnet.hub.registry import DEFAULT_WEIGHTS, resolve_many
from hrnet.io.images import check_channel_order, check_image, read_image
from hrnet.keypoints import KeypointSet
from hrnet.metrics.nms import rescore
from hrnet.models.checkpoint import experiment_for, keypoint_set_for, read_metadata
from hrnet.pose.detect import Detector, default_detector, load_detector
from hrnet.pose.persons import PersonBoxes, PersonPose, Persons, whole_image_note
from hrnet.runtime.backends import Backend, open_backend
from hrnet.runtime.precision import HeatmapFn

log = logging.getLogger(__name__)

SYNTHETIC = "synthetic"  # what weights trained on hrnet's synthetic figures record as trained on
AUTO = "auto"  # as a detector: the keypoint set's own (``hrnet.pose.detect.default_detector``)


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
    ``test.decode`` (DARK blurring by ``test.dark_blur_kernel``).
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
        blur_kernel=test.dark_blur_kernel,
    )


class PoseEstimator:
    """Keypoints for the persons in images, from a network (a backend of ``hrnet.runtime.backends``, or any function
    from crops to heatmaps).

    ``estimator(image, boxes)`` returns the persons of one image (``hrnet.pose.persons.Persons``: one ``PersonPose``
    per box, with ``.plot(image)`` and ``.to_coco(image_id)``), the boxes from ``hrnet.pose.persons.PersonBoxes``
    (given, detected, or the whole image); ``estimator.predict(images, boxes)`` batches many images' persons.

    Image arrays are BGR (as OpenCV gives them) unless ``channel_order="rgb"`` (Pillow, imageio, matplotlib): a
    wrong order does not fail, it moves keypoints. Image files are decoded correctly whatever the setting.
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
        max_boxes: int | None = None,
    ):
        self.backend = model if isinstance(model, Backend) else None
        self.model = model.run if isinstance(model, Backend) else model
        self.person_boxes = PersonBoxes(detector, max_boxes=max_boxes)
        self.codec = codec
        self.keypoint_set = keypoint_set
        self.test = test
        self.device = torch.device(device)
        self.channel_order = check_channel_order(channel_order)

    @property
    def detector(self) -> Detector | None:
        """The person detector used when no boxes are given (None: the whole image is one person)."""
        return self.person_boxes.detector

    @detector.setter
    def detector(self, detector: Detector | None) -> None:
        self.person_boxes.detector = detector

    @classmethod
    def from_config(
        cls,
        config: ExperimentConfig | str | Path,
        weights: str | Path,
        *,
        device: str = "auto",
        precision: str | None = None,
        backend: str | None = None,
        compile: bool = False,
        keypoint_set: KeypointSet | None = None,
        detector: Detector | str | None = None,
        channel_order: str = "bgr",
    ) -> PoseEstimator:
        """An estimator for an experiment config (or its YAML path or shipped name) and weights.

        ``weights``: our ``.safetensors`` (training checkpoints too), official or MMPose ``.pth`` files, an
        ``.onnx`` file from ``hrnet export``, or a registered name (``hrnet weights list``), downloaded into the
        cache on first use. ``precision`` ("fp32", "bf16", "int8") and ``backend`` (a name of
        ``hrnet.runtime.backends.BACKENDS``) choose how the network runs (None: from the file, as
        ``hrnet.runtime.backends.select_backend`` says); ``device`` "auto" picks a GPU when there is one;
        ``compile`` adds ``torch.compile`` to the fast path (docs/speed.md). ``keypoint_set``: default the one the
        weights record (ours do), else the config's (``hrnet.models.checkpoint.keypoint_set_for``). ``detector``: a
        detector, or a spec for ``hrnet.pose.detect.load_detector`` ("hog", "haar-face", an ``.onnx`` file, a
        registered detector name), or "auto": the keypoint set's (``default_detector``: persons, faces; the whole
        image for hands, animals and other sets, which logs one line saying so); None keeps the whole image as the
        box. ``channel_order``: how image arrays are laid out, "bgr" (default, OpenCV's) or "rgb".

        Raises:
            hrnet.errors.WeightsUnavailableError: registered files that are not in the cache and cannot be
                downloaded (offline): one message lists each, with what to do.
        """
        if not isinstance(config, ExperimentConfig):
            config = load_config(config)
        keypoint_set = keypoint_set or keypoint_set_for(weights, config)
        if config.model.num_keypoints == 0:  # the config's set comes from annotations: the given set says the count
            config = replace(config, model=replace(config.model, num_keypoints=keypoint_set.num_keypoints))
        if isinstance(detector, str) and detector == AUTO:
            detector = default_detector(keypoint_set)
            if detector is None:
                log.warning(whole_image_note(keypoint_set, boxes="boxes=", detector="detector="))
        if isinstance(detector, str | Path):
            # Offline, one WeightsUnavailableError names both missing files (a file that is there needs nothing).
            resolve_many([spec for spec in (weights, detector) if not Path(spec).exists()])
            detector = load_detector(detector)
        if keypoint_set.num_keypoints != config.model.num_keypoints:
            raise ConfigError(
                f"keypoint set {keypoint_set.name!r} has {keypoint_set.num_keypoints} keypoints but the model "
                f"predicts {config.model.num_keypoints}"
            )
        codec = codec_from_config(config.model, config.data)
        network = open_backend(
            config.model,
            weights,
            precision=precision,
            backend=backend,
            device=device,
            compile=compile,
            batch_size=config.test.batch_size,
        )
        return cls(
            network,
            codec,
            keypoint_set,
            config.test,
            device=network.device,
            channel_order=channel_order,
            detector=detector,
        )

    @classmethod
    def from_weights(
        cls,
        weights: str | Path = DEFAULT_WEIGHTS,
        *,
        detector: Detector | str | None = AUTO,
        config: ExperimentConfig | str | Path | None = None,
        **options: Any,
    ) -> PoseEstimator:
        """An estimator from weights alone, with the detector of its keypoint set (``detector="auto"``, see
        ``from_config``): ``PoseEstimator.from_weights()`` is HRNet-W32 on COCO (MMPose's checkpoint) with RTMDet-nano
        finding the persons, both downloaded into the cache on first use (``hrnet weights list``). The config comes
        from the weights (``experiment_for``) unless given; ``options`` go to ``from_config`` (device, precision,
        backend, channel_order, ...)."""
        return cls.from_config(experiment_for(weights, config), weights, detector=detector, **options)

    def __call__(
        self,
        image: npt.ArrayLike | str | Path,
        boxes: npt.ArrayLike | None = None,
        box_scores: npt.ArrayLike | None = None,
        *,
        channel_order: str | None = None,
    ) -> Persons:
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
    ) -> list[Persons]:
        """Persons of many images, all persons batched together (``test.batch_size`` crops a forward pass)."""
        order = self.channel_order if channel_order is None else check_channel_order(channel_order)
        # Every image in ``order`` (files are read so): the crops are turned to RGB, not the images.
        arrays = [
            read_image(image, channel_order=order)
            if isinstance(image, str | Path)
            else check_image(image, f"image {i}")
            for i, image in enumerate(images)
        ]
        boxes = _per_image(boxes, len(arrays), "boxes")
        box_scores = _per_image(box_scores, len(arrays), "box_scores")
        owner, all_boxes, all_scores = [], [], []
        for i, (image, b, s) in enumerate(zip(arrays, boxes, box_scores, strict=True)):
            where = str(images[i]) if isinstance(images[i], str | Path) else f"image {i}"
            found = self.person_boxes(image, b, s, where, channel_order=order)
            owner += [i] * len(found.boxes)
            all_boxes.append(found.boxes)
            all_scores.append(found.scores)
        results = [Persons([], self.keypoint_set) for _ in arrays]
        if not owner:
            return results
        box_array = np.concatenate(all_boxes)
        centers, sizes = self.codec.crop.regions(box_array)
        keypoints, scores = self._keypoints([arrays[i] for i in owner], order, centers, sizes)
        person_scores = rescore(np.concatenate(all_scores), scores, self.test.in_vis_threshold)
        for p, i in enumerate(owner):
            results[i].append(PersonPose(box_array[p], keypoints[p], scores[p], float(person_scores[p])))
        return results

    @torch.inference_mode()
    def _keypoints(
        self, images: list[np.ndarray], order: str, centers: np.ndarray, sizes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints and scores of the person in each region (center, size) of the images in channel ``order``.
        A BGR image's crop is turned to RGB after the warp: the same pixels (the warp treats each channel alike)
        for a fraction of the image's copy."""
        crop, size, flip_index = self.codec.crop, self.test.batch_size, self.keypoint_set.flip_index
        out_k, out_s = [], []
        for start in range(0, len(images), size):
            part = slice(start, start + size)
            batch = np.empty((len(images[part]), 3, *crop.input_size), dtype=np.float32)
            for slot, (image, center, scale) in enumerate(zip(images[part], centers[part], sizes[part], strict=True)):
                warped = crop.warp(image, center, scale)
                crop.to_array(warped[..., ::-1] if order == "bgr" else warped, out=batch[slot])  # no stacking copy
            crops = torch.from_numpy(batch).to(self.device)
            k, s = predict_keypoints(self.model, crops, self.codec, flip_index, self.test, centers[part], sizes[part])
            out_k.append(k)
            out_s.append(s)
        return np.concatenate(out_k), np.concatenate(out_s)


def trained_on_synthetic(weights: str | Path) -> bool:
    """Whether ``weights`` record that they were trained on hrnet's synthetic figures (``hrnet demo``)."""
    return read_metadata(weights).get("trained_on") == SYNTHETIC


def _per_image(values: Sequence[Any] | None, count: int, name: str) -> Sequence[Any]:
    """``predict``'s ``boxes`` or ``box_scores``: one entry (an array, or None) per image, or None for all."""
    if values is None:
        return [None] * count
    if isinstance(values, np.ndarray) or len(values) != count:
        raise ConfigError(
            f"{name}: give one entry per image ({count} images), each a (P, 4) array of boxes or None; got "
            f"{'an array' if isinstance(values, np.ndarray) else f'{len(values)} entries'} (for one image, call "
            "the estimator itself: estimator(image, boxes))"
        )
    return values
