"""hrnet.pose.persons: where person boxes come from, which boxes can be used, results JSON and drawing."""

import numpy as np
import pytest

from hrnet.errors import DataError
from hrnet.keypoints import TASKS, get_keypoint_set
from hrnet.pose.detect import Detections
from hrnet.pose.persons import (
    INSTANCE_NOUNS,
    PersonBoxes,
    PersonPose,
    Persons,
    check_boxes,
    instance_noun,
    usable_boxes,
    whole_image_note,
)

IMAGE = (100, 200)  # height, width


@pytest.mark.parametrize(
    ("box", "problem"),
    [
        ([1e308, 1e308, 1e308, 1e308], "lies wholly outside the 200×100 image"),
        ([-1e308, -1e308, 1.7e308, 1.7e308], "more than 8 times the size of the 200×100 image"),
        ([10, 10, 1e-300, 1e-300], "under 1 pixel wide or high"),
        ([0, 0, np.nan, 10], "holds NaN or infinity"),
        ([0, 0, np.inf, 10], "holds NaN or infinity"),
        ([250, 10, 20, 20], "lies wholly outside the 200×100 image"),
        ([-30, -30, 20, 20], "lies wholly outside the 200×100 image"),
        ([0, 0, 1700, 50], "more than 8 times the size"),
    ],
)
def test_a_box_that_cannot_be_a_person_is_named(box, problem):
    with pytest.raises(DataError, match=f"photo.jpg: person box 1 .*{problem}"):
        check_boxes([[0, 0, 10, 10], box], None, IMAGE, "photo.jpg")
    assert usable_boxes([[0, 0, 10, 10], box], IMAGE).tolist() == [True, False]


def test_boxes_reaching_past_the_edges_are_fine():
    boxes, scores = check_boxes([[-20, -20, 60, 60], [190, 90, 50, 50], [0, 0, 200, 100]], None, IMAGE)
    assert boxes.shape == (3, 4) and scores.tolist() == [1.0, 1.0, 1.0]


def test_scores_must_match_the_boxes_and_be_finite():
    with pytest.raises(DataError, match="2 person boxes but 1 box scores"):
        check_boxes(np.ones((2, 4)) * 5, [1.0], IMAGE)
    with pytest.raises(DataError, match="a box score is NaN or infinity"):
        check_boxes([[0, 0, 10, 10]], [np.nan], IMAGE)
    with pytest.raises(DataError, match=r"shape \(P, 4\)"):
        check_boxes([1, 2, 3], None, IMAGE)


def test_boxes_come_from_the_caller_then_the_detector_then_the_whole_image():
    image = np.zeros((*IMAGE, 3), np.uint8)
    assert PersonBoxes()(image).source == "whole image"
    assert PersonBoxes()(image).boxes.tolist() == [[0.0, 0.0, 200.0, 100.0]]
    found = Detections(
        np.array([[0, 0, 10, 10], [5, 5, 20, 20], [0, 0, np.nan, 5], [500, 0, 10, 10], [1, 1, 30, 30]], float),
        np.array([0.5, 0.9, 0.99, 0.99, 0.7]),
    )
    source = PersonBoxes(lambda bgr: found, max_boxes=2)
    detected = source(image)
    # unusable detections are dropped (not errors), the best two kept, best first
    assert detected.source == "detector" and detected.scores.tolist() == [0.9, 0.7]
    given = source(image, [[1, 2, 3, 4]], [0.4])
    assert given.source == "given" and given.boxes.tolist() == [[1, 2, 3, 4]] and given.scores.tolist() == [0.4]
    with pytest.raises(DataError, match="box scores given without boxes"):
        source(image, None, [0.5])


def test_the_detector_gets_bgr_whatever_the_callers_order():
    image = np.zeros((8, 8, 3), np.uint8)
    image[..., 0] = 255  # red in RGB
    seen = []
    source = PersonBoxes(lambda bgr: seen.append(bgr[0, 0].tolist()) or Detections(np.zeros((0, 4)), np.zeros(0)))
    source(image, channel_order="rgb")
    source(image, channel_order="bgr")
    assert seen == [[0, 0, 255], [255, 0, 0]]


def test_persons_plot_in_the_callers_channel_order():
    coco = get_keypoint_set("coco17")
    keypoints = np.stack([np.linspace(20, 80, 17), np.linspace(20, 80, 17)], axis=1)
    persons = Persons([PersonPose(np.array([10.0, 10, 80, 80]), keypoints, np.ones(17), 0.9)], coco)
    bgr = np.zeros((100, 100, 3), np.uint8)
    drawn_bgr = persons.plot(bgr)
    drawn_rgb = persons.plot(bgr, channel_order="rgb")
    assert drawn_bgr.shape == bgr.shape and drawn_bgr.any() and not bgr.any()  # a copy, drawn on
    np.testing.assert_array_equal(drawn_bgr[..., ::-1], drawn_rgb)
    assert persons.to_coco(7)[0]["image_id"] == 7 and len(persons.to_coco(7)[0]["keypoints"]) == 51


@pytest.mark.parametrize("count", [0, 1])
def test_persons_plot_names_a_wrong_channel_order_with_or_without_persons(count):
    keypoints = np.stack([np.linspace(20, 80, 17), np.linspace(20, 80, 17)], axis=1)
    pose = PersonPose(np.array([10.0, 10, 80, 80]), keypoints, np.ones(17), 0.9)
    persons = Persons([pose] * count, get_keypoint_set("coco17"))
    with pytest.raises(DataError, match="channel_order must be 'rgb' or 'bgr', got 'BGR'"):
        persons.plot(np.zeros((100, 100, 3), np.uint8), channel_order="BGR")


@pytest.mark.parametrize(
    ("task", "one", "many"),
    [("body", "person", "persons"), ("wholebody", "person", "persons"), ("hand", "hand", "hands"),
     ("face", "face", "faces"), ("animal", "animal", "animals"), ("other", "instance", "instances")],
)  # fmt: skip
def test_a_box_is_named_by_what_the_keypoint_set_is_on(task, one, many):
    assert (instance_noun(task), instance_noun(task, 1), instance_noun(task, 0), instance_noun(task, 3)) == (
        one, one, many, many,
    )  # fmt: skip
    assert set(INSTANCE_NOUNS) == set(TASKS)


def test_the_whole_image_note_says_what_a_box_is_and_how_to_give_boxes():
    """Hands (no detector ships): says so and asks for boxes or a detector; persons (one ships, but none runs):
    names the person detector; a front end names its own way of taking boxes."""
    from tests.conftest import task_keypoint_set

    hand = whole_image_note(task_keypoint_set("hand"))
    assert hand.startswith("no hand detector ships with hrnet: every image and video frame is taken as ONE hand")
    assert "to find every hand: --boxes FILE or --detector SPEC (an .onnx file" in hand and "\n" not in hand
    person = whole_image_note(get_keypoint_set("coco17"), "boxes in each request")
    assert person.startswith("no person detector and no boxes: every image and video frame is taken as ONE person")
    assert person.endswith("to find every person: boxes in each request or --detector rtmdet-nano-person")
    python = whole_image_note(task_keypoint_set("animal"), "boxes=", "detector=")
    assert "ONE animal" in python and python.endswith(
        "boxes= or detector=SPEC (an .onnx file or a name from `hrnet weights list`)"
    )
