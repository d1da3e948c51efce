"""The fetcher's manners, the fetch cache and re-runs of `finetune-etl prepare` (--user-agent,
--ignore-opt-outs, --per-host-concurrency, --host-failure-threshold, --batch-deadline; --cache,
--cache-max-age; --incremental-from)."""
import argparse

from schemas.options import MediaOptions


def add_fetch_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of the polite fetcher, its cache and incremental re-runs."""
    manners = parser.add_argument_group("fetching from other people's servers (http(s))")
    manners.add_argument("--user-agent", default=MediaOptions.user_agent, metavar="TEXT",
                         help="the User-Agent every request carries, and the name robots.txt rules are matched "
                              "against (default: %(default)s)")
    manners.add_argument("--ignore-opt-outs", action=argparse.BooleanOptionalAction, default=False,
                         help="do not read robots.txt nor honour X-Robots-Tag: noai / noimageai / noml / none; for "
                              "your own servers only (recorded in the manifest) (default: honour them)")
    manners.add_argument("--per-host-concurrency", type=int, default=MediaOptions.per_host_concurrency, metavar="N",
                         help="most requests in flight to one host from this machine, whatever the worker count "
                              "(default: %(default)s)")
    manners.add_argument("--host-failure-threshold", type=int, default=MediaOptions.host_failure_threshold,
                         metavar="N",
                         help="after N consecutive connection errors, timeouts or DNS failures a host is given up "
                              "for the run: its remaining files become host_unreachable dead letters at once "
                              "(default: %(default)s)")
    manners.add_argument("--batch-deadline", type=float, default=MediaOptions.batch_deadline, metavar="S",
                         help="files of a media batch not fetched within S seconds become timeout dead letters "
                              "while the rest of the batch goes on (default: %(default)s)")
    rerun = parser.add_argument_group("re-runs and the fetch cache")
    rerun.add_argument("--cache", metavar="URL",
                       help="folder or bucket that keeps fetched http(s) media by URL, shared between runs; an "
                            "entry is revalidated with If-None-Match / If-Modified-Since (default: no cache)")
    rerun.add_argument("--cache-max-age", type=float, metavar="S",
                       help="trust a cache entry younger than S seconds without asking the server "
                            "(default: always revalidate)")
    rerun.add_argument("--incremental-from", metavar="URL",
                       help="a previous complete dataset of the same job: rows whose content and media options "
                            "match its documents reuse them (no fetch, no decode); the output is still a "
                            "complete dataset, identical to a run from scratch (default: from scratch)")


def fetch_option_values(args: argparse.Namespace) -> dict:
    """Parsed arguments -> the MediaOptions fields these options set."""
    return dict(user_agent=args.user_agent, ignore_opt_outs=args.ignore_opt_outs,
                per_host_concurrency=args.per_host_concurrency, host_failure_threshold=args.host_failure_threshold,
                batch_deadline=args.batch_deadline, cache=args.cache, cache_max_age=args.cache_max_age)
