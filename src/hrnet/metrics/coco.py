"""COCO keypoint AP/AR through pycocotools, for COCO and any COCO-format keypoint data set.

Results are COCO keypoint results: one dict a person, ``{"image_id", "category_id", "keypoints": [x, y, score] * K
flat, "score"}``, in image pixels. ``evaluate_coco`` runs pycocotools' ``COCOeval(iouType="keypoints")`` with the
data set's own OKS sigmas, as the official HRNet ``COCODataset._do_python_keypoint_eval`` does for COCO.

Ground truth that is not quite COCO is completed before evaluation (pycocotools needs every field):

- ``area`` missing (AI Challenger's and CrowdPose's COCO form): ``missing_area_ratio * w * h`` of the person box.
  The default ratio 1 gives the box area, the OKS scale of the official AI Challenger evaluation (it divides by
  the box area + 1, and its ``delta`` is twice our sigma, so OKS is the same formula). MMPose evaluates these sets
  with xtcocotools' ``use_area=False``, which uses ``0.53 * w * h``: pass 0.53 to compare with its numbers.
  The area also sorts persons into the medium/large ranges of APm/APl.
- ``iscrowd`` missing: 0. ``num_keypoints`` missing: the number of keypoints with visibility > 0.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hrnet.errors import DataError
from hrnet.io.files import read_json, write_json_atomic
from hrnet.keypoints import KeypointSet, coco_category

if TYPE_CHECKING:  # pycocotools is imported where it evaluates: predicting writes results without it
    from pycocotools.coco import COCO

    from hrnet.data.records import PoseRecord

log = logging.getLogger(__name__)

# pycocotools' COCOeval.stats for keypoints, in its order (maxDets 20; areas all, medium, large).
STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")


@dataclass(frozen=True)
class CocoEvaluation:
    """What ``evaluate_coco`` found.

    Attributes:
        metrics: the 10 standard numbers (``STAT_NAMES``) in [0, 1]; -1 where pycocotools has nothing to score
            (e.g. APm when no ground-truth person is medium-sized), as in its table.
        summary: pycocotools' printed table, for the CLI to show.
    """

    metrics: dict[str, float]
    summary: str


def keypoint_results(
    image_ids: Sequence[int | str] | np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray,
    category_id: int | Sequence[int] | np.ndarray = 1,
    boxes: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """COCO keypoint results from arrays.

    Args:
        image_ids: (N,) image id of each person, as in the ground-truth file.
        keypoints: (N, K, 3) ``x, y`` in image pixels and the keypoint score.
        scores: (N,) person scores (after rescoring).
        category_id: the person category's id, or (N,) one per person (AP-10K's species).
        boxes: (N, 4) person boxes ``(x, y, w, h)`` to add as ``bbox`` (pycocotools ignores it), or None.

    Returns:
        N dicts with plain Python numbers, ready for JSON (``write_keypoint_results`` refuses NaN and infinity).
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    n = len(image_ids)
    if keypoints.ndim != 3 or keypoints.shape[2] != 3 or len(keypoints) != n or scores.shape != (n,):
        raise DataError(
            f"results: expected (N, K, 3) keypoints and (N,) scores for {n} image ids, "
            f"got {keypoints.shape} and {scores.shape}"
        )
    categories = [category_id] * n if isinstance(category_id, int) else np.asarray(category_id).tolist()
    if len(categories) != n:
        raise DataError(f"results: {len(categories)} category ids for {n} image ids")
    flat = keypoints.reshape(n, -1).tolist()
    results = [
        {"image_id": _plain_id(image_id), "category_id": category, "keypoints": row, "score": score}
        for image_id, category, row, score in zip(image_ids, categories, flat, scores.tolist(), strict=True)
    ]
    if boxes is not None:
        for result, box in zip(results, np.asarray(boxes, dtype=np.float64).reshape(n, 4).tolist(), strict=True):
            result["bbox"] = box
    return results


def _plain_id(image_id: Any) -> int | str:
    return image_id.item() if isinstance(image_id, np.generic) else image_id


def write_keypoint_results(path: str | Path, results: Sequence[Mapping[str, Any]]) -> None:
    """Write COCO keypoint results as JSON; the file appears whole or not at all (temporary name, then rename)."""
    write_json_atomic(path, list(results), indent=None)


