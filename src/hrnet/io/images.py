"""Image files and arrays: decode, read the size from the header, write PNG or JPEG atomically; the one check of an
image array (``check_image``) and of a channel order (``check_channel_order``).

Images are BGR, as OpenCV reads and writes them, unless a caller says ``channel_order="rgb"`` (the training data
path: the network takes RGB crops). Pixels are decoded with OpenCV as the official ``JointsDataset`` does, the EXIF
orientation tag ignored (the annotations were drawn on the stored pixels); photos for prediction are read upright
(``apply_orientation=True``).

Before any pixel is decoded Pillow reads the header (``Image.open`` is lazy): an image without a header Pillow
knows, of zero size, over Pillow's own decompression-bomb guard (twice ``Image.MAX_IMAGE_PIXELS``) or over the
caller's pixel limit (``MAX_PIXELS`` by default; a decompression bomb is a small file that decodes to gigabytes) is
refused by name. Pixels become 8-bit: 16-bit ones scaled by 255 / 65535, float ones by 255 when all lie in [0, 1],
else stretched from their minimum to their maximum; NaN, infinite and signed integer pixels are refused.

Damaged JPEG data: OpenCV says nothing of them but libjpeg's own line on the process's stderr ("Corrupt JPEG data:
premature end of data segment"), which a library cannot catch without taking over that stream, and decodes nothing
of a JPEG without its end marker. So the bytes are checked here. A header giving more 8×8 blocks than the coded
data hold bits (each takes one at least: a 6000×6000 header over 40 KB) is refused before decoding; a JPEG cut
short is decoded as far as it goes. When it was cut short, or a corner pixel is the exact grey libjpeg gives the
blocks it has no data for, the file is decoded once more with filler bytes before each marker after its first
scan's start: pixels that change mean that the decoder ran out of data (cut short, or corrupt data that made it
read too far), and the rows it left grey are counted. Under half of the rows decoded is refused; more is one
warning naming the file. Damage that the decoder reads through without running out (a corrupt stretch it
resynchronises after, or one that leaves it bytes to spare) shows no sign here and passes.
"""

from __future__ import annotations

import io
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from hrnet.errors import DataError
from hrnet.io.files import read_bytes_capped, write_bytes_atomic

log = logging.getLogger(__name__)

Pixels = npt.NDArray[np.uint8]  # an (H, W, 3) image

# The pixel limit of every decode unless its caller gives another (hrnet predict --max-megapixels, hrnet serve's
# limits): 40 M pixels is a 7,300 × 5,500 photo, 120 MB decoded as 8-bit RGB.
MAX_PIXELS = 40_000_000
MAX_IMAGE_BYTES = 1 << 30  # 40 megapixels take at most a few hundred MB in any format hrnet reads
# Any depth, grey or colour as stored (no alpha); the conversion to 8-bit is ours (module docstring).
_DECODE_FLAGS = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR
# From OpenCV's decoded grey or BGR pixels to three channels in each order: the conversion, None for none.
_TO_ORDER = {"rgb": (cv2.COLOR_GRAY2RGB, cv2.COLOR_BGR2RGB), "bgr": (cv2.COLOR_GRAY2BGR, None)}
_EXTENSIONS = {".png": ".png", ".jpg": ".jpg", ".jpeg": ".jpg"}
# JPEG markers (ITU T.81 table B.1): start and end of image; start of scan; the frames (SOF0-15 but DHT, JPG and
# DAC) and, of them, the Huffman-coded DCT ones (baseline, extended, progressive), where each block takes a bit.
_SOI, _EOI, _SOS = b"\xff\xd8", b"\xff\xd9", 0xDA
_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_HUFFMAN_DCT_FRAMES = frozenset({0xC0, 0xC1, 0xC2})
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # markers without a length (TEM, RST0-7)
# A marker in coded data, fill bytes (0xFF) before it included: 0xFF but as 0xFF00, a stuffed byte.
_MARKER = re.compile(rb"\xff+[^\x00\xff]")
# libjpeg leaves the blocks it has no data for at zero, which decode to this grey in every channel.
_JPEG_FILL = 128
# Put where a scan's data end to learn whether the decoder wanted more: bits of every kind, no 0xFF (a marker).
_PROBE_FILLER = bytes.fromhex("5a3cc3a5") * 16
_PNG_END = b"IEND"  # the type of a PNG's last chunk: a file without it is cut short
_warned: set[str] = set()  # the files whose damage read_image logged (once each: a data set reads an image often)


