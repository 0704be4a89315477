"""Which metric scores each keypoint set task, and which way its main number improves."""

import math

import pytest

from hrnet.errors import DataError
from hrnet.keypoints import TASKS
from hrnet.metrics.tasks import COCO_AP, FACE_NME, HAND_PCK, TASK_SCORING, metrics_for_task


def test_every_task_has_a_scoring():
    assert set(TASK_SCORING) == set(TASKS)
    for task in ("body", "wholebody", "animal", "other"):
        assert metrics_for_task(task) == COCO_AP
    assert metrics_for_task("hand") == HAND_PCK and HAND_PCK.main == "PCK"
    assert metrics_for_task("fashion") == HAND_PCK  # MMPose's DeepFashion configs: PCK@0.2 of the box, AUC, EPE
    assert metrics_for_task("face") == FACE_NME and FACE_NME.main == "NME"
    with pytest.raises(DataError, match="no metric for keypoint set task 'feet'"):
        metrics_for_task("feet")


def test_improves_follows_the_direction():
    assert COCO_AP.improves(0.5, None) and COCO_AP.improves(0.6, 0.5) and not COCO_AP.improves(0.4, 0.5)
    assert FACE_NME.improves(0.04, 0.05) and not FACE_NME.improves(0.06, 0.05) and not FACE_NME.improves(0.05, 0.05)
    assert not FACE_NME.improves(math.nan, None) and not COCO_AP.improves(math.inf, 0.5)
    assert FACE_NME.direction == "lower is better" and HAND_PCK.direction == "higher is better"
