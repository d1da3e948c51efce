"""The one rule of what a run may replace at --output: a folder is ours only when it holds our dataset.

Ours: the manifest, `_SUCCESS`, the shards the manifest lists, the dataset card (`README.md`, only beside a
manifest: a folder of the user's with a README of theirs is not ours), our own staging prefixes and, on
object stores, the files of a version (`versions/RUN/manifest.json`, `versions/RUN/README.md`,
`versions/RUN/FOLDER/NAME` with FOLDER a dataset folder: see transforms.commit). Anything else under --output (a user's notes, the run's own input, a
half-copied folder) means the folder is not ours: the run stops before any work, and the commit checks
again under the same rule just before it publishes, so a run never deletes what it did not write.
"""
import posixpath

from schemas.options import ConfigError
from transforms.storage import MANIFEST, SUCCESS, VERSIONS, filesystem, join_url, read_manifest
from transforms.uris import is_local
from transforms.write.dataset_card import README
from transforms.write.formats import DATASET_FOLDERS

STAGING_PREFIX = "_staging-"  # object stores: a run's scratch files, inside the output


class OutputTaken(ConfigError):
    """--output cannot be published to: it holds files that are not ours, or (without --overwrite) a
    complete dataset that another run committed while this one ran."""


def foreign_entries(output: str) -> list[str]:
    """Paths (relative to --output) of the files there that are not part of a finetune-etl dataset."""
    fs, path = filesystem(output)
    if not fs.isdir(path):
        return []
    try:
        manifest = read_manifest(output)
    except ValueError:
        manifest = None
    shards = (manifest or {}).get("shards", {})
    card = {README} if manifest is not None else set()
    ours = {MANIFEST, SUCCESS} | card | {shard["path"] for listed in shards.values() for shard in listed}
    versions = not is_local(output)
    found = (posixpath.relpath(p, path.rstrip("/")) for p in fs.find(path))
    return sorted(p for p in found
                  if p not in ours and not p.startswith(STAGING_PREFIX) and not (versions and _version_file(p)))


def _version_file(relative: str) -> bool:
    """Whether a path relative to --output is one a version holds: versions/RUN/manifest.json,
    versions/RUN/README.md or versions/RUN/FOLDER/NAME with FOLDER a dataset folder."""
    parts = relative.split("/")
    return parts[0] == VERSIONS and (parts[2:] in ([MANIFEST], [README])
                                     or (len(parts) == 4 and parts[2] in DATASET_FOLDERS))


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
