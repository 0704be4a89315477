"""Detectors: the boxes a top-down estimator needs, found in the image.

A detector is a callable ``detector(image_bgr) -> Detections`` on an (H, W, 3) uint8 BGR image (as ``cv2.imread``
gives). ``load_detector(spec)`` builds one from:

- ``"hog"``: OpenCV's HOG + linear SVM people detector (Dalal & Triggs, CVPR 2005), shipped inside OpenCV: no
  download, but it finds only upright, whole people about 100 px tall or more (docs/weights.md).
- ``"haar-face"``: OpenCV's Viola-Jones frontal-face cascade (``cv2.data.haarcascades``), shipped inside OpenCV's
  wheels: no download; frontal faces only.
- a ``.onnx`` file run by ONNX Runtime, in one of the layouts below (recognised from the model's outputs, or named
  with ``format``); or a YuNet face detector (``format="yunet"``), run by OpenCV's ``cv2.FaceDetectorYN``;
- a name from ``hrnet.hub.registry.REGISTRY`` (``hrnet weights list``), downloaded into the cache on first use.

Which one runs when no boxes are given and none is named follows the keypoint set's task (``default_detector``).

ONNX layouts, each read with its exporter's own preprocessing:

========== ============================================== ==================================================
format     outputs                                        preprocessing (as the exporter's pipeline)
========== ============================================== ==================================================
yolox      MMDeploy end-to-end (NMS inside): ``dets``     letterbox, image at the top-left, pad 114, BGR,
           (1, N, 5: x1 y1 x2 y2 score), ``labels`` (1, N) pixel values 0-255 (MMDetection's YOLOX has no
                                                          normalisation); rtmlib's and MMPose's YOLOX files
rtmdet     the same outputs as ``yolox``                  the same letterbox, BGR, then (x - mean) / std with
                                                          MMDetection's RTMDet mean (103.53, 116.28, 123.675)
                                                          and std (57.375, 57.12, 58.395), in BGR order
ultralytics one output (1, 4 + C, A): per anchor a centre  letterbox centred (padding split round(d/2 ∓ 0.1)),
           box (cx, cy, w, h) and C class scores; NMS is  pad 114, RGB, pixel values / 255
           done here (``cv2.dnn.NMSBoxes``)
yunet      ``cls_8`` ... ``kps_32`` (OpenCV's              OpenCV's own (``cv2.FaceDetectorYN``): BGR, 0-255,
           ``FaceDetectorYN`` decodes them)               padded to a multiple of 32
========== ============================================== ==================================================

Of the person detectors only persons are kept (class 0 in all three; for ultralytics, a box whose best class is
person, as its own ``classes=[0]`` filter decides). Boxes come back in image pixels: the letterbox is undone exactly
(``Letterbox``). A face detector's box is the face; the top-down crop enlarges it as it enlarges a person's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hrnet.errors import ConfigError, DataError
from hrnet.hub.registry import DEFAULT_DETECTOR, REGISTRY, fetch
from hrnet.io.images import check_image
from hrnet.keypoints import KeypointSet
from hrnet.runtime.onnx import cpu_session_options, describe_nodes, optional_module

log = logging.getLogger(__name__)

FORMATS = ("yolox", "rtmdet", "ultralytics", "yunet")  # yunet runs in OpenCV, the others in ONNX Runtime
HAAR_FACE = "haar-face"
# The box source of each keypoint-set task when no boxes are given and no detector is named: the person detector
# for human bodies, the face detector OpenCV ships for faces, and for the rest (hands, animals, other) None, the
# whole image, since no detector of theirs ships with OpenCV or hrnet.
TASK_DETECTORS = {"body": DEFAULT_DETECTOR, "wholebody": DEFAULT_DETECTOR, "face": HAAR_FACE}
PERSON = 0  # class index of "person" in COCO's 80-class order and in the person-only models
PAD_VALUE = 114  # the letterbox grey of YOLOX, RTMDet and ultralytics alike
# MMDetection's RTMDet data preprocessor (bgr_to_rgb=False): mean and std of the B, G, R channels.
RTMDET_MEAN = (103.53, 116.28, 123.675)
RTMDET_STD = (57.375, 57.12, 58.395)
DEFAULT_INPUT_SIZE = (640, 640)  # (height, width) of both exporters' default for models with dynamic input shapes
# Score thresholds when none is given: MMPose's top-down demo keeps boxes scoring above 0.3 (its --bbox-thr);
# ultralytics' predictor uses conf=0.25; HOG's score is the logistic of the SVM margin, 0.5 at the hyperplane; the
# Haar cascade's own neighbour count already decides (0: keep what it keeps); opencv_zoo's YuNet demo keeps 0.9.
DEFAULT_THRESHOLD = {"yolox": 0.3, "rtmdet": 0.3, "ultralytics": 0.25, "hog": 0.5, HAAR_FACE: 0.0, "yunet": 0.9}
DEFAULT_IOU = 0.7  # ultralytics' NMS IoU; the MMDeploy graphs already ran their own NMS (YOLOX: 0.65)
# Input sizes of a model with a dynamic input: YOLOX, RTMDet and YOLOv8/11 all downsample by 32 (their coarsest
# feature map), so their exporters take multiples of 32 (ultralytics rounds imgsz up to one); 4096 keeps one
# input's activations within a machine's memory (OpenCV fails on a 100000² letterbox with an allocation error).
SIZE_STRIDE = 32
SIZE_RANGE = (32, 4096)
# The element types an ONNX detector may take (what we feed) and give (what we read as boxes and scores).
INPUT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
FLOAT_TYPES = ("tensor(float)", "tensor(float16)", "tensor(double)")


@dataclass(frozen=True)
class Detections:
    """Persons (or faces, for a face detector) found in one image.

    Attributes:
        boxes: (N, 4) float64 boxes (x, y, w, h), image pixels at the edges (COCO's convention).
        scores: (N,) float64 confidences, best first.
    """

    boxes: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.boxes)


Detector = Callable[[np.ndarray], Detections]


@dataclass(frozen=True)
class Letterbox:
    """Where an image sits inside a network input after an aspect-preserving resize and padding.

    A point (x, y) of the image (pixel edges, so the image spans [0, W] × [0, H]) is at
    ``(x * scale_x + left, y * scale_y + top)`` in the input. ``scale_x`` and ``scale_y`` are the resized size
    over the original size per axis (they differ from the nominal ratio by the rounding of the resized size,
    which MMDetection also keeps per axis).
    """

    scale_x: float
    scale_y: float
    left: int
    top: int

    def to_input(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) image points → input points."""
        return np.asarray(xy, dtype=np.float64) * (self.scale_x, self.scale_y) + (self.left, self.top)

    def to_image(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) input points → image points (the inverse of ``to_input``)."""
        return (np.asarray(xy, dtype=np.float64) - (self.left, self.top)) / (self.scale_x, self.scale_y)

    def boxes_to_image(self, xyxy: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
        """(N, 4) input boxes (x1, y1, x2, y2) → (N, 4) image boxes (x, y, w, h), cut to the image of
        ``image_size`` (height, width)."""
        corners = self.to_image(np.asarray(xyxy, dtype=np.float64).reshape(-1, 2, 2))
        corners = np.clip(corners, 0, (image_size[1], image_size[0]))
        return np.concatenate([corners[:, 0], corners[:, 1] - corners[:, 0]], axis=1)


def letterbox(
    image: np.ndarray, size: tuple[int, int], *, centered: bool, pad_value: int = PAD_VALUE
) -> tuple[np.ndarray, Letterbox]:
    """Resize ``image`` to fit ``size`` = (height, width) keeping its aspect ratio, and pad the rest.

    ``centered=False`` puts the image at the top-left and pads right and bottom, as MMDetection's ``Resize``
    (keep_ratio, sizes rounded half up) + ``Pad`` do for YOLOX and RTMDet; ``centered=True`` splits the padding
    as ultralytics' ``LetterBox`` does (top = round(dh / 2 - 0.1), left = round(dw / 2 - 0.1), sizes rounded).
    Bilinear resizing (``cv2.INTER_LINEAR``), as both.

    Returns:
        the (height, width, C) padded image, same dtype, and its ``Letterbox``.
    """
    height, width = image.shape[:2]
    out_h, out_w = size
    ratio = min(out_h / height, out_w / width)
    rounded: Callable[[float], int] = round if centered else lambda v: int(v + 0.5)  # ultralytics' or MMDetection's
    new_w, new_h = min(max(rounded(width * ratio), 1), out_w), min(max(rounded(height * ratio), 1), out_h)
    left, top = (round((out_w - new_w) / 2 - 0.1), round((out_h - new_h) / 2 - 0.1)) if centered else (0, 0)
    resized = image
    if (new_w, new_h) != (width, height):
        resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    padded = np.full((out_h, out_w, *image.shape[2:]), pad_value, dtype=image.dtype)
    padded[top : top + new_h, left : left + new_w] = resized
    return padded, Letterbox(new_w / width, new_h / height, left, top)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, threshold: float = 0.0) -> np.ndarray:
    """Indices of the boxes kept by OpenCV's greedy non-maximum suppression (``cv2.dnn.NMSBoxes``), best first.

    Args:
        boxes: (N, 4) boxes (x, y, w, h).
        scores: (N,) scores; boxes scoring below ``threshold`` (or 0 or less) are dropped first.
        iou: a box overlapping a better one by more than this intersection over union is dropped.
    """
    scores = np.asarray(scores, dtype=np.float64)
    candidates = np.flatnonzero(scores >= threshold)
    if len(candidates) == 0:
        return np.zeros(0, dtype=np.int64)
    kept = cv2.dnn.NMSBoxes(
        [tuple(map(float, b)) for b in np.asarray(boxes)[candidates]],
        [float(s) for s in scores[candidates]],
        0.0,  # the threshold is applied above, inclusively; OpenCV's own test is strict and refuses negatives
        float(iou),
    )
    keep = candidates[np.asarray(kept, dtype=np.int64).reshape(-1)]
    return keep[np.argsort(-scores[keep], kind="stable")]


def _check_options(threshold: float | None, iou: float) -> None:
    """Score threshold and NMS IoU: numbers in [0, 1] (OpenCV's NMS fails on NaN with an assertion)."""
    for option, value in (("--detector-threshold", threshold), ("--detector-iou", iou)):
        if value is not None and not (math.isfinite(value) and 0 <= value <= 1):
            raise ConfigError(f"{option} {value!r}: give a number from 0 to 1")


def check_input_size(size: tuple[int, int]) -> tuple[int, int]:
    """A detector input size (height, width): multiples of ``SIZE_STRIDE`` within ``SIZE_RANGE``."""
    low, high = SIZE_RANGE
    if len(size) != 2 or not all(low <= v <= high and v % SIZE_STRIDE == 0 for v in size):
        shown = "x".join(str(v) for v in size)[:40]
        raise ConfigError(
            f"--detector-size {shown}: give HEIGHTxWIDTH with each side a multiple of {SIZE_STRIDE} from {low} to "
            f"{high} (the detectors' strides), e.g. 640x640"
        )
    return int(size[0]), int(size[1])


class HogDetector:
    """OpenCV's HOG people detector (``cv2.HOGDescriptor`` with ``getDefaultPeopleDetector``: 64×128 windows,
    trained on INRIA Person), over an image pyramid, boxes merged by NMS.

    Scores are the logistic of the SVM margin (0.5 on the hyperplane): an order, not a calibrated probability.
    The box is the detection window, which holds a margin of background around the person (INRIA's windows
    do), so its IoU with a tight person box is lower than a learned detector's.

    An image in which not even one padded window fits (smaller than 32 × 96 px) holds no person HOG could find:
    it gives no detections without asking OpenCV, whose ``detectMultiScale`` fails on such images with an
    assertion or, for some sizes (64 × 10, 200 × 50 or 31 × 1000 px, width × height), corrupts memory (OpenCV 5.1).
    """

    padding = (16, 16)  # (x, y) pixels added around the image, so that a person at its border fits a window

    def __init__(self, *, threshold: float | None = None, iou: float = 0.5, scale: float = 1.05):
        _check_options(threshold, iou)
        if not (math.isfinite(scale) and scale > 1):
            raise ConfigError(f"the HOG pyramid's scale step must be a number above 1, got {scale!r}")
        if not hasattr(cv2, "HOGDescriptor"):
            raise ConfigError(
                f"--detector hog needs OpenCV's HOGDescriptor, which this OpenCV {cv2.__version__} build lacks (in "
                "OpenCV 5 it is only in the contrib build): pip uninstall opencv-python-headless && pip install "
                "opencv-contrib-python-headless"
            )
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), dtype=np.float32))
        self.threshold = DEFAULT_THRESHOLD["hog"] if threshold is None else threshold
        self.iou = iou
        self.scale = scale

    def __call__(self, image_bgr: np.ndarray) -> Detections:
        image = check_image(image_bgr, "the detector's BGR image")
        window_w, window_h = self.hog.winSize
        pad_x, pad_y = self.padding
        if image.shape[0] + 2 * pad_y < window_h or image.shape[1] + 2 * pad_x < window_w:
            return Detections(np.zeros((0, 4)), np.zeros(0))
        rects, weights = self.hog.detectMultiScale(image, winStride=(4, 4), padding=self.padding, scale=self.scale)
        boxes = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
        scores = 1.0 / (1.0 + np.exp(-np.asarray(weights, dtype=np.float64).reshape(-1)))
        keep = nms(boxes, scores, self.iou, self.threshold)
        return Detections(boxes[keep], scores[keep])


