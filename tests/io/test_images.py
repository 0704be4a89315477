"""Image decoding and header sizes: BGR order unless RGB is asked, EXIF orientation ignored, clear errors for bad
files."""

import io
import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from hrnet.errors import DataError
from hrnet.io.images import MAX_PIXELS, decode_image_bytes, image_size, read_image

EXIF_ORIENTATION = 0x0112


@pytest.fixture(scope="module")
def coco_image(datasets_dir: Path) -> Path:
    return datasets_dir / "coco" / "000000000785.jpg"


def test_reads_bgr_uint8_as_opencv(coco_image):
    image = read_image(coco_image)
    assert image.shape == (425, 640, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, cv2.imread(str(coco_image)))


def test_channel_order_is_bgr_unless_rgb_is_asked(tmp_path):
    bgr = np.zeros((4, 6, 3), np.uint8)
    bgr[..., 2] = 255  # pure red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    np.testing.assert_array_equal(read_image(tmp_path / "red.png")[0, 0], [0, 0, 255])
    np.testing.assert_array_equal(read_image(tmp_path / "red.png", channel_order="rgb")[0, 0], [255, 0, 0])


def test_grey_image_becomes_three_channels(tmp_path):
    cv2.imwrite(str(tmp_path / "grey.png"), np.full((5, 7), 77, np.uint8))
    image = read_image(tmp_path / "grey.png")
    assert image.shape == (5, 7, 3)
    assert (image == 77).all()
    assert (read_image(tmp_path / "grey.png", channel_order="rgb") == 77).all()


def test_rgb_on_request_is_bgr_reversed(coco_image, tmp_path):
    """The training data path reads RGB: the same pixels as the BGR read, channels reversed; a 16-bit image is
    scaled the same in either order."""
    rgb = read_image(coco_image, channel_order="rgb")
    bgr = read_image(coco_image)
    np.testing.assert_array_equal(bgr, cv2.imread(str(coco_image)))
    np.testing.assert_array_equal(bgr[..., ::-1], rgb)
    deep = np.zeros((4, 6, 3), np.uint16)
    deep[..., 2] = 65535  # red, 16 bits
    cv2.imwrite(str(tmp_path / "red16.png"), deep)
    np.testing.assert_array_equal(read_image(tmp_path / "red16.png", channel_order="rgb")[0, 0], [255, 0, 0])
    with pytest.raises(DataError, match="channel_order must be 'rgb' or 'bgr', got 'BGR'"):
        decode_image_bytes(coco_image.read_bytes(), channel_order="BGR")


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
    with pytest.raises(DataError, match=r"absent\.jpg: cannot read the image file \(No such file"):
        image_size(tmp_path / "absent.jpg")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (lambda data: b"", r"the image does not decode \(0 bytes"),
        (lambda data: b"not an image at all", r"the image does not decode \(19 bytes"),
    ],
    ids=["empty", "text"],
)
def test_undecodable_file(tmp_path, coco_image, content, message):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content(coco_image.read_bytes()))
    with pytest.raises(DataError, match=r"bad\.jpg: " + message):
        read_image(path)


def test_header_that_is_not_an_image(tmp_path):
    path = tmp_path / "bad.jpg"
    path.write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=r"bad\.jpg: the image does not decode \(19 bytes"):
        image_size(path)


def test_directory_is_not_an_image(tmp_path):
    with pytest.raises(DataError, match=r"a folder where the image file should be"):
        read_image(tmp_path)
    with pytest.raises(DataError, match=r"cannot read the image file \(Is a directory"):
        image_size(tmp_path)


