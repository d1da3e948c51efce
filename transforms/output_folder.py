"""The one rule of what a run may replace at --output: a folder is ours only when it holds our dataset.

Ours: the manifest, `_SUCCESS`, the shards the manifest lists, and our own staging prefixes. Anything
else under --output (a user's notes, the run's own input, a half-copied folder) means the folder is not
ours: the run stops before any work, and the commit checks again under the same rule just before it
publishes, so a run never deletes what it did not write.
"""
import json
import posixpath

from schemas.options import ConfigError
from transforms.storage import MANIFEST, SUCCESS, filesystem, join_url

STAGING_PREFIX = "_staging-"  # object stores: a run's staged files, inside the output


class OutputTaken(ConfigError):
    """--output cannot be published to: it holds files that are not ours, or (without --overwrite) a
    complete dataset that another run committed while this one ran."""


def foreign_entries(output: str) -> list[str]:
    """Paths (relative to --output) of the files there that are not part of a finetune-etl dataset."""
    fs, path = filesystem(output)
    if not fs.isdir(path):
        return []
    ours = {MANIFEST, SUCCESS}
    if fs.exists(join_url(path, MANIFEST)):
        with fs.open(join_url(path, MANIFEST), "rb") as handle:
            try:
                shards = json.load(handle).get("shards", {})
            except ValueError:
                shards = {}
        ours |= {shard["path"] for listed in shards.values() for shard in listed}
    found = (posixpath.relpath(p, path.rstrip("/")) for p in fs.find(path))
    return sorted(p for p in found if p not in ours and not p.startswith(STAGING_PREFIX))


def check_replaceable(output: str, overwrite: bool) -> None:
    """ConfigError (OutputTaken) unless a run may publish to `output`: nothing foreign there, and no
    complete dataset unless `overwrite`."""
    foreign = foreign_entries(output)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise OutputTaken(f"--output {output!r} holds files that are not part of a finetune-etl dataset ({shown}); "
                          "nothing was touched: give an empty or new folder, or move those files.")
    fs, path = filesystem(output)
    if not overwrite and fs.exists(join_url(path, SUCCESS)):
        raise OutputTaken(f"--output {output!r} already holds a complete dataset; pass --overwrite to replace it.")
