"""``hrnet predict``: image files, folders, videos, webcams and streams → COCO-results JSON and drawings
(docs/predict.md names each output).

Inputs that cannot be read are reported by name and skipped (``expand_inputs``); photos are turned upright by
their EXIF orientation. Images run through a pipeline (``hrnet.io.streams``): a thread reads ahead (decoding and
detecting), the network takes the persons of several images a forward pass, and a thread writes behind, so the
network, the slow step on a CPU, never waits. Videos go to ``hrnet.apps.video``. The output folder is held for
the run (``hrnet.io.outputs.OutputFolder``): nothing runs when an output would replace an input, two inputs
would write the same file, or a file ``hrnet predict`` did not write is in the way (unless ``--overwrite``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from hrnet.apps.video import predict_video
from hrnet.data.coco import PERSON_CATEGORY, read_detections
from hrnet.drawing.skeletons import draw_persons
from hrnet.errors import DataError, HrnetError, OutputError
from hrnet.io.files import file_kind, output_problem, write_json_atomic
from hrnet.io.frames import VIDEO_SUFFIXES, is_live_source, is_video, video_outputs
from hrnet.io.images import MAX_PIXELS, read_image, write_image
from hrnet.io.inputs import Skipped, check_not_special, decimal_id, list_inputs
from hrnet.io.outputs import Manifest, OutputFolder
from hrnet.io.streams import ReadAhead, WriteBehind
from hrnet.pose.estimator import PoseEstimator
from hrnet.pose.persons import Persons, person_results, usable_boxes
from hrnet.pose.track import VideoOptions

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
COMMAND = "hrnet predict"  # as the output guard names it in messages (``hrnet.io.outputs``)
READ_AHEAD = 4  # images decoded ahead of the network: enough to fill its next batch, few enough for memory


@dataclass
class PredictReport:
    """What a ``predict_paths`` call did."""

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path | str, str]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)  # folder entries named like inputs, not regular files

    def fail(self, source: Path | str, err: HrnetError) -> None:
        """An input that could not be predicted: logged and kept with its reason, which names the input once."""
        reason = str(err) if str(source) in str(err) else f"{source}: {err}"
        log.error("skipped: %s", reason)
        self.failed.append((source, reason))


def expand_inputs(inputs: Sequence[str | Path]) -> tuple[list[Path | str], list[Skipped]]:
    """Files as given; folders replaced by their images and videos (sorted, not recursive) less the drawings that
    hrnet wrote there (by the folder's manifest); webcam indices (``"0"``) and stream URLs kept as text.
    Also the folder entries named like images or videos that are not regular files (``hrnet.io.inputs.list_inputs``),
    which are skipped.

    Raises:
        DataError: an input given by name is a FIFO, socket, device, dangling link or link loop (nothing opens
            it), or a folder holds no image or video.
    """
    paths: list[Path | str] = []
    skipped: list[Skipped] = []
    for text in inputs:
        if is_live_source(text):
            paths.append(str(text))
            continue
        item = Path(text)
        check_not_special(item)
        if file_kind(item) == "folder":
            found, others = list_inputs(item, IMAGE_SUFFIXES | VIDEO_SUFFIXES)
            manifest = Manifest(item)
            found = [p for p in found if not manifest.holds(p)]  # not our drawings of the others
            if not found:
                names = ", ".join(s.path.name for s in others[:5]) + (", ..." if len(others) > 5 else "")
                also = f" (not regular files, skipped: {names})" if others else ""
                raise DataError(f"no images or videos found in {item}{also}: give a folder of image or video files")
            paths += found
            skipped += others
        else:
            paths.append(item)
    return paths, skipped


MAX_BOXES = 100  # boxes an image by default, as hrnet serve's --max-boxes


class DetectionBoxes:
    """Person boxes from a COCO detection-results file (``hrnet.data.coco.read_detections``), found for an input
    by its file name (an entry's ``file_name``, if any) or its id (COCO's ``000000000785.jpg`` is image 785; other
    names match an ``image_id`` equal to the file name or its stem)."""

    def __init__(
        self,
        path: str | Path,
        score_threshold: float = 0.0,
        category_id: int = PERSON_CATEGORY,
        max_boxes: int = MAX_BOXES,
    ):
        self.path = Path(path)
        self.boxes = read_detections(path, score_threshold=score_threshold, category_id=category_id)
        self.max_boxes = max_boxes

    def matches(self, path: Path) -> bool:
        """Whether the file names the image ``path`` (even with no box above the threshold)."""
        return any(key in self.boxes for key in _keys(path))

    def lookup(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """(P, 4) boxes (x, y, w, h) in pixels and (P,) scores for an image file; no entry means no person."""
        found = next((self.boxes[key] for key in _keys(path) if key in self.boxes), [])
        if len(found) > self.max_boxes:  # each box is a crop through the network: thousands would run for hours
            log.warning(
                "%s: %s names %d boxes for it; the %d best-scoring are used (--max-boxes)",
                path, self.path, len(found), self.max_boxes,
            )  # fmt: skip
            found = sorted(found, key=lambda d: -d.score)[: self.max_boxes]
        boxes = np.array([d.box for d in found], dtype=np.float64).reshape(-1, 4)
        return boxes, np.array([d.score for d in found], dtype=np.float64)


def _keys(path: Path) -> list[int | str]:
    """The ids a detection entry may give an image file: its name, its stem, and for digits the number."""
    number = decimal_id(path.stem)
    return [*([number] if number is not None else []), path.name, path.stem]


def predict_paths(
    estimator: PoseEstimator,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    detections: DetectionBoxes | None = None,
    video: VideoOptions | None = None,
    threshold: float = 0.3,
    draw: bool = True,
    progress: bool = True,
    protected: Sequence[str | Path] = (),
    max_pixels: int = MAX_PIXELS,
    overwrite: bool = False,
) -> PredictReport:
    """Run ``estimator`` on image files, folders, videos, webcams (``"0"``) and stream URLs; write results and
    drawings into ``out_dir``.

    Person boxes come from ``detections`` for images (an image with no detection entry counts as one
    whole-image person only when no detection file is given) or else from the estimator's person boxes (its
    detector, or the whole image). Videos take theirs from the estimator's detector as ``video`` says
    (``hrnet.apps.video.predict_video``; without a detector the whole frame is one person, who still gets a track
    id). Keypoints scoring below ``threshold`` are not drawn (they are still in the JSON). An image over
    ``max_pixels`` (width × height, read from its header before decoding) fails like an unreadable one. Folder
    entries named like inputs that are not regular files (``expand_inputs``) are warned about by name, listed in
    the report's ``skipped`` and never opened.

    ``out_dir`` is held for the run (module docstring); the ``protected`` files (the boxes file, weights, config)
    count as inputs. Refused before anything runs: ``OutputError`` (or ``DataError`` for two inputs that would
    write the same file). A write that fails later (a full disk) stops the run with an ``OutputError``.
    """
    paths, skipped = expand_inputs(inputs)
    sources = [*(p for p in paths if isinstance(p, Path)), *map(Path, protected)]
    with OutputFolder(out_dir, command=COMMAND, inputs=sources, overwrite=overwrite) as folder:
        _claim_outputs(paths, folder, draw)
        images = [p for p in paths if isinstance(p, Path) and not is_video(p)]
        if detections is not None:
            _warn_unmatched(detections, images)
        report = PredictReport(skipped=skipped)
        if skipped:
            named = ", ".join(f"{s.path} ({s.kind})" for s in skipped[:20]) + (", ..." if len(skipped) > 20 else "")
            log.warning("not regular files, skipped (%d): %s", len(skipped), named)
        job = _ImageJob(estimator, folder, detections, threshold, draw, max_pixels, report)
        _guarded(folder, "the images", partial(job.run, images, progress))
        for source in (p for p in paths if is_video(p)):
            options = (video, threshold, draw, progress)
            _guarded(folder, source, partial(_predict_video, estimator, source, folder, *options, report))
        return report


def _guarded(folder: OutputFolder, what: Path | str, run: Callable[[], object]) -> None:
    """Run a part of the job; a failed write (``OSError``: a full disk, a read-only folder) stops the whole run
    with one ``OutputError``, since the next inputs would fail too."""
    try:
        run()
    except OutputError:
        raise
    except OSError as err:
        where = err.filename or folder.path
        raise OutputError(f"{where}: cannot write the results of {what} ({output_problem(err)})") from None


def _predict_video(
    estimator: PoseEstimator,
    source: Path | str,
    folder: OutputFolder,
    video: VideoOptions | None,
    threshold: float,
    draw: bool,
    progress: bool,
    report: PredictReport,
) -> None:
    try:
        written = predict_video(
            estimator, source, folder.path, options=video, threshold=threshold, draw=draw, progress=progress
        )
    except HrnetError as err:
        report.fail(source, err)
        return
    for output in written:
        folder.record(output)
    report.written += written


@dataclass
class _Image:
    """One image read ahead: its pixels (BGR, as OpenCV decodes them: the network turns each crop to RGB, the
    drawing is made and encoded in this order) and person boxes, or why it could not be read."""

    path: Path
    bgr: np.ndarray | None = None
    boxes: np.ndarray | None = None
    scores: np.ndarray | None = None
    error: HrnetError | None = None

    @property
    def persons(self) -> int:
        return 0 if self.boxes is None else len(self.boxes)


@dataclass
class _ImageJob:
    """The images of a ``predict_paths`` call through the pipeline (module doc): read ahead → the network on the
    persons of several images at once → write behind."""

    estimator: PoseEstimator
    folder: OutputFolder
    detections: DetectionBoxes | None
    threshold: float
    draw: bool
    max_pixels: int
    report: PredictReport

    def run(self, paths: Sequence[Path], progress: bool) -> None:
        if not paths:
            return
        bar = tqdm(total=len(paths), desc="images", unit="image", disable=not progress or len(paths) < 2)
        with ReadAhead(map(self._read, paths), READ_AHEAD) as reader, WriteBehind(READ_AHEAD) as writer:
            for group in _batches(reader, self.estimator.test.batch_size):
                for image, persons in self._estimate(group):
                    if persons is None:
                        bar.update(1)
                    else:
                        writer.submit(partial(self._write, image, persons))
                        writer.submit(partial(bar.update, 1))
        bar.close()

    def _read(self, path: Path) -> _Image:
        """Decode an image and find its person boxes (the given ones, checked; the detector's; or the whole
        image): in the read-ahead thread, beside the network."""
        try:
            bgr = read_image(path, apply_orientation=True, max_pixels=self.max_pixels)
            if self.detections is not None:
                boxes, scores = self.detections.lookup(path)
                keep = usable_boxes(boxes, bgr.shape[:2])
                if not keep.all():
                    log.warning(
                        "%s: %d of its boxes in %s left out: not finite, under a pixel, wholly outside the %d×%d "
                        "image or many times its size",
                        path, int((~keep).sum()), self.detections.path, bgr.shape[1], bgr.shape[0],
                    )  # fmt: skip
                return _Image(path, bgr, boxes[keep], scores[keep])
            found = self.estimator.person_boxes(bgr, where=str(path))
            return _Image(path, bgr, found.boxes, found.scores)
        except HrnetError as err:
            return _Image(path, error=err)

    def _estimate(self, group: list[_Image]) -> Iterator[tuple[_Image, Persons | None]]:
        """The persons of each image of ``group`` from one ``estimator.predict`` call (an image that fails is
        then run alone, so that it fails alone); None for the images that failed, which are reported."""
        readable = [(image, image.bgr) for image in group if image.bgr is not None]
        results: list[Persons | None]
        try:
            results = list(
                self.estimator.predict(
                    [bgr for _, bgr in readable], [i.boxes for i, _ in readable], [i.scores for i, _ in readable],
                    channel_order="bgr",
                )
            )  # fmt: skip
        except HrnetError:
            results = [self._alone(image, bgr) for image, bgr in readable]
        done = {id(image): persons for (image, _), persons in zip(readable, results, strict=True)}
        for image in group:
            persons = done.get(id(image))
            if persons is None:
                self.report.fail(image.path, image.error or DataError("failed"))
            yield image, persons

    def _alone(self, image: _Image, bgr: np.ndarray) -> Persons | None:
        try:
            return self.estimator.predict([bgr], [image.boxes], [image.scores], channel_order="bgr")[0]
        except HrnetError as err:
            image.error = err
            return None

    def _write(self, image: _Image, persons: Persons) -> None:
        """JSON and drawing of one image (in the write-behind thread), recorded in the folder's manifest. The
        drawing is made on the decoded pixels themselves: nothing reads them after."""
        assert image.bgr is not None
        path = image.path
        number = decimal_id(path.stem)
        image_id: Any = number if number is not None else path.name
        written = _outputs(path, self.folder.path, self.draw)
        write_json_atomic(written[0], person_results(persons, image_id, where=path))
        if self.draw:
            drawn = draw_persons(image.bgr, persons, self.estimator.keypoint_set, self.threshold, in_place=True)
            write_image(written[1], drawn)
        for output in written:
            self.folder.record(output)
        self.report.written += written


def _batches(images: Iterable[_Image], batch_size: int) -> Iterator[list[_Image]]:
    """Consecutive images grouped so that each group's persons fill a forward pass: at most ``batch_size`` crops
    (or one image with more). Files wait for a full batch: the network's rate, not the latency, is what counts."""
    group: list[_Image] = []
    persons = 0
    for image in images:
        if group and persons + image.persons > batch_size:
            yield group
            group, persons = [], 0
        group.append(image)
        persons += image.persons
    if group:
        yield group