def _png_header(path: Path, width: int, height: int) -> Path:
    """A 1-bit grey PNG that declares ``width`` × ``height`` pixels but holds one row of data: what a
    decompression bomb's header says, in a few bytes (a whole one is a 0.6 MB file that decodes to 1.9 GB)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = zlib.compress(b"\0" * (1 + (width + 7) // 8))
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", row) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize(
    ("side", "message"),
    [
        (7_000, r"the PNG is 7000×7000 = 49,000,000 pixels, over the limit of 40,000,000 \(a guard"),
        # Over twice Pillow's Image.MAX_IMAGE_PIXELS its own guard refuses the header (and OpenCV's at 40,000²).
        (25_000, r"the image is over [0-9,]+ pixels, refused by Pillow's guard against decompression bombs"),
        (40_000, r"the image is over [0-9,]+ pixels, refused by Pillow's guard against decompression bombs"),
    ],
)
def test_a_decompression_bomb_is_refused_from_its_header(tmp_path, side, message):
    path = _png_header(tmp_path / "bomb.png", side, side)
    started = time.perf_counter()
    with pytest.raises(DataError, match=r"bomb\.png: " + message):
        read_image(path)
    assert time.perf_counter() - started < 1.0
    assert MAX_PIXELS == 40_000_000


def test_the_pixel_limit_is_the_callers(tmp_path, coco_image):
    with pytest.raises(DataError, match=r"000000000785\.jpg: the JPEG is 640×425 = 272,000 pixels, over the limit of"):
        read_image(coco_image, max_pixels=100_000)
    assert read_image(coco_image, max_pixels=272_000).shape == (425, 640, 3)
    path = _png_header(tmp_path / "large.png", 7_000, 7_000)
    assert image_size(path) == (7_000, 7_000)
    # Pillow's own guard holds whatever the caller's limit.
    path = _png_header(tmp_path / "huge.png", 40_000, 40_000)
    with pytest.raises(DataError, match=r"huge\.png: the image is over [0-9,]+ pixels, refused by Pillow's guard"):
        read_image(path, max_pixels=2_000_000_000)


def test_an_opencv_refusal_is_one_clear_error(monkeypatch, coco_image):
    def refuse(data, flags):
        raise cv2.error("OpenCV(5.1.0) imgcodecs: -215:Assertion failed) pixels <= CV_IO_MAX_IMAGE_PIXELS")

    monkeypatch.setattr(cv2, "imdecode", refuse)
    with pytest.raises(DataError, match=r"000000000785\.jpg: OpenCV cannot decode the JPEG 640×425 \(.*CV_IO_MAX_"):
        read_image(coco_image)


def test_bytes_decode_with_the_same_checks(coco_image):
    data = coco_image.read_bytes()
    np.testing.assert_array_equal(decode_image_bytes(data), read_image(coco_image))
    with pytest.raises(DataError, match=r"^the upload: the JPEG is 640×425 = 272,000 pixels, over the limit of 1,000 "):
        decode_image_bytes(data, source="the upload", max_pixels=1_000)
    with pytest.raises(DataError, match=r"^the image: the image does not decode \(0 bytes"):
        decode_image_bytes(b"")
    with pytest.raises(DataError, match=r"^the image: the image does not decode \(5 bytes"):
        decode_image_bytes(b"hello")


def _float_tiff(path: Path, pixels: np.ndarray) -> Path:
    """A 32-bit float TIFF: grey through Pillow (mode F), colour (BGR) through OpenCV."""
    if pixels.ndim == 2:
        Image.fromarray(pixels.astype(np.float32), mode="F").save(path)
    else:
        assert cv2.imwrite(str(path), pixels.astype(np.float32))
    return path


def test_float_tiffs_are_read_as_8_bit(tmp_path):
    grey = np.array([[0.0, 0.25], [0.5, 1.0]], np.float32)
    np.testing.assert_array_equal(read_image(_float_tiff(tmp_path / "g.tif", grey))[..., 0], [[0, 64], [128, 255]])
    # Values outside [0, 1]: stretched from the minimum (0) to the maximum (255).
    depth = np.array([[-2.0, 0.0], [3.0, 8.0]], np.float32)
    image = read_image(_float_tiff(tmp_path / "d.tif", depth))
    np.testing.assert_array_equal(image[..., 0], [[0, 51], [128, 255]])
    assert (image == image[..., :1]).all()
    # Pillow reads no header of a float colour TIFF: the header is checked before decoding, so it is refused.
    with pytest.raises(DataError, match=r"c\.tif: the image does not decode"):
        read_image(_float_tiff(tmp_path / "c.tif", np.ones((3, 4, 3), np.float32)))


def test_sixteen_bit_pngs_are_scaled_to_8_bit(tmp_path):
    values = np.array([[0, 257, 32896], [40000, 65279, 65535]], np.uint16)
    expected = np.round(values / 257).astype(np.uint8)
    assert cv2.imwrite(str(tmp_path / "grey16.png"), values)
    grey = read_image(tmp_path / "grey16.png")
    np.testing.assert_array_equal(grey, np.repeat(expected[..., None], 3, axis=2))
    bgr = np.stack([values // 4, values // 2, values], axis=-1)
    assert cv2.imwrite(str(tmp_path / "colour16.png"), bgr)
    colour = read_image(tmp_path / "colour16.png")
    np.testing.assert_array_equal(colour, np.round(bgr / 257).astype(np.uint8))


def test_pixels_that_are_not_a_picture_are_refused_by_name(tmp_path):
    nan = np.array([[0.0, np.nan]], np.float32)
    with pytest.raises(DataError, match=r"nan\.tif: the TIFF has NaN or infinite pixel values"):
        read_image(_float_tiff(tmp_path / "nan.tif", nan))
    assert cv2.imwrite(str(tmp_path / "signed.tif"), np.array([[-5, 7]], np.int16))
    with pytest.raises(DataError, match=r"signed\.tif: the TIFF has int16 pixels, which are not read: save it with 8-"):
        read_image(tmp_path / "signed.tif")


def test_zero_size_and_damaged_headers(tmp_path):
    with pytest.raises(DataError, match=r"z\.png: the image does not decode"):  # Pillow knows no empty picture
        read_image(_png_header(tmp_path / "z.png", 0, 5))
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, "BMP")
    bmp = bytearray(buffer.getvalue())
    bmp[28:30] = (7).to_bytes(2, "little")  # 7 bits a pixel: no such BMP
    with pytest.raises(DataError, match=r"^x\.bmp: the image header is damaged \(OSError: Unsupported BMP pixel depth"):
        decode_image_bytes(bytes(bmp), source="x.bmp")


def test_pixels_that_are_not_what_the_header_says_are_refused(monkeypatch, coco_image):
    # No real file makes OpenCV and Pillow disagree here; a decoder that returned other pixels must not pass.
    monkeypatch.setattr(cv2, "imdecode", lambda data, flags: np.zeros((10, 20, 3), np.uint8))
    with pytest.raises(DataError, match=r"the JPEG header says 640×425 pixels but 20×10 decoded: the file is damaged"):
        read_image(coco_image)


# Damaged JPEG data: OpenCV prints libjpeg's "Corrupt JPEG data" on stderr and goes on, so hrnet checks the bytes.
FILL = 128  # what libjpeg decodes the blocks it has no data for to


def _textured(height: int, width: int, channels: int = 3) -> np.ndarray:
    """A reproducible picture with detail everywhere (so that no block is flat grey by chance)."""
    shape = (height, width, channels) if channels > 1 else (height, width)
    return cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8), (5, 5), 0)


def _jpeg(pixels: np.ndarray, *params: int) -> bytes:
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 90, *params])
    assert ok
    return encoded.tobytes()


def _coded_data(data: bytes) -> tuple[int, int]:
    """Where a single-scan JPEG's coded data start (after its SOS segment) and end (its EOI marker)."""
    sos = data.index(b"\xff\xda")
    return sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big"), data.rindex(b"\xff\xd9")


