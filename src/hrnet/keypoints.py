"""Keypoint sets: what the K heatmap channels mean.

A data set is mostly metadata (MMPose's lesson): the names, which channels swap under a horizontal flip, which
pairs are drawn as limbs, and the per-keypoint OKS sigmas that the COCO metric and OKS-NMS use. Everything that
depends on "which keypoint is which" reads it from a ``KeypointSet``; nothing hard-codes COCO.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from hrnet.errors import DataError

log = logging.getLogger(__name__)

# OKS sigmas default for keypoints a COCO-format category does not describe. 0.025 is COCO's value for the
# nose and eyes, its strictest: an unknown point is never scored more leniently than a face point.
DEFAULT_SIGMA = 0.025


@dataclass(frozen=True)
class KeypointSet:
    """Names, flip pairs, skeleton and OKS sigmas of one keypoint convention.

    Indices are 0-based channel indices. ``upper_body`` / ``lower_body`` feed the half-body augmentation of the
    official code; ``weights`` are its optional per-keypoint loss weights.
    """

    name: str
    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    skeleton: tuple[tuple[int, int], ...]
    sigmas: tuple[float, ...]
    upper_body: tuple[int, ...] = ()
    lower_body: tuple[int, ...] = ()
    weights: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        k = len(self.names)
        if len(self.sigmas) != k:
            raise DataError(f"keypoint set {self.name!r}: {len(self.sigmas)} sigmas for {k} keypoints")
        if self.weights and len(self.weights) != k:
            raise DataError(f"keypoint set {self.name!r}: {len(self.weights)} weights for {k} keypoints")
        for pair in (*self.flip_pairs, *self.skeleton):
            if not all(0 <= i < k for i in pair):
                raise DataError(f"keypoint set {self.name!r}: pair {pair} is outside 0..{k - 1}")

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


# fmt: off
COCO17 = KeypointSet(
    name="coco17",
    names=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
        "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
        "right_knee", "left_ankle", "right_ankle",
    ),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    # COCO's own `skeleton` field (1-based in the annotation file), made 0-based.
    skeleton=(
        (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9),
        (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
    ),
    # pycocotools' COCOeval.kpt_oks_sigmas.
    sigmas=(
        0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087,
        0.087, 0.089, 0.089,
    ),
    upper_body=tuple(range(11)),
    lower_body=tuple(range(11, 17)),
    # The official lib/dataset/coco.py joints_weight (used only with USE_DIFFERENT_JOINTS_WEIGHT).
    weights=(1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5),
)

AIC14 = KeypointSet(
    name="aic14",
    names=(
        "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
        "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "head_top", "neck",
    ),
    flip_pairs=((0, 3), (1, 4), (2, 5), (6, 9), (7, 10), (8, 11)),
    skeleton=(
        (2, 1), (1, 0), (0, 13), (13, 3), (3, 4), (4, 5), (8, 7), (7, 6), (6, 9), (9, 10), (10, 11), (12, 13),
        (0, 6), (3, 9),
    ),
    # The AI Challenger keypoint evaluation's per-keypoint deltas (used as OKS sigmas).
    sigmas=(
        0.01388152, 0.01515228, 0.01057665, 0.01417709, 0.01497891, 0.01402144, 0.03909642, 0.03686941,
        0.01981803, 0.03843971, 0.03412318, 0.02415081, 0.01291456, 0.01236173,
    ),
    upper_body=(0, 1, 2, 3, 4, 5, 12, 13),
    lower_body=(6, 7, 8, 9, 10, 11),
)

MPII16 = KeypointSet(
    name="mpii16",
    names=(
        "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "pelvis", "thorax",
        "upper_neck", "head_top", "right_wrist", "right_elbow", "right_shoulder", "left_shoulder",
        "left_elbow", "left_wrist",
    ),
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    skeleton=(
        (0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9), (7, 12), (12, 11), (11, 10),
        (7, 13), (13, 14), (14, 15),
    ),
    # MPII is scored by PCKh, not OKS; these (MMPose's MPII sigmas) only serve OKS-NMS and drawing thresholds.
    sigmas=(
        0.089, 0.083, 0.107, 0.107, 0.083, 0.089, 0.026, 0.026, 0.026, 0.026, 0.062, 0.072, 0.179, 0.179,
        0.072, 0.062,
    ),
    # The official lib/dataset/mpii.py upper_body_ids / lower_body_ids.
    upper_body=(7, 8, 9, 10, 11, 12, 13, 14, 15),
    lower_body=(0, 1, 2, 3, 4, 5, 6),
)

CROWDPOSE14 = KeypointSet(
    name="crowdpose14",
    names=(
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
        "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "head", "neck",
    ),
    flip_pairs=((0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)),
    skeleton=(
        (12, 13), (13, 0), (13, 1), (0, 2), (2, 4), (1, 3), (3, 5), (13, 7), (13, 6), (6, 8), (8, 10),
        (7, 9), (9, 11),
    ),
    # crowdposetools' COCOeval sigmas.
    sigmas=(0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089, 0.079, 0.079),
    upper_body=(0, 1, 2, 3, 4, 5, 12, 13),
    lower_body=(6, 7, 8, 9, 10, 11),
)

# fmt: on

BUILTIN: dict[str, KeypointSet] = {s.name: s for s in (COCO17, AIC14, MPII16, CROWDPOSE14)}


def get_keypoint_set(name: str) -> KeypointSet:
    """A built-in set by name (``coco17``, ``aic14``, ``mpii16``, ``crowdpose14``)."""
    try:
        return BUILTIN[name]
    except KeyError:
        raise DataError(f"unknown keypoint set {name!r}; built-in sets are {sorted(BUILTIN)}") from None


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

    When the names are those of a built-in set in its order (case, spaces and hyphens aside; e.g. AI Challenger's
    COCO form), that set is returned with its half-body groups; otherwise flip pairs come from left/right names.

    Args:
        category: the category's JSON object: ``keypoints`` (names) and ``skeleton`` (1-based links).
        sigmas: (K,) OKS sigmas; default the built-in set's, else COCO's value for a keypoint named as in COCO-17,
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
    normalised = tuple(re.sub(r"[\s\-]+", "_", n.strip().lower()) for n in names)
    for builtin in BUILTIN.values():
        if builtin.names == normalised:
            return builtin if sigmas is None else replace(builtin, sigmas=tuple(float(s) for s in sigmas))
    if sigmas is None:
        coco = dict(zip(COCO17.names, COCO17.sigmas, strict=True))
        sigmas = [coco.get(n, DEFAULT_SIGMA) for n in normalised]
    return KeypointSet(
        name=str(category.get("name", "custom")),
        names=tuple(names),
        flip_pairs=derive_flip_pairs(names),
        skeleton=tuple(skeleton),
        sigmas=tuple(float(s) for s in sigmas),
    )


def coco_category(keypoint_set: KeypointSet) -> dict[str, Any]:
    """The COCO-format person category (id 1) of a keypoint set, as ``from_coco_category`` reads it back."""
    return {
        "id": 1,
        "name": "person",
        "supercategory": "person",
        "keypoints": list(keypoint_set.names),
        "skeleton": [[a + 1, b + 1] for a, b in keypoint_set.skeleton],
    }