def load_ground_truth(gt: str | Path | Mapping[str, Any] | COCO, *, missing_area_ratio: float = 1.0) -> COCO:
    """A pycocotools ``COCO`` for COCO-format ground truth (a file, its parsed JSON, or a ``COCO``), with missing
    fields completed (module docstring).

    A ``COCO`` object passed in is completed in place and returned. pycocotools' prints are logged at debug level.
    """
    from pycocotools.coco import COCO

    if isinstance(gt, COCO):
        coco, source = gt, "<COCO object>"
    else:
        source = str(gt) if isinstance(gt, str | Path) else "<ground truth>"
        dataset = read_json(gt, "COCO ground truth") if isinstance(gt, str | Path) else dict(gt)
        if not isinstance(dataset, dict) or not all(
            isinstance(dataset.get(key), list) for key in ("images", "annotations", "categories")
        ):
            raise DataError(f"{source}: not a COCO annotation file (needs lists 'images', 'annotations', 'categories')")
        coco = COCO()
        coco.dataset = dataset
        with _pycocotools_output():
            coco.createIndex()
    for ann in coco.dataset.get("annotations", []):
        _complete_annotation(ann, source, missing_area_ratio)
    return coco


def _complete_annotation(ann: dict[str, Any], source: str, missing_area_ratio: float) -> None:
    keypoints = ann.get("keypoints")
    if not isinstance(keypoints, list) or len(keypoints) % 3:
        raise DataError(f"{source}: annotation {ann.get('id')!r} has no list of keypoints as [x, y, v] * K")
    if "num_keypoints" not in ann:
        ann["num_keypoints"] = int(np.count_nonzero(np.asarray(keypoints[2::3]) > 0))
    ann.setdefault("iscrowd", 0)
    box = ann.get("bbox")
    if not isinstance(box, list) or len(box) != 4:
        raise DataError(f"{source}: annotation {ann.get('id')!r} has no 'bbox' [x, y, w, h]")
    if "area" not in ann:
        ann["area"] = missing_area_ratio * float(box[2]) * float(box[3])