class HaarFaceDetector:
    """OpenCV's Viola-Jones frontal-face detector: the Haar cascade ``haarcascade_frontalface_alt.xml`` (Lienhart's,
    shipped in ``cv2.data.haarcascades``) over an image pyramid, on the grey image with its histogram equalised, as
    OpenCV's cascade-classifier tutorial (samples/python/tutorial_code/objectDetection/cascade_classifier) runs it,
    with ``detectMultiScale``'s defaults (scale step 1.1, 3 neighbours).

    A face is a cluster of n ≥ ``min_neighbors`` + 1 overlapping windows; its score is n / (n + ``min_neighbors``)
    (above 0.5 for every face kept): an order, not a calibrated probability. The box is the square the cascade was
    trained on, brows to chin; frontal, upright faces only (no profiles, little rotation).
    """

    cascade_file = "haarcascade_frontalface_alt.xml"

    def __init__(self, *, threshold: float | None = None, iou: float = 0.5, scale: float = 1.1, min_neighbors: int = 3):
        _check_options(threshold, iou)
        if not (math.isfinite(scale) and scale > 1):
            raise ConfigError(f"the cascade's pyramid scale step must be a number above 1, got {scale!r}")
        if min_neighbors < 0:
            raise ConfigError(f"min_neighbors is a number of windows (0 or more), got {min_neighbors}")
        folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
        path = Path(folder or "") / self.cascade_file
        if not folder or not path.is_file():
            raise ConfigError(
                f"--detector {HAAR_FACE} needs OpenCV's {self.cascade_file}, which this OpenCV {cv2.__version__} "
                "install lacks (pip's opencv wheels ship it in cv2.data.haarcascades): pip install "
                "opencv-contrib-python-headless, or give --detector yunet or --boxes FILE"
            )
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise ConfigError(f"{path}: OpenCV cannot read the face cascade; reinstall opencv-contrib-python-headless")
        self.threshold = DEFAULT_THRESHOLD[HAAR_FACE] if threshold is None else threshold
        self.iou = iou
        self.scale = scale
        self.min_neighbors = min_neighbors

    def __call__(self, image_bgr: np.ndarray) -> Detections:
        image = check_image(image_bgr, "the detector's BGR image")
        grey = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        rects, counts = self.cascade.detectMultiScale2(grey, scaleFactor=self.scale, minNeighbors=self.min_neighbors)
        boxes = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
        windows = np.asarray(counts, dtype=np.float64).reshape(-1)
        scores = windows / (windows + self.min_neighbors)
        keep = nms(boxes, scores, self.iou, self.threshold)
        return Detections(boxes[keep], scores[keep])


