"""A built-in synthetic COCO-17 keypoint data set, so that everything runs with nothing downloaded.

Each image holds 1–3 articulated figures on a cluttered background. A figure is a 2-D kinematic chain with human
proportions (Drillis & Contini's segment lengths as fractions of body height): pelvis → torso → neck → head, two
arms (upper arm, forearm) from the shoulders and two legs (thigh, shin) from the hips, each joint angle drawn
from a range a person can reach (standing, walking, arms raised, reaching, crouching, leaning). Limbs are shaded
capsules and the torso a shaded quadrilateral, in random clothing colours with stripes or speckles; skin shows
at the forearms and the head.

Left and right are the *person's*, as COCO's. A figure faces the camera (its left side on the image's right; a
face with eyes, nose and mouth) or turns its back (left on the left; hair, no face, and then its eyes and nose
are unlabelled, as COCO annotators leave them). The face is what tells the two apart, as for real people, and
it is mirror-symmetric, so horizontal-flip augmentation stays consistent.

Figures are drawn back to front. A keypoint is visible (v=2) when no figure in front covers it, occluded (v=1)
when one does, and unlabelled (0, 0, 0) when it falls outside the image. COCO's geometry is kept: ``bbox`` is the
tight box of the figure's visible pixels, ``area`` their count, ``num_keypoints`` the number with v > 0.

Layout written by ``write_synthetic(out_dir, ...)``::

    out_dir/annotations/train.json    out_dir/images/train/000000000001.jpg ...
    out_dir/annotations/val.json      out_dir/images/val/000000000001.jpg ...

Every image is a function of (seed, split, index) alone: the same seed gives byte-identical files.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from hrnet.errors import ConfigError
from hrnet.io.files import write_bytes_atomic, write_text_atomic
from hrnet.keypoints import COCO17, coco_category

GENERATOR_VERSION = 1  # bump when the images change, so that cached copies are rewritten
IMAGE_SIZE = (256, 256)  # (height, width)
JPEG_QUALITY = 90
PERSON_COUNTS, PERSON_ODDS = (1, 2, 3), (0.45, 0.35, 0.2)  # how many persons an image shows, and how often
MEAN_PERSONS = sum(n * p for n, p in zip(PERSON_COUNTS, PERSON_ODDS, strict=True))  # a few are hidden and skipped
SPLITS = {"train": 1, "val": 2}  # mixed into the per-image seed so that the splits never share an image

# Segment lengths as fractions of body height H (Drillis & Contini 1966, rounded).
HEAD_RADIUS = 0.065
NECK = 0.05  # neck point → head center is NECK + HEAD_RADIUS
TORSO = 0.29  # pelvis → neck
SHOULDER_HALF = 0.115
HIP_HALF = 0.075
UPPER_ARM = 0.17
FOREARM = 0.16
THIGH = 0.245
SHIN = 0.245

# COCO-17 indices
NOSE, L_EYE, R_EYE, L_EAR, R_EAR = 0, 1, 2, 3, 4
L_SHO, R_SHO, L_ELB, R_ELB, L_WRI, R_WRI = 5, 6, 7, 8, 9, 10
L_HIP, R_HIP, L_KNE, R_KNE, L_ANK, R_ANK = 11, 12, 13, 14, 15, 16


@dataclass
class Figure:
    """One drawn person: keypoints (17, 2) in pixels, which face points it shows, and its pixel mask."""

    keypoints: np.ndarray
    facing_camera: bool
    mask: np.ndarray  # (H, W) bool, this figure's pixels before any occlusion


def _unit(angle: float) -> np.ndarray:
    """Direction at ``angle`` radians from straight down (image y grows downward), positive towards +x."""
    return np.array([np.sin(angle), np.cos(angle)])


def pose_keypoints(rng: np.random.Generator, height: float, pelvis: np.ndarray, facing_camera: bool) -> np.ndarray:
    """(17, 2) keypoints of a random plausible pose of a person ``height`` pixels tall standing at ``pelvis``."""
    h = height
    kind = rng.choice(["stand", "walk", "raise", "reach", "crouch"], p=[0.25, 0.25, 0.2, 0.2, 0.1])
    lean = rng.normal(0, 0.12)
    turn = rng.uniform(0.55, 1.0)  # shoulder/hip width seen from the camera (a slight turn narrows them)
    # The person's left appears on the image's right when it faces the camera.
    side = {"left": 1.0 if facing_camera else -1.0}
    side["right"] = -side["left"]
    k = np.zeros((17, 2))
    up = -_unit(lean)  # from pelvis towards the neck
    neck = pelvis + up * TORSO * h
    across = np.array([-up[1], up[0]])  # perpendicular to the spine, towards +x for an upright figure
    head = neck + up * (NECK + HEAD_RADIUS) * h + rng.normal(0, 0.01 * h, 2)
    for name, sho, elb, wri, hip in (("left", L_SHO, L_ELB, L_WRI, L_HIP), ("right", R_SHO, R_ELB, R_WRI, R_HIP)):
        s = side[name]
        k[sho] = neck + across * s * SHOULDER_HALF * turn * h - up * 0.02 * h
        k[hip] = pelvis + across * s * HIP_HALF * turn * h
        if kind == "raise":
            upper = rng.uniform(1.9, 3.0)
        elif kind == "reach":
            upper = rng.uniform(0.6, 2.0) if rng.random() < 0.6 else rng.uniform(0.05, 0.6)
        else:
            upper = rng.uniform(0.05, 0.6)
        bend = rng.uniform(0.0, 2.2) if rng.random() < 0.6 else rng.uniform(0.0, 0.4)
        bend *= 1 if rng.random() < 0.8 else -0.4  # elbows mostly bend inwards/forwards
        k[elb] = k[sho] + _unit(lean + s * upper) * UPPER_ARM * h
        k[wri] = k[elb] + _unit(lean + s * (upper - bend)) * FOREARM * h
    for name, hip, kne, ank in (("left", L_HIP, L_KNE, L_ANK), ("right", R_HIP, R_KNE, R_ANK)):
        s = side[name]
        if kind == "walk":
            thigh = rng.uniform(-0.45, 0.45)
            knee = rng.uniform(0.0, 0.6)
        elif kind == "crouch":
            thigh = rng.uniform(0.5, 1.2)
            knee = rng.uniform(1.2, 2.2)
        else:
            thigh = rng.uniform(0.0, 0.3)
            knee = rng.uniform(0.0, 0.25)
        scale = 0.6 if kind == "crouch" else 1.0  # a thigh pointing at the camera is foreshortened
        k[kne] = k[hip] + _unit(s * thigh) * THIGH * h * scale
        k[ank] = k[kne] + _unit(s * (thigh - knee)) * SHIN * h
    # Face: eyes and ears across the head, the nose below the eyes' line.
    eye_dx, ear_dx = 0.30 * HEAD_RADIUS * h, 0.95 * HEAD_RADIUS * h
    k[L_EYE] = head + across * side["left"] * eye_dx - up * 0.15 * HEAD_RADIUS * h
    k[R_EYE] = head + across * side["right"] * eye_dx - up * 0.15 * HEAD_RADIUS * h
    k[NOSE] = head - up * 0.45 * HEAD_RADIUS * h
    k[L_EAR] = head + across * side["left"] * ear_dx - up * 0.05 * HEAD_RADIUS * h
    k[R_EAR] = head + across * side["right"] * ear_dx - up * 0.05 * HEAD_RADIUS * h
    return k


def _colour(rng: np.random.Generator, low: int = 30, high: int = 230) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(low, high, 3))  # type: ignore[return-value]


def _skin(rng: np.random.Generator) -> tuple[int, int, int]:
    base = np.array([224, 172, 140]) * rng.uniform(0.45, 1.05)
    return tuple(int(c) for c in np.clip(base + rng.normal(0, 8, 3), 0, 255))  # type: ignore[return-value]


def _capsule(canvas: np.ndarray, mask: np.ndarray, a: np.ndarray, b: np.ndarray, width: float, colour: tuple) -> None:
    """A shaded capsule: a darker rim, the body, a lighter highlight along one side."""
    pa, pb = tuple(int(v) for v in np.round(a)), tuple(int(v) for v in np.round(b))
    w = max(int(width), 2)
    dark = tuple(int(c * 0.55) for c in colour)
    light = tuple(int(min(255, c * 1.3 + 25)) for c in colour)
    cv2.line(canvas, pa, pb, dark, w + 2, cv2.LINE_AA)
    cv2.line(canvas, pa, pb, colour, w, cv2.LINE_AA)
    direction = np.asarray(pb, float) - np.asarray(pa, float)
    normal = np.array([-direction[1], direction[0]]) / (np.linalg.norm(direction) + 1e-6)
    offset = normal * w * 0.22
    cv2.line(
        canvas,
        tuple(int(v) for v in np.round(a + offset)),
        tuple(int(v) for v in np.round(b + offset)),
        light,
        max(w // 4, 1),
        cv2.LINE_AA,
    )
    cv2.line(mask, pa, pb, 1, w + 2)


def draw_figure(
    rng: np.random.Generator, canvas: np.ndarray, keypoints: np.ndarray, height: float, facing_camera: bool
) -> np.ndarray:
    """Draw a figure onto ``canvas`` (in place); returns its (H, W) bool mask."""
    mask = np.zeros(canvas.shape[:2], np.uint8)
    k = keypoints
    h = height
    skin, shirt, trousers = _skin(rng), _colour(rng), _colour(rng, 20, 200)
    limb = 0.055 * h * rng.uniform(0.85, 1.2)
    # far-side limbs first: for a figure facing the camera both sides are equal; draw legs, torso, arms, head
    for hip, kne, ank in ((L_HIP, L_KNE, L_ANK), (R_HIP, R_KNE, R_ANK)):
        _capsule(canvas, mask, k[hip], k[kne], limb * 1.25, trousers)
        _capsule(canvas, mask, k[kne], k[ank], limb * 1.05, trousers)
        foot = k[ank] + np.array([0.0, 0.02 * h])
        _capsule(canvas, mask, k[ank], foot, limb * 0.9, tuple(int(c * 0.4) for c in trousers))
    torso = np.array([k[L_SHO], k[R_SHO], k[R_HIP], k[L_HIP]])
    center = torso.mean(axis=0)
    torso = center + (torso - center) * 1.12
    polygon = np.round(torso).astype(np.int32)
    cv2.fillConvexPoly(canvas, polygon, tuple(int(c * 0.6) for c in shirt), cv2.LINE_AA)
    inner = np.round(center + (torso - center) * 0.88).astype(np.int32)
    cv2.fillConvexPoly(canvas, inner, shirt, cv2.LINE_AA)
    cv2.fillConvexPoly(mask, polygon, 1)
    _capsule(canvas, mask, k[L_SHO], k[R_SHO], limb * 1.2, shirt)
    _capsule(canvas, mask, k[L_HIP], k[R_HIP], limb * 1.2, trousers)
    pattern = rng.integers(0, 3)
    if pattern == 1:  # stripes across the shirt
        for t in np.linspace(0.2, 0.8, 4):
            a = torso[0] + (torso[3] - torso[0]) * t
            b = torso[1] + (torso[2] - torso[1]) * t
            _line(canvas, a, b, tuple(int(c * 0.7) for c in shirt), max(int(limb * 0.3), 1))
    elif pattern == 2:  # speckles
        for _ in range(12):
            p = center + rng.normal(0, 0.05 * h, 2)
            cv2.circle(canvas, tuple(int(v) for v in p), max(int(limb * 0.15), 1), _colour(rng), -1)
    neck_top = (k[L_EAR] + k[R_EAR]) / 2
    neck_base = (k[L_SHO] + k[R_SHO]) / 2
    _capsule(canvas, mask, neck_base, neck_top, limb * 0.9, skin)
    for sho, elb, wri in ((L_SHO, L_ELB, L_WRI), (R_SHO, R_ELB, R_WRI)):
        _capsule(canvas, mask, k[sho], k[elb], limb, shirt)
        _capsule(canvas, mask, k[elb], k[wri], limb * 0.85, skin)
        cv2.circle(canvas, tuple(int(v) for v in k[wri]), max(int(limb * 0.6), 1), skin, -1, cv2.LINE_AA)
    head = (k[L_EAR] + k[R_EAR]) / 2
    radius = max(int(HEAD_RADIUS * h), 3)
    hair = _colour(rng, 10, 120)
    center_i = tuple(int(v) for v in np.round(head))
    cv2.circle(canvas, center_i, radius + 1, tuple(int(c * 0.6) for c in skin), -1, cv2.LINE_AA)
    cv2.circle(canvas, center_i, radius, hair if not facing_camera else skin, -1, cv2.LINE_AA)
    cv2.circle(mask, center_i, radius + 1, 1, -1)
    for ear in (L_EAR, R_EAR):
        cv2.circle(canvas, tuple(int(v) for v in k[ear]), max(radius // 3, 1), skin, -1, cv2.LINE_AA)
    if facing_camera:
        # hair on top, then the face: eyes (white + pupil), nose, mouth
        cv2.ellipse(canvas, center_i, (radius, radius), 0, 180, 360, hair, -1, cv2.LINE_AA)
        eye_r = max(radius // 4, 1)
        for eye in (L_EYE, R_EYE):
            p = tuple(int(v) for v in np.round(k[eye]))
            cv2.circle(canvas, p, eye_r, (245, 245, 245), -1, cv2.LINE_AA)
            cv2.circle(canvas, p, max(eye_r // 2, 1), (20, 20, 20), -1, cv2.LINE_AA)
        nose = tuple(int(v) for v in np.round(k[NOSE]))
        cv2.circle(canvas, nose, max(radius // 5, 1), tuple(int(c * 0.7) for c in skin), -1, cv2.LINE_AA)
        mouth = head + (k[NOSE] - head) * 1.7
        cv2.ellipse(
            canvas, tuple(int(v) for v in mouth), (max(radius // 3, 1), max(radius // 8, 1)), 0, 0, 180,
            (120, 40, 40), -1, cv2.LINE_AA,
        )  # fmt: skip
    return mask.astype(bool)


def _line(canvas: np.ndarray, a: np.ndarray, b: np.ndarray, colour: tuple, width: int) -> None:
    cv2.line(canvas, tuple(int(v) for v in a), tuple(int(v) for v in b), colour, width, cv2.LINE_AA)


def background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """A cluttered RGB background: a gradient, blurred noise texture, random shapes and limb-like strokes."""
    height, width = size
    low = rng.integers(0, 256, (4, 4, 3)).astype(np.uint8)
    canvas = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
    noise = rng.integers(0, 60, (height // 8, width // 8, 3)).astype(np.uint8)
    canvas = cv2.add(canvas, cv2.resize(noise, (width, height), interpolation=cv2.INTER_LINEAR))
    for _ in range(rng.integers(4, 12)):
        kind = rng.integers(0, 4)
        colour = _colour(rng, 0, 256)
        p = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        if kind == 0:
            q = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.rectangle(canvas, p, q, colour, -1)
        elif kind == 1:
            cv2.circle(canvas, p, int(rng.integers(5, 40)), colour, -1, cv2.LINE_AA)
        elif kind == 2:  # a limb-like stroke: something a network must learn not to call an arm
            q = (int(p[0] + rng.normal(0, 40)), int(p[1] + rng.normal(0, 40)))
            cv2.line(canvas, p, q, colour, int(rng.integers(3, 12)), cv2.LINE_AA)
        else:
            pts = rng.integers(0, [width, height], (3, 2)).astype(np.int32)
            cv2.fillConvexPoly(canvas, pts, colour, cv2.LINE_AA)
    return canvas


def make_image(seed: int, split: str, index: int, size: tuple[int, int] = IMAGE_SIZE) -> tuple[np.ndarray, list[dict]]:
    """One RGB image and its persons' annotations (COCO fields except ids), from (seed, split, index) alone."""
    rng = np.random.default_rng([seed, SPLITS[split], index])
    height, width = size
    canvas = background(rng, size)
    count = int(rng.choice(PERSON_COUNTS, p=PERSON_ODDS))
    figures: list[Figure] = []
    # Each person stands in its own horizontal slot, jittered: neighbours overlap partly, rarely wholly.
    slots = rng.permutation(count)
    for slot in slots:
        body = height * (rng.uniform(0.55, 0.95) if count == 1 else rng.uniform(0.45, 0.85))
        x = (slot + 0.5 + rng.uniform(-0.3, 0.3)) / count if count > 1 else rng.uniform(0.1, 0.9)
        pelvis = np.array([x * width, rng.uniform(0.35, 0.75) * height])
        pelvis[1] = min(pelvis[1], height - 0.15 * body) if rng.random() < 0.8 else pelvis[1]
        facing = bool(rng.random() < 0.8)
        keypoints = pose_keypoints(rng, body, pelvis, facing)
        mask = draw_figure(rng, canvas, keypoints, body, facing)
        figures.append(Figure(keypoints, facing, mask))
    annotations = []
    for i, figure in enumerate(figures):
        in_front = np.zeros(size, bool)
        for other in figures[i + 1 :]:
            in_front |= other.mask
        visible_mask = figure.mask & ~in_front
        area = int(visible_mask.sum())
        if area < 0.004 * height * width:
            continue  # hidden almost entirely: COCO would not annotate it either
        ys, xs = np.nonzero(visible_mask)
        box = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]
        flat: list[float] = []
        for k, (x, y) in enumerate(figure.keypoints):
            inside = 0 <= x < width and 0 <= y < height
            hidden_face = not figure.facing_camera and k in (NOSE, L_EYE, R_EYE)
            if not inside or hidden_face:
                flat += [0, 0, 0]
                continue
            v = 1 if in_front[int(y), int(x)] else 2
            flat += [round(float(x), 2), round(float(y), 2), v]
        num = sum(1 for v in flat[2::3] if v > 0)
        if num == 0:
            continue
        annotations.append({"keypoints": flat, "num_keypoints": num, "bbox": box, "area": area, "iscrowd": 0})
    return canvas, annotations


