"""``as_gray``: every kind of image input (path, array of any common dtype, PIL image) gives the
same grayscale image or one clear line; arrays get the same size checks as files."""
import struct

import cv2
import numpy as np
import pytest

import pygmatch
from pygmatch.data.images import MIN_SIDE, as_gray, list_images, read_gray
from pygmatch.errors import PygmatchError


@pytest.fixture(scope="module")
def bgr(embedded_dir):
    return cv2.imread(str(list_images(embedded_dir)[0]), cv2.IMREAD_COLOR)


def test_float_and_integer_colour_arrays_give_the_uint8_result(bgr):
    want = as_gray(bgr)
    assert want.dtype == np.uint8 and want.shape == bgr.shape[:2]
    for variant in (bgr.astype(np.float64) / 255, bgr.astype(np.float32), bgr.astype(np.int64), bgr.astype(np.uint16) * 257):
        got = as_gray(variant)
        assert got.dtype == np.uint8 and got.shape == want.shape, variant.dtype
        assert np.abs(got.astype(int) - want).max() <= 1, variant.dtype
    assert np.array_equal(as_gray(bgr[:, :, :1]), bgr[:, :, 0])  # H×W×1
    assert as_gray(bgr[:, ::-1, 0]).flags.c_contiguous  # a flipped view is fine for OpenCV afterwards


def test_pil_images_are_read_in_their_own_rgb_order(bgr):
    Image = pytest.importorskip("PIL.Image")
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    from_pil = as_gray(Image.fromarray(rgb))
    assert np.abs(from_pil.astype(int) - as_gray(bgr)).max() <= 1  # the same image as the BGR array
    assert np.abs(as_gray(Image.fromarray(rgb).convert("RGBA")).astype(int) - as_gray(bgr)).max() <= 1
    assert np.array_equal(as_gray(Image.fromarray(bgr[:, :, 0])), bgr[:, :, 0])  # mode L
    # an RGB *array* is documented as read as BGR: red and blue weights swap, the result differs
    assert np.abs(as_gray(rgb).astype(int) - as_gray(bgr)).max() > 1


def test_tiny_arrays_are_refused_like_tiny_files(tmp_path, bgr):
    small = bgr[:20, :40]
    cv2.imwrite(str(tmp_path / "small.png"), small)
    with pytest.raises(PygmatchError, match=f"small.png: image is 40x20, smaller than {MIN_SIDE} px"):
        as_gray(tmp_path / "small.png")
    with pytest.raises(PygmatchError, match=f"image array: image is 40x20, smaller than {MIN_SIDE} px"):
        as_gray(small)
    with pytest.raises(PygmatchError, match=f"image array: image is 0x0, smaller than {MIN_SIDE} px"):
        as_gray(np.zeros((0, 0), np.uint8))
    with pytest.raises(PygmatchError, match="image is 0x0"):
        as_gray(np.zeros((0, 0, 3), np.float64))
    Image = pytest.importorskip("PIL.Image")
    with pytest.raises(PygmatchError, match="image is 40x20"):
        as_gray(Image.fromarray(np.ascontiguousarray(small[:, :, ::-1])))


@pytest.mark.parametrize("bad, message", [
    (np.full((64, 64, 3), np.nan), "NaN or infinite"),
    (np.full((64, 64), 70000, np.int32), r"values from 70000 to 70000; expected 0..65535 \(up to 16 bits\)"),
    (np.full((64, 64), -3, np.int16), "values from -3 to -3"),
    (np.full((64, 64), -0.5), "values from -0.5 to -0.5"),
    (np.zeros((64, 64, 2), np.uint8), r"got shape \(64, 64, 2\)"),
    (np.zeros(64, np.uint8), "expected H×W"),
    (np.zeros((64, 64), bool), "dtype bool"),
    (np.zeros((64, 64), complex), "dtype complex128"),
    (None, "got NoneType"),
    ([["a", "b"]], "got list"),
])
def test_bad_arrays_are_one_line(bad, message):
    with pytest.raises(PygmatchError, match=message):
        as_gray(bad)


def test_integer_images_are_scaled_by_their_bit_depth(bgr):
    """Issue #32, item 12: 12-bit data in a uint16 (a camera's, a microscope's) was scaled as if it
    were 16-bit, 0..4095 -> 0..16, and gave 0 keypoints without a word. Now integers are scaled by
    the smallest of 8, 10, 12, 14, 16 bits that holds their largest value."""
    from pygmatch.data.features import extract

    gray = as_gray(bgr)
    assert gray.max() > 240  # a real photograph over the whole range, so its 12-bit copy reaches the top bits
    for bits, dtype in ((12, np.uint16), (12, np.int32), (10, np.uint16), (14, np.int64), (16, np.uint16)):
        top = 2 ** bits - 1
        deep = ((gray.astype(np.int64) * top + 127) // 255).astype(dtype)
        got = as_gray(deep)
        assert got.dtype == np.uint8 and np.abs(got.astype(int) - gray).max() <= 1, (bits, dtype)
    twelve = ((gray.astype(np.int64) * 4095 + 127) // 255).astype(np.uint16)
    want = len(extract(gray, "sift", 1024))
    assert want > 500 and len(extract(as_gray(twelve), "sift", 1024)) >= 0.9 * want
    assert len(extract(as_gray(twelve[..., None].repeat(3, axis=2)), "sift", 1024)) >= 0.9 * want  # colour, 12-bit
    assert np.array_equal(as_gray(gray.astype(np.uint16)), gray)  # 8-bit data in a uint16 stays as it is


def jpeg_with_orientation(image: np.ndarray, orientation: int) -> bytes:
    """A JPEG of ``image`` whose EXIF block holds only an orientation tag (6: turn 90° clockwise to view)."""
    ok, jpeg = cv2.imencode(".jpg", image)
    assert ok
    ifd = struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(">I", 0)
    payload = b"Exif\x00\x00" + b"MM\x00\x2a" + struct.pack(">I", 8) + ifd
    jpeg = jpeg.tobytes()
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def test_photographs_are_read_as_stored_whatever_their_exif_orientation(tmp_path):
    """A portrait phone photograph is stored landscape with an orientation tag. COLMAP reads the
    stored pixels, so pygmatch must too: its keypoints go into COLMAP databases and are compared
    with COLMAP cameras (width and height swapped otherwise)."""
    stored = np.tile(np.arange(80, dtype=np.uint8)[None] * 3, (50, 1))  # 80 wide, 50 high
    path = tmp_path / "portrait.jpg"
    path.write_bytes(jpeg_with_orientation(stored, 6))
    assert cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).shape == (80, 50)  # OpenCV's default turns it
    image = read_gray(path, None)
    assert image.shape == (50, 80) and abs(int(image[25, 79]) - 237) < 8  # the bright column stays on the right
    assert as_gray(path).shape == (50, 80)
    assert pygmatch.Pipeline.load("nn").extract(path).original_size == (80, 50)
    pycolmap = pytest.importorskip("pycolmap")
    bitmap = pycolmap.Bitmap.read(str(path), False)
    assert (bitmap.width, bitmap.height) == (80, 50)  # the size COLMAP gives the image's camera
