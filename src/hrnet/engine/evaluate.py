"""Evaluation: batched inference over a split with the official test recipe, then the data set's metric.

Per person: the crop of its box (ground truth or a detection), the network's heatmaps, with the flip test the
mirrored input's heatmaps flipped back (shifted one pixel as the official code) and averaged, decoding by argmax
+ quarter-pixel offset (or DARK), keypoints mapped back to the image. Then the split's metric
(``Split.scoring``): for body, whole-body and animal sets in COCO form, the official rescoring and OKS-NMS per
image and the 10 AP/AR numbers from pycocotools with the set's own sigmas; for hands and clothes, PCK@0.2 of the
box, AUC and EPE, and for faces NME, as MMPose computes them (``hrnet.metrics.keypoint_errors``), each with COCO
AP/AR too; for MPII, PCKh. Under ``torchrun`` every process predicts its share and rank 0 gathers and scores.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from hrnet.codec import HeatmapCodec, codec_from_config
from hrnet.config import ExperimentConfig, RuntimeConfig, TestConfig
from hrnet.data.dataset import TopDownDataset, collate
from hrnet.data.records import PoseRecord
from hrnet.data.sampler import EpochSampler
from hrnet.data.sources import Split, load_split
from hrnet.drawing.heatmaps import side_by_side
from hrnet.engine.distributed import Distributed, broadcast_object, gather_objects
from hrnet.errors import DataError
from hrnet.io.files import write_json_atomic
from hrnet.io.images import read_image, write_image
from hrnet.io.outputs import OutputFolder
from hrnet.keypoints import KeypointSet
from hrnet.metrics.coco import (
    evaluate_coco,
    keypoint_results,
    load_ground_truth,
    records_to_coco,
    write_keypoint_results,
)
from hrnet.metrics.keypoint_errors import (
    AUC_NORM_FACTOR,
    HAND_PCK_THRESHOLD,
    auc,
    box_sizes,
    epe,
    keypoint_pair_distances,
    nme,
    pck_accuracy,
)
from hrnet.metrics.nms import nms_per_image
from hrnet.metrics.pck import head_sizes_from_segment, mpii_pckh
from hrnet.metrics.tasks import Scoring
from hrnet.pose.estimator import HeatmapFn, predict_keypoints
from hrnet.pose.persons import instance_noun
from hrnet.tf_port.metric import keypoint_distances, port_ap
from hrnet.tf_port.pipeline import wrap_uint8

log = logging.getLogger(__name__)

COMMAND = "hrnet eval"  # as the output guard names it in messages (``hrnet.io.outputs``)
METRICS, RESULTS = "metrics.json", "keypoints_results.json"


@dataclass
class Predictions:
    """Decoded predictions for the persons of a split, in record order."""

    keypoints: np.ndarray  # (N, K, 2) image pixels
    scores: np.ndarray  # (N, K) heatmap peak values
    centers: np.ndarray  # (N, 2) crop centers, image pixels
    sizes: np.ndarray  # (N, 2) crop sizes (w, h), image pixels


@dataclass
class Evaluator:
    """Evaluates a model on one split (built once, reused every epoch): ``split``'s records cropped and decoded
    by ``codec``, the ``test`` recipe, on ``device`` with ``runtime``'s AMP and loader workers. ``size_mismatch``
    is ``data.size_mismatch`` (``TopDownDataset``). ``truth`` reads the split again with its ground-truth boxes,
    for the drawings when the split's records are detections (``--boxes``), which carry no keypoints."""

    split: Split
    codec: HeatmapCodec
    test: TestConfig
    runtime: RuntimeConfig
    device: torch.device
    dist: Distributed = field(default_factory=Distributed)
    _: KW_ONLY
    progress: bool = True
    size_mismatch: str = "error"
    truth: Callable[[], Split] | None = None

    def __post_init__(self) -> None:
        self.progress = self.progress and self.dist.is_main
        self.keypoint_set = self.split.keypoint_set
        check_ground_truth(self.split)
        self.dataset = TopDownDataset(
            self.split.records, self.keypoint_set, self.codec, size_mismatch=self.size_mismatch
        )
        self.scoring = self.split.scoring
        self.main_metric = self.scoring.main

    @classmethod
    def from_config(
        cls,
        config: ExperimentConfig,
        device: torch.device,
        dist: Distributed | None = None,
        *,
        split: str = "val",
        boxes: str | Path | None = None,
        progress: bool = True,
    ) -> Evaluator:
        """The evaluator of an experiment's ``split``; person boxes from ``boxes`` (a detection-results file),
        else ``test.boxes``, else the ground truth."""
        records = load_split(
            config.data,
            split,
            config.model.num_keypoints,
            boxes=boxes if boxes is not None else (config.test.boxes or None),
            box_score_threshold=config.test.box_score_threshold,
        )
        codec = codec_from_config(config.model, config.data, float32_regions=records.format.float32_regions)
        detected = records.detections is not None
        return cls(
            records,
            codec,
            config.test,
            config.runtime,
            device,
            dist or Distributed(),
            progress=progress,
            size_mismatch=config.data.size_mismatch,
            truth=partial(load_split, config.data, split, config.model.num_keypoints) if detected else None,
        )

    @torch.inference_mode()
    def predict(self, model: nn.Module | HeatmapFn) -> Predictions:
        """Heatmaps → keypoints for every record of the split (all ranks return the gathered result). ``model``:
        a network (put in eval mode for the pass) or any function of crops to heatmaps (a backend of
        ``hrnet.runtime.backends``: bf16, int8, ONNX Runtime)."""
        test = self.test
        module = model if isinstance(model, nn.Module) else None
        was_training = module is not None and module.training
        if module is not None:
            module.eval()
        n = len(self.dataset)
        sampler = EpochSampler(n, shuffle=False, rank=self.dist.rank, world_size=self.dist.world_size)
        loader = DataLoader(
            self.dataset,
            batch_size=test.batch_size,
            sampler=sampler,
            num_workers=self.runtime.num_workers,
            collate_fn=collate,
            pin_memory=self.device.type == "cuda",
        )
        flip_index = self.keypoint_set.flip_index
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        use_amp = self.runtime.amp and self.device.type == "cuda"
        for batch in tqdm(loader, desc="evaluating", disable=not self.progress, leave=False, dynamic_ncols=True):
            images = batch.image.to(self.device, non_blocking=True)
            with torch.autocast(self.device.type, enabled=use_amp):
                keypoints, scores = predict_keypoints(
                    model, images, self.codec, flip_index, test, batch.center.numpy(), batch.size.numpy()
                )
            parts.append((batch.index.numpy(), keypoints, scores))
        if module is not None:
            module.train(was_training)
        gathered = [p for rank_parts in gather_objects(parts, self.dist) for p in rank_parts]
        index = np.concatenate([p[0] for p in gathered])
        order = np.unique(index, return_index=True)[1]  # padding repeats a few indices across ranks
        keypoints = np.concatenate([p[1] for p in gathered])[order]
        scores = np.concatenate([p[2] for p in gathered])[order]
        centers, sizes = self.codec.crop.regions(np.array([r.box for r in self.split.records]).reshape(-1, 4))
        return Predictions(keypoints, scores, centers, sizes)

    def evaluate(
        self,
        model: nn.Module | HeatmapFn,
        out_dir: str | Path | OutputFolder | None = None,
        draw: int = 0,
        *,
        overwrite: bool = False,
    ) -> dict[str, Any]:
        """Predict and score; rank 0 writes the results, ``metrics.json`` and ``draw`` pictures
        (``prediction_NNN.jpg``: prediction | ground truth) into ``out_dir``, an ``OutputFolder`` the caller holds
        (``hrnet eval``) or a path held here. Every output is checked before the prediction pass
        (``hrnet.io.outputs``): none may replace the split's files, a device, or a file that an earlier evaluation
        did not write (unless ``overwrite``).
        """
        if out_dir is None or isinstance(out_dir, OutputFolder):
            return self._evaluate(model, out_dir, draw)
        what = "evaluation folder"
        with OutputFolder(out_dir, command=COMMAND, overwrite=overwrite, what=what, hold=self.dist.is_main) as folder:
            return self._evaluate(model, folder, draw)

    def _evaluate(self, model: nn.Module | HeatmapFn, folder: OutputFolder | None, draw: int) -> dict[str, Any]:
        drawn = _drawn_images(self.split, draw)
        if folder is not None:
            folder.protect([self.split.annotations, self.split.detections, *{r.image_path for r in self.split.records}])
            for name in (METRICS, RESULTS):
                folder.claim(folder.path / name, "the evaluation's results")
            for i in range(len(drawn)):
                folder.claim(folder.path / _picture_name(i), "a drawing of the evaluation")
        predictions = self.predict(model)
        metrics: dict[str, Any] = {}
        if self.dist.is_main:
            out_dir = folder.path if folder is not None else None
            metrics = score_predictions(predictions, self.split, self.test, out_dir)
            if self.test.metric == "tf_port":
                port = score_tf_port(predictions, self.split, self.codec)
                metrics.update(port)
                metrics["summary"] = (
                    f"{metrics.get('summary', '')}\nTF port's evaluate.py: AP50 {port['tf_port_AP50']:.4f}  "
                    f"AP75 {port['tf_port_AP75']:.4f}  ({port['tf_port_persons']} persons)"
                ).lstrip("\n")
            if folder is not None:
                written = [folder.path / METRICS]
                write_json_atomic(written[0], metrics)
                if (folder.path / RESULTS).is_file():  # the COCO scorer writes it, PCKh does not
                    written.append(folder.path / RESULTS)
                truth = self.truth() if draw and self.truth is not None else None
                for i, picture in enumerate(draw_predictions(predictions, self.split, draw, truth=truth)):
                    written.append(write_image(folder.path / _picture_name(i), picture))
                for path in written:
                    folder.record(path)
        return broadcast_object(metrics, self.dist)


