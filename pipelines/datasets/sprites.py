"""`finetune-etl sprites URL --output sprites.png`: a contact sheet of a prepared dataset's images.

The successor of docarray's `plot_image_sprites()`: a deterministic sample of image documents (and the
images of text-image pairs), each letterboxed into a square tile with its label or caption underneath.
Only the sampled images are decoded, JPEGs at a reduced scale. `--split NAME` samples one split's;
`--duplicates` draws a sheet per near-duplicate cluster instead (pipelines.datasets.duplicate_sheets).
"""
import argparse

from PIL import Image

from pipelines.datasets.contact_sheet import (LETTERBOX, MARGIN, choose, load_items, picture, run_command,
                                              sheet_parser, write_sheet)
from pipelines.datasets.duplicate_sheets import draw_duplicates

DESCRIPTION = ("Draw a contact sheet of a prepared dataset's images: image documents and the images of "
               "text-image pairs, sampled by a hash of their ids, with their labels or captions.")


def draw(args: argparse.Namespace) -> str:
    """Parsed options -> the sheet written to args.output (a sheet per cluster with --duplicates); returns
    the lines to print."""
    if args.duplicates:
        return draw_duplicates(args)
    items = load_items(args.url, "image", "blob", args.split)
    chosen, note = choose(items, args.url, "images", args.label, args.count, args.seed)
    side = args.tile - 2 * MARGIN
    pictures, captions = [], []
    for blob, caption in zip(chosen.contents.to_pylist(), chosen.captions.to_pylist()):
        image = picture(blob, side)
        pictures.append(image or Image.new("RGB", (side, side), LETTERBOX))
        captions.append(caption if image else f"unreadable: {caption}")
    return write_sheet(pictures, captions, args, "images", note)


def parser() -> argparse.ArgumentParser:
    """The options of sheet_parser, and --split and --duplicates."""
    p = sheet_parser("finetune-etl sprites", DESCRIPTION, count=36, noun="images")
    p.add_argument("--split", metavar="NAME", help="only documents of this split (of a dataset prepared with --split)")
    p.add_argument("--duplicates", action="store_true",
                   help="a sheet per near-duplicate cluster of images or meshes, to FILE-1.png, FILE-2.png, ...")
    return p


def main(argv: list[str]) -> int:
    """`finetune-etl sprites` arguments -> exit code (0 written, 2 user error)."""
    return run_command(argv, parser(), draw)