def _with_height(data: bytes, height: int) -> bytes:
    """The JPEG with its baseline frame header (SOF0: length, precision, then height) giving another height."""
    sof = data.index(b"\xff\xc0")
    return data[: sof + 5] + height.to_bytes(2, "big") + data[sof + 7 :]


def _decoded(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "hrnet.io.images"]


@pytest.mark.parametrize(
    "params",
    [(), (cv2.IMWRITE_JPEG_PROGRESSIVE, 1), (cv2.IMWRITE_JPEG_RST_INTERVAL, 4)],
    ids=["baseline", "progressive", "restart markers"],
)
def test_sound_jpegs_decode_without_a_word(tmp_path, caplog, params):
    """Flat grey where libjpeg leaves blocks it has no data for, in a picture's last rows or everywhere, is no
    damage when the data hold it; and a JPEG missing only its end marker (which OpenCV alone refuses) is whole."""
    letterboxed = _textured(480, 640)
    letterboxed[240:] = FILL
    pictures = {"photo": _textured(480, 640), "letterboxed": letterboxed, "grey": np.full((64, 96), FILL, np.uint8)}
    for name, pixels in pictures.items():
        data = _jpeg(pixels, *params)
        (tmp_path / f"{name}.jpg").write_bytes(data)
        np.testing.assert_array_equal(read_image(tmp_path / f"{name}.jpg"), _decoded(data))
        (tmp_path / f"{name}_no_end.jpg").write_bytes(data[:-2])
        np.testing.assert_array_equal(read_image(tmp_path / f"{name}_no_end.jpg"), _decoded(data))
    assert _warnings(caplog) == []


def test_a_header_taller_than_its_data_is_a_warning_or_a_refusal(tmp_path, caplog):
    """A grey 640 × 480 JPEG (8 × 8 blocks, no colour to spread) whose header says 800 or 2000 rows. libjpeg
    decodes the first block after the data from the last byte's padding bits, so the 60 block rows the data hold
    and one more are not flat grey: 488 rows."""
    data = _jpeg(_textured(480, 640, channels=1))
    (tmp_path / "tall.jpg").write_bytes(_with_height(data, 800))
    image = read_image(tmp_path / "tall.jpg")
    np.testing.assert_array_equal(image[:480], _decoded(data))
    assert (image[488:] == FILL).all() and not (image[487] == FILL).all()
    assert _warnings(caplog) == [
        f"{tmp_path / 'tall.jpg'}: decoded with errors: the JPEG data run out before the picture does (the file is "
        "cut short or corrupt): 312 of its 800 rows are flat grey; results on it may be wrong"
    ]
    (tmp_path / "taller.jpg").write_bytes(_with_height(data, 2000))
    with pytest.raises(DataError, match=r"taller\.jpg: the image does not decode: its JPEG data run out after 488 of"):
        read_image(tmp_path / "taller.jpg")