def _picture_name(index: int) -> str:
    return f"prediction_{index:03d}.jpg"


def _drawn_images(split: Split, count: int) -> list[list[int]]:
    """The record indices of the first ``count`` images of the split, an image's persons together."""
    by_image: dict[Any, list[int]] = {}
    for i, record in enumerate(split.records):
        by_image.setdefault(record.image_id, []).append(i)
    return list(by_image.values())[:count]


def draw_predictions(
    predictions: Predictions, split: Split, count: int, threshold: float = 0.3, *, truth: Split | None = None
) -> list[np.ndarray]:
    """Up to ``count`` images of the split, each with its persons' predicted skeletons beside the ground truth:
    the split's own records, or with ``truth`` (when the split's records are detections, which carry no
    keypoints) that split's records of the same image."""
    truth_of: dict[Any, list[PoseRecord]] = {}
    for record in truth.records if truth is not None else ():
        truth_of.setdefault(record.image_id, []).append(record)
    num_keypoints = split.keypoint_set.num_keypoints
    pictures = []
    for indices in _drawn_images(split, count):
        records = [split.records[i] for i in indices]
        shown = truth_of.get(records[0].image_id, []) if truth is not None else records
        pictures.append(
            side_by_side(
                read_image(records[0].image_path),
                predictions.keypoints[indices],
                predictions.scores[indices],
                np.array([r.keypoints for r in shown], dtype=np.float64).reshape(-1, num_keypoints, 2),
                np.array([r.visibility for r in shown], dtype=np.float64).reshape(-1, num_keypoints),
                split.keypoint_set,
                threshold=threshold,
            )
        )
    return pictures


