"""What `finetune-etl sprites` and `preview` share: options, picking media from a dataset, sampling, decoding
an image, the grid.

A sheet shows `count` items (images or point clouds) sampled by a hash of each item's id with `--seed`,
so the same dataset and options give the same picture, and a larger `--count` keeps the smaller sample.
Items are documents of the modality, and the chunks of that modality in two-chunk documents (a CLIP
pair's image, captioned with the pair's text).
"""
import argparse
import dataclasses
import io
import math
import posixpath
import warnings
from typing import Callable, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image, ImageDraw, ImageFont, ImageOps

from pipelines.arguments import OneLineParser
from pipelines.datasets.dataset_errors import DATASET_ERRORS, dataset_error, fail
from pipelines.datasets.load import UnknownSplit, load_table
from schemas.options import ConfigError
from transforms.hashing import content_hashes
from transforms.storage import write_bytes

BACKGROUND = (255, 255, 255)
LETTERBOX = (236, 236, 236)
INK = (40, 40, 40)
MARGIN = 2  # pixels between a tile's picture and its neighbours
MAX_SHEET_PIXELS = 64_000_000  # about 190 MB of RGB while it is drawn
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


class SheetError(Exception):
    """A user error (no such data, unknown label, bad option): printed as one line, exit code 2."""


@dataclasses.dataclass(frozen=True)
class Items:
    """Media items of a dataset, as equal-length Arrow arrays: ids, labels (null for none), captions, and
    contents (image bytes, or point clouds)."""

    ids: pa.Array
    labels: pa.Array
    captions: pa.Array
    contents: pa.Array

    def take(self, indices: np.ndarray) -> "Items":
        rows = pa.array(indices, pa.int64())
        return Items(*(getattr(self, field.name).take(rows) for field in dataclasses.fields(self)))


def sheet_parser(prog: str, description: str, count: int, noun: str) -> argparse.ArgumentParser:
    """The options both commands take: URL, --output, --count, --label, --tile, --columns, --seed (a mistake
    raises ConfigError: run_command prints it as one line)."""
    parser = OneLineParser(prog=prog, description=description)
    parser.add_argument("url", metavar="URL", help="a prepared dataset (folder, local or any fsspec URL)")
    parser.add_argument("--output", required=True, metavar="FILE",
                        help="picture to write (.png, .jpg or .webp; local or fsspec URL)")
    parser.add_argument("--count", type=_at_least(1), default=count, metavar="N",
                        help=f"{noun} to show (default: %(default)s)")
    parser.add_argument("--label", metavar="L", help=f"only {noun} of documents with this label")
    parser.add_argument("--tile", type=_at_least(32), default=128, metavar="PX",
                        help="side of each square tile in pixels (default: %(default)s)")
    parser.add_argument("--columns", type=_at_least(1), metavar="C",
                        help="tiles per row (default: a square-ish grid)")
    parser.add_argument("--seed", type=int, default=0, metavar="S",
                        help="another seed draws another sample (default: %(default)s)")
    return parser


def _at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least {low}")
        return value
    return parse


def run_command(argv: list[str], parser: argparse.ArgumentParser, draw: Callable[[argparse.Namespace], str]) -> int:
    """Parse argv, run draw(args) -> the lines to print; a mistake in argv, SheetError and missing datasets ->
    one line, exit 2."""
    try:
        args = parser.parse_args(argv)
        output_format(args.output)
        width, height, _, _ = grid_size(args.count, args.tile, args.columns)
        if width * height > MAX_SHEET_PIXELS:
            raise SheetError(f"--count {args.count} with --tile {args.tile} makes a {width:,} x {height:,} pixel "
                             f"picture, more than {MAX_SHEET_PIXELS:,} pixels; ask for fewer or smaller tiles.")
        print(draw(args))
    except (ConfigError, SheetError) as error:
        return fail(str(error))
    except DATASET_ERRORS as error:
        return dataset_error(error)
    return 0


def output_format(output: str) -> str:
    """The Pillow format for an output name, from its extension; SheetError for any other."""
    suffix = posixpath.splitext(output)[1].lower()
    if suffix not in FORMATS:
        raise SheetError(f"--output {output} must end in .png, .jpg or .webp, the picture formats written.")
    return FORMATS[suffix]


