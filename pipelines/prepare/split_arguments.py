"""The split and duplicate options of `finetune-etl prepare` (--split, --split-seed, --split-by;
--near-duplicates and its thresholds, --drop-near-duplicates)."""
import argparse

from schemas.options import SPLIT_BY, DuplicateOptions, SplitOptions, split_fractions


def add_split_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the train/evaluation split options."""
    group = parser.add_argument_group("splits (no document, label or identical content in two splits)")
    group.add_argument("--split", metavar="NAME=F[,NAME=F...]",
                       help="split the dataset, e.g. train=0.8,validation=0.1,test=0.1 (fractions add up to 1); "
                            "shards are named NAME-NNNNN-of-MMMMM and every document gets a split column "
                            "(default: no split)")
    group.add_argument("--split-seed", type=int, default=SplitOptions.seed, metavar="S",
                       help="which split each group goes to is a hash of the group and S (default: %(default)s)")
    group.add_argument("--split-by", choices=SPLIT_BY, default=SplitOptions.by,
                       help="labeled rows: keep each label in one split (label, the default: unseen classes at "
                            "evaluation) or spread each label's documents over the splits (document)")


def split_options(args: argparse.Namespace) -> SplitOptions:
    """Parsed arguments -> SplitOptions (ConfigError on a mistake)."""
    fractions = split_fractions(args.split) if args.split else ()
    return SplitOptions(fractions, args.split_seed, args.split_by)


def add_duplicate_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the near-duplicate options."""
    group = parser.add_argument_group("near duplicates (exact duplicates are always removed)")
    group.add_argument("--near-duplicates", action=argparse.BooleanOptionalAction, default=DuplicateOptions.near,
                       help="find near duplicates: texts equal after normalisation or of MinHash similarity at "
                            "least --near-text-threshold, images within --near-image-distance bits of perceptual "
                            "hash, meshes whose point clouds match; each cluster is one split group and is "
                            "listed in duplicates/ (default: off)")
    group.add_argument("--near-text-threshold", type=float, default=DuplicateOptions.text_threshold, metavar="S",
                       help="word-shingle similarity at which two texts are near duplicates (default: %(default)s)")
    group.add_argument("--near-image-distance", type=int, default=DuplicateOptions.image_distance, metavar="BITS",
                       help="perceptual-hash bits two images may differ in and be near duplicates "
                            "(default: %(default)s)")
    group.add_argument("--drop-near-duplicates", action=argparse.BooleanOptionalAction, default=DuplicateOptions.drop,
                       help="keep one document of each near-duplicate cluster (the smallest id); the others are "
                            "listed in duplicates/ as removed (default: keep all, marked by duplicate_group)")


def duplicate_options(args: argparse.Namespace) -> DuplicateOptions:
    """Parsed arguments -> DuplicateOptions (ConfigError on a mistake)."""
    return DuplicateOptions(args.near_duplicates, args.near_text_threshold, args.near_image_distance,
                            args.drop_near_duplicates)