def score_predictions(
    predictions: Predictions, split: Split, test: TestConfig, out_dir: str | Path | None = None
) -> dict[str, Any]:
    """The split's metric (``Split.scoring``: COCO AP/AR with the set's own sigmas, hands' PCK, faces' NME, or
    MPII PCKh), with ``main_metric`` naming the number that picks the best epoch."""
    scoring = split.scoring
    return {**SCORERS[scoring.scorer](predictions, split, test, out_dir), "main_metric": scoring.main}


def score_coco(
    predictions: Predictions, split: Split, test: TestConfig, out_dir: str | Path | None = None
) -> dict[str, Any]:
    """Official ``COCODataset.evaluate``: rescoring and OKS-NMS per image, a results JSON, pycocotools.

    Each person's area for OKS-NMS is its crop's, ``w * h`` in float32 as the official ``prod(scale * 200)``; its
    score is the box score times the mean of its keypoint scores above ``test.in_vis_threshold``.
    """
    return _coco_ap(predictions, split, test, out_dir, *_coco_truth(split))


def _coco_truth(split: Split) -> tuple[COCO, list[Any]]:
    """The split's ground truth for pycocotools and each record's image id in it."""
    records = split.records
    if split.ground_truth is not None:
        return load_ground_truth(split.ground_truth()), [r.image_id for r in records]
    # e.g. AI Challenger's raw form: its ground truth in COCO form, images numbered in order of appearance
    gt_dict, number = records_to_coco(records, split.keypoint_set)
    return load_ground_truth(gt_dict), [number[r.image_id] for r in records]


