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
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import IO

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from hrnet.errors import DataError
from hrnet.io.files import read_bytes_capped, write_bytes_atomic

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
    """Decode an image file: ``decode_image_bytes`` of its bytes, with its arguments and result.

    Raises:
        DataError: the file is missing or unreadable, or ``decode_image_bytes`` refuses its content.
    """
    # Reading the bytes ourselves (rather than cv2.imread) tells "cannot read" from "does not decode" and works
    # for any path the OS accepts; the cap stops a huge (sparse) file before it fills the memory.
    data = read_bytes_capped(path, MAX_IMAGE_BYTES, "image file")
    return decode_image_bytes(
        data, source=str(path), apply_orientation=apply_orientation, max_pixels=max_pixels, channel_order=channel_order
    )


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
            over ``max_pixels``, pixels that do not decode or are not what the header says, or a pixel type not read.
    """
    check_channel_order(channel_order)
    width, height, kind = _header(io.BytesIO(data), source)
    if width * height > max_pixels:
        raise DataError(
            f"{source}: the {kind} is {width}×{height} = {width * height:,} pixels, over the limit of {max_pixels:,} "
            "(a guard against decompression bombs): use a smaller image, or raise the limit (--max-megapixels of "
            "hrnet predict and hrnet serve)"
        )
    flags = _DECODE_FLAGS if apply_orientation else _DECODE_FLAGS | cv2.IMREAD_IGNORE_ORIENTATION
    try:
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as err:  # e.g. over OpenCV's own limit, CV_IO_MAX_IMAGE_PIXELS
        problem = getattr(err, "err", None) or str(err).strip().splitlines()[-1]
        raise DataError(f"{source}: OpenCV cannot decode the {kind} {width}×{height} ({problem})") from None
    if pixels is None:
        raise _undecodable(source, len(data))
    # EXIF orientation 5-8 turns the picture a quarter: the decoded shape is the header's transposed.
    shapes = {(height, width), (width, height)} if apply_orientation else {(height, width)}
    if pixels.shape[:2] not in shapes:
        raise DataError(
            f"{source}: the {kind} header says {width}×{height} pixels but {pixels.shape[1]}×{pixels.shape[0]} "
            "decoded: the file is damaged"
        )
    return _to_uint8(pixels, source, kind, channel_order)


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


def _undecodable(source: str, size: int) -> DataError:
    return DataError(f"{source}: the image does not decode ({size} bytes; empty, truncated or not an image file)")


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
