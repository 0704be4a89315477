"""Keypoint sets: what the K heatmap channels mean.

A data set is mostly metadata (MMPose's lesson): the names, which channels swap under a horizontal flip, which
pairs are drawn as limbs, and the per-keypoint OKS sigmas that the COCO metric and OKS-NMS use. Everything that
depends on "which keypoint is which" reads it from a ``KeypointSet``; nothing hard-codes COCO.

The sets hrnet knows are YAML files in ``keypoint_sets/`` (one per set, each citing where its values come from);
a user's own set is a file of the same form (``load_keypoint_set``) or comes from a COCO-format category
(``from_coco_category``). A set travels with the weights trained on it as the same YAML text (``metainfo_text``).
"""

from __future__ import annotations

import difflib
import functools
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hrnet.errors import DataError
from hrnet.io.files import parse_yaml, read_text_capped

log = logging.getLogger(__name__)

# OKS sigmas default for keypoints a COCO-format category does not describe. 0.025 is COCO's value for the
# nose and eyes, its strictest: an unknown point is never scored more leniently than a face point.
DEFAULT_SIGMA = 0.025
# What a keypoint set is for: it picks the metrics (``metrics_for_task``) and how boxes are found at inference;
# "fashion" is clothes' landmarks (DeepFashion), scored by PCK of the box as MMPose scores them, not by OKS.
TASKS = ("body", "wholebody", "hand", "face", "animal", "fashion", "other")
SET_DIR = Path(__file__).resolve().parent / "keypoint_sets"  # the sets that ship inside the package
MAX_METAINFO_BYTES = 1 << 20  # far more than the 133-keypoint whole-body set needs
MAX_KEYPOINTS = 1024
FROM_ANNOTATIONS = "from_annotations"  # data.keypoint_set: the set made from the annotation file's keypoint category