def write_synthetic(
    out_dir: str | Path,
    num_train: int,
    num_val: int,
    seed: int = 0,
    *,
    progress: Callable[[int], None] | None = None,
    written_file: Callable[[Path], None] | None = None,
) -> dict[str, Path]:
    """Write the data set (layout in the module docstring); returns the annotation file of each split.

    ``progress`` is called with the number of images written after each one, ``written_file`` with each file
    written (``hrnet data synth`` records them: ``hrnet.io.outputs.OutputFolder.record``).

    Raises:
        ConfigError: a split size below 0, no image at all, or a negative seed; before anything is written.
    """
    if num_train < 0 or num_val < 0 or num_train + num_val == 0:
        raise ConfigError(
            f"the synthetic data set needs split sizes ≥ 0 and at least one image, got {num_train} training and "
            f"{num_val} validation images"
        )
    if seed < 0:
        raise ConfigError(f"the synthetic data set's seed must be ≥ 0, got {seed}")
    out = Path(out_dir)
    written = 0
    files = {}
    for split, count in (("train", num_train), ("val", num_val)):
        images: list[dict[str, object]] = []
        annotations: list[dict[str, object]] = []
        folder = out / "images" / split
        folder.mkdir(parents=True, exist_ok=True)
        for index, (data, (height, width), persons) in enumerate(_encoded_images(seed, split, count)):
            image_id = index + 1
            name = _image_name(image_id)
            write_bytes_atomic(folder / name, data)
            if written_file is not None:
                written_file(folder / name)
            images.append({"id": image_id, "file_name": name, "height": height, "width": width})
            for person in persons:
                annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1, **person})
            written += 1
            if progress is not None:
                progress(written)
        coco = {
            "info": {"description": f"{DESCRIPTION}, seed {seed}, split {split}"},
            "images": images,
            "annotations": annotations,
            "categories": [coco_category(COCO17)],
        }
        files[split] = out / "annotations" / f"{split}.json"
        write_text_atomic(files[split], json.dumps(coco))
        if written_file is not None:
            written_file(files[split])
    return files


