"""The split options of `finetune-etl prepare` (--split, --split-seed, --split-by)."""
import argparse

from schemas.options import SPLIT_BY, SplitOptions, split_fractions


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