@dataclass(frozen=True)
class KeypointSet:
    """Names, flip pairs, skeleton and OKS sigmas of one keypoint convention.

    Indices are 0-based channel indices. ``upper_body`` / ``lower_body`` feed the half-body augmentation of the
    official code; ``weights`` are its optional per-keypoint loss weights. ``task`` says what the keypoints are on
    (one of ``TASKS``); ``limb_colours`` (RGB, one per skeleton link) replace the colours drawn by body side;
    ``nme_pair`` names the two keypoints whose distance normalises a face set's NME (empty: the box size);
    ``derived`` says which values were not given but derived or defaulted (recorded with the set).
    """

    name: str
    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    skeleton: tuple[tuple[int, int], ...]
    sigmas: tuple[float, ...]
    upper_body: tuple[int, ...] = ()
    lower_body: tuple[int, ...] = ()
    weights: tuple[float, ...] = ()
    task: str = "other"
    title: str = ""
    limb_colours: tuple[tuple[int, int, int], ...] = ()
    nme_pair: tuple[int, ...] = ()
    derived: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        k = len(self.names)
        where = f"keypoint set {self.name!r}"
        if not 1 <= k <= MAX_KEYPOINTS:
            raise DataError(f"{where}: {k} keypoints; a set has 1 to {MAX_KEYPOINTS}")
        if len(set(self.names)) != k:
            twice = sorted({n for n in self.names if self.names.count(n) > 1})
            raise DataError(f"{where}: keypoint names must differ, {twice[:5]} appear twice")
        if len(self.sigmas) != k:
            raise DataError(f"{where}: {len(self.sigmas)} sigmas for {k} keypoints")
        if not all(math.isfinite(s) and s > 0 for s in self.sigmas):
            raise DataError(f"{where}: OKS sigmas must be positive numbers, got {_first_bad(self.sigmas)}")
        if self.weights and len(self.weights) != k:
            raise DataError(f"{where}: {len(self.weights)} weights for {k} keypoints")
        if not all(math.isfinite(w) and w >= 0 for w in self.weights):
            raise DataError(f"{where}: loss weights must be numbers ≥ 0")
        for pair in (*self.flip_pairs, *self.skeleton):
            if len(pair) != 2 or not all(0 <= i < k for i in pair):
                raise DataError(f"{where}: pair {pair} is outside 0..{k - 1}")
        flipped = [i for pair in self.flip_pairs for i in pair]
        if len(set(flipped)) != len(flipped):
            twice = sorted({self.names[i] for i in flipped if flipped.count(i) > 1})
            raise DataError(f"{where}: a keypoint swaps with one other at most under a flip; {twice} appear twice")
        if not all(0 <= i < k for i in (*self.upper_body, *self.lower_body, *self.nme_pair)):
            raise DataError(f"{where}: upper_body, lower_body and nme_pair must be keypoints of the set")
        if self.task not in TASKS:
            raise DataError(f"{where}: task must be one of {list(TASKS)}, got {self.task!r}")
        if self.nme_pair and len(self.nme_pair) != 2:
            raise DataError(f"{where}: nme_pair names two keypoints, got {len(self.nme_pair)}")
        if self.limb_colours and len(self.limb_colours) != len(self.skeleton):
            raise DataError(f"{where}: {len(self.limb_colours)} limb colours for {len(self.skeleton)} skeleton links")
        if not all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in self.limb_colours):
            raise DataError(f"{where}: a limb colour is [r, g, b] with values 0 to 255")

    @property
    def num_keypoints(self) -> int:
        return len(self.names)

    @property
    def flip_index(self) -> tuple[int, ...]:
        """Permutation p with ``flipped[:, p[k]] = original[:, k]`` (an involution: p[p[k]] == k)."""
        index = list(range(self.num_keypoints))
        for a, b in self.flip_pairs:
            index[a], index[b] = b, a
        return tuple(index)

    def loss_weights(self) -> tuple[float, ...]:
        return self.weights or (1.0,) * self.num_keypoints

    def to_metainfo(self) -> dict[str, Any]:
        """The set as the plain data of its YAML file (pairs by keypoint name), as ``from_metainfo`` reads it."""
        n = self.names
        data: dict[str, Any] = {"name": self.name, "title": self.title, "task": self.task, "keypoints": list(n)}
        data["flip_pairs"] = [[n[a], n[b]] for a, b in self.flip_pairs]
        data["skeleton"] = [[n[a], n[b]] for a, b in self.skeleton]
        data["sigmas"] = list(self.sigmas)
        optional = {
            "upper_body": [n[i] for i in self.upper_body],
            "lower_body": [n[i] for i in self.lower_body],
            "weights": list(self.weights),
            "limb_colours": [list(c) for c in self.limb_colours],
            "nme_pair": [n[i] for i in self.nme_pair],
            "derived": list(self.derived),
        }
        data.update({key: value for key, value in optional.items() if value})
        return data


def _first_bad(values: Sequence[float]) -> float:
    return next(v for v in values if not (math.isfinite(v) and v > 0))


_FIELDS = {
    "name", "title", "task", "keypoints", "flip_pairs", "skeleton", "sigmas", "upper_body", "lower_body", "weights",
    "limb_colours", "nme_pair", "derived",
}  # fmt: skip


