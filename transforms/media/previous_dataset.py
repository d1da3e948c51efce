"""What a run given --incremental-from may reuse of a previous dataset: its Parquet document shards, the
media root its relative URIs are relative to, and whether its media were made the way this run makes them.

Media are reused only when the previous run's tool version and every media option that shapes a loaded
file (CONTENT_OPTIONS) or decides whether it may be loaded at all are this run's; otherwise nothing is, and
`refused` says why in one sentence.
"""
import dataclasses
import json
import os
from typing import Optional

from schemas.options import ConfigError, MediaOptions
from transforms.storage import SUCCESS, filesystem, join_url, read_manifest
from transforms.uris import redact

# Media options that shape a loaded image or point cloud, or decide which files may be loaded.
CONTENT_OPTIONS = ("convert_to_blob", "create_point_clouds", "point_cloud_size", "min_points", "max_bytes",
                   "max_image_pixels", "image_size", "image_box", "image_format", "image_quality",
                   "allowed_roots", "allow_private_network", "ignore_opt_outs")


@dataclasses.dataclass(frozen=True)
class PreviousDataset:
    """A previous complete dataset: where it is, its run, its documents' Parquet shards (URLs), its media
    root, the .docs inputs its documents may come from (their media did not come from their URIs), why
    nothing of it is reused ('' when its media are), and how many documents it has."""

    url: str
    run_id: str
    shards: tuple[str, ...]
    media_root: Optional[str]
    excluded_sources: frozenset
    refused: str = ""
    documents: int = 0  # as its manifest counts them

    def manifest(self) -> dict:
        """The manifest's `incremental` section."""
        return {"from": redact(self.url), "run_id": self.run_id, "reused": not self.refused,
                "not_reused_because": self.refused or None}

    def note(self) -> str:
        """The line a launcher prints when nothing is reused."""
        return f"finetune-etl: --incremental-from {redact(self.url)}: reusing nothing: {self.refused}"


def open_previous(url: str, media: MediaOptions, tool: str, loads_media: bool = True) -> PreviousDataset:
    """--incremental-from URL, this run's media options, tool and whether it loads media -> the
    PreviousDataset there; ConfigError (one sentence) when it is not a complete dataset of ours."""
    url = url if "://" in url else os.path.abspath(url)
    try:
        manifest = read_manifest(url)
        fs, path = filesystem(join_url(url, SUCCESS))
        complete = manifest is not None and fs.exists(path)
    except ValueError:
        raise ConfigError(f"--incremental-from {url!r} holds a manifest.json that is not JSON; give the folder "
                          "of a dataset finetune-etl prepare finished.") from None
    except OSError as exc:
        raise ConfigError(f"--incremental-from {url!r} cannot be read ({type(exc).__name__}: {exc}).") from None
    if not complete:
        raise ConfigError(f"--incremental-from {url!r} is not a complete dataset (a finished run leaves "
                          "manifest.json and _SUCCESS there); give the folder of a dataset finetune-etl prepare "
                          "finished.")
    if not str(manifest.get("tool", "")).startswith("finetune-etl ") or "shards" not in manifest:
        raise ConfigError(f"--incremental-from {url!r} holds a manifest.json that finetune-etl prepare did not "
                          "write; give the folder of a dataset it finished.")
    shards = tuple(join_url(url, shard["path"]) for shard in manifest["shards"].get("documents", []))
    excluded = frozenset(i["url"] for i in manifest.get("inputs", []) if i.get("format") == "docarray")
    return PreviousDataset(url, manifest.get("run_id", ""), shards, manifest.get("media_root"), excluded,
                           _refusal(manifest, media, tool, loads_media),
                           manifest.get("counts", {}).get("documents_written", 0))


def _refusal(manifest: dict, media: MediaOptions, tool: str, loads_media: bool) -> str:
    """Why the previous dataset's media cannot stand for this run's ('' when they can)."""
    if not loads_media:
        return "this run loads no images or meshes (only loaded media are reused; text is read again)."
    if manifest["tool"] != tool:
        return f"it was made by {manifest['tool']}, this is {tool}."
    if not manifest["shards"].get("documents"):
        return "it has no Parquet documents (its --format did not include parquet)."
    previous, current = manifest.get("options", {}).get("media", {}), _plain(dataclasses.asdict(media))
    differ = [f"{name}: {previous.get(name)!r} there, {current[name]!r} here" for name in CONTENT_OPTIONS
              if previous.get(name) != current[name]]
    if differ:
        return f"its media options differ from this run's ({'; '.join(differ)})."
    return ""


def _plain(options: dict) -> dict:
    """Option values as a manifest holds them (tuples as lists)."""
    return json.loads(json.dumps(options))
