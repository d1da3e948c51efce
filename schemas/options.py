"""Options of a run, one dataclass per concern; names follow Finetuner's `CSVOptions` where it has one.

Plain data and validation only, no I/O. A mistake raises `ConfigError` with a sentence that names the
bad value and the fix, before any work starts.
"""
import dataclasses
import math
import re
from typing import Optional

from schemas.modalities import KINDS as MODALITY_NAMES
from schemas.version import USER_AGENT

DIALECTS = ("auto", "excel", "excel-tab", "unix")
LAYOUTS = ("auto", "labeled", "pairs", "scores", "values")
HEADERS = ("auto", "yes", "no")
# Other spellings of a --header value: a YAML config's `header: true` (or `yes`) arrives as "True".
HEADER_SPELLINGS = {"true": "yes", "on": "yes", "1": "yes", "false": "no", "off": "no", "0": "no"}


def header_choice(text: str) -> str:
    """A --header value as written -> auto, yes or no (other words are left for argparse's choices check)."""
    text = text.strip().lower()
    return HEADER_SPELLINGS.get(text, text)


class ConfigError(ValueError):
    """A configuration mistake: the run stops before any work with this one sentence."""


@dataclasses.dataclass(frozen=True)
class CSVOptions:
    """How to read the CSV inputs and which rows to keep.

    dialect: auto (sniffed per file), excel, excel-tab or unix.
    delimiter: the field delimiter, overriding the dialect's (and the sniffing); None keeps the dialect's.
    header: auto (decided per file from its first rows), yes (every file's first row is a header) or no.
    layout: auto, labeled, pairs, scores or values (Finetuner's `is_labeled=True` is `labeled`).
    modalities: forced modality per column (e.g. ("text", "image")), or None to detect from the values.
    size: keep at most this many rows (a deterministic uniform sample by content hash).
    sampling_rate: keep each row with this probability, decided by a hash of its content.
    score_scale: divide scores by this before the [0, 1] check (5 for STS-B).
    """

    dialect: str = "auto"
    delimiter: Optional[str] = None
    encoding: str = "utf-8"
    header: str = "auto"
    layout: str = "auto"
    modalities: Optional[tuple[str, ...]] = None
    size: Optional[int] = None
    sampling_rate: Optional[float] = None
    score_scale: Optional[float] = None

    def __post_init__(self):
        if self.dialect not in DIALECTS:
            raise ConfigError(f"--dialect {self.dialect!r} is not one of {', '.join(DIALECTS)}.")
        if self.delimiter is not None and (len(self.delimiter) != 1 or self.delimiter in '"\r\n'
                                           or not self.delimiter.isascii()):
            raise ConfigError(f"--delimiter {self.delimiter!r} must be one ASCII character other than a quote or a "
                              "line end (or tab, comma, semicolon, pipe, space).")
        if self.delimiter is not None and self.dialect == "excel-tab" and self.delimiter != "\t":
            raise ConfigError(f"--delimiter {self.delimiter!r} contradicts --dialect excel-tab; pass one of them.")
        if self.header not in HEADERS:
            raise ConfigError(f"--header {self.header!r} is not one of {', '.join(HEADERS)}.")
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

    format: a format of transforms.write.formats, or an alias of several ("both": parquet and docarray).
    shard_rows / shard_bytes: upper bounds of one output shard (rows, and Arrow bytes before compression).
    keep_versions: on object stores, earlier published versions kept after a new one is published.
    """

    output: str
    format: str = "both"
    shard_rows: int = 500_000
    shard_bytes: int = 256 * 1024 * 1024
    overwrite: bool = False
    keep_versions: int = 1

    def __post_init__(self):
        if self.shard_rows < 1:
            raise ConfigError(f"--shard-rows {self.shard_rows} must be at least 1.")
        if self.shard_bytes < 1024:
            raise ConfigError(f"--shard-bytes {self.shard_bytes} must be at least 1024.")
        if self.keep_versions < 0:
            raise ConfigError(f"--keep-versions {self.keep_versions} must be 0 or more.")


WORK_UNIT_MULTIPLE = 4


def work_units(total_bytes: int, unit_bytes: int) -> int:
    """How many pieces of about `unit_bytes` to cut `total_bytes` into (write buckets, a file's byte ranges):
    1 when it fits in one, else the count rounded up to a multiple of WORK_UNIT_MULTIPLE. A local runner deals
    a step's pieces round-robin to its workers, so 3 equal pieces on 2 workers take as long as 4 would; a
    multiple of 4 lets 1, 2 or 4 workers finish together. The count does not depend on the machine, so the
    shards do not either."""
    units = max(1, math.ceil(total_bytes / unit_bytes))
    return units if units == 1 else math.ceil(units / WORK_UNIT_MULTIPLE) * WORK_UNIT_MULTIPLE


@dataclasses.dataclass(frozen=True)
class ReadTuning:
    """How work is cut: byte ranges parsed in parallel, rows per batch between stages, and input bytes
    per write bucket (the unit the shuffle groups and one worker sorts in memory); a CSV record longer than
    `max_record_bytes` is a dead letter, not a row."""

    range_bytes: int = 64 * 1024 * 1024
    batch_rows: int = 131_072
    bucket_bytes: int = 64 * 1024 * 1024
    media_batch_rows: int = 32
    max_record_bytes: int = 64 * 1024 * 1024

    def __post_init__(self):
        if self.max_record_bytes < 1024:
            raise ConfigError(f"--max-record-bytes {self.max_record_bytes} must be at least 1024.")


@dataclasses.dataclass(frozen=True)
class MediaOptions:
    """How image and mesh URIs are fetched and decoded (Finetuner's convert_to_blob / create_point_clouds).

    Fetching: per-request timeout (seconds), retries with exponential backoff from `backoff` seconds on
    transient failures, at most `max_bytes` per file, `concurrency` fetches at once per batch.
    Safety: `allowed_roots` limits the local paths a CSV may name (None: any); private, loopback and
    link-local addresses are refused unless `allow_private_network`.
    Images: `max_image_pixels` rejects decompression bombs; `image_size` resizes the shorter side to that
    many pixels, `image_box` (w, h) fits inside a box (at most one of the two); `image_format` re-encodes
    (jpeg, png or webp, None keeps the file's bytes unless resizing); `image_quality` for jpeg and webp.
    Meshes: `point_cloud_size` points sampled per mesh; a file of points only (no faces) with fewer than
    `min_points` distinct points is a `too_few_points` dead letter (0: no minimum).
    Decoding: each image or mesh is decoded in a child process and given up after `decode_timeout` seconds
    (a file that hangs or crashes its decoder becomes a dead letter); 0 decodes in the worker, unguarded.
    `decode_memory` caps each decoder child's memory in bytes (None: sized from the machine; 0: no cap).
    Manners (http(s)): requests carry `user_agent`; robots.txt and X-Robots-Tag opt-outs are honoured unless
    `ignore_opt_outs`; at most `per_host_concurrency` requests are in flight per host on a machine; after
    `host_failure_threshold` consecutive connection errors, timeouts or DNS failures a host is given up for
    the run; a batch's files not fetched within `batch_deadline` seconds are `timeout` dead letters.
    `host_state` is a local folder the run's processes share for that (set by the launcher; None: per process).
    Cache: `cache` (a folder or bucket URL) keeps fetched http(s) media by URL, revalidated with conditional
    requests, or trusted for `cache_max_age` seconds when that is set.
    """

    convert_to_blob: bool = True
    create_point_clouds: bool = True
    fetch_remote: bool = True
    point_cloud_size: int = 2048
    min_points: int = 64
    max_bytes: int = 64 * 1024 * 1024
    timeout: float = 20.0
    retries: int = 3
    backoff: float = 0.5
    concurrency: int = 16
    allowed_roots: Optional[tuple[str, ...]] = None
    allow_private_network: bool = False
    max_image_pixels: int = 89_478_485
    image_size: Optional[int] = None
    image_box: Optional[tuple[int, int]] = None
    image_format: Optional[str] = None
    image_quality: int = 90
    decode_timeout: float = 60.0
    decode_memory: Optional[int] = None
    user_agent: str = USER_AGENT
    ignore_opt_outs: bool = False
    per_host_concurrency: int = 8
    host_failure_threshold: int = 10
    batch_deadline: float = 120.0
    host_state: Optional[str] = None
    cache: Optional[str] = None
    cache_max_age: Optional[float] = None

    def __post_init__(self):
        if self.point_cloud_size < 1:
            raise ConfigError(f"--point-cloud-size {self.point_cloud_size} must be at least 1.")
        if self.min_points < 0:
            raise ConfigError(f"--min-points {self.min_points} must be 0 (no minimum) or a number of points.")
        if self.max_bytes < 1:
            raise ConfigError(f"--max-media-bytes {self.max_bytes} must be at least 1.")
        if self.timeout <= 0 or self.retries < 0 or self.concurrency < 1:
            raise ConfigError("--fetch-timeout must be positive, --fetch-retries at least 0, --fetch-concurrency at least 1.")
        if self.image_size is not None and self.image_box is not None:
            raise ConfigError("--image-size and --image-box contradict each other; pass one of them.")
        if self.image_size is not None and self.image_size < 1:
            raise ConfigError(f"--image-size {self.image_size} must be at least 1.")
        if self.image_box is not None and min(self.image_box) < 1:
            raise ConfigError(f"--image-box {self.image_box} must be two positive sizes, e.g. 224x224.")
        if self.image_format not in (None, "jpeg", "png", "webp"):
            raise ConfigError(f"--image-format {self.image_format!r} is not one of jpeg, png, webp.")
        if not 1 <= self.image_quality <= 100:
            raise ConfigError(f"--image-quality {self.image_quality} must be in 1..100.")
        if self.max_image_pixels < 1:
            raise ConfigError(f"--max-image-pixels {self.max_image_pixels} must be at least 1.")
        if not self.decode_timeout >= 0:
            raise ConfigError(f"--decode-timeout {self.decode_timeout} must be 0 (no time limit) or a positive "
                              "number of seconds.")
        if self.decode_memory is not None and self.decode_memory != 0 and self.decode_memory < 256 * 1024 * 1024:
            raise ConfigError(f"--decode-memory {self.decode_memory} must be 0 (no cap) or at least 256M: a decoder "
                              "needs that much to start.")
        if not self.user_agent.strip() or any(c in self.user_agent for c in "\r\n"):
            raise ConfigError("--user-agent must be one line of text, e.g. 'my-team-etl/1.0 (+https://example.org)'.")
        if self.per_host_concurrency < 1 or self.host_failure_threshold < 1:
            raise ConfigError("--per-host-concurrency and --host-failure-threshold must be at least 1.")
        if not self.batch_deadline > 0:
            raise ConfigError(f"--batch-deadline {self.batch_deadline} must be a positive number of seconds.")
        if self.cache_max_age is not None and not self.cache_max_age >= 0:
            raise ConfigError(f"--cache-max-age {self.cache_max_age} must be 0 or more seconds.")
        if self.cache_max_age is not None and self.cache is None:
            raise ConfigError("--cache-max-age needs --cache URL (the folder or bucket the fetch cache lives in).")


SPLIT_BY = ("label", "document")
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def hub_split_name(name: str) -> str:
    """A split's name as Hugging Face `datasets` knows it (the dataset card's): it allows no '-', so '_'."""
    return name.replace("-", "_")


@dataclasses.dataclass(frozen=True)
class SplitOptions:
    """--split: the splits, as (name, fraction) in the order given (fractions sum to 1; none: no split), the
    seed that orders the groups, and what a group is in labeled rows: every document of a label ("label",
    for unseen classes at evaluation) or a document with its identical copies ("document", each label
    spread over the splits)."""

    fractions: tuple = ()
    seed: int = 0
    by: str = "label"

    def __post_init__(self):
        names = [name for name, _ in self.fractions]
        if len(set(names)) < len(names):
            raise ConfigError(f"--split names a split twice ({', '.join(names)}); give each split one fraction.")
        if len({hub_split_name(name) for name in names}) < len(names):
            raise ConfigError(f"--split names {', '.join(names)} differ only in '-' and '_', which Hugging Face "
                              "datasets reads as one split name (it allows no '-'); rename one.")
        for name, fraction in self.fractions:
            if not _SPLIT_NAME.match(name):
                raise ConfigError(f"--split name {name!r} may hold only letters, digits, _ and -.")
            if not 0 < fraction < 1:
                raise ConfigError(f"--split {name}={fraction:g}: a fraction must be between 0 and 1.")
        if self.fractions and abs(sum(f for _, f in self.fractions) - 1) > 1e-6:
            total = sum(f for _, f in self.fractions)
            raise ConfigError(f"--split fractions add up to {total:g}; they must add up to 1.")
        if self.by not in SPLIT_BY:
            raise ConfigError(f"--split-by {self.by!r} is not one of {', '.join(SPLIT_BY)}.")

    @property
    def names(self) -> tuple:
        return tuple(name for name, _ in self.fractions)


@dataclasses.dataclass(frozen=True)
class DuplicateOptions:
    """--near-duplicates: find documents of nearly the same content (texts whose word-shingle MinHash
    similarity is at least text_threshold, images whose perceptual hashes differ in at most image_distance
    bits, meshes whose normalised point clouds match); drop: keep one document of each cluster."""

    near: bool = False
    text_threshold: float = 0.9
    image_distance: int = 4
    drop: bool = False

    def __post_init__(self):
        if not 0 < self.text_threshold <= 1:
            raise ConfigError(f"--near-text-threshold {self.text_threshold:g} must be above 0 and at most 1.")
        if not 0 <= self.image_distance <= 16:
            raise ConfigError(f"--near-image-distance {self.image_distance} must be between 0 and 16 bits.")
        if self.drop and not self.near:
            raise ConfigError("--drop-near-duplicates needs --near-duplicates (it drops the near duplicates found).")


def split_fractions(text: str) -> tuple:
    """'train=0.8,test=0.2' -> (('train', 0.8), ('test', 0.2)); ConfigError when it does not read so."""
    fractions = []
    for part in text.split(","):
        name, equals, number = part.strip().partition("=")
        try:
            fractions.append((name.strip(), float(number)))
        except ValueError:
            equals = ""
        if not equals:
            raise ConfigError(f"--split {text!r}: write NAME=FRACTION[,NAME=FRACTION...], e.g. "
                              "train=0.8,validation=0.1,test=0.1.")
    return tuple(fractions)