def from_metainfo(data: Any, source: str) -> KeypointSet:
    """A ``KeypointSet`` from the plain data of a metainfo file (``source`` names it in errors).

    ``keypoints`` (names) and ``sigmas`` are required; pairs and groups name keypoints by name (or by 0-based
    index); ``flip_pairs`` absent: derived from left/right in the names (and recorded as derived)."""
    if not isinstance(data, Mapping):
        raise DataError(f"{source}: a keypoint set file is a mapping with keypoints, sigmas, flip_pairs, skeleton")
    unknown = sorted(str(key) for key in data if key not in _FIELDS)
    if unknown:
        near = difflib.get_close_matches(unknown[0], sorted(_FIELDS), n=1)
        hint = f"did you mean {near[0]!r}?" if near else f"a keypoint set has {', '.join(sorted(_FIELDS))}"
        raise DataError(f"{source}: unknown field {unknown[0]!r}; {hint}")
    names = data.get("keypoints")
    if not isinstance(names, list) or not names or not all(isinstance(v, str) and v for v in names):
        raise DataError(f"{source}: 'keypoints' must be a list of keypoint names")
    index = {name: i for i, name in enumerate(names)}

    def keypoint(value: Any, key: str) -> int:
        if isinstance(value, str) and value in index:
            return index[value]
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
            return value
        raise DataError(f"{source}: {key}: {value!r} is not one of the {len(names)} keypoints")

    def pairs(key: str) -> tuple[tuple[int, int], ...]:
        value = data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(p, list) and len(p) == 2 for p in value):
            raise DataError(f"{source}: {key} must be a list of [a, b] pairs of keypoint names")
        return tuple((keypoint(a, key), keypoint(b, key)) for a, b in value)

    def group(key: str) -> tuple[int, ...]:
        value = data.get(key) or []
        if not isinstance(value, list):
            raise DataError(f"{source}: {key} must be a list of keypoint names")
        return tuple(keypoint(v, key) for v in value)

    def numbers(key: str) -> tuple[float, ...]:
        value = data.get(key) or []
        if not isinstance(value, list) or not all(type(v) in (int, float) for v in value):
            raise DataError(f"{source}: {key} must be a list of numbers")
        return tuple(float(v) for v in value)

    derived = list(data.get("derived") or [])
    flip_pairs = pairs("flip_pairs")
    if "flip_pairs" not in data:
        flip_pairs = derive_flip_pairs(names)
        derived.append(f"flip pairs from left/right in the names: {[[names[a], names[b]] for a, b in flip_pairs]}")
    colours = data.get("limb_colours") or []
    if not isinstance(colours, list) or not all(
        isinstance(c, list) and all(type(v) is int for v in c) for c in colours
    ):
        raise DataError(f"{source}: limb_colours must be a list of [r, g, b] integer triples")
    text = {key: data.get(key, default) for key, default in (("name", Path(source).stem), ("title", ""))}
    text["task"] = data.get("task", "other")
    if not all(isinstance(v, str) for v in text.values()):
        raise DataError(f"{source}: name, title and task must be strings")
    try:
        return KeypointSet(
            name=text["name"],
            names=tuple(names),
            flip_pairs=flip_pairs,
            skeleton=pairs("skeleton"),
            sigmas=numbers("sigmas"),
            upper_body=group("upper_body"),
            lower_body=group("lower_body"),
            weights=numbers("weights"),
            task=text["task"],
            title=text["title"],
            limb_colours=tuple((c[0], c[1], c[2]) if len(c) == 3 else tuple(c) for c in colours),
            nme_pair=group("nme_pair"),
            derived=tuple(str(d) for d in derived),
        )
    except DataError as err:
        raise DataError(f"{source}: {err}") from None


def metainfo_text(keypoint_set: KeypointSet) -> str:
    """The set as YAML text: what a run folder's ``keypoints.yaml``, a checkpoint and an ONNX file record."""
    import yaml

    return yaml.safe_dump(keypoint_set.to_metainfo(), sort_keys=False, allow_unicode=True, width=120)


def keypoint_set_from_text(text: str, where: str) -> KeypointSet:
    """The set recorded as YAML ``text`` (in a weights file: ``where`` names it); no YAML aliases, bounded size."""
    if len(text) > MAX_METAINFO_BYTES:
        raise DataError(f"{where}: {len(text):,} characters, over the {MAX_METAINFO_BYTES:,} of a keypoint set")
    return from_metainfo(parse_yaml(text, where, aliases=False, error=DataError), where)


def shipped_keypoint_sets() -> list[str]:
    """The names of the keypoint sets that ship with the package (``coco17``, ``coco_wholebody133``, ...)."""
    return sorted(p.stem for p in SET_DIR.glob("*.yaml"))


