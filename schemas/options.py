"""Options of a run, one dataclass per concern; names follow Finetuner's `CSVOptions` where it has one.

Plain data and validation only, no I/O. A mistake raises `ConfigError` with a sentence that names the
bad value and the fix, before any work starts.
"""
import dataclasses
from typing import Optional

DIALECTS = ("auto", "excel", "excel-tab", "unix")
LAYOUTS = ("auto", "labeled", "pairs", "scores", "values")
FORMATS = ("parquet", "docarray", "both")
MODALITY_NAMES = ("text", "image", "mesh")


class ConfigError(ValueError):
    """A configuration mistake: the run stops before any work with this one sentence."""


@dataclasses.dataclass(frozen=True)
class CSVOptions:
    """How to read the CSV inputs and which rows to keep.

    dialect: auto (sniffed per file), excel, excel-tab or unix.
    layout: auto, labeled, pairs, scores or values (Finetuner's `is_labeled=True` is `labeled`).
    modalities: forced modality per column (e.g. ("text", "image")), or None to detect from the values.
    size: keep at most this many rows (a deterministic uniform sample by content hash).
    sampling_rate: keep each row with this probability, decided by a hash of its content.
    score_scale: divide scores by this before the [0, 1] check (5 for STS-B).
    """

    dialect: str = "auto"
    encoding: str = "utf-8"
    header: bool = False
    layout: str = "auto"
    modalities: Optional[tuple[str, ...]] = None
    size: Optional[int] = None
    sampling_rate: Optional[float] = None
    score_scale: Optional[float] = None

    def __post_init__(self):
        if self.dialect not in DIALECTS:
            raise ConfigError(f"--dialect {self.dialect!r} is not one of {', '.join(DIALECTS)}.")
        if self.layout not in LAYOUTS:
            raise ConfigError(f"--layout {self.layout!r} is not one of {', '.join(LAYOUTS)}.")
        try:
            "a".encode(self.encoding)
        except LookupError:
            raise ConfigError(f"--encoding {self.encoding!r} is not an encoding Python knows.") from None
        if self.modalities is not None:
            bad = [m for m in self.modalities if m not in MODALITY_NAMES]
            if bad or not self.modalities:
                raise ConfigError(
                    f"--modalities {','.join(self.modalities)!r} must list one of {', '.join(MODALITY_NAMES)} per column."
                )
        if self.size is not None and self.size < 1:
            raise ConfigError(f"--size {self.size} must be a positive number of rows.")
        if self.sampling_rate is not None and not 0 < self.sampling_rate <= 1:
            raise ConfigError(f"--sampling-rate {self.sampling_rate} must be in (0, 1].")
        if self.score_scale is not None and not self.score_scale > 0:
            raise ConfigError(f"--score-scale {self.score_scale} must be a positive number.")
        if self.score_scale is not None and self.layout not in ("auto", "scores"):
            raise ConfigError(f"--score-scale only applies to --layout scores, not --layout {self.layout}.")


@dataclasses.dataclass(frozen=True)
class OutputOptions:
    """Where and how the dataset is written.

    shard_rows / shard_bytes: upper bounds of one output shard (rows, and Arrow bytes before compression).
    """

    output: str
    format: str = "both"
    shard_rows: int = 500_000
    shard_bytes: int = 256 * 1024 * 1024
    overwrite: bool = False

    def __post_init__(self):
        if self.format not in FORMATS:
            raise ConfigError(f"--format {self.format!r} is not one of {', '.join(FORMATS)}.")
        if self.shard_rows < 1:
            raise ConfigError(f"--shard-rows {self.shard_rows} must be at least 1.")
        if self.shard_bytes < 1024:
            raise ConfigError(f"--shard-bytes {self.shard_bytes} must be at least 1024.")

    @property
    def writes_parquet(self) -> bool:
        return self.format in ("parquet", "both")

    @property
    def writes_docarray(self) -> bool:
        return self.format in ("docarray", "both")


@dataclasses.dataclass(frozen=True)
class ReadTuning:
    """How work is cut: byte ranges parsed in parallel, rows per batch between stages, and input bytes
    per write bucket (the unit the shuffle groups and one worker sorts in memory)."""

    range_bytes: int = 64 * 1024 * 1024
    batch_rows: int = 131_072
    bucket_bytes: int = 64 * 1024 * 1024
