"""Image decoding and header sizes: RGB order, EXIF orientation ignored, clear errors for bad files."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from hrnet.data.images import image_size, read_image
from hrnet.errors import DataError

EXIF_ORIENTATION = 0x0112


@pytest.fixture(scope="module")
def coco_image(datasets_dir: Path) -> Path:
    return datasets_dir / "coco" / "000000000785.jpg"


def test_reads_rgb_uint8(coco_image):
    image = read_image(coco_image)
    assert image.shape == (425, 640, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, cv2.imread(str(coco_image))[:, :, ::-1])


def test_channel_order_is_rgb(tmp_path):
    bgr = np.zeros((4, 6, 3), np.uint8)
    bgr[..., 2] = 255  # pure red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    image = read_image(tmp_path / "red.png")
    np.testing.assert_array_equal(image[0, 0], [255, 0, 0])


def test_grey_image_becomes_three_channels(tmp_path):
    cv2.imwrite(str(tmp_path / "grey.png"), np.full((5, 7), 77, np.uint8))
    image = read_image(tmp_path / "grey.png")
    assert image.shape == (5, 7, 3)
    assert (image == 77).all()


def test_exif_orientation_is_ignored(tmp_path):
    # Annotations are drawn on the stored pixels: a "rotate 90°" tag must not turn the 20 × 40 image.
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    Image.new("RGB", (40, 20), (10, 200, 30)).save(tmp_path / "tagged.jpg", exif=exif)
    assert read_image(tmp_path / "tagged.jpg").shape == (20, 40, 3)
    assert image_size(tmp_path / "tagged.jpg") == (20, 40)


def test_image_size_from_header(coco_image, datasets_dir):
    assert image_size(coco_image) == (425, 640)
    for path in (datasets_dir / "mpii").glob("*.jpg"):
        assert image_size(path) == read_image(path).shape[:2]


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"absent\.jpg: cannot read the image file"):
        read_image(tmp_path / "absent.jpg")
    with pytest.raises(DataError, match=r"absent\.jpg: the image file does not exist"):
        image_size(tmp_path / "absent.jpg")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (lambda data: b"", r"the image does not decode \(0 bytes"),
        (lambda data: data[: len(data) // 2], r"the image does not decode \(66837 bytes"),
        (lambda data: b"not an image at all", r"the image does not decode \(19 bytes"),
    ],
    ids=["empty", "truncated", "text"],
)
def test_undecodable_file(tmp_path, coco_image, content, message):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content(coco_image.read_bytes()))
    with pytest.raises(DataError, match=r"bad\.jpg: " + message):
        read_image(path)


def test_header_that_is_not_an_image(tmp_path):
    path = tmp_path / "bad.jpg"
    path.write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=r"bad\.jpg: not an image file"):
        image_size(path)


def test_directory_is_not_an_image(tmp_path):
    with pytest.raises(DataError, match=r"cannot read the image file"):
        read_image(tmp_path)
    with pytest.raises(DataError, match=r"cannot read the image header"):
        image_size(tmp_path)