def _coco_ap(
    predictions: Predictions,
    split: Split,
    test: TestConfig,
    out_dir: str | Path | None,
    gt: COCO,
    image_ids: list[Any],
) -> dict[str, Any]:
    records = split.records
    keypoint_set = split.keypoint_set
    kpts = np.concatenate([predictions.keypoints, predictions.scores[..., None]], axis=2)
    box_scores = np.array([r.score for r in records], dtype=np.float64)
    areas = predictions.sizes.astype(np.float32).prod(axis=1)
    keep, rescored = nms_per_image(
        image_ids, kpts, box_scores, areas, keypoint_set.sigmas,
        oks_threshold=test.oks_threshold, in_vis_threshold=test.in_vis_threshold, soft=test.soft_nms,
    )  # fmt: skip
    categories = np.array([r.category_id for r in records], dtype=np.int64)
    results = keypoint_results(np.asarray(image_ids, dtype=object)[keep], kpts[keep], rescored[keep], categories[keep])
    if out_dir is not None:
        write_keypoint_results(Path(out_dir) / "keypoints_results.json", results)
    evaluation = evaluate_coco(gt, results, keypoint_set.sigmas)
    log.debug("COCO keypoint evaluation (%d persons kept of %d):\n%s", len(keep), len(records), evaluation.summary)
    return {**evaluation.metrics, "summary": evaluation.summary}


def score_pckh(
    predictions: Predictions, split: Split, test: TestConfig, out_dir: str | Path | None = None
) -> dict[str, Any]:
    """MPII PCKh@0.5 (and @0.1) per joint group and mean; head sizes from the records when known, else from the
    head segment (``head_sizes_from_segment``: not the official normaliser, see there)."""
    gt, visible, sizes, usable = _pckh_ground_truth(split.records)
    table = mpii_pckh(
        predictions.keypoints[usable], gt[usable], visible[usable], sizes[usable], (test.pck_threshold, 0.1)
    )
    return {
        "PCKh": table["Mean"],
        **{f"PCKh_{k}": v for k, v in table.items() if k != "Mean"},
        "persons": int(usable.sum()),
    }


def score_hand(
    predictions: Predictions, split: Split, test: TestConfig, out_dir: str | Path | None = None
) -> dict[str, Any]:
    """Hands, as MMPose's hand configs: PCK@0.2 of the box (``PCKAccuracy``), AUC over 0-30 px and EPE in pixels
    (``hrnet.metrics.keypoint_errors``), then COCO AP/AR with the set's sigmas."""
    gt, image_ids = _coco_truth(split)
    truth, visible = _truth_arrays(split.records)
    found = predictions.keypoints
    lengths = box_sizes(_file_boxes(split, gt), np.array([r.image_size for r in split.records]))
    metrics = {
        "PCK": pck_accuracy(found, truth, visible, lengths, HAND_PCK_THRESHOLD).mean,
        "AUC": auc(found, truth, visible),
        "EPE": epe(found, truth, visible),
        "persons": len(split.records),
    }
    table = _table(
        split.scoring,
        [
            ("PCK", f"PCK@{HAND_PCK_THRESHOLD:g} of the box", metrics["PCK"], "higher is better"),
            ("AUC", f"AUC of PCK, 0-{AUC_NORM_FACTOR:g} px", metrics["AUC"], "higher is better"),
            ("EPE", "EPE, pixels", metrics["EPE"], "lower is better"),
        ],
    )
    return _with_coco_ap(metrics, table, _coco_ap(predictions, split, test, out_dir, gt, image_ids))


