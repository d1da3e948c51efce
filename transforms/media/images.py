"""Images: verify that bytes are a picture, fully decode it, and optionally shrink and re-encode it.

Pure functions (no Beam), called once per fetched image by transforms/media/load_media.py (through decode_sandbox). Every file that cannot
become training data raises MediaError with one of these reason classes:
  not_an_image        the bytes are not an image (text, HTML, empty), whatever the file name says
  image_unreadable    looks like an image, but Pillow cannot read its header, or the format is not a web image
  truncated           the header reads, but decoding the pixels fails (truncated or corrupt data); for JPEGs also
                      libjpeg's "premature end of data" warning, which Pillow decodes past (filling grey)
  decompression_bomb  width * height is above MediaOptions.max_image_pixels (checked before any pixel is decoded)
Running out of memory raises MemoryError, whatever the library raised (decode_sandbox makes it `decode_memory`).
"""
import dataclasses
import functools
import io
import re
from typing import Optional

import numpy as np
import simplejpeg
from PIL import Image, ImageOps

from schemas.options import MediaOptions
from transforms.media.errors import MediaError

_JPEG_FORMATS = ("JPEG", "MPO")  # MPO: a camera JPEG with extra pictures appended; it is image/jpeg to everyone
_OUTPUT_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}
_ROTATED = (5, 6, 7, 8)  # EXIF orientations that swap width and height
_DEEP_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
_ORIENTATION = 0x0112
_BAND_PIXELS = 1 << 20


@dataclasses.dataclass(frozen=True)
class DecodedImage:
    """A verified image: blob (the file's bytes, or the re-encoded ones), its mime_type, and width and height
    in pixels as a viewer shows it (after EXIF orientation)."""

    blob: bytes
    mime_type: str
    width: int
    height: int


def decode_image(data: bytes, options: MediaOptions) -> DecodedImage:
    """Bytes of an image file -> DecodedImage, or MediaError for anything that cannot be training data.

    Without options.image_size, image_box or image_format the blob is `data` itself. Otherwise the first
    frame is turned upright, shrunk (never enlarged) and re-encoded deterministically without metadata.
    """
    if not data:
        raise MediaError("not_an_image", "the file is empty (0 bytes), not an image.")
    img = _open(data, options.max_image_pixels)
    with img:
        header_size = img.size
        if header_size[0] * header_size[1] > options.max_image_pixels:
            raise _bomb(header_size[0] * header_size[1], options.max_image_pixels, header_size)
        try:
            if img.format in _JPEG_FORMATS:
                _check_jpeg_data(data, img.mode)
                turned = _turned(img)  # a JPEG's EXIF is in its header, so it is known before decoding
                target = _target_size(_swap(header_size, turned), options)
                if target is None and options.image_format is None:  # nothing to re-encode: the check decoded it
                    return DecodedImage(data, _mime(img.format), *_swap(header_size, turned))
                if target is not None:  # let libjpeg decode at 1/2, 1/4 or 1/8 scale, still >= target
                    img.draft("RGB", _swap(target, turned))
            img.load()
            turned = _turned(img)  # after load(): a PNG's eXIf chunk may follow the pixels
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:  # a GIF frame beyond its canvas
            raise _pillow_bomb(error, options.max_image_pixels) from None
        except Exception as error:  # Pillow's decoders raise many types; any of them makes a dead letter
            _reraise_memory(error)
            raise MediaError("truncated", f"the file is truncated or corrupt: Pillow stopped decoding its "
                                          f"pixels ({_short(error)}).") from None
        width, height = _swap(header_size, turned)
        target = _target_size((width, height), options)
        if target is None and options.image_format is None:
            return DecodedImage(data, _mime(img.format), width, height)
        fmt = _OUTPUT_FORMATS.get(options.image_format) or ("JPEG" if img.format in _JPEG_FORMATS else "PNG")
        try:
            ImageOps.exif_transpose(img, in_place=True)
            out = _normalize(img)
            if target is not None and out.size != target:
                out = out.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
            blob = _encode(out, fmt, options.image_quality)
        except Exception as error:
            _reraise_memory(error)
            raise MediaError("image_unreadable", f"Pillow could not convert the {img.format} image "
                                                 f"({img.mode}) to {fmt}: {_short(error)}.") from None
        return DecodedImage(blob, Image.MIME[fmt], out.width, out.height)


