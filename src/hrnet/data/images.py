"""Image files: decode to RGB pixels, or read only the size from the header.

Pixels are decoded with OpenCV as the official ``JointsDataset`` does (``IMREAD_COLOR | IMREAD_IGNORE_ORIENTATION``,
then BGR → RGB): the EXIF orientation tag is ignored because the annotations were drawn on the stored pixels.
Photos for prediction are read with ``apply_orientation=True``: upright, as a photo viewer shows them.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from hrnet.errors import DataError


def read_image(path: str | Path, *, apply_orientation: bool = False) -> np.ndarray:
    """Decode an image file.

    Args:
        path: a JPEG, PNG or any other format OpenCV decodes; grey or 16-bit images come back as 8-bit RGB.
        apply_orientation: rotate and mirror as the file's EXIF orientation tag says (phone photos: the pixels
            are stored sideways with a tag); False for data sets, whose annotations are on the stored pixels.

    Returns:
        (H, W, 3) uint8 RGB array, rows top to bottom.

    Raises:
        DataError: the file is missing or unreadable, or its content does not decode (empty, truncated, not an
            image).
    """
    path = Path(path)
    try:
        # Reading the bytes ourselves (rather than cv2.imread) tells "cannot read" from "does not decode" and
        # works for any path the OS accepts.
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise DataError(f"{path}: cannot read the image file ({err.strerror or err})") from None
    flags = cv2.IMREAD_COLOR if apply_orientation else cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    image = cv2.imdecode(data, flags) if data.size else None
    if image is None:
        raise DataError(f"{path}: the image does not decode ({data.size} bytes; empty, truncated or not an image file)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def image_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` of an image from its header, without decoding the pixels.

    The stored size, as ``read_image`` decodes it (EXIF orientation ignored). Readers whose annotation files do
    not give image sizes (AI Challenger raw, MPII) call this once per image.

    Raises:
        DataError: the file is missing or unreadable, or its header is not an image header.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
    except FileNotFoundError:
        raise DataError(f"{path}: the image file does not exist") from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image file (its header is not a known image format)") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read the image header ({err.strerror or err})") from None
    return int(height), int(width)