def _warn_unmatched(detections: DetectionBoxes, images: Sequence[Path]) -> None:
    """A boxes file that names none (or only some) of the input images is most likely the wrong one."""
    if missing := [p for p in images if not detections.matches(p)]:
        names = [repr(n) for n in detections.boxes]
        log.warning(
            "%s: no entry for %d of %d input images (e.g. %s): no person is predicted for them. It names %s; an "
            "image matches an entry's file_name or image_id equal to its file name, its stem, or its number "
            "(000000000785.jpg is 785)",
            detections.path, len(missing), len(images), ", ".join(p.name for p in missing[:3]),
            ", ".join(names[:5]) + (", ..." if len(names) > 5 else ""),
        )  # fmt: skip


def _drawing(path: Path, out: Path) -> Path:
    """``photo.jpg`` → ``photo_pose.jpg`` (``.jpg``, ``.jpeg``, ``.png`` keep theirs; ``scan.tif`` →
    ``scan_pose_tif.png``)."""
    suffix = path.suffix
    if suffix.lower() in (".jpg", ".jpeg", ".png"):
        return out / f"{path.stem}_pose{suffix}"
    return out / f"{path.stem}_pose_{suffix[1:] or 'image'}.png"


def _outputs(path: Path | str, out: Path, draw: bool) -> list[Path]:
    """The files an input writes into ``out``: ``<name>.json`` and the drawing; a video's from ``hrnet.apps.video``."""
    if is_video(path):
        return video_outputs(path, out, draw)
    path = Path(path)
    return [out / f"{path.name}.json", *([_drawing(path, out)] if draw else [])]


def _claim_outputs(paths: Sequence[Path | str], folder: OutputFolder, draw: bool) -> None:
    """Check every output before anything runs (``OutputFolder.claim``: not an input, not a file that is not
    ours), and that no two inputs write the same file."""
    writers: dict[Path, Path | str] = {}
    for path in paths:
        for output in _outputs(path, folder.path, draw):
            folder.claim(output, f"the output of {path}")
            target = output.resolve()
            if target in writers and writers[target] != path:
                raise DataError(
                    f"{writers[target]} and {path} would both write {output}: give them different names or "
                    "predict them into different --out folders"
                )
            writers[target] = path