class YuNetDetector:
    """A YuNet face detector (Wu, Peng and Yu, "YuNet: A Tiny Millisecond-level Face Detector", Machine Intelligence
    Research 2023), the ONNX file of
    opencv_zoo, run by OpenCV's ``cv2.FaceDetectorYN``, which decodes its outputs and runs NMS.

    YuNet finds faces about 10 to 300 px across (opencv_zoo's README): a larger image is first shrunk to fit
    ``input_size`` (height, width), keeping its aspect ratio, and the boxes are scaled back. Scores are YuNet's
    sqrt(class × objectness); boxes are the face, brow to chin.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        threshold: float | None = None,
        iou: float = 0.3,
        input_size: tuple[int, int] | None = None,
        max_detections: int = 5000,
    ):
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"{self.path}: no such detector file")
        _check_options(threshold, iou)
        if not hasattr(cv2, "FaceDetectorYN"):
            raise ConfigError(
                f"a YuNet detector needs OpenCV's FaceDetectorYN, which this OpenCV {cv2.__version__} build lacks: "
                "pip install opencv-contrib-python-headless"
            )
        self.input_size = check_input_size(input_size) if input_size is not None else DEFAULT_INPUT_SIZE
        self.threshold = DEFAULT_THRESHOLD["yunet"] if threshold is None else threshold
        try:
            # iou and max_detections as opencv_zoo's demo passes them (nms_threshold 0.3, top_k 5000).
            self.model = cv2.FaceDetectorYN.create(
                str(self.path), "", (self.input_size[1], self.input_size[0]), self.threshold, iou, max_detections
            )
        except cv2.error as err:
            raise ConfigError(
                f"{self.path}: OpenCV cannot load the YuNet face detector ({_opencv_reason(err)})"
            ) from None

    def __call__(self, image_bgr: np.ndarray) -> Detections:
        image = check_image(image_bgr, "the detector's BGR image")
        height, width = image.shape[:2]
        ratio = min(1.0, self.input_size[0] / height, self.input_size[1] / width)
        size = (max(1, round(width * ratio)), max(1, round(height * ratio)))  # (width, height), as OpenCV
        shrunk = image if size == (width, height) else cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        self.model.setInputSize(size)
        _, faces = self.model.detect(np.ascontiguousarray(shrunk))
        rows = np.zeros((0, 15)) if faces is None else np.asarray(faces, dtype=np.float64).reshape(-1, 15)
        boxes = rows[:, :4] / np.array([size[0] / width, size[1] / height] * 2)
        order = np.argsort(-rows[:, 14], kind="stable")
        return Detections(boxes[order], rows[order, 14])


def _opencv_reason(err: Exception) -> str:
    """An OpenCV error's own message: its last line (the lines before name OpenCV's source file)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