def test_a_header_larger_than_its_data_can_hold_is_refused_before_decoding(tmp_path):
    """6000 × 6000 grey pixels are 562,500 blocks of 8 × 8, each coded in a bit at least: over 70 KB."""
    data = _jpeg(_textured(120, 160, channels=1))
    start, end = _coded_data(data)
    sof = data.index(b"\xff\xc0")
    huge = data[: sof + 5] + (6000).to_bytes(2, "big") + (6000).to_bytes(2, "big") + data[sof + 9 :]
    (tmp_path / "huge.jpg").write_bytes(huge)
    with pytest.raises(
        DataError,
        match=rf"huge\.jpg: the image does not decode: its header says 6000×6000 pixels, more than its {end - start:,} "
        r"bytes of JPEG data can hold \(a bit at least for each 8×8 block\): the file is damaged",
    ):
        read_image(tmp_path / "huge.jpg")


def test_a_jpeg_cut_short_decodes_as_far_as_it_goes(tmp_path, caplog):
    data = _jpeg(_textured(480, 640))
    start, end = _coded_data(data)
    (tmp_path / "cut.jpg").write_bytes(data[: start + (end - start) * 3 // 4])
    image = read_image(tmp_path / "cut.jpg")
    (message,) = _warnings(caplog)
    assert message.startswith(f"{tmp_path / 'cut.jpg'}: decoded with errors: the JPEG data run out before the picture")
    grey = int(message.split(": ")[-1].split(" of its 480 rows")[0])
    assert 60 < grey < 240
    assert (image[-grey:] == FILL).all() and not (image[-grey - 1] == FILL).all()
    np.testing.assert_array_equal(image[:240], _decoded(data)[:240])
    read_image(tmp_path / "cut.jpg")
    assert len(_warnings(caplog)) == 1  # once per file: a data set reads an image once per person and epoch
    (tmp_path / "stub.jpg").write_bytes(data[: start + (end - start) // 10])
    with pytest.raises(
        DataError, match=r"stub\.jpg: the image does not decode: its JPEG data run out after \d+ of its"
    ):
        read_image(tmp_path / "stub.jpg")


def test_scrambled_coded_data_are_named(tmp_path, caplog):
    """Random bytes over the last 30 % of the coded data (a marker among them stops the decoder) are a warning;
    over the last 60 %, the picture mostly grey, a refusal. Bytes come as they do in an upload, too."""
    data = _jpeg(_textured(480, 640))
    start, end = _coded_data(data)
    rng = np.random.default_rng(1)
    for name, fraction in (("damaged.jpg", 0.7), ("ruined.jpg", 0.4)):
        cut = start + int((end - start) * fraction)
        (tmp_path / name).write_bytes(data[:cut] + rng.integers(0, 256, end - cut, np.uint8).tobytes() + data[end:])
    read_image(tmp_path / "damaged.jpg")
    assert _warnings(caplog)[0].startswith(f"{tmp_path / 'damaged.jpg'}: decoded with errors: the JPEG data run out")
    with pytest.raises(DataError, match=r"ruined\.jpg: the image does not decode: its JPEG data run out after"):
        read_image(tmp_path / "ruined.jpg")
    for _ in range(2):
        decode_image_bytes((tmp_path / "damaged.jpg").read_bytes(), source="upload")
    assert [m.split(":")[0] for m in _warnings(caplog)[1:]] == ["upload", "upload"]


def test_damage_is_found_in_pictures_turned_upright(tmp_path, caplog):
    """A phone photo turned 180° by its EXIF tag: its missing last rows are at the top once upright."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 3
    buffer = io.BytesIO()
    Image.fromarray(_textured(240, 320)).save(buffer, "JPEG", exif=exif, quality=90)
    (tmp_path / "phone.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) * 4 // 5])
    image = read_image(tmp_path / "phone.jpg", apply_orientation=True)
    assert (image[0] == FILL).all()
    assert _warnings(caplog)[0].startswith(f"{tmp_path / 'phone.jpg'}: decoded with errors")


def test_a_png_cut_short_is_refused_by_name(tmp_path, caplog):
    data = cv2.imencode(".png", _textured(48, 64))[1].tobytes()
    size = len(data) // 2
    (tmp_path / "cut.png").write_bytes(data[:size])
    with pytest.raises(DataError, match=rf"cut\.png: the image does not decode \({size} bytes; the PNG is cut short\)"):
        read_image(tmp_path / "cut.png")
    assert _warnings(caplog) == []