def _check_jpeg_data(data: bytes, mode: str) -> None:
    """Decode a JPEG's whole entropy-coded data with libjpeg-turbo in strict mode (to grey: colour is not
    needed to see every byte): "premature end of data" (a cut file, or a header that claims more pixels
    than the data holds) is a MediaError `truncated`. Other libjpeg warnings (e.g. extraneous bytes before
    a marker, common in camera files) are left to Pillow's decoder, as are files simplejpeg cannot convert."""
    try:
        simplejpeg.decode_jpeg(data, colorspace="CMYK" if mode == "CMYK" else "GRAY", strict=True)
    except ValueError as error:
        if "remature end" in str(error):
            raise MediaError("truncated", f"the JPEG data ends before all its pixels ({_short(error)}); the file "
                                          "is truncated or its header claims a larger picture than it holds.") from None


@functools.cache
def _web_formats() -> tuple[str, ...]:
    """Pillow formats with an image/* MIME type: JPEG, PNG, GIF, WEBP, TIFF, BMP, ICO, AVIF, ..."""
    Image.init()
    return tuple(f for f in Image.ID if Image.MIME.get(f, "").startswith("image/"))


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Parse the header only (no pixels yet); a MediaError when the bytes are not a readable image."""
    try:
        return Image.open(io.BytesIO(data), formats=_web_formats())
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise _pillow_bomb(error, max_pixels) from None
    except Image.UnidentifiedImageError:
        fmt = _claimed_format(data[:16])
        if fmt is None:
            raise MediaError("not_an_image", f"the bytes are not an image Pillow recognizes{_text_hint(data)}.") from None
        if fmt in _web_formats():
            raise MediaError("image_unreadable", f"the file starts like a {fmt} image, but Pillow cannot read "
                                                 "its header (corrupt, or a variant Pillow does not support).") from None
        raise MediaError("image_unreadable", f"the file is in {fmt} format, not a web image format "
                                             "(JPEG, PNG, GIF, WebP, TIFF, BMP, ...); convert it first.") from None
    except Exception as error:  # e.g. ValueError("Unable to seek to frame") from a broken TIFF
        _reraise_memory(error)
        raise MediaError("image_unreadable", f"Pillow cannot read the image header: {_short(error)}.") from None


def _claimed_format(prefix: bytes) -> Optional[str]:
    """The first Pillow format whose signature check accepts these leading bytes, if any."""
    for fmt in Image.ID:
        accept = Image.OPEN[fmt][1]
        try:
            if accept is not None and accept(prefix):
                return fmt
        except Exception:  # some checks unpack bytes a short file does not have
            pass
    return None


def _text_hint(data: bytes) -> str:
    sample = data[:48].decode("utf-8", "replace")
    if "\ufffd" in sample or not all(c.isprintable() or c.isspace() for c in sample):
        return ""
    return f" (it starts like text: {sample.strip()[:40]!r})"


def _bomb(pixels: int, limit: int, size: Optional[tuple[int, int]] = None) -> MediaError:
    dims = f" ({size[0]}x{size[1]})" if size else ""
    return MediaError("decompression_bomb", f"the image has {pixels:,} pixels{dims}, more than the limit of "
                                            f"{limit:,} (--max-image-pixels); it is refused before decoding.")


def _pillow_bomb(error: Exception, limit: int) -> MediaError:
    """Map Pillow's own DecompressionBombError/Warning (its global limit) to our reason."""
    found = re.search(r"\((\d+) pixels\) exceeds limit of (\d+)", str(error))
    if found is None:
        return MediaError("decompression_bomb", f"Pillow refused the image as a decompression bomb: {_short(error)}.")
    pixels, pillow_limit = int(found[1]), int(found[2])
    if pixels > limit:
        return _bomb(pixels, limit)
    return MediaError("decompression_bomb", f"the image has {pixels:,} pixels, more than Pillow's own limit of "
                                            f"{pillow_limit:,} (PIL.Image.MAX_IMAGE_PIXELS), which "
                                            "--max-image-pixels cannot raise.")