def evaluate_coco(
    gt: str | Path | COCO,
    results: str | Path | Sequence[Mapping[str, Any]],
    sigmas: Sequence[float] | np.ndarray,
    *,
    image_ids: Sequence[int | str] | None = None,
    missing_area_ratio: float = 1.0,
) -> CocoEvaluation:
    """COCO keypoint AP/AR of ``results`` against ``gt`` with pycocotools, using the data set's own sigmas.

    Works for any COCO-format keypoint set: COCO-17 with ``COCO17.sigmas`` gives the official COCO numbers; AI
    Challenger's COCO form with ``AIC14.sigmas`` gives its AP, AP50 and AP75 (ground truth there has no ``area``;
    see the module docstring). Empty results score 0.

    Args:
        gt: ground-truth JSON path or a ``COCO`` object.
        results: results JSON path or a list of result dicts (not modified).
        sigmas: (K,) OKS sigmas; K must match the categories' keypoints and every result.
        image_ids: evaluate on these images only (default: every image of ``gt``, as the official code does).
        missing_area_ratio: person area = ratio × box w·h for ground truth without ``area``.

    Returns:
        The 10 numbers and pycocotools' table.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    coco_gt = load_ground_truth(gt, missing_area_ratio=missing_area_ratio)
    sigmas = np.asarray(sigmas, dtype=np.float64)
    source = str(gt) if not isinstance(gt, COCO) else "<COCO object>"
    for category in coco_gt.dataset["categories"]:
        names = category.get("keypoints")
        if isinstance(names, list) and len(names) != len(sigmas):
            raise DataError(
                f"{source}: category {category.get('id')!r} has {len(names)} keypoints but {len(sigmas)} OKS "
                "sigmas were given; pass the data set's own sigmas"
            )
    detections = _checked_results(results, coco_gt, len(sigmas))

    with _pycocotools_output():
        if detections:
            coco_dt = coco_gt.loadRes(detections)
        else:
            # loadRes cannot take an empty list; an empty result set scores 0 like any set with no match.
            coco_dt = COCO()
            coco_dt.dataset = {**coco_gt.dataset, "annotations": []}
            coco_dt.createIndex()

    evaluation = COCOeval(coco_gt, coco_dt, iouType="keypoints")
    evaluation.params.kpt_oks_sigmas = sigmas
    if image_ids is not None:
        unknown = set(image_ids) - set(coco_gt.getImgIds())
        if unknown:
            raise DataError(f"{source}: image ids {sorted(map(str, unknown))[:5]} are not in the ground truth")
        evaluation.params.imgIds = sorted(set(image_ids))
    with _pycocotools_output():
        evaluation.evaluate()
        evaluation.accumulate()
    with _pycocotools_output() as table:
        evaluation.summarize()
    summary = table.getvalue()
    metrics = dict(zip(STAT_NAMES, (float(v) for v in evaluation.stats), strict=True))
    return CocoEvaluation(metrics=metrics, summary=summary)


def _checked_results(
    results: str | Path | Sequence[Mapping[str, Any]], coco_gt: COCO, num_keypoints: int
) -> list[dict[str, Any]]:
    """Fresh result dicts with only the four fields pycocotools reads (it edits what it is given)."""
    if isinstance(results, str | Path):
        source = str(results)
        loaded = read_json(results, "keypoint results file")
        if not isinstance(loaded, list):
            raise DataError(f"{source}: keypoint results must be a JSON list of objects")
        results = loaded
    else:
        source = "<results>"
    known_images = set(coco_gt.getImgIds())
    known_categories = set(coco_gt.getCatIds())
    checked = []
    for i, result in enumerate(results):
        where = f"{source}: result {i}"
        if not isinstance(result, Mapping) or not {"image_id", "category_id", "keypoints", "score"} <= result.keys():
            raise DataError(f"{where} needs 'image_id', 'category_id', 'keypoints' and 'score'")
        keypoints = np.asarray(result["keypoints"], dtype=np.float64)
        if keypoints.shape != (3 * num_keypoints,):
            raise DataError(
                f"{where} has {keypoints.size} keypoint values; expected {3 * num_keypoints} ([x, y, score] × "
                f"{num_keypoints} keypoints)"
            )
        score = float(result["score"])
        if not (np.isfinite(keypoints).all() and np.isfinite(score)):
            raise DataError(f"{where} (image {result['image_id']!r}) has a non-finite keypoint or score")
        if result["image_id"] not in known_images:
            raise DataError(f"{where}: image id {result['image_id']!r} is not in the ground truth")
        if result["category_id"] not in known_categories:
            raise DataError(f"{where}: category id {result['category_id']!r} is not in the ground truth")
        checked.append(
            {
                "image_id": result["image_id"],
                "category_id": result["category_id"],
                "keypoints": keypoints.tolist(),
                "score": score,
            }
        )
    return checked


@contextlib.contextmanager
def _pycocotools_output() -> Iterator[io.StringIO]:
    """Capture what pycocotools prints; it is logged at debug level (and the buffer is there to read)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        yield buffer
    if buffer.getvalue().strip():
        log.debug("pycocotools:\n%s", buffer.getvalue().rstrip())


def records_to_coco(records: Sequence[PoseRecord], keypoint_set: KeypointSet) -> tuple[dict[str, Any], dict[Any, int]]:
    """Ground truth in COCO form from records (for sets read from other formats, e.g. AI Challenger's raw JSON),
    and the image numbering used (record ``image_id`` → COCO image id, 1, 2, ... in order of appearance)."""
    number: dict[Any, int] = {}
    for r in records:
        number.setdefault(r.image_id, len(number) + 1)
    images = {}
    annotations = []
    for i, r in enumerate(records):
        height, width = r.image_size
        images[r.image_id] = {
            "id": number[r.image_id],
            "file_name": r.image_path.name,
            "height": height,
            "width": width,
        }
        triples = np.concatenate([r.keypoints, r.visibility[:, None].astype(np.float32)], axis=1)
        annotations.append(
            {
                "id": i + 1,
                "image_id": number[r.image_id],
                "category_id": 1,
                "keypoints": triples.reshape(-1).tolist(),
                "num_keypoints": r.num_labelled,
                "bbox": list(r.box),
                "area": r.area or r.box[2] * r.box[3],
                "iscrowd": 0,
            }
        )
    categories = [coco_category(keypoint_set)]
    return {"images": list(images.values()), "annotations": annotations, "categories": categories}, number