def check_channel_order(channel_order: str) -> str:
    """``channel_order`` itself if it is "bgr" or "rgb" (the orders of an image array), else a ``DataError``."""
    if channel_order not in _TO_ORDER:
        raise DataError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    return channel_order


def check_image(image: npt.ArrayLike, what: str = "image", *, copy: bool = False) -> Pixels:
    """``image`` as a contiguous (H, W, 3) uint8 array in either channel order: itself when it is one (a copy with
    ``copy``); grey (H, W) or (H, W, 1) images are repeated to three channels. Anything else is a ``DataError``
    that names ``what``, what was expected and what was given."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise DataError(f"{what}: expected a uint8 image, got dtype {array.dtype}")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3) or array.shape[0] == 0 or array.shape[1] == 0:
        raise DataError(f"{what}: expected shape (H, W, 3), got {array.shape}")
    if array.shape[2] == 1:
        return np.repeat(array, 3, axis=2)
    contiguous = np.ascontiguousarray(array)
    return contiguous.copy() if copy and contiguous is array else contiguous


def read_image(
    path: str | Path, *, apply_orientation: bool = False, max_pixels: int = MAX_PIXELS, channel_order: str = "bgr"
) -> np.ndarray:
    """Decode an image file: ``decode_image_bytes`` of its bytes, with its arguments and result; the warning about
    a damaged file is logged once per path.

    Raises:
        DataError: the file is missing or unreadable, or ``decode_image_bytes`` refuses its content.
    """
    # Reading the bytes ourselves (rather than cv2.imread) tells "cannot read" from "does not decode" and works
    # for any path the OS accepts; the cap stops a huge (sparse) file before it fills the memory.
    data = read_bytes_capped(path, MAX_IMAGE_BYTES, "image file")
    pixels, damage = _decode(data, str(path), apply_orientation, max_pixels, channel_order)
    if damage is not None and str(path) not in _warned:
        _warned.add(str(path))
        log.warning("%s: %s", path, damage)
    return pixels


def decode_image_bytes(
    data: bytes,
    *,
    source: str = "the image",
    apply_orientation: bool = False,
    max_pixels: int = MAX_PIXELS,
    channel_order: str = "bgr",
) -> np.ndarray:
    """Decode the bytes of an image file: header first, then pixels (module docstring).

    Args:
        data: the whole file: a JPEG, PNG, BMP, TIFF, WebP or other file whose header Pillow reads and pixels
            OpenCV decodes; grey, 16-bit or float images come back as 8-bit (module docstring).
        source: how messages name the image (a path, "the upload").
        apply_orientation: rotate and mirror as the file's EXIF orientation tag says (phone photos: the pixels
            are stored sideways with a tag); False for data sets, whose annotations are on the stored pixels.
        max_pixels: the most width × height to decode, read from the header before decoding.
        channel_order: "bgr" (OpenCV's order) or "rgb".

    Returns:
        (H, W, 3) uint8 array in ``channel_order``, rows top to bottom.

    Raises:
        DataError: one line naming ``source``: no header Pillow knows (empty, truncated, not an image), zero size,
            over ``max_pixels``, pixels that do not decode or are not what the header says, a JPEG whose data
            hold under half of its picture (module docstring), or a pixel type not read.

    A JPEG decoded with errors (its data run out before its picture does) is logged as a warning naming
    ``source``.
    """
    pixels, damage = _decode(data, source, apply_orientation, max_pixels, channel_order)
    if damage is not None:
        log.warning("%s: %s", source, damage)
    return pixels


def _decode(
    data: bytes, source: str, apply_orientation: bool, max_pixels: int, channel_order: str
) -> tuple[np.ndarray, str | None]:
    """``decode_image_bytes``'s pixels, and what is wrong with them when they decoded with errors."""
    check_channel_order(channel_order)
    width, height, kind = _header(io.BytesIO(data), source)
    if width * height > max_pixels:
        raise DataError(
            f"{source}: the {kind} is {width}×{height} = {width * height:,} pixels, over the limit of {max_pixels:,} "
            "(a guard against decompression bombs): use a smaller image, or raise the limit (--max-megapixels of "
            "hrnet predict and hrnet serve)"
        )
    layout = _jpeg_layout(data)
    if layout is not None and layout.huffman and 8 * layout.coded_bytes(len(data)) < layout.blocks:
        raise DataError(
            f"{source}: the image does not decode: its header says {width}×{height} pixels, more than its "
            f"{layout.coded_bytes(len(data)):,} bytes of {kind} data can hold (a bit at least for each 8×8 block): "
            "the file is damaged"
        )
    # OpenCV decodes nothing of a JPEG without its end marker: given one, it decodes what the data hold.
    whole = data + _EOI if layout is not None and layout.end is None else data
    flags = _DECODE_FLAGS if apply_orientation else _DECODE_FLAGS | cv2.IMREAD_IGNORE_ORIENTATION
    try:
        pixels = cv2.imdecode(np.frombuffer(whole, np.uint8), flags)
    except cv2.error as err:  # e.g. over OpenCV's own limit, CV_IO_MAX_IMAGE_PIXELS
        problem = getattr(err, "err", None) or str(err).strip().splitlines()[-1]
        raise DataError(f"{source}: OpenCV cannot decode the {kind} {width}×{height} ({problem})") from None
    if pixels is None:
        cut_short = (kind == "PNG" and _PNG_END not in data) or (layout is not None and layout.end is None)
        raise _undecodable(source, len(data), f"the {kind} is cut short" if cut_short else None)
    # EXIF orientation 5-8 turns the picture a quarter: the decoded shape is the header's transposed.
    shapes = {(height, width), (width, height)} if apply_orientation else {(height, width)}
    if pixels.shape[:2] not in shapes:
        raise DataError(
            f"{source}: the {kind} header says {width}×{height} pixels but {pixels.shape[1]}×{pixels.shape[0]} "
            "decoded: the file is damaged"
        )
    damage = None if layout is None else _jpeg_damage(whole, len(data), layout, pixels, flags, source, kind)
    return _to_uint8(pixels, source, kind, channel_order), damage


@dataclass(frozen=True)
class _JpegLayout:
    """Where a JPEG's coded pixels lie, read from its markers (offsets into the file's bytes)."""

    blocks: int  # 8×8 blocks of the first component (luma), for each of which any scan codes a bit at least
    huffman: bool  # Huffman-coded DCT (baseline, extended, progressive): where that bit holds
    scan: int  # where the first scan's coded data start
    end: int | None  # where the last end-of-image marker after them is; None: the file is cut short

    def coded_bytes(self, size: int) -> int:
        """Bytes from the first scan's data to the end marker (later scans and their headers too), or to the end
        of the ``size`` bytes of a file cut short."""
        return (size if self.end is None else self.end) - self.scan


def _jpeg_layout(data: bytes) -> _JpegLayout | None:
    """The layout of a JPEG's bytes; None for other formats and for markers that lead to no frame and scan (the
    decoder judges those itself)."""
    if not data.startswith(_SOI):
        return None
    pos, frame, segment = 2, 0, b""
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # a fill byte before a marker
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker in _FRAMES:
            frame, segment = marker, data[pos + 4 : end]
        elif marker == _SOS:
            blocks = _luma_blocks(segment)
            if blocks is None:
                return None
            eoi = data.rfind(_EOI, end)
            return _JpegLayout(blocks, frame in _HUFFMAN_DCT_FRAMES, end, None if eoi < 0 else eoi)
        pos = end
    return None


def _luma_blocks(segment: bytes) -> int | None:
    """8×8 blocks of the first component of a frame (T.81 B.2.2: precision, height, width, number of components,
    then each one's id, sampling factors and table), as many as it has without an MCU's padding; None if the
    segment is short or says no size."""
    if len(segment) < 6 or len(segment) < 6 + 3 * segment[5]:
        return None
    height, width = int.from_bytes(segment[1:3], "big"), int.from_bytes(segment[3:5], "big")
    factors = [(segment[7 + 3 * i] >> 4, segment[7 + 3 * i] & 15) for i in range(segment[5])]
    if not factors or min(min(f) for f in factors) == 0:
        return None
    (h, v), h_max, v_max = factors[0], max(f[0] for f in factors), max(f[1] for f in factors)
    columns, rows = -(-width * h // h_max), -(-height * v // v_max)  # ceilings (T.81 A.1.1)
    return -(-columns // 8) * -(-rows // 8)


def _jpeg_damage(
    whole: bytes, size: int, layout: _JpegLayout, pixels: np.ndarray, flags: int, source: str, kind: str
) -> str | None:
    """What is wrong with a JPEG's decoded ``pixels`` when its decoder ran out of data (module docstring), None
    when nothing shows; a ``DataError`` when under half of its rows decoded.

    Args:
        whole: the file's bytes, with an end marker added when it was cut short.
        size: the file's size in bytes.
        layout: ``_jpeg_layout`` of the file as it was.
        pixels: what OpenCV decoded of ``whole`` with ``flags``: (H, W) or (H, W, 3), turned upright when the
            flags apply the EXIF orientation (then the stored last block may be at any corner).
    """
    if pixels.dtype != np.uint8:
        return None
    upright = not flags & cv2.IMREAD_IGNORE_ORIENTATION
    corners = pixels[[0, 0, -1, -1], [0, -1, 0, -1]] if upright else pixels[[-1], [-1]]
    if layout.end is not None and not (corners == _JPEG_FILL).reshape(len(corners), -1).all(axis=1).any():
        return None
    stored_flags = flags | cv2.IMREAD_IGNORE_ORIENTATION
    stored = _imdecode_or_none(whole, stored_flags) if upright else pixels
    # Filler before every marker after the first scan's start (where a decoder may have stopped: a scan's end, a
    # restart, or a marker that corrupt bytes made) is skipped unread by a decoder that had data enough.
    padded = whole[: layout.scan] + _MARKER.sub(lambda marker: _PROBE_FILLER + marker[0], whole[layout.scan :])
    probe = _imdecode_or_none(padded, stored_flags)
    if probe is None and layout.end is not None:
        return None  # no telling
    if stored is not None and probe is not None and np.array_equal(stored, probe):
        return None  # the decoder never read past the data: a picture with a grey corner
    grey = pixels if stored is None else stored
    rows = (grey == _JPEG_FILL).reshape(grey.shape[0], -1).all(axis=1)
    height = len(rows)
    missing = height if rows.all() else int(rows[::-1].argmin())
    if 2 * missing > height:
        raise DataError(
            f"{source}: the image does not decode: its {kind} data run out after {height - missing} of its {height} "
            f"rows ({size:,} bytes; the file is cut short or corrupt, or its header gives a wrong size)"
        )
    where = f": {missing} of its {height} rows are flat grey" if missing else ""
    return (
        f"decoded with errors: the {kind} data run out before the picture does (the file is cut short or "
        f"corrupt){where}; results on it may be wrong"
    )


def _imdecode_or_none(data: bytes, flags: int) -> np.ndarray | None:
    try:
        return cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error:
        return None


def image_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` of an image from its header, without decoding the pixels.

    The stored size, as ``read_image`` decodes it (EXIF orientation ignored). Readers whose annotation files do
    not give image sizes (AI Challenger raw, MPII) call this once per image.

    Raises:
        DataError: the file is missing or unreadable, or its header is refused (as by ``decode_image_bytes``).
    """
    try:
        with open(path, "rb") as file:
            width, height, _ = _header(file, str(path))
    except OSError as err:
        raise DataError(f"{path}: cannot read the image file ({err.strerror or err})") from None
    return height, width


def _header(file: IO[bytes], source: str) -> tuple[int, int, str]:
    """(width, height, format name) from an image file's header, read by Pillow without decoding a pixel (Pillow
    refuses a header of zero size as no image)."""
    try:
        with Image.open(file) as header:
            return header.width, header.height, header.format or "image"
    except Image.DecompressionBombError:
        raise DataError(
            f"{source}: the image is over {2 * (Image.MAX_IMAGE_PIXELS or 0):,} pixels, refused by Pillow's guard "
            "against decompression bombs: use a smaller image"
        ) from None
    except UnidentifiedImageError:
        raise _undecodable(source, file.seek(0, io.SEEK_END)) from None
    except Exception as err:  # Pillow raises assorted errors on damaged headers
        raise DataError(f"{source}: the image header is damaged ({type(err).__name__}: {err})") from None


def _undecodable(source: str, size: int, reason: str | None = None) -> DataError:
    return DataError(
        f"{source}: the image does not decode ({size} bytes; {reason or 'empty, truncated or not an image file'})"
    )


def _to_uint8(pixels: np.ndarray, source: str, kind: str, channel_order: str) -> np.ndarray:
    """OpenCV's (H, W) grey or (H, W, 3) BGR pixels of any depth → (H, W, 3) uint8 in ``channel_order`` (module
    docstring)."""
    if pixels.dtype == np.uint16:
        pixels = cv2.convertScaleAbs(pixels, alpha=255 / 65535)
    elif pixels.dtype.kind == "f":
        if not cv2.checkRange(pixels)[0]:
            raise DataError(f"{source}: the {kind} has NaN or infinite pixel values: it is not a picture")
        if pixels.min() >= 0 and pixels.max() <= 1:
            pixels = cv2.convertScaleAbs(pixels, alpha=255)
        else:
            pixels = cv2.normalize(pixels, None, 0, 255, cv2.NORM_MINMAX, cv2.CV_8U)
    elif pixels.dtype != np.uint8:
        raise DataError(
            f"{source}: the {kind} has {pixels.dtype} pixels, which are not read: save it with 8- or 16-bit "
            "unsigned or floating-point channels"
        )
    from_grey, from_bgr = _TO_ORDER[channel_order]
    conversion = from_grey if pixels.ndim == 2 else from_bgr
    return pixels if conversion is None else cv2.cvtColor(pixels, conversion)


def write_file(path: Path, data: bytes) -> None:
    """``data`` written to ``path`` whole or not at all; an ``OSError`` becomes a ``DataError`` naming the path."""
    try:
        write_bytes_atomic(path, data)
    except OSError as error:
        raise DataError(f"{path}: cannot write the file ({error.strerror or error})") from None


def write_image(
    path: str | os.PathLike[str], image: npt.ArrayLike, jpeg_quality: int = 95, *, channel_order: str = "bgr"
) -> Path:
    """Write an image as PNG or JPEG (by the extension) atomically, creating missing parent folders.

    Args:
        path: the file, ``.png``, ``.jpg`` or ``.jpeg``.
        image: (H, W, 3) uint8 in ``channel_order`` ("bgr", OpenCV's, or "rgb"); grey (H, W) too.
        jpeg_quality: 0-100, for JPEG.

    Returns:
        ``path``.

    Raises:
        DataError: another extension, an image that is not one (``check_image``), or an unwritable folder.
    """
    target = Path(path)
    extension = _EXTENSIONS.get(target.suffix.lower())
    if extension is None:
        raise DataError(f"{target}: unknown image extension {target.suffix!r}; use .png, .jpg or .jpeg")
    check_channel_order(channel_order)
    pixels = check_image(image, what=str(target))
    bgr = pixels if channel_order == "bgr" else cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if extension == ".jpg" else []
    ok, encoded = cv2.imencode(extension, bgr, params)
    if not ok:
        raise DataError(f"{target}: OpenCV could not encode the image as {extension}")
    write_file(target, encoded.tobytes())
    return target
