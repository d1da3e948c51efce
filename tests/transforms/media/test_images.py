"""transforms/media/images.py on real files from tests/data/images (SOURCES.md says which load and which fail)."""
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from PIL.JpegImagePlugin import JpegImageFile

from schemas.options import MediaOptions
from transforms.media.images import DecodedImage, decode_image
from transforms.media.errors import MediaError
from conftest import TEST_DATA

IMAGES = TEST_DATA / "images"


def _sources() -> dict[str, str]:
    """file name -> the last column of SOURCES.md ("loads: JPEG RGB 128x128" or "fails to load: ...")."""
    if not (IMAGES / "SOURCES.md").is_file():
        return {}
    rows = [line.split("|") for line in (IMAGES / "SOURCES.md").read_text().splitlines() if line.startswith("| ")]
    return {cells[1].strip(): cells[5].strip() for cells in rows if cells[1].strip() != "file"}


SOURCES = _sources()
LOADS = sorted(name for name, result in SOURCES.items() if result.startswith("loads")) or ["<missing>"]

# Every file SOURCES.md says fails to load -> the reason class decode_image gives it, and why that class.
FAILS = {
    "broken.png": "image_unreadable",               # PNG signature, garbage after it: an image, but unreadable
    "truncated_jpeg.jpg": "truncated",              # header fine, pixel data cut short
    "truncated_image.png": "truncated",
    "truncated_end_chunk.png": "truncated",
    "decompression_bomb.gif": "decompression_bomb",  # 4,364,696,535 pixels claimed in 44 bytes
    "seek_too_large.tif": "image_unreadable",       # a BigTIFF header pointing past the end of the file
    "hopper_unknown_pixel_mode.tif": "image_unreadable",  # a TIFF in a pixel mode Pillow does not know
}
DEFAULT = MediaOptions()


@pytest.fixture(scope="module")
def images() -> Path:
    return IMAGES


def _upright(path: Path) -> Image.Image:
    with Image.open(path) as img:
        return ImageOps.exif_transpose(img)


def _reopen(decoded: DecodedImage) -> Image.Image:
    img = Image.open(io.BytesIO(decoded.blob))
    img.load()
    assert Image.MIME[img.format] == decoded.mime_type
    assert img.size == (decoded.width, decoded.height)
    return img


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("name", LOADS)
def test_loadable_files_keep_their_bytes_and_report_upright_size(images, name):
    data = (images / name).read_bytes()
    decoded = decode_image(data, DEFAULT)
    fmt, mode, size = SOURCES[name].split()[1:4]
    assert decoded.blob == data
    assert decoded.mime_type == Image.MIME[fmt]
    assert (decoded.width, decoded.height) == _upright(images / name).size
    with Image.open(images / name) as img:
        assert (img.format, img.mode, f"{img.width}x{img.height}") == (fmt, mode, size)


def test_orientation_swaps_width_and_height(images):
    # orientation_rectangle.jpg is 2x1 in its header with EXIF orientation 8 (a viewer shows 1x2).
    decoded = decode_image((images / "orientation_rectangle.jpg").read_bytes(), DEFAULT)
    assert (decoded.width, decoded.height) == (1, 2)
    # hopper_orientation_6.jpg is square: the swap is there (orientation 6) but cannot change the numbers.
    with Image.open(images / "hopper_orientation_6.jpg") as img:
        assert img.getexif()[0x0112] == 6
        assert (img.height, img.width) == (128, 128)
    decoded = decode_image((images / "hopper_orientation_6.jpg").read_bytes(), DEFAULT)
    assert (decoded.width, decoded.height) == (128, 128)


@pytest.mark.parametrize("name", sorted(FAILS))
def test_files_that_fail_become_media_errors(images, name):
    with pytest.raises(MediaError) as caught:
        decode_image((images / name).read_bytes(), DEFAULT)
    assert caught.value.reason_class == FAILS[name]
    assert caught.value.reason


def test_the_failure_table_covers_every_file_sources_says_fails(images):
    assert sorted(FAILS) == sorted(name for name, result in SOURCES.items() if result.startswith("fails"))


def test_truncated_reason_says_so(images):
    with pytest.raises(MediaError, match="truncated or corrupt"):
        decode_image((images / "truncated_jpeg.jpg").read_bytes(), DEFAULT)


@pytest.mark.parametrize("data", [b"", b"id,uri\n1,apple.jpg\n", b"<html><body>404 Not Found</body></html>", bytes(100)])
def test_non_images_are_not_an_image(tmp_path, data):
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    with pytest.raises(MediaError) as caught:
        decode_image(path.read_bytes(), DEFAULT)
    assert caught.value.reason_class == "not_an_image"