@functools.cache
def _shipped(name: str) -> KeypointSet:
    path = SET_DIR / f"{name}.yaml"
    return keypoint_set_from_text(path.read_text(encoding="utf-8"), str(path))


def is_keypoint_set_file(spec: str | Path) -> bool:
    """Whether ``spec`` names a keypoint set file rather than a shipped set (a path ending in .yaml or .yml)."""
    return Path(spec).suffix.lower() in (".yaml", ".yml")


def load_keypoint_set(spec: str | Path | KeypointSet) -> KeypointSet:
    """A keypoint set: a shipped one by name (``shipped_keypoint_sets``), or a metainfo YAML file of the same form
    (``docs/own_data.md``)."""
    if isinstance(spec, KeypointSet):
        return spec
    if is_keypoint_set_file(spec):
        return keypoint_set_from_text(read_text_capped(spec, MAX_METAINFO_BYTES, "keypoint set file"), str(spec))
    if str(spec) in shipped_keypoint_sets():
        return _shipped(str(spec))
    near = difflib.get_close_matches(str(spec), shipped_keypoint_sets(), n=1)
    hint = f"did you mean {near[0]!r}? " if near else ""
    raise DataError(
        f"unknown keypoint set {str(spec)[:80]!r}: {hint}give a shipped set ({', '.join(shipped_keypoint_sets())}) "
        "or a keypoint set .yaml file"
    )


def get_keypoint_set(name: str) -> KeypointSet:
    """A shipped set by name (``coco17``, ``aic14``, ``mpii16``, ``crowdpose14``, ...): ``load_keypoint_set``."""
    return load_keypoint_set(name)


_CONSTANTS = {"COCO17": "coco17", "AIC14": "aic14", "MPII16": "mpii16", "CROWDPOSE14": "crowdpose14"}


