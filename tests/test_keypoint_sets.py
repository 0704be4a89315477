"""Every shipped keypoint set file: it loads, its flips and groups hold together, its values are MMPose's; and the
one-line errors a bad keypoint set file gives.

Values pinned below were read in MMPose v1.3.2 (commit 5408bc76f5b848cf925a0d1857899011d8c5b497),
``configs/_base_/datasets/<file>.py`` as each comment names it; NME pairs in
``mmpose/evaluation/metrics/keypoint_2d_metrics.py`` (``NME.DEFAULT_KEYPOINT_INDICES``).
"""

import re

import pytest

from hrnet.errors import DataError
from hrnet.keypoints import (
    COCO17,
    DEFAULT_SIGMA,
    SET_DIR,
    derive_flip_pairs,
    keypoint_set_from_text,
    load_keypoint_set,
    metainfo_text,
    shipped_keypoint_sets,
)

# name: (number of keypoints, task)
EXPECTED = {
    "coco17": (17, "body"),
    "aic14": (14, "body"),
    "mpii16": (16, "body"),
    "crowdpose14": (14, "body"),
    "coco_wholebody133": (133, "wholebody"),
    "coco_wholebody_hand21": (21, "hand"),
    "onehand10k21": (21, "hand"),
    "rhd21": (21, "hand"),
    "panoptic_hand21": (21, "hand"),
    "wflw98": (98, "face"),
    "300w68": (68, "face"),
    "300wlp68": (68, "face"),
    "aflw19": (19, "face"),
    "cofw29": (29, "face"),
    "coco_wholebody_face68": (68, "face"),
    "ap10k17": (17, "animal"),
    "animalpose20": (20, "animal"),
    "horse10_22": (22, "animal"),
    "macaque17": (17, "animal"),
    "atrw15": (15, "animal"),
    "animalkingdom23": (23, "animal"),
    "posetrack18_17": (17, "body"),
    "h36m17": (17, "body"),
    "halpe136": (136, "wholebody"),
    "deepfashion_upper6": (6, "fashion"),
    "deepfashion_lower4": (4, "fashion"),
    "deepfashion_full8": (8, "fashion"),
}
FROM_MMPOSE = sorted(set(EXPECTED) - {"coco17", "aic14", "mpii16", "crowdpose14"})
MMPOSE_COMMIT = "5408bc76f5b848cf925a0d1857899011d8c5b497"
SIDE_WORD = re.compile(r"(?:^|[_\s\-.])(?:left|right|l|r)(?:[_\s\-.]|$)", re.IGNORECASE)


def index(kset, *names):
    return tuple(kset.names.index(n) for n in names)


def sigma(kset, name):
    return kset.sigmas[kset.names.index(name)]