@dataclass(frozen=True)
class Preprocess:
    """How an exporter feeds its network: letterbox placement, channel order, and scaling."""

    centered: bool
    rgb: bool
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)


PREPROCESS = {
    "yolox": Preprocess(centered=False, rgb=False),
    "rtmdet": Preprocess(centered=False, rgb=False, mean=RTMDET_MEAN, std=RTMDET_STD),
    "ultralytics": Preprocess(centered=True, rgb=True, std=(255.0, 255.0, 255.0)),
}


class OnnxDetector:
    """A person detector exported to ONNX, run by ONNX Runtime on the CPU (see the module docstring for the
    layouts).

    Args:
        path: the ``.onnx`` file.
        format: "yolox", "rtmdet" or "ultralytics"; None recognises it from the outputs (``dets`` + ``labels``:
            MMDeploy; one (1, 4 + C, A) output: ultralytics). An MMDeploy model is read as RTMDet when MMDeploy's
            ``pipeline.json`` beside it normalises with RTMDet's mean, or, without that file, when its file
            name says ``rtmdet``; as YOLOX otherwise (the log says which).
        threshold: keep boxes scoring at least this (None: the format's default, ``DEFAULT_THRESHOLD``).
        iou: NMS IoU; the MMDeploy graphs ran their own NMS, this one is applied again (it matters only when
            stricter than theirs).
        input_size: (height, width) for models whose input size is not fixed in the graph (default 640×640).
        max_detections: at most this many boxes an image (ultralytics' max_det).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        format: str | None = None,
        threshold: float | None = None,
        iou: float = DEFAULT_IOU,
        input_size: tuple[int, int] | None = None,
        max_detections: int = 300,
        threads: int | None = None,
    ):
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"{self.path}: no such detector file")
        if format is not None and format not in PREPROCESS:
            raise ConfigError(f"ONNX Runtime detector format {format!r} is not one of {', '.join(PREPROCESS)}")
        _check_options(threshold, iou)
        if input_size is not None:
            input_size = check_input_size(input_size)
        if max_detections < 1:
            raise ConfigError(f"max_detections is a number of boxes (1 or more), got {max_detections}")
        ort = optional_module("onnxruntime")
        options = cpu_session_options(threads)
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime's own exception types are not importable without it
            raise ConfigError(f"{self.path}: ONNX Runtime cannot load the detector ({err})") from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        self._check_input(inputs)
        self.input_name = inputs[0].name
        self.input_dtype = INPUT_TYPES[inputs[0].type]
        self.format = format or self._recognise(outputs)
        self._check_outputs(outputs)
        self.preprocess = PREPROCESS[self.format]
        fixed = [d for d in inputs[0].shape[2:] if isinstance(d, int) and d > 0]
        if len(fixed) == 2:
            self.input_size = (int(fixed[0]), int(fixed[1]))
            if input_size is not None and tuple(input_size) != self.input_size:
                raise ConfigError(
                    f"{self.path}: the model's input is fixed at {self.input_size[0]}x{self.input_size[1]}, "
                    f"not {input_size[0]}x{input_size[1]}"
                )
        else:
            self.input_size = tuple(input_size) if input_size else DEFAULT_INPUT_SIZE  # type: ignore[assignment]
        self.threshold = DEFAULT_THRESHOLD[self.format] if threshold is None else threshold
        self.iou = iou
        self.max_detections = max_detections

    def _check_input(self, inputs: Sequence[Any]) -> None:
        """One (1, 3, H, W) float input (axes may be named): what the exporters write and ``input_tensor`` feeds."""
        shape = list(inputs[0].shape) if len(inputs) == 1 else []
        if len(shape) != 4 or any(isinstance(d, int) and d != n for d, n in zip(shape[:2], (1, 3), strict=True)):
            raise ConfigError(
                f"{self.path}: a detector takes one (1, 3, H, W) image, this model takes {describe_nodes(inputs)}"
            )
        if inputs[0].type not in INPUT_TYPES:
            raise ConfigError(
                f"{self.path}: the detector's input {inputs[0].name!r} is a {inputs[0].type}; hrnet feeds the float32 "
                "(or float16) images that MMDeploy's and ultralytics' exporters take, scaled as their pipelines "
                "scale them: export the model with a float input"
            )

    def _recognise(self, outputs: Sequence[Any]) -> str:
        names = {o.name for o in outputs}
        if {"dets", "labels"} <= names:
            return self._mmdeploy_flavour()
        if len(outputs) == 1 and len(outputs[0].shape) == 3:
            # ultralytics' exporter writes its name into the model's metadata ("author"); without that, its layout
            # is the one with far more anchors than channels (8400 × 84 for COCO at 640).
            author = self.session.get_modelmeta().custom_metadata_map.get("author", "")
            channels, anchors = outputs[0].shape[1:]
            if "ultralytics" in author.lower() or not isinstance(channels, int) or not isinstance(anchors, int):
                return "ultralytics"
            if channels < anchors:
                return "ultralytics"
        raise ConfigError(
            f"{self.path}: cannot tell the detector's layout from its outputs {describe_nodes(outputs)}: expected "
            "MMDeploy's 'dets' (1, N, 5) and 'labels' (1, N), or one ultralytics output (1, 4 + classes, anchors); "
            f"name it with --detector-format ({', '.join(FORMATS)})"
        )

    def _mmdeploy_flavour(self) -> str:
        """RTMDet when MMDeploy's ``pipeline.json`` beside the model normalises with a mean (without a readable one:
        when the file name says ``rtmdet``), else YOLOX."""
        pipeline, steps = self.path.parent / "pipeline.json", []
        with contextlib.suppress(OSError, ValueError):
            steps = list(_transforms(json.loads(pipeline.read_text(encoding="utf-8"))))
        if steps:
            means = [t.get("mean", []) for t in steps if t.get("type") == "Normalize"]
            rtmdet, why = bool(means) and any(float(m) != 0 for m in means[0]), str(pipeline)
        else:
            rtmdet, why = "rtmdet" in self.path.name.lower(), "from the file name; --detector-format sets it"
        flavour = "rtmdet" if rtmdet else "yolox"
        log.info("%s: MMDeploy end-to-end detector, preprocessing as %s (%s)", self.path, flavour, why)
        return flavour

    def _check_outputs(self, outputs: Sequence[Any]) -> None:
        """The outputs' names, ranks, fixed sizes and element types, as the format's reader needs them."""
        named = {o.name: o for o in outputs}
        if self.format in ("yolox", "rtmdet"):
            dets, labels = named.get("dets"), named.get("labels")
            if (
                dets is None
                or labels is None
                or len(dets.shape) != 3
                or not _fits(dets.shape, (1, None, 5))
                or dets.type not in FLOAT_TYPES
                or len(labels.shape) != 2
                or not _fits(labels.shape, (1, None))
            ):
                raise ConfigError(
                    f"{self.path}: format {self.format!r} (MMDeploy end-to-end) needs outputs 'dets' and 'labels', "
                    f"(1, N, 5) float and (1, N); the model has {describe_nodes(outputs)}"
                )
        elif (
            len(outputs) != 1
            or len(outputs[0].shape) != 3
            or not _fits(outputs[0].shape, (1, None, None))
            or (isinstance(outputs[0].shape[1], int) and outputs[0].shape[1] < 5)
            or outputs[0].type not in FLOAT_TYPES
        ):
            raise ConfigError(
                f"{self.path}: format 'ultralytics' needs one float output (1, 4 + classes, anchors); the model has "
                f"{describe_nodes(outputs)}"
            )

    def input_tensor(self, image_bgr: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """(H, W, 3) uint8 BGR image → the network's (1, 3, h, w) input and where the image sits in it."""
        image = check_image(image_bgr, "the detector's BGR image")
        padded, box = letterbox(image, self.input_size, centered=self.preprocess.centered)
        if self.preprocess.rgb:
            padded = padded[..., ::-1]
        mean = np.asarray(self.preprocess.mean, dtype=np.float32)
        tensor = (padded.astype(np.float32) - mean) / np.asarray(self.preprocess.std, dtype=np.float32)
        return np.ascontiguousarray(tensor.transpose(2, 0, 1)[None], dtype=self.input_dtype), box

    def __call__(self, image_bgr: np.ndarray) -> Detections:
        tensor, box = self.input_tensor(image_bgr)
        outputs = self.session.run(None, {self.input_name: tensor})
        if self.format == "ultralytics":
            xyxy, scores = self._read_ultralytics(outputs[0])
        else:
            named = dict(zip((o.name for o in self.session.get_outputs()), outputs, strict=True))
            xyxy, scores = self._read_mmdeploy(named["dets"], named["labels"])
        boxes = box.boxes_to_image(xyxy, image_bgr.shape[:2])
        valid = (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
        boxes, scores = boxes[valid], scores[valid]
        keep = nms(boxes, scores, self.iou, self.threshold)[: self.max_detections]
        return Detections(boxes[keep], scores[keep])

    def _read_mmdeploy(self, dets: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dets = np.asarray(dets, dtype=np.float64)
        if dets.ndim != 3 or dets.shape[0] != 1 or dets.shape[2] != 5:
            raise DataError(f"{self.path}: 'dets' has shape {dets.shape}, expected (1, N, 5)")
        labels = np.asarray(labels).reshape(-1)
        if len(labels) != dets.shape[1]:
            raise DataError(
                f"{self.path}: the detector gave {dets.shape[1]} boxes ('dets') but {len(labels)} labels ('labels'); "
                "its outputs must pair one label with each box: the model is broken, export it again"
            )
        person = (labels == PERSON) & (dets[0, :, 4] >= self.threshold)
        return dets[0, person, :4], dets[0, person, 4]

    def _read_ultralytics(self, output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        output = np.asarray(output, dtype=np.float64)
        if output.ndim != 3 or output.shape[0] != 1 or output.shape[1] < 5:
            raise DataError(f"{self.path}: the output has shape {output.shape}, expected (1, 4 + classes, anchors)")
        anchors = output[0].T  # (A, 4 + C)
        classes = anchors[:, 4:]
        person = (classes.argmax(axis=1) == PERSON) & (classes[:, PERSON] >= self.threshold)
        cx, cy, w, h = anchors[person, :4].T
        return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1), classes[person, PERSON]


def _transforms(node: Any) -> Iterator[dict[str, Any]]:
    """Every transform (a dict with a "type") in MMDeploy's ``pipeline.json``, in order."""
    if isinstance(node, dict):
        if "type" in node:
            yield node
        for value in node.values():
            yield from _transforms(value)
    elif isinstance(node, list):
        for item in node:
            yield from _transforms(item)


def _fits(shape: Sequence[Any], expected: Sequence[int | None]) -> bool:
    """Whether the fixed axes of a graph's ``shape`` (ints; named axes are strings) have the ``expected`` sizes
    (None: any)."""
    return all(not isinstance(d, int) or e is None or d == e for d, e in zip(shape, expected, strict=True))


def default_detector(keypoint_set: KeypointSet) -> str | None:
    """The detector that finds a keypoint set's boxes when none are given and none is named, by its ``task``
    (``TASK_DETECTORS``): ``DEFAULT_DETECTOR`` for body and whole-body sets, ``"haar-face"`` for faces, None (the
    whole image is one box) for hands, animals and other sets. Returns a ``load_detector`` spec."""
    return TASK_DETECTORS.get(keypoint_set.task)


def load_detector(
    spec: str | Path,
    *,
    format: str | None = None,
    threshold: float | None = None,
    iou: float | None = None,
    input_size: tuple[int, int] | None = None,
) -> Detector:
    """A detector from ``"hog"``, ``"haar-face"``, a ``.onnx`` path (``format="yunet"``: a YuNet face detector), or a
    registered detector name (``hrnet weights list``; downloaded into the cache when missing). ``threshold`` and
    ``iou`` default to the detector's own."""
    text = str(spec)
    own_iou: dict[str, Any] = {} if iou is None else {"iou": iou}  # else the detector's own default
    if text in ("hog", HAAR_FACE):
        if format is not None:
            raise ConfigError(f"--detector-format applies to ONNX detectors, not to {text}")
        built = HogDetector if text == "hog" else HaarFaceDetector
        return built(threshold=threshold, **own_iou)
    path = Path(text)
    if path.suffix.lower() != ".onnx" and not path.exists():
        entry = REGISTRY.get(text)
        if entry is None or entry.kind != "detector":
            known = ", ".join(name for name, e in REGISTRY.items() if e.kind == "detector")
            raise ConfigError(
                f"detector {text!r}: not 'hog' or '{HAAR_FACE}', not an .onnx file, and not a known detector name "
                f"({known})"
            )
        path, format, input_size = fetch(entry), format or entry.detector_format, input_size or entry.input_size
    if format == "yunet":
        return YuNetDetector(path, threshold=threshold, input_size=input_size, **own_iou)
    return OnnxDetector(
        path, format=format, threshold=threshold, iou=DEFAULT_IOU if iou is None else iou, input_size=input_size
    )