def load_items(url: str, modality: str, content: str, split: Optional[str] = None) -> Items:
    """Documents of `modality` with a non-null `content` column, and such chunks of two-chunk documents; of
    one split only when `split` is given (SheetError for a split the dataset does not have).

    Reads only id, label, modality, `content` and chunks. A chunk's caption is its document's first text
    chunk, else the label; its id is the document id and the chunk's position (`id/1`).
    """
    try:
        table = load_table(url, columns=["id", "label", "modality", content, "chunks"], split=split)
    except UnknownSplit as error:
        raise SheetError(unknown_split(url, error)) from None
    docs = table.filter(pc.and_(pc.equal(table["modality"], modality), pc.is_valid(table[content])))
    parts = [Items(docs["id"].combine_chunks(), docs["label"].combine_chunks(),
                   pc.fill_null(docs["label"], "").combine_chunks(), docs[content].combine_chunks())]
    chunks = table["chunks"].combine_chunks()
    flat = pc.list_flatten(chunks)
    if len(flat):
        parents = np.asarray(pc.list_parent_indices(chunks))
        kinds = flat.field("modality")
        texts = np.flatnonzero(np.asarray(pc.fill_null(pc.equal(kinds, "text"), False)))
        first_text = np.full(len(table), len(flat), dtype=np.int64)
        np.minimum.at(first_text, parents[texts], texts)
        media = np.flatnonzero(np.asarray(pc.fill_null(pc.equal(kinds, modality), False))
                               & np.asarray(flat.field(content).is_valid()))
        owners = pa.array(parents[media])
        labels = table["label"].combine_chunks().take(owners)
        has_text = first_text[parents[media]] < len(flat)
        texts_of = flat.field("text").take(pa.array(np.where(has_text, first_text[parents[media]], 0)))
        positions = pa.array(media - np.asarray(chunks.offsets)[parents[media]]).cast(pa.string())
        parts.append(Items(pc.binary_join_element_wise(table["id"].combine_chunks().take(owners), positions, "/"),
                           labels, pc.if_else(pa.array(has_text), texts_of, pc.fill_null(labels, "")),
                           flat.field(content).take(pa.array(media))))
    return Items(*(pa.concat_arrays([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(Items)))


def choose(items: Items, url: str, noun: str, label: Optional[str], count: int, seed: int) -> tuple[Items, str]:
    """The `count` items (of `label`) with the smallest hash of (id, seed), sorted by caption then id,
    and a note when fewer than `count` exist. SheetError when there are none."""
    if not len(items.ids):
        raise SheetError(f"{url} holds no {noun}; {NO_DATA_HINT[noun]}")
    keep = np.arange(len(items.ids))
    if label is not None:
        keep = np.flatnonzero(np.asarray(pc.fill_null(pc.equal(items.labels, label), False)))
        if not keep.size:
            raise SheetError(f"{url} holds no {noun} labeled {label!r}; its labels are {_some_labels(items.labels)}; "
                             "pass one of them to --label, or leave --label out.")
    ids = items.ids.take(pa.array(keep))
    hashes = content_hashes(ids, pa.array(np.full(len(ids), seed, dtype=np.int64)))
    picked = items.take(keep[np.argsort(hashes, kind="stable")[:count]])
    order = pc.sort_indices(pa.table({"caption": picked.captions, "id": picked.ids}),
                            sort_keys=[("caption", "ascending"), ("id", "ascending")])
    note = ""
    if len(picked.ids) < count:
        of = f" labeled {label!r}" if label is not None else ""
        note = f" (the dataset holds only {len(picked.ids)} {noun}{of}, fewer than --count {count}: showing all)"
    return picked.take(np.asarray(order)), note


NO_DATA_HINT = {
    "images": "sprites shows image documents and the images of text-image pairs (prepared with --convert-to-blob); "
              "for meshes use finetune-etl preview.",
    "point clouds": "preview shows mesh documents and the meshes of pairs (prepared with --create-point-clouds); "
                    "for images use finetune-etl sprites.",
}


def unknown_split(url: str, error: UnknownSplit) -> str:
    """The line that says --split names a split the dataset does not have."""
    if not error.names:
        return f"{url} has no splits (it was prepared without --split); leave --split out."
    return f"{url} has no split {error.split!r}; its splits are {', '.join(error.names)}: pass one of them to --split."


def _some_labels(labels: pa.Array) -> str:
    names = sorted(pc.unique(labels.drop_null()).to_pylist())
    if not names:
        return "all empty"
    shown = ", ".join(repr(n) for n in names[:8])
    return shown + (f" and {len(names) - 8} more" if len(names) > 8 else "")


def font(tile: int) -> ImageFont.FreeTypeFont:
    """Pillow's bundled default font at a size that suits the tile."""
    return ImageFont.load_default(size=max(10, tile // 11))


def caption_height(tile: int) -> int:
    """Pixels under each tile that hold its caption."""
    return max(10, tile // 11) + 6


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


def placeholder(lines: list[str], side: int, tile: int) -> Image.Image:
    """A side x side LETTERBOX picture holding `lines` of text (each cut to fit), for an item with nothing to
    draw; the text is set in the sheet's font for `tile`."""
    picture = Image.new("RGB", (side, side), LETTERBOX)
    pen, face = ImageDraw.Draw(picture), font(tile)
    step = caption_height(tile)
    top = (side - step * len(lines)) // 2
    for n, line in enumerate(lines):
        pen.text((side // 2, top + n * step), shorten(line, side - 2 * MARGIN, face), fill=INK, font=face, anchor="ma")
    return picture


def grid_size(n: int, tile: int, columns: Optional[int]) -> tuple[int, int, int, int]:
    """(width, height, columns, rows) in pixels and tiles of a sheet of n tiles."""
    columns = min(columns or math.ceil(math.sqrt(n)), n)
    rows = math.ceil(n / columns)
    return columns * tile, rows * (tile + caption_height(tile)), columns, rows


def shorten(text: str, width: int, face: ImageFont.FreeTypeFont) -> str:
    """text cut (with "...") so it fits in width pixels."""
    text = " ".join(text.split())
    if face.getlength(text) <= width:
        return text
    while text and face.getlength(text + "...") > width:
        text = text[:-1]
    return text.rstrip() + "..."


def draw_sheet(pictures: list[Image.Image], captions: list[str], tile: int, columns: Optional[int]) -> Image.Image:
    """RGB pictures (each fitting in tile - 2 * MARGIN) and captions -> the sheet, picture centred in its tile."""
    width, height, columns, _ = grid_size(len(pictures), tile, columns)
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    pen, face = ImageDraw.Draw(sheet), font(tile)
    for n, (picture, caption) in enumerate(zip(pictures, captions)):
        x, y = (n % columns) * tile, (n // columns) * (tile + caption_height(tile))
        pen.rectangle((x + MARGIN, y + MARGIN, x + tile - MARGIN - 1, y + tile - MARGIN - 1), fill=LETTERBOX)
        sheet.paste(picture, (x + (tile - picture.width) // 2, y + (tile - picture.height) // 2))
        text = shorten(caption, tile - 2 * MARGIN, face)
        pen.text((x + tile // 2, y + tile + 2), text, fill=INK, font=face, anchor="ma")
    return sheet


def write_sheet(pictures: list[Image.Image], captions: list[str], args: argparse.Namespace, noun: str,
                note: str) -> str:
    """Draw the sheet and write it to args.output (a local path or fsspec URL, in the format its extension
    names); returns the line that says what was written."""
    sheet = draw_sheet(pictures, captions, args.tile, args.columns)
    buffer = io.BytesIO()
    fmt = output_format(args.output)
    sheet.save(buffer, fmt, **({"quality": 90} if fmt != "PNG" else {"optimize": True}))
    size = write_bytes(buffer.getvalue(), args.output)
    _, _, columns, rows = grid_size(len(pictures), args.tile, args.columns)
    return (f"finetune-etl: wrote {len(pictures)} {noun} in {_plural(columns, 'column')} x {_plural(rows, 'row')} "
            f"({sheet.width}x{sheet.height} px, {size:,} bytes) to {args.output}{note}")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