def test_every_shipped_set_is_listed_here():
    assert sorted(shipped_keypoint_sets()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_set_loads_with_its_size_and_task(name):
    kset = load_keypoint_set(name)
    assert (kset.num_keypoints, kset.task) == EXPECTED[name]
    assert kset.name == name and kset.title
    assert load_keypoint_set(SET_DIR / f"{name}.yaml") == kset
    assert keypoint_set_from_text(metainfo_text(kset), "recorded") == kset


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_flips_and_links_hold_together(name):
    kset = load_keypoint_set(name)
    flip = kset.flip_index
    assert sorted(flip) == list(range(kset.num_keypoints))
    assert all(flip[flip[k]] == k for k in range(kset.num_keypoints)), "flipping twice is the identity"
    flipped = {i for pair in kset.flip_pairs for i in pair}
    sided = {i for i, n in enumerate(kset.names) if SIDE_WORD.search(n)}
    assert sided <= flipped, f"left/right keypoints without a flip partner: {[kset.names[i] for i in sided - flipped]}"
    # a left/right keypoint swaps with the keypoint of the same name on the other side
    assert {p for p in kset.flip_pairs if set(p) & sided} == set(derive_flip_pairs(kset.names))
    assert len({frozenset(link) for link in kset.skeleton}) == len(kset.skeleton)
    assert all(a != b for a, b in kset.skeleton)
    assert set(kset.upper_body).isdisjoint(kset.lower_body)


@pytest.mark.parametrize("name", FROM_MMPOSE)
def test_file_cites_its_paper_and_mmpose_source(name):
    header = [line for line in (SET_DIR / f"{name}.yaml").read_text().splitlines() if line.startswith("#")]
    text = " ".join(header)
    assert re.search(r"\b(19|20)\d\d\)", text), "the paper and its year"
    assert f"MMPose v1.3.2 ({MMPOSE_COMMIT}) configs/_base_/datasets/" in text
    kset = load_keypoint_set(name)
    if any(d.startswith("OKS sigmas") for d in kset.derived):
        assert "OKS sigmas:" in text and "gives none" in text, "a filled-in value is said so in the header"


def test_coco_wholebody133():
    kset = load_keypoint_set("coco_wholebody133")
    # coco_wholebody.py: body 17, feet 6, face 68, left hand 21, right hand 21
    assert kset.names[:17] == COCO17.names and kset.sigmas[:17] == COCO17.sigmas
    assert kset.names[17] == "left_big_toe" and kset.names[22] == "right_heel"
    assert kset.names[23] == "face-0" and kset.names[90] == "face-67"
    assert kset.names[91] == "left_hand_root" and kset.names[112] == "right_hand_root"
    assert kset.sigmas[17] == 0.068 and kset.sigmas[23] == 0.042 and kset.sigmas[132] == 0.031
    assert len(kset.flip_pairs) == 8 + 3 + 29 + 21 and len(kset.skeleton) == 65
    assert index(kset, "face-36", "face-45") in kset.flip_pairs
    assert index(kset, "left_pinky_finger4", "right_pinky_finger4") in kset.flip_pairs
    # skeleton_info colours, RGB as MMPose 1.x draws them: left leg green, right leg orange, thumbs orange
    colours = dict(zip(kset.skeleton, kset.limb_colours, strict=True))
    assert colours[index(kset, "left_ankle", "left_knee")] == (0, 255, 0)
    assert colours[index(kset, "right_ankle", "right_knee")] == (255, 128, 0)
    assert colours[index(kset, "right_pinky_finger3", "right_pinky_finger4")] == (0, 255, 0)
    # keypoint type: body and feet are upper or lower, the face and hands neither
    assert len(kset.upper_body) == 11 and len(kset.lower_body) == 12
    assert kset.names.index("right_heel") in kset.lower_body and kset.names.index("face-0") not in kset.upper_body


def test_hand_sets():
    wholebody_hand = load_keypoint_set("coco_wholebody_hand21")
    # coco_wholebody_hand.py
    assert wholebody_hand.sigmas[0] == 0.029 and wholebody_hand.sigmas[20] == 0.031
    assert sigma(wholebody_hand, "thumb4") == 0.047
    assert wholebody_hand.skeleton[0] == index(wholebody_hand, "wrist", "thumb1")
    assert wholebody_hand.limb_colours[0] == (255, 128, 0) and wholebody_hand.limb_colours[-1] == (0, 255, 0)
    for name in ("coco_wholebody_hand21", "onehand10k21", "rhd21", "panoptic_hand21"):
        assert load_keypoint_set(name).flip_pairs == (), "no swap in MMPose: a flipped hand is the other hand"
    # onehand10k.py and panoptic_hand2d.py give no sigmas: coco_wholebody_hand's, by name
    for name in ("onehand10k21", "panoptic_hand21"):
        kset = load_keypoint_set(name)
        assert kset.names == wholebody_hand.names and kset.sigmas == wholebody_hand.sigmas and kset.derived
        assert kset.skeleton == wholebody_hand.skeleton and kset.limb_colours == wholebody_hand.limb_colours
    # rhd2d.py lists each finger from its tip: channel 1 is thumb4 and takes the thumb tip's sigma
    rhd = load_keypoint_set("rhd21")
    assert rhd.names[1] == "thumb4" and rhd.names[4] == "thumb1"
    assert rhd.sigmas[1] == 0.047 and all(sigma(rhd, n) == sigma(wholebody_hand, n) for n in rhd.names)
    assert rhd.skeleton[0] == (0, 4)


def test_face_sets():
    # NME.DEFAULT_KEYPOINT_INDICES: 300w [36, 45], wflw [60, 72], cofw [8, 9], coco_wholebody_face [36, 45]
    assert load_keypoint_set("300w68").nme_pair == (36, 45)
    assert load_keypoint_set("wflw98").nme_pair == (60, 72)
    assert load_keypoint_set("cofw29").nme_pair == (8, 9)
    assert load_keypoint_set("coco_wholebody_face68").nme_pair == (36, 45)
    assert load_keypoint_set("aflw19").nme_pair == (), "AFLW's NME is normalised by the box size"
    for name, pairs in (("wflw98", 44), ("300w68", 29), ("aflw19", 8), ("cofw29", 11), ("coco_wholebody_face68", 29)):
        kset = load_keypoint_set(name)
        assert len(kset.flip_pairs) == pairs and kset.skeleton == ()
    wflw = load_keypoint_set("wflw98")
    assert {(0, 32), (60, 72), (96, 97)} <= set(wflw.flip_pairs)  # wflw.py swap
    aflw = load_keypoint_set("aflw19")
    assert (12, 14) in aflw.flip_pairs and aflw.flip_index[13] == 13  # aflw.py swap
    # coco_wholebody_face.py sigmas (COCO-WholeBody's own evaluation); the face of the 133-keypoint set has the same
    face = load_keypoint_set("coco_wholebody_face68")
    assert face.sigmas[0] == 0.042 and face.sigmas[66] == 0.01 and face.sigmas[67] == 0.008
    assert face.sigmas == load_keypoint_set("coco_wholebody133").sigmas[23:91]
    # 300w.py gives no sigmas; the same 68-point mark-up takes coco_wholebody_face's
    three_hundred = load_keypoint_set("300w68")
    assert three_hundred.flip_pairs == face.flip_pairs and three_hundred.sigmas == face.sigmas
    for name in ("wflw98", "aflw19", "cofw29"):
        kset = load_keypoint_set(name)
        assert set(kset.sigmas) == {DEFAULT_SIGMA} and kset.derived, "no sigmas in MMPose: the documented default"
    # 300wlp.py: 300-W's names, every swap empty, no sigmas, no NME pair in MMPose: 300-W's sigmas and pair, said so
    lp = load_keypoint_set("300wlp68")
    assert lp.names == three_hundred.names and lp.flip_pairs == () and lp.skeleton == ()
    assert lp.flip_index == tuple(range(68))
    assert lp.sigmas == three_hundred.sigmas and lp.nme_pair == (36, 45)
    assert [d.split(":")[0] for d in lp.derived] == ["OKS sigmas", "nme_pair"]


def test_animal_sets():
    ap10k = load_keypoint_set("ap10k17")
    # ap10k.py
    assert ap10k.names[4] == "Root of tail"
    assert sigma(ap10k, "Neck") == sigma(ap10k, "Root of tail") == 0.035
    assert sigma(ap10k, "L_F_Paw") == sigma(ap10k, "R_F_Paw") == 0.062
    assert sigma(ap10k, "L_B_Paw") == sigma(ap10k, "R_B_Paw") == 0.089
    assert ap10k.weights[7] == 1.2 and ap10k.weights[16] == 1.5
    assert ap10k.names.index("R_F_Paw") in ap10k.lower_body  # as MMPose types it
    assert ap10k.limb_colours[0] == (0, 0, 255) and len(ap10k.flip_pairs) == 7
    animalpose = load_keypoint_set("animalpose20")
    # animalpose.py
    assert sigma(animalpose, "Throat") == sigma(animalpose, "TailBase") == sigma(animalpose, "Withers") == 0.1
    assert sigma(animalpose, "L_B_Paw") == 0.089 and animalpose.weights[16] == 1.5
    assert index(animalpose, "L_EarBase", "R_EarBase") in animalpose.flip_pairs
    horse = load_keypoint_set("horse10_22")
    # horse10.py: no swap, no sigmas; NME.DEFAULT_KEYPOINT_INDICES['horse10'] == [0, 1]
    assert horse.flip_pairs == () and horse.nme_pair == index(horse, "Nose", "Eye") == (0, 1)
    assert set(horse.sigmas) == {DEFAULT_SIGMA} and horse.derived and len(horse.skeleton) == 18
    macaque = load_keypoint_set("macaque17")
    # macaque.py: COCO-17's names, order, sigmas, weights and links
    assert macaque.names == COCO17.names and macaque.sigmas == COCO17.sigmas and macaque.weights == COCO17.weights
    assert macaque.skeleton == COCO17.skeleton and macaque.limb_colours[0] == (0, 255, 0)


def test_sets_of_the_model_zoo():
    # atrw.py: its own sigmas, in its channel order
    atrw = load_keypoint_set("atrw15")
    assert atrw.names[:3] == ("left_ear", "right_ear", "nose") and atrw.names[-1] == "center"
    assert sigma(atrw, "left_ear") == 0.0277 and sigma(atrw, "center") == 0.0539
    assert index(atrw, "right_shoulder", "left_shoulder") in atrw.flip_pairs
    # ak.py: 23 keypoints, a uniform 0.025 of its own
    ak = load_keypoint_set("animalkingdom23")
    assert ak.names[0] == "Head_Mid_Top" and ak.names[22] == "Tail_End_Back" and set(ak.sigmas) == {0.025}
    assert not ak.derived and index(ak, "Eye_Left", "Eye_Right") in ak.flip_pairs and len(ak.skeleton) == 22
    # posetrack18.py: COCO-17's order and sigmas, the eyes replaced by the head's bottom and top
    posetrack = load_keypoint_set("posetrack18_17")
    assert posetrack.names[1:3] == ("head_bottom", "head_top") and posetrack.sigmas == COCO17.sigmas
    assert len(posetrack.flip_pairs) == 7 and posetrack.weights == COCO17.weights
    # h36m.py: no sigmas (MMPose scores it by EPE and PCK)
    h36m = load_keypoint_set("h36m17")
    assert h36m.names[0] == "root" and h36m.names[10] == "head" and h36m.derived and set(h36m.sigmas) == {DEFAULT_SIGMA}
    # halpe.py: COCO-17, head, neck, hip, feet, face, hands
    halpe = load_keypoint_set("halpe136")
    assert halpe.names[:17] == COCO17.names and halpe.names[17:20] == ("head", "neck", "hip")
    assert sigma(halpe, "head") == 0.08 and halpe.names[26] == "face-0" and len(halpe.skeleton) == 67
    # deepfashion_*.py: left/right swaps, no skeleton, no sigmas; clothes are their own task
    for name, count in (("deepfashion_upper6", 6), ("deepfashion_lower4", 4), ("deepfashion_full8", 8)):
        fashion = load_keypoint_set(name)
        assert fashion.task == "fashion" and len(fashion.flip_pairs) == count // 2 and fashion.skeleton == ()
        assert fashion.derived and set(fashion.sigmas) == {DEFAULT_SIGMA}
    assert load_keypoint_set("deepfashion_full8").names[4:6] == ("left waistline", "right waistline")


TOY = """\
name: toy
task: animal
keypoints: [nose, left_paw, right_paw]
flip_pairs: [[left_paw, right_paw]]
skeleton: [[nose, left_paw], [nose, right_paw]]
sigmas: [0.026, 0.079, 0.079]
"""


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("[[left_paw, right_paw]]", "[[left_paw, right_hand]]", "flip_pairs: 'right_hand' is not one of the 3"),
        ("[0.026, 0.079, 0.079]", "[0.026, 0.079]", "keypoint set 'toy': 2 sigmas for 3 keypoints"),
        ("[0.026, 0.079, 0.079]", "[0.026, -0.079, 0.079]", "OKS sigmas must be positive numbers, got -0.079"),
        ("sigmas:", "sigma:", "unknown field 'sigma'; did you mean 'sigmas'?"),
        ("task: animal", "task: animal\nspecies: cat", "unknown field 'species'; a keypoint set has derived, "),
        ("[[nose, left_paw], [nose, right_paw]]", "[[nose, tail]]", "skeleton: 'tail' is not one of the 3"),
        ("task: animal", "task: animal\nlimb_colours: [[255, 0, 0]]", "1 limb colours for 2 skeleton links"),
    ],
    ids=["flip_pair_outside_set", "sigmas_wrong_length", "negative_sigma", "misspelt_field", "unknown_field",
         "link_outside_set", "colours_wrong_length"],
)  # fmt: skip
def test_bad_keypoint_set_file_is_one_clear_error(tmp_path, old, new, message):
    path = tmp_path / "toy.yaml"
    path.write_text(TOY.replace(old, new))
    with pytest.raises(DataError) as caught:
        load_keypoint_set(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_toy_file_itself_loads(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(TOY)
    toy = load_keypoint_set(path)
    assert toy.flip_index == (0, 2, 1) and toy.task == "animal" and toy.derived == ()