def _reraise_memory(error: Exception) -> None:
    """Raise MemoryError when `error` is running out of memory: a MemoryError, or Pillow's codec status
    "out of memory" (an OSError)."""
    if isinstance(error, MemoryError):
        raise error
    if isinstance(error, OSError) and str(error).startswith("out of memory"):
        raise MemoryError(str(error)) from error


def _short(error: Exception) -> str:
    return (str(error) or type(error).__name__)[:200]


def _mime(fmt: str) -> str:
    return "image/jpeg" if fmt in _JPEG_FORMATS else Image.MIME[fmt]


def _turned(img: Image.Image) -> bool:
    """Whether the EXIF orientation (as ImageOps.exif_transpose reads it) swaps width and height."""
    try:
        return img.getexif().get(_ORIENTATION, 1) in _ROTATED
    except Exception:  # unreadable EXIF: show the pixels as stored
        return False


def _swap(size: tuple[int, int], turned: bool) -> tuple[int, int]:
    return (size[1], size[0]) if turned else size


def _target_size(size: tuple[int, int], options: MediaOptions) -> Optional[tuple[int, int]]:
    """(width, height) to shrink to, keeping the aspect ratio; None when no shrinking is asked or needed."""
    width, height = size
    if options.image_size is not None:
        scale = options.image_size / min(width, height)
    elif options.image_box is not None:
        scale = min(options.image_box[0] / width, options.image_box[1] / height)
    else:
        return None
    if scale >= 1:
        return None
    return max(1, round(width * scale)), max(1, round(height * scale))


def _normalize(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> L, LA, RGB or RGBA with 8 bits per channel and alpha as a channel; no metadata.
    May return `img` itself (its info emptied)."""
    if img.mode in _DEEP_MODES:
        img = _eight_bit(img)
    grey = img.mode in ("1", "L", "LA", "La")
    mode = ("L" if grey else "RGB") + ("A" if img.has_transparency_data else "")
    out = img.convert(mode) if img.mode != mode else img
    out.info = {}  # no EXIF, ICC, text or timestamps in the output: same input, same bytes
    return out


def _eight_bit(img: Image.Image) -> Image.Image:
    """A 16-bit, 32-bit or float grey image -> L, each value v as round(v / 257) clipped to 0..255 (Pillow's own
    conversion clips 16-bit values at 255). Converted a band of _BAND_PIXELS at a time: float64 copies of a whole
    88-megapixel image would take 700 MB each."""
    out = np.empty((img.height, img.width), np.uint8)
    rows = max(1, _BAND_PIXELS // img.width)
    for top in range(0, img.height, rows):
        band = np.asarray(img.crop((0, top, img.width, min(top + rows, img.height))), dtype=np.float64)
        out[top:top + rows] = np.rint(np.clip(band, 0, 65535) / 257)
    return Image.fromarray(out)


def _encode(img: Image.Image, fmt: str, quality: int) -> bytes:
    """An L/LA/RGB/RGBA image -> bytes in fmt (JPEG drops alpha onto white; WebP stores colour)."""
    if fmt == "JPEG" and img.mode in ("LA", "RGBA"):
        flat = Image.new(img.mode[:-1], img.size, "white")
        flat.paste(img.convert(flat.mode), mask=img.getchannel("A"))
        img = flat
    elif fmt == "WEBP" and img.mode in ("L", "LA"):
        img = img.convert("RGB" if img.mode == "L" else "RGBA")
    # PNG level 1: a 299x224 photo encodes in ~6 ms instead of ~19 ms at Pillow's default 6, for ~8% more bytes
    params = {"JPEG": dict(quality=quality), "WEBP": dict(quality=quality, method=4), "PNG": dict(compress_level=1)}
    buffer = io.BytesIO()
    img.save(buffer, fmt, **params[fmt])
    return buffer.getvalue()