def __getattr__(name: str) -> Any:
    """``COCO17``, ``AIC14``, ``MPII16`` and ``CROWDPOSE14``: the shipped sets, read on first use."""
    if name in _CONSTANTS:
        return _shipped(_CONSTANTS[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_SIDE_WORDS = {"left": "right", "right": "left", "l": "r", "r": "l"}


def _mirror_name(name: str) -> str | None:
    """The name of the mirrored keypoint ("left_eye" → "right_eye", "L Knee" → "R Knee"), or None."""
    tokens = re.split(r"([_\s\-.]+)", name)
    for i, token in enumerate(tokens):
        other = _SIDE_WORDS.get(token.lower())
        if other is not None:
            mirrored = other.capitalize() if token[:1].isupper() else other
            if token.isupper():
                mirrored = other.upper()
            return "".join([*tokens[:i], mirrored, *tokens[i + 1 :]])
    return None


def derive_flip_pairs(names: Sequence[str]) -> tuple[tuple[int, int], ...]:
    """Flip pairs found by matching left/right words in the names (case and separator insensitive)."""
    index = {n.lower(): i for i, n in enumerate(names)}
    pairs = []
    for i, name in enumerate(names):
        mirrored = _mirror_name(name)
        j = index.get(mirrored.lower()) if mirrored is not None else None
        if j is not None and i < j:
            pairs.append((i, j))
    return tuple(pairs)


def from_coco_category(
    category: dict, *, sigmas: Sequence[float] | None = None, source: str = "<category>"
) -> KeypointSet:
    """A ``KeypointSet`` from one COCO-format category.

    When the names are those of a shipped set in its order (case, spaces and hyphens aside; e.g. AI Challenger's
    COCO form), that set is returned with its half-body groups; otherwise flip pairs come from left/right names
    and the values derived or defaulted are logged and kept in ``derived``.

    Args:
        category: the category's JSON object: ``keypoints`` (names) and ``skeleton`` (1-based links).
        sigmas: (K,) OKS sigmas; default the shipped set's, else COCO's value for a keypoint named as in COCO-17,
            else ``DEFAULT_SIGMA``.
        source: the file, named in error messages.
    """
    names = category.get("keypoints")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DataError(f"{source}: category {category.get('id')!r} has no list of keypoint names")
    k = len(names)
    links = category.get("skeleton") or []
    if not isinstance(links, list):
        raise DataError(f"{source}: category {category.get('id')!r}: skeleton must be a list of [a, b] links")
    skeleton = []
    invalid = []
    for link in links:
        valid = isinstance(link, list | tuple) and len(link) == 2
        if valid and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= k for v in link):
            skeleton.append((link[0] - 1, link[1] - 1))
        else:
            invalid.append(link)
    if invalid:
        # CrowdPose's own file carries COCO's 17-keypoint skeleton for its 14 keypoints: the links only draw
        # pictures, so the ones that cannot be drawn are left out rather than the file refused.
        log.warning(
            "%s: dropped %d skeleton links that are not pairs of 1-based keypoint indices ≤ %d: %s",
            source, len(invalid), k, ", ".join(str(link) for link in invalid),
        )  # fmt: skip
    if sigmas is not None and len(sigmas) != k:
        raise DataError(f"{source}: {len(sigmas)} sigmas given for {k} keypoints")
    normalised = _normalised(names)
    same = [kset for kset in map(_shipped, shipped_keypoint_sets()) if _normalised(kset.names) == normalised]
    if same:
        # Sets sharing names (the hand sets) differ in sigmas and colours: the one the file is named after wins.
        named = [kset for kset in same if re.sub(r"_?\d+$", "", kset.name) in Path(source).name.lower()]
        shipped = (named or same)[0]
        return shipped if sigmas is None else replace(shipped, sigmas=tuple(float(s) for s in sigmas))
    flip_pairs = derive_flip_pairs(names)
    derived = [f"flip pairs from left/right in the names: {[[names[a], names[b]] for a, b in flip_pairs]}"]
    if sigmas is None:
        coco17 = _shipped("coco17")
        coco = dict(zip(coco17.names, coco17.sigmas, strict=True))
        sigmas = [coco.get(n, DEFAULT_SIGMA) for n in normalised]
        defaulted = [name for name, n in zip(names, normalised, strict=True) if n not in coco]
        if defaulted:
            derived.append(f"OKS sigma {DEFAULT_SIGMA} (COCO's strictest) for {', '.join(defaulted)}")
        if len(defaulted) < k:
            derived.append("COCO's OKS sigmas for the keypoints named as in COCO-17")
    for line in derived:
        log.info("%s: keypoint set %r: %s", source, category.get("name", "custom"), line)
    return KeypointSet(
        name=str(category.get("name", "custom")),
        names=tuple(names),
        flip_pairs=flip_pairs,
        skeleton=tuple(skeleton),
        sigmas=tuple(float(s) for s in sigmas),
        derived=tuple(derived),
    )


# One-letter words that sets abbreviate (MMPose's AP-10K "L_F_Paw" is the data set's own "left_front_paw").
_ABBREVIATIONS = {"l": "left", "r": "right", "f": "front", "b": "back"}


def _normalised(names: Sequence[str]) -> tuple[str, ...]:
    """Names compared case, separators and one-letter side words aside ("L F Paw", "l-f-paw" and
    "left_front_paw" are one)."""
    words = (re.split(r"[\s\-_]+", n.strip().lower()) for n in names)
    return tuple("_".join(_ABBREVIATIONS.get(w, w) for w in name if w) for name in words)


def coco_category(keypoint_set: KeypointSet) -> dict[str, Any]:
    """The COCO-format person category (id 1) of a keypoint set, as ``from_coco_category`` reads it back."""
    return {
        "id": 1,
        "name": "person",
        "supercategory": "person",
        "keypoints": list(keypoint_set.names),
        "skeleton": [[a + 1, b + 1] for a, b in keypoint_set.skeleton],
    }