def score_face(
    predictions: Predictions, split: Split, test: TestConfig, out_dir: str | Path | None = None
) -> dict[str, Any]:
    """Faces, as MMPose's face configs: NME (``NME``), normalised by the distance between the set's ``nme_pair``
    (``norm_mode='keypoint_distance'``) or, without one, by the box size (``norm_item='bbox_size'``); then COCO
    AP/AR with the set's sigmas."""
    gt, image_ids = _coco_truth(split)
    truth, visible = _truth_arrays(split.records)
    lengths, normaliser = _nme_lengths(split, truth, gt)
    metrics = {"NME": nme(predictions.keypoints, truth, visible, lengths), "persons": len(split.records)}
    table = _table(split.scoring, [("NME", f"NME of {normaliser}", metrics["NME"], "lower is better")])
    return _with_coco_ap(metrics, table, _coco_ap(predictions, split, test, out_dir, gt, image_ids))


def _nme_lengths(split: Split, truth: np.ndarray, gt: COCO) -> tuple[np.ndarray, str]:
    """(N,) NME normalisers of the split's faces and what they are, in words."""
    keypoint_set = split.keypoint_set
    if keypoint_set.nme_pair:
        return keypoint_pair_distances(truth, keypoint_set.nme_pair), _pair_words(keypoint_set)
    return box_sizes(_file_boxes(split, gt), np.array([r.image_size for r in split.records])), "the box size"


def _pair_words(keypoint_set: KeypointSet) -> str:
    a, b = (keypoint_set.names[i] for i in keypoint_set.nme_pair)
    return f"the {a}-{b} distance"


def _file_boxes(split: Split, gt: COCO) -> np.ndarray:
    """(N, 4) each record's box as the annotation file gives it, ``(x, y, w, h)``: MMPose's normaliser clips the
    file's box by its own rule (``box_sizes``), not as the official reader cleaned the record's."""
    if split.ground_truth is None:
        return np.array([r.box for r in split.records], dtype=np.float64).reshape(-1, 4)
    return np.array([gt.anns[r.annotation_id]["bbox"] for r in split.records], dtype=np.float64).reshape(-1, 4)


def _table(scoring: Scoring, rows: Sequence[tuple[str, str, float, str]]) -> str:
    """The printed table of a task's numbers: (key, what it is, value, direction) a row; the main one marked."""
    width = max(len(label) for _, label, _, _ in rows)
    lines = []
    for key, label, value, direction in rows:
        main = "main metric, " if key == scoring.main else ""
        lines.append(f"{label:<{width}}  {value:8.4f}  ({main}{direction})")
    return "\n".join(lines)


def _with_coco_ap(metrics: dict[str, Any], table: str, coco: dict[str, Any]) -> dict[str, Any]:
    """The task's numbers first, then COCO's AP/AR (not the main metric here) and both tables as the summary."""
    summary = f"{table}\nCOCO keypoint AP/AR with the set's OKS sigmas:\n{coco.pop('summary')}"
    return {**metrics, **coco, "summary": summary}


def _truth_arrays(records: Sequence[PoseRecord]) -> tuple[np.ndarray, np.ndarray]:
    """(N, K, 2) true keypoints, image pixels, and (N, K) which are labelled (visibility > 0)."""
    gt = np.stack([r.keypoints for r in records]).astype(np.float64)
    return gt, np.stack([r.visibility > 0 for r in records])


