"""Weights by name: a registry of public pose and detector files (persons, faces), downloaded into a user cache.

``resolve_weights(spec)`` turns a ``--weights`` argument into a file: a path that exists is itself; a registered
name (``REGISTRY``, ``hrnet weights list``) is its file in the cache (``$HRNET_CACHE``, else
``platformdirs.user_cache_dir("hrnet")``; ``<cache>/<name>/<file>``), downloaded first if missing. ``resolve_many``
does the same for several arguments and reports every file that cannot be had in one error.

A file is checked before use: a download (``hrnet.hub.download``) before it appears under its name; a cached file
against the published SHA-256, or where none is published against the one it had when it was downloaded. The result
is kept beside it (``<file>.sha256``, keyed by size and modification time) so that a large file is hashed once.
Published checksums: MMPose's file names end in the first 8 hex digits of the file's SHA-256 (its
``tools/misc/publish_model.py`` names them so; ExLPose's 1.x file carries none). The detectors' zip archives
(MMDeploy's ONNX "SDK" folders, as rtmlib uses them) have none; zip's own CRC-32s catch a damaged one, and the one
ONNX file in it is kept. opencv_zoo keeps its files in Git LFS, whose pointer names each file by its SHA-256. The
official HRNet checkpoints have no direct link (Google Drive folders): download them by hand and pass the path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from platformdirs import user_cache_dir

from hrnet.errors import ConfigError, DownloadError, OutputError, WeightsUnavailableError
from hrnet.io.files import check_writable_dir, sha256_file, write_json_atomic

log = logging.getLogger(__name__)

_MMPOSE = "https://download.openmmlab.com/mmpose"
_ONNX_SDK = f"{_MMPOSE}/v1/projects/rtmposev1/onnx_sdk"
# How each pose entry's test protocol reads heatmaps (its config's data.target and test.decode say the same).
DECODINGS = {"argmax": "argmax + quarter-pixel offset", "dark": "DARK", "udp": "UDP geometry + DARK refinement"}


@dataclass(frozen=True)
class WeightsFile:
    """One public file.

    Attributes:
        name: the name to pass as ``--weights`` / ``--detector``.
        kind: "pose" (an HRNet checkpoint) or "detector" (a person or face detector in ONNX).
        url: where to download it.
        about: one line for ``hrnet weights list``.
        source: the page (repository and path) that lists the URL and the figure in ``accuracy``.
        accuracy: the published figure, with the data set it was measured on.
        sha256: the file's full SHA-256 where one is published, else None.
        sha256_prefix: the leading hex digits of its SHA-256 that its published file name carries, else None.
        member: for a zip archive, the file inside it to keep (its name ends so); None for plain files.
        member_sha256: the kept member's SHA-256 where its publisher states one.
        config: the shipped config (a ``hrnet.config.load_config`` name) that reproduces its test settings; pose only.
        num_keypoints: how many keypoints the pose network predicts.
        decoding: a key of ``DECODINGS``: how the file's published figure decoded heatmaps.
        detector_format: the detector's layout (``hrnet.pose.detect.FORMATS``).
        input_size: the network's input (height, width).
    """

    name: str
    kind: str
    url: str
    about: str
    source: str
    accuracy: str = ""
    sha256: str | None = None
    sha256_prefix: str | None = None
    member: str | None = None
    member_sha256: str | None = None
    config: str | None = None
    num_keypoints: int | None = None
    decoding: str | None = None
    detector_format: str | None = None
    input_size: tuple[int, int] | None = None

    @property
    def filename(self) -> str:
        """The name of the file that ends up in the cache (an archive's member is renamed after the entry)."""
        return self.url.rsplit("/", 1)[-1] if self.member is None else self.name + Path(self.member).suffix

    @property
    def verified_by(self) -> str:
        """What the file is checked against, for ``hrnet weights list``."""
        if self.sha256:
            return "SHA-256"
        if self.sha256_prefix:
            return f"SHA-256 prefix {self.sha256_prefix}"
        return "SHA-256 of the unpacked file" if self.member_sha256 else "none published"


_MMPOSE_0X = "open-mmlab/mmpose, branch 0.x: configs/body/2d_kpt_sview_rgb_img/topdown_heatmap/"
_MAIN_BODY = "configs/body_2d_keypoint/topdown_heatmap/"  # branch main's folder of the body tables
# The model zoo's tables, at the last release of each branch: 0.x files are listed under tag v0.29.0, 1.x under v1.3.2.
_TABLE_0X = "open-mmlab/mmpose, tag v0.29.0: configs/{}/2d_kpt_sview_rgb_img/topdown_heatmap/{}.md"
_TABLE_1X = "open-mmlab/mmpose, tag v1.3.2: configs/{}_2d_keypoint/topdown_heatmap/{}.md"
_COCO_AP = "AP {} on COCO val2017 (detected persons)"
_V1_COCO = "v1/body_2d_keypoint/topdown_heatmap/coco"
_V1_HUMANART = "v1/body_2d_keypoint/topdown_heatmap/human_art"
_V1_AK = "v1/animal_2d_keypoint/topdown_heatmap/animal_kingdom"
_V1_FASHION = "v1/fashion_2d_keypoint/topdown_heatmap/deepfashion"
_WHOLEBODY_AP = "Whole AP {} on COCO-WholeBody v1.0 val (detected persons)"
# MMPose 1.x file names: td-hm_<network>[_<variant>]_<GPUs>xb<batch>-<epochs>e_<data>, before the checksum; the
# variant is a decoding (dark, udp), a loss (awing) or a precision (fp16).
_MMPOSE_1X_STEM = re.compile(
    r"td-hm_(?P<network>[^_]+?)(?:[_-](?P<variant>dark|udp|awing|fp16))?[_-][0-9]+xb[0-9]+-[0-9]+e_(?P<data>.+)"
)
_RTMDET_SOURCE = (
    "zip URL not listed on an OpenMMLab page (used by third-party tools); the model (as .pth) and its AP: "
    "open-mmlab/mmpose projects/rtmpose/README.md, Pipeline Performance table"
)
# The file's Git LFS pointer (its SHA-256 and size, 232,589 bytes) in the repository at this commit, which added it.
_OPENCV_ZOO = "https://github.com/opencv/opencv_zoo/raw/f12e12798e8314f7c074a6656816c048dcc95b7a/models"
_YOLOX_SOURCE = (
    "zip URL: Tau-J/rtmlib README.md (Person detection table); AP: open-mmlab/mmpose projects/rtmpose/README.md "
    "(Human-Art detectors; measured on HumanArt's validation set, projects/rtmpose/yolox/humanart/*.py)"
)


def mmpose_name(url: str) -> str:
    """The registered name of an MMPose checkpoint, made from its file name: ``mmpose-`` and a 0.x file's stem (the
    name before ``-<SHA-256 prefix>_<date>``) with ``_`` → ``-``; ``mmpose1-`` and a 1.x file's network and data,
    lower case, with its variant (``_dark``, ``_udp``, ...) moved to the end and its training schedule left out; a
    1.x file named as 0.x names its files (300W-LP's) is ``mmpose1-`` and its stem with ``_`` → ``-``.

    ``.../hrnet_w32_coco_256x192_dark-07f147eb_20200812.pth`` → ``mmpose-hrnet-w32-coco-256x192-dark``;
    ``.../v1/.../td-hm_hrnet-w48_udp_8xb32-210e_deepfashion_upper-256x192-de7c0eb1_20230810.pth`` →
    ``mmpose1-hrnet-w48-deepfashion-upper-256x192-udp``;
    ``.../v1/.../hrnetv2_w18_300wlp_256x256-fb433d21_20230922.pth`` → ``mmpose1-hrnetv2-w18-300wlp-256x256``.
    """
    stem = re.sub(r"(-[0-9a-f]{8}_[0-9]{8})?\.pth$", "", url.rsplit("/", 1)[-1])
    if "/mmpose/v1/" not in url:
        return "mmpose-" + stem.replace("_", "-")
    if not stem.startswith("td-hm_"):
        return "mmpose1-" + stem.replace("_", "-").lower()
    match = _MMPOSE_1X_STEM.fullmatch(stem)
    if match is None:
        raise ConfigError(f"{url}: not an MMPose 1.x top-down heatmap file name (td-hm_<network>_<schedule>_<data>)")
    words = (match["network"], match["data"].replace("_", "-"), match["variant"])
    return "mmpose1-" + "-".join(word for word in words if word).lower()


def _hrnet(url: str, num_keypoints: int = 17, **fields: Any) -> WeightsFile:
    """An MMPose HRNet file; the SHA-256 prefix is the 8 hex digits its name ends with before the date (None for a
    file whose name has none)."""
    prefix = re.search(r"-([0-9a-f]{8})_[0-9]{8}\.pth$", url)
    return WeightsFile(kind="pose", url=url, sha256_prefix=prefix and prefix[1], num_keypoints=num_keypoints, **fields)


def _zoo(
    source: str,
    figure: str,
    num_keypoints: int,
    rows: Sequence[tuple[str, str, str]],
    note: str = "",
    config_suffix: str = "",
) -> list[WeightsFile]:
    """The plain-head HRNet files of one table of MMPose's model zoo, ``source``.

    Each row is (the config's data set: a folder of ``configs/`` or ``configs/zoo/<data set>.yaml``; the file under
    OpenMMLab's ``mmpose/`` download folder; its figure, formatted into ``figure``). The file's name says the rest
    (``mmpose_name``): the registered name, HRNet's width, the input size and the decoding (DARK or UDP when a word
    of the name after the size says so, else argmax), and with them the config,
    ``<data set>/w<width>_<height>x<width>[_dark|_udp]`` (``hrnet.config.load_config`` reads it) followed by
    ``config_suffix`` (``_mmpose1``: a shipped config of MMPose 1.x's test settings where they differ from 0.x's).
    """
    entries = []
    for data_set, path, value in rows:
        url = f"{_MMPOSE}/{path}"
        name = mmpose_name(url)
        size = re.search(r"-([0-9]+)x([0-9]+)(-|$)", name)
        width = re.search(r"hrnet-w([0-9]+)-", name)
        if size is None or width is None:
            raise ConfigError(f"{url}: the name {name!r} says no HRNet width and input size")
        words = name[size.end() :].split("-")
        decoding = next((word for word in ("dark", "udp") if word in words), "argmax")
        method = "" if decoding == "argmax" else f"_{decoding}"
        what = [
            f"HRNet-W{width[1]}",
            *([decoding.upper()] if method else []),
            f"MMPose {'1' if '/v1/' in url else '0'}.x",
        ]
        entries.append(
            _hrnet(
                url,
                num_keypoints,
                name=name,
                about=", ".join([*what, *([note] if note else [])]),
                source=source,
                accuracy=figure.format(value),
                config=f"{data_set}/w{width[1]}_{size[1]}x{size[2]}{method}{config_suffix}",
                decoding=decoding,
                input_size=(int(size[1]), int(size[2])),
            )
        )
    return entries


# MMPose 0.x HRNetV2-W18 face and hand tables (the 1.x tables list the same files: configs/face_2d_keypoint/ and
# configs/hand_2d_keypoint/topdown_heatmap/<data>/hrnetv2*.md).
_MMPOSE_0X_TASK = "open-mmlab/mmpose, branch 0.x: configs/{task}/2d_kpt_sview_rgb_img/topdown_heatmap/{data}/"
_TABLE_DATA = {"panoptic": "panoptic2d"}  # a data set whose tables' folder and names say it otherwise than its files
_HRNETV2_FOLDERS = {  # where download.openmmlab.com keeps each variant's files, by task
    ("face", ""): "hrnetv2", ("face", "awing"): "hrnetv2", ("face", "dark"): "darkpose",
    ("hand", ""): "hrnetv2", ("hand", "dark"): "dark", ("hand", "udp"): "udp",
}  # fmt: skip
_METHOD_NAMES = {"": "", "dark": "DARK", "udp": "UDP", "awing": "AWing loss"}
# The split each data set's figures are measured on: its table's "Results on ..." and its config's test annotations.
_MEASURED_ON = {
    "wflw": "WFLW test", "300w": "300W full (common + challenge)", "aflw": "AFLW full", "cofw": "COFW test",
    "coco_wholebody_face": "COCO-WholeBody-Face val", "onehand10k": "OneHand10K test", "rhd2d": "RHD test",
    "coco_wholebody_hand": "COCO-WholeBody-Hand val", "panoptic": "CMU Panoptic hands, MPII+NZSL val",
}  # fmt: skip


def _hrnetv2(task: str, data: str, method: str, stamp: str, num_keypoints: int, figure: str) -> WeightsFile:
    """An MMPose 0.x HRNetV2-W18 256×256 file ``hrnetv2_w18_<data>_256x256[_<method>]-<stamp>.pth`` of ``task``
    ("face" or "hand"); ``method`` "" (plain), "dark", "udp" or "awing" (a training loss: decoded as plain);
    ``figure`` its published metric, measured on ``_MEASURED_ON[data]``."""
    suffix = f"_{method}" if method else ""
    stem = f"hrnetv2_w18_{data}_256x256{suffix}"
    table = _TABLE_DATA.get(data, data)
    return _hrnet(
        f"{_MMPOSE}/{task}/{_HRNETV2_FOLDERS[task, method]}/{stem}-{stamp}.pth",
        num_keypoints,
        name="mmpose-" + stem.replace("_", "-"),
        about=f"HRNetV2-W18{method and ', ' + _METHOD_NAMES[method]}, MMPose 0.x",
        source=_MMPOSE_0X_TASK.format(task=task, data=table) + f"hrnetv2{suffix}_{table}.md",
        accuracy=f"{figure} on {_MEASURED_ON[data]}",
        config=f"{task}/{stem}",
        decoding={"": "argmax", "awing": "argmax", "dark": "dark", "udp": "udp"}[method],
        input_size=(256, 256),
    )


def _onnx_sdk(name: str, file: str, size: int, about: str, accuracy: str, source: str) -> WeightsFile:
    return WeightsFile(
        name, "detector", f"{_ONNX_SDK}/{file}", about, source, accuracy, member="end2end.onnx",
        detector_format="rtmdet" if name.startswith("rtmdet") else "yolox", input_size=(size, size),
    )  # fmt: skip


# What hrnet predict, hrnet serve and PoseEstimator.from_weights use when none is named (docs/weights.md says why);
# the person detector is the default of body and whole-body keypoint sets (hrnet.pose.detect.default_detector).
DEFAULT_WEIGHTS = "mmpose-hrnet-w32-coco-256x192"
DEFAULT_DETECTOR = "rtmdet-nano-person"  # 320×320, fast on a CPU; COCO person AP 40.3

REGISTRY: dict[str, WeightsFile] = {
    e.name: e
    for e in (
        *_zoo(
            _TABLE_0X.format("body", "coco/hrnet_coco"),
            _COCO_AP,
            17,
            [
                ("coco", "top_down/hrnet/hrnet_w32_coco_256x192-c78dce93_20200708.pth", "0.746"),
                ("coco", "top_down/hrnet/hrnet_w32_coco_384x288-d9f0d786_20200708.pth", "0.760"),
                ("coco", "top_down/hrnet/hrnet_w48_coco_256x192-b9e0b3ab_20200708.pth", "0.756"),
                ("coco", "top_down/hrnet/hrnet_w48_coco_384x288-314c8528_20200708.pth", "0.767"),
            ],
        ),
        *_zoo(
            _TABLE_0X.format("body", "coco/hrnet_udp_coco"),
            _COCO_AP,
            17,
            [
                ("coco", "top_down/udp/hrnet_w32_coco_256x192_udp-aba0be42_20210220.pth", "0.760"),
                ("coco", "top_down/udp/hrnet_w32_coco_384x288_udp-e97c1a0f_20210223.pth", "0.769"),
                ("coco", "top_down/udp/hrnet_w48_coco_256x192_udp-2554c524_20210223.pth", "0.767"),
                ("coco", "top_down/udp/hrnet_w48_coco_384x288_udp-0f89c63e_20210223.pth", "0.772"),
            ],
        ),
        *_zoo(
            _TABLE_0X.format("body", "coco/hrnet_dark_coco"),
            _COCO_AP,
            17,
            [
                ("coco", "top_down/hrnet/hrnet_w32_coco_256x192_dark-07f147eb_20200812.pth", "0.757"),
                ("coco", "top_down/hrnet/hrnet_w32_coco_384x288_dark-307dafc2_20210203.pth", "0.766"),
                ("coco", "top_down/hrnet/hrnet_w48_coco_256x192_dark-8cba3197_20200812.pth", "0.764"),
                ("coco", "top_down/hrnet/hrnet_w48_coco_384x288_dark-e881a4b6_20210203.pth", "0.772"),
            ],
        ),
        *_zoo(
            _TABLE_1X.format("body", "coco/hrnet_coco"),
            _COCO_AP,
            17,
            [
                ("coco", f"{_V1_COCO}/td-hm_hrnet-w32_8xb64-210e_coco-256x192-81c58e40_20220909.pth", "0.749"),
                ("coco", f"{_V1_COCO}/td-hm_hrnet-w32_8xb64-210e_coco-384x288-ca5956af_20220909.pth", "0.761"),
                ("coco", f"{_V1_COCO}/td-hm_hrnet-w48_8xb32-210e_coco-256x192-0e67c616_20220913.pth", "0.756"),
                ("coco", f"{_V1_COCO}/td-hm_hrnet-w48_8xb32-210e_coco-384x288-c161b7de_20220915.pth", "0.767"),
            ],
        ),
        *_zoo(
            _TABLE_0X.format("body", "mpii/hrnet_mpii"),
            "PCKh@0.5 {} on MPII val",
            16,
            [
                ("mpii", "top_down/hrnet/hrnet_w32_mpii_256x256-6c4f923f_20200812.pth", "0.900"),
                ("mpii", "top_down/hrnet/hrnet_w48_mpii_256x256-92cab7bd_20200812.pth", "0.901"),
            ],
        ),
        # ---- HRNet, plain head, beyond the COCO and MPII files above: every top-down heatmap HRNet-W32/W48 file of
        # MMPose's model zoo for COCO variants, whole body, other person data sets, animals and clothes. Not here:
        # OCHuman's table (it lists the COCO files) and the UDP-regression heads (docs/weights.md says why).
        *_zoo(
            _TABLE_0X.format("body", "coco/hrnet_augmentation_coco"),
            _COCO_AP,
            17,
            [
                ("coco", "top_down/augmentation/hrnet_w32_coco_256x192_coarsedropout-0f16a0ce_20210320.pth", "0.753"),
                ("coco", "top_down/augmentation/hrnet_w32_coco_256x192_gridmask-868180df_20210320.pth", "0.752"),
                ("coco", "top_down/augmentation/hrnet_w32_coco_256x192_photometric-308cf591_20210320.pth", "0.753"),
            ],
            note="trained with the augmentation its name says",
        ),
        *_zoo(
            _TABLE_0X.format("body", "coco/hrnet_fp16_coco"),
            _COCO_AP,
            17,
            [("coco", "top_down/hrnet/hrnet_w32_coco_256x192_fp16_dynamic-290efc2e_20210430.pth", "0.746")],
            note="trained in fp16",
        ),
        *_zoo(
            _TABLE_1X.format("body", "coco/hrnet_dark_coco"),
            _COCO_AP,
            17,
            [
                ("coco", f"{_V1_COCO}/td-hm_hrnet-w32_dark-8xb64-210e_coco-256x192-0e00bf12_20220914.pth", "0.757"),
                ("coco", f"{_V1_COCO}/td-hm_hrnet-w48_dark-8xb32-210e_coco-256x192-e1ebdd6f_20220913.pth", "0.764"),
            ],
        ),
        *_zoo(
            _TABLE_1X.format("body", "coco/hrnet_udp_coco"),
            _COCO_AP,
            17,
            [
                ("coco", f"{_V1_COCO}/td-hm_hrnet-w32_udp-8xb64-210e_coco-256x192-73ede547_20220914.pth", "0.762"),
                ("coco", f"{_V1_COCO}/td-hm_hrnet-w48_udp-8xb32-210e_coco-256x192-3feaef8f_20220913.pth", "0.768"),
            ],
        ),
        # MMPose 1.x's DARK and UDP decoders blur 11 pixels at any σ, so their 384x288 files (σ 3) have configs of
        # their own (test.dark_blur_kernel 11; 0.x's blur 17).
        *_zoo(
            _TABLE_1X.format("body", "coco/hrnet_dark_coco"),
            _COCO_AP,
            17,
            [
                ("coco", f"{_V1_COCO}/td-hm_hrnet-w32_dark-8xb64-210e_coco-384x288-9bab4c9b_20220917.pth", "0.766"),
                ("coco", f"{_V1_COCO}/td-hm_hrnet-w48_dark-8xb32-210e_coco-384x288-39c3c381_20220916.pth", "0.772"),
            ],
            config_suffix="_mmpose1",
        ),
        *_zoo(
            _TABLE_1X.format("body", "coco/hrnet_udp_coco"),
            _COCO_AP,
            17,
            [
                ("coco", f"{_V1_COCO}/td-hm_hrnet-w32_udp-8xb64-210e_coco-384x288-9a3f7c85_20220914.pth", "0.768"),
                ("coco", f"{_V1_COCO}/td-hm_hrnet-w48_udp-8xb32-210e_coco-384x288-70d7ab01_20220913.pth", "0.773"),
            ],
            config_suffix="_mmpose1",
        ),
        *_zoo(
            _TABLE_1X.format("body", "coco/hrnet_fp16_coco"),
            _COCO_AP,
            17,
            [("coco", f"{_V1_COCO}/td-hm_hrnet-w32_fp16-8xb64-210e_coco-256x192-f1e84e3b_20220914.pth", "0.749")],
            note="trained in fp16",
        ),
        *_zoo(
            _TABLE_1X.format("body", "coco/hrnet_coco_aic"),
            _COCO_AP,
            17,
            [
                (
                    "coco",
                    f"{_V1_COCO}/td-hm_hrnet-w32_8xb64-210e_coco-aic-256x192-merge-a9ea6d77_20230818.pth",
                    "0.756",
                ),
                (
                    "coco",
                    f"{_V1_COCO}/td-hm_hrnet-w32_8xb64-210e_coco-aic-256x192-combine-458125cc_20230818.pth",
                    "0.755",
                ),
            ],
            note="trained on COCO and AI Challenger (its name says how they were joined)",
        ),
        *_zoo(
            _TABLE_0X.format("body", "aic/hrnet_aic"),
            "AP {} on AI Challenger val (ground-truth boxes)",
            14,
            [("aic", "top_down/hrnet/hrnet_w32_aic_256x192-30a4e465_20200826.pth", "0.323")],
        ),
        *_zoo(
            _TABLE_0X.format("body", "crowdpose/hrnet_crowdpose"),
            "AP {} on CrowdPose test (YOLOv3 person boxes)",
            14,
            [("crowdpose", "top_down/hrnet/hrnet_w32_crowdpose_256x192-960be101_20201227.pth", "0.675")],
        ),
        *_zoo(
            _TABLE_0X.format("body", "mpii/hrnet_dark_mpii"),
            "PCKh@0.5 {} on MPII val",
            16,
            [
                ("mpii", "top_down/hrnet/hrnet_w32_mpii_256x256_dark-f1601c5b_20200927.pth", "0.904"),
                ("mpii", "top_down/hrnet/hrnet_w48_mpii_256x256_dark-0decd39f_20200927.pth", "0.905"),
            ],
        ),
        *_zoo(
            _TABLE_0X.format("body", "posetrack18/hrnet_posetrack18"),
            "mAP {} on PoseTrack18 val (ground-truth boxes)",
            17,
            [
                ("posetrack18", "top_down/hrnet/hrnet_w32_posetrack18_256x192-1ee951c4_20201028.pth", "83.0"),
                ("posetrack18", "top_down/hrnet/hrnet_w32_posetrack18_384x288-806f00a3_20211130.pth", "83.6"),
                ("posetrack18", "top_down/hrnet/hrnet_w48_posetrack18_256x192-b5d9b3f1_20211130.pth", "84.4"),
                ("posetrack18", "top_down/hrnet/hrnet_w48_posetrack18_384x288-5fd6d3ff_20211130.pth", "84.5"),
            ],
        ),
        *_zoo(
            _TABLE_0X.format("body", "h36m/hrnet_h36m"),
            "PCK {} on Human3.6M test (ground-truth boxes)",
            17,
            [
                ("h36m", "top_down/hrnet/hrnet_w32_h36m_256x256-d3206675_20210621.pth", "0.911 (EPE 9.43 px)"),
                ("h36m", "top_down/hrnet/hrnet_w48_h36m_256x256-78e88d08_20210621.pth", "0.932 (EPE 7.36 px)"),
            ],
        ),
        *_zoo(
            _TABLE_1X.format("body", "humanart/hrnet_humanart"),
            "AP {} on Human-Art val (detected persons)",
            17,
            [
                (
                    "humanart",
                    f"{_V1_HUMANART}/td-hm_hrnet-w32_8xb64-210e_humanart-256x192-0773ef0b_20230614.pth",
                    "0.399",
                ),
                (
                    "humanart",
                    f"{_V1_HUMANART}/td-hm_hrnet-w48_8xb32-210e_humanart-256x192-05178983_20230614.pth",
                    "0.417",
                ),
            ],
            note="trained on Human-Art and COCO",
        ),
        *_zoo(
            _TABLE_1X.format("body", "exlpose/hrnet_exlpose"),
            "AP {} on ExLPose LL-A (ground-truth boxes)",
            14,
            [
                (
                    "exlpose",
                    "v1/body_2d_keypoint/topdown_heatmap/exlpose/td-hm_hrnet-w32_8xb64-210e_exlpose-ll-256x192.pth",
                    "0.401",
                )
            ],
            note="low light",
        ),
        *_zoo(
            _TABLE_0X.format("wholebody", "coco-wholebody/hrnet_coco-wholebody"),
            _WHOLEBODY_AP,
            133,
            [
                ("coco_wholebody", "top_down/hrnet/hrnet_w32_coco_wholebody_256x192-853765cd_20200918.pth", "0.553"),
                ("coco_wholebody", "top_down/hrnet/hrnet_w32_coco_wholebody_384x288-78cacac3_20200922.pth", "0.586"),
                ("coco_wholebody", "top_down/hrnet/hrnet_w48_coco_wholebody_256x192-643e18cb_20200922.pth", "0.579"),
                ("coco_wholebody", "top_down/hrnet/hrnet_w48_coco_wholebody_384x288-6e061c6a_20200922.pth", "0.631"),
            ],
        ),
        *_zoo(
            _TABLE_0X.format("wholebody", "coco-wholebody/hrnet_dark_coco-wholebody"),
            _WHOLEBODY_AP,
            133,
            [
                (
                    "coco_wholebody",
                    "top_down/hrnet/hrnet_w32_coco_wholebody_256x192_dark-469327ef_20200922.pth",
                    "0.582",
                ),
                (
                    "coco_wholebody",
                    "top_down/hrnet/hrnet_w48_coco_wholebody_384x288_dark-f5726563_20200918.pth",
                    "0.661",
                ),
            ],
        ),
        *_zoo(
            _TABLE_1X.format("wholebody", "ubody2d/hrnet_ubody-coco-wholebody"),
            _WHOLEBODY_AP,
            133,
            [
                (
                    "coco_wholebody",
                    "v1/wholebody_2d_keypoint/ubody/td-hm_hrnet-w32_8xb64-210e_ubody-coco-256x192-7c227391_20230807.pth",
                    "0.549",
                )
            ],
            note="trained on UBody and COCO-WholeBody",
        ),
        *_zoo(
            _TABLE_0X.format("wholebody", "halpe/hrnet_dark_halpe"),
            "Whole AP {} on Halpe v1.0 val (detected persons)",
            136,
            [("halpe", "top_down/hrnet/hrnet_w48_halpe_384x288_dark_plus-d13c2588_20211021.pth", "0.527")],
            note="started from the COCO-WholeBody file (DARK+)",
        ),
        *_zoo(
            _TABLE_0X.format("animal", "animalpose/hrnet_animalpose"),
            "AP {} on Animal-Pose val (ground-truth boxes)",
            20,
            [
                ("animalpose", "animal/hrnet/hrnet_w32_animalpose_256x256-1aa7f075_20210426.pth", "0.736"),
                ("animalpose", "animal/hrnet/hrnet_w48_animalpose_256x256-34644726_20210426.pth", "0.737"),
            ],
        ),
        *_zoo(
            _TABLE_0X.format("animal", "ap10k/hrnet_ap10k"),
            "AP {} on AP-10K val (ground-truth boxes)",
            17,
            [
                ("ap10k", "animal/hrnet/hrnet_w32_ap10k_256x256-18aac840_20211029.pth", "0.722"),
                ("ap10k", "animal/hrnet/hrnet_w48_ap10k_256x256-d95ab412_20211029.pth", "0.731"),
            ],
        ),
        *_zoo(
            _TABLE_0X.format("animal", "atrw/hrnet_atrw"),
            "AP {} on ATRW val (ground-truth boxes)",
            15,
            [
                ("atrw", "animal/hrnet/hrnet_w32_atrw_256x256-f027f09a_20210414.pth", "0.912"),
                ("atrw", "animal/hrnet/hrnet_w48_atrw_256x256-ac088892_20210414.pth", "0.911"),
            ],
        ),
        *_zoo(
            _TABLE_0X.format("animal", "horse10/hrnet_horse10"),
            "PCK@0.3 {} on Horse-10 test (ground-truth boxes)",
            22,
            [
                ("horse10_split1", "animal/hrnet/hrnet_w32_horse10_256x256_split1-401d901a_20210405.pth", "0.951"),
                ("horse10_split2", "animal/hrnet/hrnet_w32_horse10_256x256_split2-04840523_20210405.pth", "0.949"),
                ("horse10_split3", "animal/hrnet/hrnet_w32_horse10_256x256_split3-4db47400_20210405.pth", "0.939"),
                ("horse10_split1", "animal/hrnet/hrnet_w48_horse10_256x256_split1-3c950d3b_20210405.pth", "0.973"),
                ("horse10_split2", "animal/hrnet/hrnet_w48_horse10_256x256_split2-8ef72b5d_20210405.pth", "0.969"),
                ("horse10_split3", "animal/hrnet/hrnet_w48_horse10_256x256_split3-0232ec47_20210405.pth", "0.961"),
            ],
            note="trained on the split its name says",
        ),
        *_zoo(
            _TABLE_0X.format("animal", "macaque/hrnet_macaque"),
            "AP {} on MacaquePose test (ground-truth boxes)",
            17,
            [
                ("macaque", "animal/hrnet/hrnet_w32_macaque_256x192-f7e9e04f_20210407.pth", "0.814"),
                ("macaque", "animal/hrnet/hrnet_w48_macaque_256x192-9b34b02a_20210407.pth", "0.818"),
            ],
        ),
        *_zoo(
            _TABLE_1X.format("animal", "ak/hrnet_animalkingdom"),
            "PCK@0.05 {} on Animal Kingdom test (ground-truth boxes)",
            23,
            [
                (
                    f"animalkingdom_{split.lower()}",
                    f"{_V1_AK}/td-hm_hrnet-w32_8xb32-300e_animalkingdom_{split}-256x256-{stamp}.pth",
                    pck,
                )
                for split, stamp, pck in (
                    ("P1", "08bf96cb_20230519", "0.6323"),
                    ("P2", "2396cc58_20230519", "0.3741"),
                    ("P3_mammal", "e8aadf02_20230519", "0.571"),
                    ("P3_amphibian", "845085f9_20230519", "0.5358"),
                    ("P3_reptile", "e8440c16_20230519", "0.51"),
                    ("P3_bird", "566feff5_20230519", "0.7671"),
                    ("P3_fish", "76c3999f_20230519", "0.6406"),
                )
            ],
            note="trained on the protocol its name says",
        ),
        *_zoo(
            _TABLE_1X.format("fashion", "deepfashion/hrnet_deepfashion"),
            "PCK@0.2 {} % on DeepFashion val, upper-body clothes (ground-truth boxes)",
            6,
            [
                (
                    "deepfashion_upper",
                    f"{_V1_FASHION}/td-hm_hrnet-w48_udp_8xb32-210e_deepfashion_upper-256x192-de7c0eb1_20230810.pth",
                    "96.1",
                )
            ],
        ),
        *_zoo(
            _TABLE_1X.format("fashion", "deepfashion/hrnet_deepfashion"),
            "PCK@0.2 {} % on DeepFashion val, lower-body clothes (ground-truth boxes)",
            4,
            [
                (
                    "deepfashion_lower",
                    f"{_V1_FASHION}/td-hm_hrnet-w48_udp_8xb32-210e_deepfashion_lower-256x192-ddaf747d_20230810.pth",
                    "97.8",
                )
            ],
        ),
        *_zoo(
            _TABLE_1X.format("fashion", "deepfashion/hrnet_deepfashion"),
            "PCK@0.2 {} % on DeepFashion val, full-body clothes (ground-truth boxes)",
            8,
            [
                (
                    "deepfashion_full",
                    f"{_V1_FASHION}/td-hm_hrnet-w48_udp_8xb32-210e_deepfashion_full-256x192-7ab504c7_20230810.pth",
                    "98.3",
                )
            ],
        ),
        # HRNetV2-W18 faces and hands: MMPose 0.x files, each figure from the 0.x table its source names.
        *(
            _hrnetv2("face", data, method, stamp, k, f"NME {nme}")
            for data, method, stamp, k, nme in (
                ("wflw", "", "2bf032a6_20210125", 98, "4.06"),
                ("wflw", "dark", "3f8e0c2c_20210125", 98, "3.98"),
                ("wflw", "awing", "5af5055c_20211212", 98, "4.02"),
                ("300w", "", "eea53406_20211019", 68, "3.37"),
                ("aflw", "", "f2bbc62b_20210125", 19, "1.41"),
                ("aflw", "dark", "219606c0_20210125", 19, "1.34"),
                ("coco_wholebody_face", "", "c1ca469b_20210909", 68, "0.0569"),
                ("coco_wholebody_face", "dark", "3d9a334e_20210909", 68, "0.0513"),
                ("cofw", "", "49243ab8_20211019", 29, "3.40"),
            )
        ),
        *(
            _hrnetv2("hand", data, method, stamp, 21, f"PCK@0.2 {pck}, AUC {auc}, EPE {epe}")
            for data, method, stamp, pck, auc, epe in (
                ("onehand10k", "", "30bc9c6b_20210330", "0.990", "0.568", "24.16"),
                ("onehand10k", "dark", "a2f80c64_20210330", "0.990", "0.573", "23.84"),
                ("onehand10k", "udp", "0d1b515d_20210330", "0.990", "0.572", "23.87"),
                ("rhd2d", "", "95b20dd8_20210330", "0.992", "0.902", "2.21"),
                ("rhd2d", "dark", "4df3a347_20210330", "0.992", "0.903", "2.17"),
                # Its table heads the column "PCKh@0.7", the other RHD tables "PCK@0.2": the same numbers' metric.
                ("rhd2d", "udp", "63ba6007_20210330", "0.992", "0.902", "2.21"),
                ("coco_wholebody_hand", "", "1c028db7_20210908", "0.813", "0.840", "4.39"),
                ("coco_wholebody_hand", "dark", "a9228c9c_20210908", "0.814", "0.840", "4.37"),
            )
        ),
        # CMU Panoptic hands: PCKh@0.7 (of the head size its annotations give each hand), as its tables head it.
        *(
            _hrnetv2("hand", "panoptic", method, stamp, 21, f"PCKh@0.7 {pckh}, AUC {auc}, EPE {epe}")
            for method, stamp, pckh, auc, epe in (
                ("", "53b12345_20210330", "0.999", "0.744", "7.79"),
                ("dark", "1f1e4b74_20210330", "0.999", "0.745", "7.77"),
                ("udp", "f9e15948_20210330", "0.998", "0.742", "7.84"),
            )
        ),
        # 300W-LP: a 1.x file; its keypoint set has no flip pairs, and its flip test keeps each channel.
        _hrnet(
            f"{_MMPOSE}/v1/face_2d_keypoint/topdown_heatmap/300wlp/hrnetv2_w18_300wlp_256x256-fb433d21_20230922.pth",
            68,
            name="mmpose1-hrnetv2-w18-300wlp-256x256",
            about="HRNetV2-W18, MMPose 1.x",
            source=_TABLE_1X.format("face", "300wlp/hrnetv2_300wlp"),
            accuracy="NME 0.0413 on 300W-LP (its table's NME full; NME test 0.04125)",
            config="face/hrnetv2_w18_300wlp_256x256",
            decoding="argmax",
            input_size=(256, 256),
        ),
        *(
            _onnx_sdk(
                f"rtmdet-{size_name}-person",
                f"rtmdet_{size_name}_8xb32-100e_coco-obj365-person-{tag}.zip",
                size,
                f"RTMDet-{size_name} person detector, MMDeploy end-to-end ONNX",
                f"person AP {ap} on COCO val2017",
                _RTMDET_SOURCE,
            )
            for size_name, tag, size, ap in (("nano", "05d8511e", 320, "40.3"), ("m", "235e8209", 640, "62.5"))
        ),
        *(
            _onnx_sdk(
                f"yolox-{size_name}-humanart",
                f"yolox_{size_name}_8xb8-300e_humanart-{tag}.zip",
                size,
                f"YOLOX-{size_name} person detector (trained on HumanArt + COCO), MMDeploy end-to-end ONNX",
                f"person AP {ap} on HumanArt val",
                _YOLOX_SOURCE,
            )
            for size_name, tag, size, ap in (
                ("nano", "40f6f0d0", 416, "38.9"),
                ("tiny", "6f3252f9", 416, "47.7"),
                ("s", "3ef259a7", 640, "54.6"),
                ("m", "c2c7a14a", 640, "59.1"),
                ("l", "ce1d7a62", 640, "60.2"),
                ("x", "a39d44ed", 640, "61.3"),
            )
        ),
        WeightsFile(
            "yunet",
            "detector",
            f"{_OPENCV_ZOO}/face_detection_yunet/face_detection_yunet_2023mar.onnx",
            "YuNet face detector (2023mar), run by OpenCV's FaceDetectorYN",
            "opencv/opencv_zoo models/face_detection_yunet/README.md (the figures) and the file's Git LFS pointer "
            "(its SHA-256)",
            "AP 0.884 easy, 0.866 medium, 0.750 hard on WIDER Face val",
            sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
            detector_format="yunet",
            input_size=(640, 640),
        ),
        # Lite-HRNet (Yu et al., CVPR 2021): MMPose 0.x files, which MMPose 1.x's tables list too (with figures
        # re-measured, at most 0.001 apart). Each name's shipped config is the network with its test settings.
        *(
            _hrnet(
                f"{_MMPOSE}/top_down/litehrnet/litehrnet{depth}_coco_{h}x{w}-{stamp}.pth",
                name=f"mmpose-litehrnet{depth}-coco-{h}x{w}",
                about=f"Lite-HRNet-{depth}, MMPose 0.x",
                source=f"{_MMPOSE_0X}coco/litehrnet_coco.md (also branch main: {_MAIN_BODY}coco/litehrnet_coco.md)",
                accuracy=_COCO_AP.format(ap),
                config=f"coco/litehrnet{depth}_{h}x{w}",
                decoding="argmax",
                input_size=(h, w),
            )
            for depth, (h, w), stamp, ap in (
                (18, (256, 192), "6bace359_20211230", "0.643"),
                (18, (384, 288), "8d4dac48_20211230", "0.677"),
                (30, (256, 192), "4176555b_20210626", "0.675"),
                (30, (384, 288), "a3aef5c4_20210626", "0.700"),
            )
        ),
        *(
            _hrnet(
                f"{_MMPOSE}/top_down/litehrnet/litehrnet{depth}_mpii_256x256-{stamp}.pth",
                name=f"mmpose-litehrnet{depth}-mpii-256x256",
                about=f"Lite-HRNet-{depth}, MMPose 0.x",
                source=f"{_MMPOSE_0X}mpii/litehrnet_mpii.md (also branch main: {_MAIN_BODY}mpii/litehrnet_mpii.md)",
                accuracy=f"PCKh@0.5 {pckh} on MPII val",
                config=f"mpii/litehrnet{depth}_256x256",
                decoding="argmax",
                input_size=(256, 256),
                num_keypoints=16,
            )
            for depth, stamp, pckh in ((18, "cabd7984_20210623", "0.859"), (30, "faae8bd8_20210622", "0.869"))
        ),
        _hrnet(
            f"{_MMPOSE}/hand/litehrnet/litehrnet_w18_coco_wholebody_hand_256x256-d6945e6a_20210908.pth",
            name="mmpose-litehrnet-w18-coco-wholebody-hand-256x256",
            about="Lite-HRNet-18, MMPose 0.x",
            source="open-mmlab/mmpose, branch 0.x: configs/hand/2d_kpt_sview_rgb_img/topdown_heatmap/"
            "coco_wholebody_hand/litehrnet_coco_wholebody_hand.md (also branch main: configs/hand_2d_keypoint/"
            "topdown_heatmap/coco_wholebody_hand/litehrnet_coco_wholebody_hand.md)",
            accuracy="PCK@0.2 0.795, AUC 0.830, EPE 4.77 on COCO-WholeBody-Hand val",
            config="hand/litehrnet18_coco_wholebody_hand_256x256",
            decoding="argmax",
            input_size=(256, 256),
            num_keypoints=21,
        ),
    )
}


def config_for_weights(spec: str | Path) -> str | None:
    """The shipped config name (``hrnet.config.load_config`` resolves it) of a registered pose weights name; None
    for anything else (a path, a detector name, an unknown name)."""
    entry = REGISTRY.get(str(spec))
    return entry.config if entry is not None and entry.kind == "pose" else None


def cache_dir() -> Path:
    """``$HRNET_CACHE``, else the user's cache folder (``~/.cache/hrnet`` on Linux)."""
    return Path(os.environ.get("HRNET_CACHE") or user_cache_dir("hrnet")).expanduser()


def cached_path(entry: WeightsFile) -> Path:
    """Where ``entry``'s file is (or will be) in the cache."""
    return cache_dir() / entry.name / entry.filename


def manual_path(entry: WeightsFile) -> Path:
    """Where to put ``entry``'s file when downloading it by hand: the cached file itself, or for an archive the
    archive beside it (the next run unpacks it)."""
    return cache_dir() / entry.name / entry.url.rsplit("/", 1)[-1]


class _MismatchError(DownloadError):
    """A cached file whose SHA-256 is not the expected one."""


def resolve_weights(spec: str | Path, *, download: bool = True, progress: bool = True) -> Path:
    """A ``--weights`` / ``--detector`` argument as a file: an existing path as it is, a registered name as its
    cached file (verified; downloaded first when missing and ``download``). Anything else comes back unchanged as a
    path, for the loader to report as missing."""
    return resolve_many([spec], download=download, progress=progress)[0]


def resolve_many(specs: Sequence[str | Path], *, download: bool = True, progress: bool = True) -> list[Path]:
    """``resolve_weights`` for several arguments (e.g. pose weights and a detector), in order.

    Every missing file is tried before anything is raised, so one ``WeightsUnavailableError`` lists each file that
    could not be had, with the exact path to put it at by hand.
    """
    paths: list[Path] = []
    failed: list[tuple[WeightsFile, str]] = []
    for spec in specs:
        path = Path(spec)
        entry = REGISTRY.get(str(spec))
        if path.exists() or entry is None:
            if entry is not None:  # a file in the working folder named like a registered one: said, not silent
                log.warning(
                    "%s: a file of that name is in this folder, so it is used rather than the registered %s %r "
                    "(give ./%s to say you mean the file)", spec, entry.kind, entry.name, spec,
                )  # fmt: skip
            paths.append(path)
            continue
        try:
            paths.append(fetch(entry, progress=progress, allow_download=download))
        except WeightsUnavailableError as err:
            failed += [(entry, reason) for _, reason in err.missing]
            paths.append(cached_path(entry))
    if failed:
        raise weights_unavailable(failed)
    return paths


def fetch(entry: WeightsFile, *, progress: bool = True, force: bool = False, allow_download: bool = True) -> Path:
    """``entry``'s file in the cache, verified (``verify``); downloaded first when it is not there, or always with
    ``force``. An archive already placed beside it is unpacked without a download.

    Raises:
        DownloadError: the cached file fails its check, or the cache folder cannot be written.
        WeightsUnavailableError: the file is missing and cannot be downloaded (or ``allow_download`` is False).
    """
    from hrnet.hub.download import unpack_member  # urllib and http: only when a file is fetched

    target = cached_path(entry)
    if not force and target.is_file():
        verify(target, entry)
        return target
    # One process at a time unpacks or downloads a file; the others wait, then use it (an archive seen outside
    # the lock may be one that another process is unpacking and is about to delete).
    with _fetching(target):
        if not force and target.is_file():
            verify(target, entry)
            return target
        archive = manual_path(entry)
        if not force and entry.member is not None and archive.is_file():
            # Placed here by hand (the offline advice) or left by a run that stopped before unpacking it.
            unpack_member(archive, entry.member, target, entry.member_sha256)
            verify(target, entry)
            return target
        if not allow_download:
            reason = f"it is not in the cache, and downloads are off; its URL: {entry.url}"
            raise weights_unavailable([(entry, reason)])
        return _download(entry, target, archive, progress)


@contextlib.contextmanager
def _fetching(target: Path) -> Iterator[None]:
    """Hold the lock of the cached file ``target`` (in the temporary folder, so that a failed fetch leaves no trace
    in the cache; any user may take it)."""
    from filelock import FileLock, Timeout

    key = hashlib.sha256(str(target.absolute()).encode()).hexdigest()[:16]
    lock = FileLock(Path(tempfile.gettempdir()) / f"hrnet-fetch-{key}.lock", mode=0o666)
    held = True
    try:
        lock.acquire(timeout=0.2)
    except Timeout:
        log.info("waiting for another hrnet process fetching %s", target)
        lock.acquire()
    except OSError as err:  # no writable temporary folder: fetching alone is still right, only not guarded
        log.debug("%s: cannot take the fetch lock (%s)", lock.lock_file, err)
        held = False
    try:
        yield
    finally:
        if held:
            lock.release()


def _download(entry: WeightsFile, target: Path, archive: Path, progress: bool) -> Path:
    from hrnet.hub.download import download, unpack_member

    created = [p for p in (target.parent, *target.parent.parents) if not p.exists()]  # deepest first
    try:
        check_writable_dir(target.parent, "weights cache")
        download(entry.url, archive, sha256=entry.sha256 or entry.sha256_prefix, progress=progress)
        if entry.member is not None:
            unpack_member(archive, entry.member, target, entry.member_sha256)
        verify(target, entry)
    except OutputError as err:
        raise DownloadError(f"{err}; $HRNET_CACHE moves the cache to another folder") from None
    except DownloadError as err:  # the server, the network or the file it sent: another machine's copy will do
        raise weights_unavailable([(entry, str(err))]) from None
    finally:
        if not target.is_file():  # a failed download leaves no empty folders behind
            for folder in created:
                with contextlib.suppress(OSError):
                    folder.rmdir()
    return target


# The way round a missing file that holds wherever the error reaches: from Python and from every command.
INSTEAD = (
    "pass the path of a file you have in place of the name (for pose weights keep the name as the config: a .pth "
    "file does not say which network it is)"
)


def weights_unavailable(missing: Sequence[tuple[WeightsFile, str]], instead: str = INSTEAD) -> WeightsUnavailableError:
    """The error for registered files that cannot be had, ``missing`` holding (entry, what failed) for each: a line
    an entry (its name, where its file belongs, what failed), then a line for each way round; ``instead`` is the
    last, the one that works where it is raised (a command says its own options)."""
    names = " ".join(dict.fromkeys(entry.name for entry, _ in missing))
    archive = " (a .zip is unpacked on the next run)" if any(entry.member for entry, _ in missing) else ""
    what = "weights file is" if len(missing) == 1 else "weights files are"
    lines = [
        f"{len(missing)} {what} not in the cache and could not be downloaded:",
        *(f"  {entry.name}: {manual_path(entry)}: {reason}" for entry, reason in missing),
        "Any one of these will do:",
        f"  - on a machine that is online run `hrnet weights get {names}`, then copy those folders of its cache "
        f"(`hrnet weights list` prints where) into {cache_dir()} here ($HRNET_CACHE moves it)",
        f"  - download each URL above yourself to the path before it{archive}",
        f"  - {instead}",
    ]
    return WeightsUnavailableError("\n".join(lines), [(entry.name, reason) for entry, reason in missing])


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _recorded_checksum(path: Path) -> tuple[str | None, bool]:
    """The SHA-256 recorded beside ``path`` and whether the record still describes the file (same size and
    modification time); (None, False) when there is no usable record."""
    try:
        record = json.loads(_record_path(path).read_text())
        stat = path.stat()
        return str(record["sha256"]), (record["size"], record["mtime_ns"]) == (stat.st_size, stat.st_mtime_ns)
    except (OSError, ValueError, LookupError, TypeError):
        return None, False


def verify(path: Path, entry: WeightsFile, *, rehash: bool = False) -> str:
    """The SHA-256 of ``entry``'s cached file ``path``, checked against the published one, or where none is
    published against the one it had when it was downloaded. Hashed only when the file's size or modification time
    changed since the last check, or with ``rehash`` (``hrnet weights get``: a changed byte need change neither).

    Raises:
        DownloadError: the file differs (it says how to download it again) or cannot be read.
    """
    published = entry.member_sha256 if entry.member else (entry.sha256 or entry.sha256_prefix)
    recorded, current = _recorded_checksum(path)
    try:
        actual = recorded if recorded is not None and current and not rehash else sha256_file(path)
    except OSError as err:
        raise DownloadError(f"{path}: cannot read the cached file of weights {entry.name!r} ({err.strerror})") from None
    expected = published or recorded
    if expected and not actual.startswith(expected.lower()):
        against = "the published one" if published else "the one it had when it was downloaded"
        raise _MismatchError(
            f"{path}: the cached file is damaged or was changed: its SHA-256 is {actual}, {against} "
            f"{'starts with ' if len(expected) < 64 else 'is '}{expected}; download it again with `hrnet weights get "
            f"{entry.name} --force`, or delete the file"
        )
    if not published and recorded is None:
        log.warning("%s: no published checksum to verify it against; its SHA-256 is %s", path.name, actual)
    if not (recorded == actual and current):
        stat = path.stat()
        record = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": actual}
        try:  # a read-only cache keeps no record: the file is then hashed at every use
            write_json_atomic(_record_path(path), record)
        except (OSError, OutputError) as err:
            log.debug("%s: cannot keep its checksum beside it (%s)", path, err)
    return actual


def cache_status(entry: WeightsFile) -> str:
    """ "" (not cached), "cached", "cached, checksum mismatch" or "cached, unreadable", for ``hrnet weights list``."""
    path = cached_path(entry)
    if not path.is_file():
        return ""
    try:
        verify(path, entry)
    except _MismatchError:
        return "cached, checksum mismatch"
    except DownloadError:
        return "cached, unreadable"
    return "cached"