def _encoded_images(seed: int, split: str, count: int) -> Iterator[tuple[bytes, tuple[int, int], list[dict]]]:
    """The split's images in order, JPEG-encoded, with their (height, width) and persons: drawn by one process a
    core where there are several (each image depends on (seed, split, index) alone, so the result is the same)."""
    tasks = [(seed, split, index) for index in range(count)]
    processes = drawing_processes(count)
    if processes == 1:
        yield from map(_encoded_image, tasks)
        return
    # Spawned, not forked: the caller may hold PyTorch's OpenMP threads, which a forked child inherits broken.
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        yield from pool.imap(_encoded_image, tasks, chunksize=16)


def drawing_processes(count: int) -> int:
    """The processes that draw a split of ``count`` images."""
    return 1 if count < PARALLEL_FROM else min(os.cpu_count() or 1, 8)


def _encoded_image(task: tuple[int, str, int]) -> tuple[bytes, tuple[int, int], list[dict]]:
    image, persons = make_image(*task)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:  # pragma: no cover - OpenCV always encodes an RGB uint8 image
        raise RuntimeError(f"OpenCV could not encode synthetic image {task}")
    return data.tobytes(), (image.shape[0], image.shape[1]), persons


PARALLEL_FROM = 200  # fewer images are drawn faster than worker processes start
DESCRIPTION = "hrnet synthetic figures"  # the start of every annotation file's info.description


def is_synthetic(annotations: str | Path) -> bool:
    """Whether an annotation file is one ``write_synthetic`` wrote (its info, the first thing in it, says so;
    read from the first bytes only, so a large COCO file costs nothing)."""
    try:
        with open(annotations, "rb") as f:
            head = f.read(256)
    except OSError:
        return False
    return f'"description": "{DESCRIPTION}'.encode() in head


def synthetic_files(out_dir: str | Path, num_train: int, num_val: int) -> list[Path]:
    """Every file ``write_synthetic`` writes, to check them all before the first is written."""
    out = Path(out_dir)
    return [
        path
        for split, count in (("train", num_train), ("val", num_val))
        for path in (
            out / "annotations" / f"{split}.json",
            *(out / "images" / split / _image_name(index + 1) for index in range(count)),
        )
    ]


def _image_name(image_id: int) -> str:
    return f"{image_id:012d}.jpg"