def _pckh_ground_truth(records: Sequence[PoseRecord]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(N, K, 2) true keypoints, (N, K) visible, (N,) head sizes and (N,) whether a person has a head size."""
    gt, visible = _truth_arrays(records)
    sizes = np.array([np.nan if r.head_size is None else r.head_size for r in records])
    if np.isnan(sizes).any():
        sizes = np.where(np.isnan(sizes), head_sizes_from_segment(gt, visible), sizes)
    usable = np.isfinite(sizes) & (sizes > 0)
    return gt, visible, sizes, usable


def check_ground_truth(split: Split) -> None:
    """``DataError`` naming the annotation file when ``split`` cannot be scored at all, found before any prediction:
    PCKh needs persons with labelled joints and a head size (a test-set file has no joints); hands' PCK and faces'
    NME compare each one with its own ground truth (detection boxes carry none), and NME needs a face whose
    normalising length is not 0."""
    scorer = split.scoring.scorer
    if scorer in ("pck", "nme"):
        _check_hand_face_ground_truth(split)
    elif scorer == "pckh":
        _check_pckh_ground_truth(split)


def _check_pckh_ground_truth(split: Split) -> None:
    _, visible, _, usable = _pckh_ground_truth(split.records)
    if not (usable & visible.any(axis=1)).any():
        raise DataError(
            f"{split.annotations}: no entry has labelled joints with a head size (head top and upper neck, or a "
            "given head size), so PCKh cannot be computed: a test-set file has no 'joints'; evaluate on a file "
            "with ground truth (e.g. the official annot/valid.json)"
        )


def _check_hand_face_ground_truth(split: Split) -> None:
    if split.detections is not None:
        raise DataError(
            f"{split.detections}: {split.scoring.main} compares each {instance_noun(split.keypoint_set.task)} with its "
            "own ground truth, which boxes from a detection file do not carry: evaluate with the ground-truth boxes "
            "(no --boxes, test.boxes '')"
        )
    keypoint_set = split.keypoint_set
    if split.scoring.scorer != "nme" or not keypoint_set.nme_pair:
        return  # a record's box always has a size
    truth, visible = _truth_arrays(split.records)
    lengths = keypoint_pair_distances(truth, keypoint_set.nme_pair)
    if not ((lengths > 0) & visible.any(axis=1)).any():
        raise DataError(
            f"{split.annotations}: NME is normalised by {_pair_words(keypoint_set)}, which is 0 for every face: "
            "label both keypoints of the set's nme_pair, or give the set no nme_pair to use the box size"
        )


def score_tf_port(predictions: Predictions, split: Split, codec: HeatmapCodec) -> dict[str, Any]:
    """The TF port's AP50/AP75 (``hrnet.tf_port.metric``), as its ``test.py`` computes them: distances in input
    crop pixels between the decoded keypoints and the ground truth mapped into the crop (with the port's stretch
    crop, truncated by its uint8 cast as its records store them), σ from this same set. Not COCO's AP."""
    crop = codec.crop
    records = split.records
    regions = list(zip(predictions.centers, predictions.sizes, strict=True))
    truth = np.stack([crop.to_input(r.keypoints, c, s) for r, (c, s) in zip(records, regions, strict=True)])
    if crop.stretch:
        truth = wrap_uint8(truth).astype(np.float64)
    predicted = np.stack([crop.to_input(k, c, s) for k, (c, s) in zip(predictions.keypoints, regions, strict=True)])
    labelled = np.stack([r.visibility > 0 for r in records])
    result = port_ap(keypoint_distances(predicted, truth, labelled), labelled)
    return {
        "tf_port_AP50": result.ap50,
        "tf_port_AP75": result.ap75,
        "tf_port_persons": result.num_samples,
        "tf_port_nan_oks": result.num_nan_oks,
    }


SCORERS: dict[str, Callable[[Predictions, Split, TestConfig, str | Path | None], dict[str, Any]]] = {
    "coco": score_coco,
    "pckh": score_pckh,
    "pck": score_hand,
    "nme": score_face,
}
