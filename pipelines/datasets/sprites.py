"""`finetune-etl sprites URL --output sprites.png`: a contact sheet of a prepared dataset's images.

The successor of docarray's `plot_image_sprites()`: a deterministic sample of image documents (and the
images of text-image pairs), each letterboxed into a square tile with its label or caption underneath.
Only the sampled images are decoded, JPEGs at a reduced scale.
"""
import argparse
import io
import warnings
from typing import Optional

from PIL import Image, ImageOps

from pipelines.datasets.contact_sheet import LETTERBOX, MARGIN, choose, load_items, run_command, sheet_parser, write_sheet

DESCRIPTION = ("Draw a contact sheet of a prepared dataset's images: image documents and the images of "
               "text-image pairs, sampled by a hash of their ids, with their labels or captions.")


def picture(blob: bytes, side: int) -> Optional[Image.Image]:
    """Image file bytes -> an upright RGB picture fitting in a side x side square (aspect kept; transparency
    shown on the letterbox colour); None when Pillow cannot read the bytes."""
    try:
        with Image.open(io.BytesIO(blob)) as img, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Corrupt EXIF data": the picture is still shown as stored
            img.draft("RGB", (side, side))  # JPEG: let libjpeg decode at 1/2, 1/4 or 1/8 scale
            img = ImageOps.exif_transpose(img)
            rgba = img.convert("RGBA")
    except Exception:  # Pillow's decoders raise many types; the tile stays empty and its caption says why
        return None
    flat = Image.new("RGB", rgba.size, LETTERBOX)
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return ImageOps.contain(flat, (side, side), Image.Resampling.LANCZOS)


def draw(args: argparse.Namespace) -> str:
    """Parsed options -> the sheet written to args.output; returns the line to print."""
    items = load_items(args.url, "image", "blob")
    chosen, note = choose(items, args.url, "images", args.label, args.count, args.seed)
    side = args.tile - 2 * MARGIN
    pictures, captions = [], []
    for blob, caption in zip(chosen.contents.to_pylist(), chosen.captions.to_pylist()):
        image = picture(blob, side)
        pictures.append(image or Image.new("RGB", (side, side), LETTERBOX))
        captions.append(caption if image else f"unreadable: {caption}")
    return write_sheet(pictures, captions, args, "images", note)


def main(argv: list[str]) -> int:
    """`finetune-etl sprites` arguments -> exit code (0 written, 2 user error)."""
    parser = sheet_parser("finetune-etl sprites", DESCRIPTION, count=36, noun="images")
    return run_command(argv, parser, draw)