def test_text_named_jpg_says_it_looks_like_text(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_text("this is a caption, not a picture\n")
    with pytest.raises(MediaError, match="starts like text"):
        decode_image(path.read_bytes(), DEFAULT)


def test_a_lying_extension_still_decodes_as_what_it_is(images, tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes((images / "hopper.png").read_bytes())
    decoded = decode_image(path.read_bytes(), DEFAULT)
    assert (decoded.mime_type, decoded.width, decoded.height) == ("image/png", 128, 128)
    assert decoded.blob == path.read_bytes()


def test_small_max_image_pixels_makes_a_normal_image_a_bomb(images):
    data = (images / "hopper.jpg").read_bytes()  # 128 x 128 = 16,384 pixels
    with pytest.raises(MediaError) as caught:
        decode_image(data, MediaOptions(max_image_pixels=16_383))
    assert caught.value.reason_class == "decompression_bomb"
    assert "16,384" in caught.value.reason and "16,383" in caught.value.reason
    assert "--max-image-pixels" in caught.value.reason
    assert decode_image(data, MediaOptions(max_image_pixels=16_384)).width == 128


def test_the_limit_does_not_depend_on_pillows_global(images, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with pytest.raises(MediaError) as caught:
        decode_image((images / "itxt_chunks.png").read_bytes(), MediaOptions(max_image_pixels=1_000_000))
    assert caught.value.reason_class == "decompression_bomb"
    with pytest.raises(MediaError) as caught:
        decode_image((images / "decompression_bomb.gif").read_bytes(), DEFAULT)
    assert caught.value.reason_class == "decompression_bomb"


def test_image_size_sets_the_shorter_side_and_keeps_the_aspect(images):
    decoded = decode_image((images / "389_535.jpg").read_bytes(), MediaOptions(image_size=64))
    assert decoded.mime_type == "image/jpeg"
    assert min(decoded.width, decoded.height) == 64 and decoded.width == 64
    assert abs(decoded.height - 535 * 64 / 389) <= 1
    _reopen(decoded)


def test_image_size_uses_jpeg_draft_mode(images, monkeypatch):
    calls = []
    original = JpegImageFile.draft
    monkeypatch.setattr(JpegImageFile, "draft", lambda self, mode, size: calls.append(size) or original(self, mode, size))
    decode_image((images / "test_image_rgb.jpg").read_bytes(), MediaOptions(image_size=64))
    assert calls == [(85, 64)]


@pytest.mark.parametrize("name", ["524_316.jpg", "123_456.jpg", "itxt_chunks.png", "transparent.gif"])
def test_image_box_fits_inside(images, name):
    decoded = decode_image((images / name).read_bytes(), MediaOptions(image_box=(100, 100)))
    assert decoded.width <= 100 and decoded.height <= 100 and max(decoded.width, decoded.height) == 100
    width, height = _upright(images / name).size
    assert abs(decoded.width / decoded.height - width / height) < 2 / min(decoded.width, decoded.height)
    _reopen(decoded)


def test_never_enlarges():
    data = _png(np.full((10, 10, 3), 200, np.uint8))
    for options in (MediaOptions(image_size=64), MediaOptions(image_box=(100, 100))):
        decoded = decode_image(data, options)
        assert (decoded.blob, decoded.width, decoded.height) == (data, 10, 10)
    decoded = decode_image(data, MediaOptions(image_size=64, image_format="jpeg"))
    assert (decoded.mime_type, decoded.width, decoded.height) == ("image/jpeg", 10, 10)


REENCODED = ["pil_sample_cmyk.jpg", "apng_mode_16bit.png", "pil123p.png", "transparent.gif", "uncompressed_la.png",
             "16bit.s.tif", "tiff_16bit_RGB.tiff", "l_trns.png", "hopper_g4.tif", "hopper_orientation_6.webp"]


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp"])
@pytest.mark.parametrize("name", REENCODED)
def test_reencoding_any_mode_decodes_again(images, name, fmt):
    data = (images / name).read_bytes()
    for options in (MediaOptions(image_format=fmt), MediaOptions(image_format=fmt, image_size=8)):
        decoded = decode_image(data, options)
        assert decoded.mime_type == f"image/{fmt}"
        img = _reopen(decoded)
        assert img.mode in ("L", "LA", "RGB", "RGBA")
        assert decode_image(data, options).blob == decoded.blob  # deterministic
        if options.image_size is None:
            assert img.size == _upright(images / name).size


def test_sixteen_bit_grey_png_is_scaled_not_clipped():
    data = _png(np.full((20, 30), 32768, np.uint16))
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    for fmt in ("png", "jpeg", "webp"):
        img = _reopen(decode_image(data, MediaOptions(image_format=fmt, image_size=10)))
        assert img.size == (15, 10)
        assert abs(int(np.asarray(img.convert("L")).mean()) - 128) <= 1


def test_sixteen_bit_values_are_scaled_alike_in_every_band_of_rows():
    """A 16-bit image of more than one band (2.4 million pixels): each row scales as v / 257, rounded."""
    values = (np.arange(1200, dtype=np.uint32)[:, None] * 53 + np.arange(2000)) % 65536
    data = _png(values.astype(np.uint16))
    img = _reopen(decode_image(data, MediaOptions(image_format="png")))
    assert img.mode == "L" and img.size == (2000, 1200)
    assert np.array_equal(np.asarray(img), (values + 128) // 257)


def test_alpha_is_kept_for_png_and_webp_and_dropped_onto_white_for_jpeg(images):
    data = (images / "pil123p.png").read_bytes()  # palette with a transparent index
    with Image.open(images / "pil123p.png") as source:
        alpha = np.asarray(source.convert("RGBA"))[..., 3]
    clear = tuple(int(i) for i in np.argwhere(alpha == 0)[0])
    for fmt in ("png", "webp"):
        img = _reopen(decode_image(data, MediaOptions(image_format=fmt)))
        assert img.mode == "RGBA" and np.asarray(img)[clear][3] == 0
    img = _reopen(decode_image(data, MediaOptions(image_format="jpeg")))
    assert img.mode == "RGB" and min(np.asarray(img)[clear]) >= 240


def test_jpeg_sources_stay_jpeg_others_become_png(images):
    assert decode_image((images / "hopper.jpg").read_bytes(), MediaOptions(image_size=32)).mime_type == "image/jpeg"
    assert decode_image((images / "hopper.webp").read_bytes(), MediaOptions(image_size=32)).mime_type == "image/png"


def test_reencoded_output_carries_no_metadata(images):
    img = _reopen(decode_image((images / "exif_gps.jpg").read_bytes(), MediaOptions(image_format="jpeg")))
    assert "exif" not in img.info and "icc_profile" not in img.info


@pytest.mark.parametrize("name", ["hopper_orientation_6.jpg", "hopper_orientation_6.webp", "orientation_rectangle.jpg"])
def test_resized_images_are_upright(images, name):
    options = MediaOptions(image_size=64, image_format="png")
    decoded = decode_image((images / name).read_bytes(), options)
    upright = _upright(images / name).convert("RGB")
    scale = min(1, 64 / min(upright.size))
    assert (decoded.width, decoded.height) == (round(upright.width * scale), round(upright.height * scale))
    expected = upright.resize((decoded.width, decoded.height), Image.Resampling.LANCZOS)
    got = np.asarray(_reopen(decoded).convert("RGB"), dtype=np.int16)
    assert np.abs(got - np.asarray(expected, dtype=np.int16)).mean() < 8
    with Image.open(images / name) as raw:
        unturned = raw.convert("RGB").resize(expected.size, Image.Resampling.LANCZOS)
    if re.match("hopper", name):  # the stored (sideways) pixels are far from what we produced
        assert np.abs(got - np.asarray(unturned, dtype=np.int16)).mean() > 20


def _noise_jpeg(width: int, height: int) -> bytes:
    pixels = (np.random.default_rng(5).random((height, width, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def test_a_jpeg_whose_header_claims_more_pixels_than_its_data_holds_is_truncated():
    """A 16x16 JPEG whose SOF header says 9000x9000: Pillow decoded it (grey fill) into a 9000-pixel-wide
    document; libjpeg's premature-end warning now makes it a dead letter."""
    data = bytearray(_noise_jpeg(16, 16))
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 9] = (9000).to_bytes(2, "big") * 2
    with pytest.raises(MediaError) as caught:
        decode_image(bytes(data), MediaOptions())
    assert caught.value.reason_class == "truncated" and "premature end" in caught.value.reason


@pytest.mark.parametrize("options", [MediaOptions(), MediaOptions(image_size=64)])
def test_the_first_half_of_a_jpeg_with_an_end_marker_is_truncated(options):
    data = _noise_jpeg(512, 512)
    with pytest.raises(MediaError) as caught:
        decode_image(data[:len(data) // 2] + b"\xff\xd9", options)
    assert caught.value.reason_class == "truncated"
    assert decode_image(data, options).width in (512, 64)  # the whole file is fine
