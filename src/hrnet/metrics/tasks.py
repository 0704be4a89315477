"""Which metric scores a keypoint set's task, and which of its numbers picks the best epoch.

Body, whole-body, animal and other sets: COCO's OKS AP/AR with the set's own sigmas. Hands and clothes' landmarks:
PCK@0.2 of the box, AUC and EPE, main PCK (MMPose's hand and DeepFashion configs). Faces: NME, main NME, lower is
better (MMPose's face configs). A data format may bring its own metric instead (MPII's PCKh:
``hrnet.data.sources.FORMATS``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hrnet.errors import DataError
from hrnet.keypoints import TASKS


@dataclass(frozen=True)
class Scoring:
    """How evaluation scores a split: ``scorer`` names the function (``hrnet.engine.evaluate.SCORERS``), ``main``
    the number among its results that picks the best epoch, ``lower_is_better`` that number's direction."""

    scorer: str
    main: str
    lower_is_better: bool = False

    @property
    def direction(self) -> str:
        return "lower is better" if self.lower_is_better else "higher is better"

    def improves(self, value: float, best: float | None) -> bool:
        """Whether ``value`` of the main number beats ``best`` (None: no best yet); NaN never does."""
        if not math.isfinite(value):
            return False
        if best is None:
            return True
        return value < best if self.lower_is_better else value > best


COCO_AP = Scoring("coco", "AP")
HAND_PCK = Scoring("pck", "PCK")
FACE_NME = Scoring("nme", "NME", lower_is_better=True)
TASK_SCORING = {
    "body": COCO_AP,
    "wholebody": COCO_AP,
    "animal": COCO_AP,
    "other": COCO_AP,
    "hand": HAND_PCK,
    "fashion": HAND_PCK,
    "face": FACE_NME,
}


def metrics_for_task(task: str) -> Scoring:
    """The scoring of a keypoint set's ``task`` (one of ``hrnet.keypoints.TASKS``)."""
    if task not in TASK_SCORING:
        raise DataError(f"no metric for keypoint set task {task!r}; tasks are {list(TASKS)}")
    return TASK_SCORING[task]
