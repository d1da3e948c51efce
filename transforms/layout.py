"""CSV row batches -> candidate document batches, by the run's layout (plain Arrow, no Beam: the ApplyLayout
stage in transforms/apply_layout.py runs it in a pipeline, `finetune-etl inspect` on a file's first rows).

labeled: one document per row, label = second column.
pairs:   query-document rows; the query and each document become documents labelled with the query's
         text (duplicates are removed later, when documents meet in the write stage). When the two
         columns hold different modalities it is CLIP data: one two-chunk document per row, no label.
scores:  one two-chunk document per row with a score in [0, 1] (after --score-scale).
values:  every cell is an unlabelled document.

A candidate batch has DOCUMENT_SCHEMA's columns without `id`, plus `_key`: a uint64 content hash that
decides the write bucket, duplicate detection and the id.
"""
import dataclasses
from typing import Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas import modalities as modality
from schemas.documents import CANDIDATE_SCHEMA, CHUNK_TYPE, KEY, RAW, DeadLetter
from schemas.modalities import PAIR
from transforms.document_keys import document_keys
from transforms.hashing import column_hashes
from transforms.uris import ABSOLUTE_URI, folder_within

STAGE = "layout"


@dataclasses.dataclass(frozen=True)
class LayoutSpec:
    """The run's layout, each content column's modality (`modalities_forced`: given by --modalities, not
    detected), the score divisor, and the folder relative media paths are kept relative to."""

    layout: str
    modalities: tuple
    score_scale: Optional[float] = None
    modalities_forced: bool = False
    media_root: Optional[str] = None  # relative media paths are kept relative to it (uris.common_folder)

    @property
    def is_clip(self) -> bool:
        return self.layout == "pairs" and len(set(self.modalities)) > 1

    @property
    def removes_duplicates(self) -> bool:
        """Pairs keep one document per distinct (content, label); CLIP one per distinct row."""
        return self.layout == "pairs"


def apply_layout(rows: pa.RecordBatch, spec: LayoutSpec) -> tuple[Optional[pa.RecordBatch], list[DeadLetter], int]:
    """A row batch -> (candidate documents or None, dead letters, rows that became documents)."""
    content = [rows.column(i) for i in range(len(spec.modalities))]
    bad_reason = np.full(rows.num_rows, None, dtype=object)
    bad_class = np.full(rows.num_rows, None, dtype=object)
    for i, (values, expected) in enumerate(zip(content, spec.modalities)):
        empty = _blank(values)
        _reject(bad_reason, bad_class, empty, "empty_value", lambda r, i=i: f"column {i + 1} is empty")
        if spec.layout == "values":
            continue
        kinds = modality.classify(values)
        wrong = kinds != modality.KINDS.index(expected)
        _reject(bad_reason, bad_class, wrong, "modality", lambda r, i=i, k=kinds, e=expected, v=values: (
            f"column {i + 1} is {_short(v[r].as_py())!r}, which looks like {_a(modality.KINDS[k[r]])}, but "
            + _modality_advice(i, e, spec, rows.column("source_row")[r].as_py())))
    if spec.layout == "labeled":
        empty = _blank(rows.column(1))
        _reject(bad_reason, bad_class, empty, "empty_value", lambda r: "the label (column 2) is empty")
    scores = None
    if spec.layout == "scores":
        scores, bad_score = _scores(rows.column(2), spec.score_scale)
        _reject(bad_reason, bad_class, bad_score, "score", lambda r: _score_reason(rows.column(2)[r].as_py(), spec.score_scale))
    bad = np.flatnonzero(bad_reason != None)  # noqa: E711 (numpy elementwise)
    dead = [_dead_letter(rows, int(r), bad_class[r], bad_reason[r]) for r in bad]
    good = np.flatnonzero(bad_reason == None)  # noqa: E711
    if not good.size:
        return None, dead, 0
    if good.size < rows.num_rows:
        rows = rows.take(pa.array(good))
        scores = None if scores is None else scores[good]
    base = folder_within(rows.column("source_file")[0].as_py(), spec.media_root)
    docs = _candidates(rows, spec, scores, base)
    return docs, dead, int(good.size)


def _modality_advice(column: int, expected: str, spec: LayoutSpec, line: int) -> str:
    """The end of a modality dead letter's reason: what the column holds, and what to do about it."""
    if spec.modalities_forced:
        advice = f"--modalities says column {column + 1} holds {expected}; fix the row or the option"
    else:
        advice = f"column {column + 1} holds {expected} elsewhere; pass --modalities to force it"
    return advice + ("; if the file's first row names its columns, pass --header yes" if line == 1 else "")


def _blank(values: pa.Array) -> np.ndarray:
    """(n,) bool: the value is empty or only whitespace (without building trimmed copies of the strings)."""
    return np.asarray(pc.or_(pc.equal(pc.binary_length(values), 0), pc.utf8_is_space(values)))


def _reject(reasons, classes, mask, reason_class, describe):
    for r in np.flatnonzero(mask & (reasons == None)):  # noqa: E711
        reasons[r], classes[r] = describe(r), reason_class


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _a(kind: str) -> str:
    return {"image": "an image URI", "mesh": "a mesh URI"}.get(kind, "text")


def _scores(values: pa.Array, scale: Optional[float]) -> tuple[np.ndarray, np.ndarray]:
    """Score strings (n,) -> (scores (n,) float64 divided by scale, (n,) bool bad: not a number or outside [0, 1])."""
    parsed = np.array([_to_float(v) for v in values.to_pylist()], dtype=np.float64)
    if scale:
        parsed = parsed / scale
    bad = ~((parsed >= 0) & (parsed <= 1))  # NaN is bad too
    return parsed, bad


def _to_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def _score_reason(text: str, scale: Optional[float]) -> str:
    value = _to_float(text)
    if value != value:
        return f"score {_short(text)!r} is not a number"
    scaled = f" (after dividing by --score-scale {scale:g})" if scale else ""
    hint = "" if scale else "; pass --score-scale to divide scores on another scale (5 for STS-B)"
    return f"score {text.strip()} is outside [0, 1]{scaled}{hint}"


def _dead_letter(rows: pa.RecordBatch, r: int, reason_class: str, reason: str) -> DeadLetter:
    return DeadLetter(rows.column("source_file")[r].as_py(), rows.column("source_row")[r].as_py(), STAGE,
                      reason_class, reason, row_texts(rows.slice(r, 1))[0].as_py())


def row_texts(rows: pa.RecordBatch) -> pa.Array:
    """CSV row batch -> (n,) string: each row's fields, quoted where needed and joined with commas (what a
    dead letter's `raw` holds, for a person and for `finetune-etl retry`)."""
    fields = []
    for i in range(rows.num_columns - 2):  # the last two columns are source_file and source_row
        field = rows.column(i).fill_null("")
        quoted = pc.binary_join_element_wise('"', pc.replace_substring(field, '"', '""'), '"', "")
        fields.append(pc.if_else(pc.match_substring_regex(field, '[,"\r\n]'), quoted, field))
    return pc.binary_join_element_wise(*fields, ",")


def _content(values: pa.Array, kind: str, base: str) -> dict:
    """Column values of one modality -> {'text': ...} or {'uri': ...} (relative paths resolved against base)."""
    if kind == "text":
        return {"text": values}
    relative = pc.invert(pc.match_substring_regex(values, ABSOLUTE_URI))
    prefix = base + "/" if base else ""
    uri = pc.if_else(relative, pc.binary_join_element_wise(pa.scalar(prefix), values, ""), values)
    return {"uri": uri}


def _documents(n: int, columns: dict) -> pa.RecordBatch:
    """A candidate batch of n rows from the given columns; every other column is null."""
    arrays = [columns[f.name] if f.name in columns else pa.nulls(n, f.type) for f in CANDIDATE_SCHEMA]
    arrays = [a.cast(f.type) if a.type != f.type else a for a, f in zip(arrays, CANDIDATE_SCHEMA)]
    return pa.RecordBatch.from_arrays(arrays, schema=CANDIDATE_SCHEMA)


def _single(values, kind, label, rows, base) -> pa.RecordBatch:
    n = len(values)
    columns = dict(_content(values, kind, base), modality=pa.nulls(n, pa.string()).fill_null(kind),
                   source_file=rows.column("source_file"), source_row=rows.column("source_row"))
    if label is not None:
        columns["label"] = label
    return _documents(n, columns)


def _chunks(rows, spec, base) -> pa.Array:
    """Two content columns -> list<chunk> array with two chunks per row, in column order."""
    n = rows.num_rows
    parts = []
    for i, kind in enumerate(spec.modalities):
        content = _content(rows.column(i), kind, base)
        fields = {f.name: content.get(f.name, pa.nulls(n, f.type)) for f in CHUNK_TYPE}
        fields["modality"] = pa.nulls(n, pa.string()).fill_null(kind)
        parts.append(pa.StructArray.from_arrays([fields[f.name] for f in CHUNK_TYPE], fields=list(CHUNK_TYPE)))
    interleave = pa.array(np.column_stack([np.arange(n), np.arange(n) + n]).ravel())
    values = pa.concat_arrays(parts).take(interleave)
    return pa.ListArray.from_arrays(pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32)), values, type=pa.list_(CHUNK_TYPE))


def _candidates(rows: pa.RecordBatch, spec: LayoutSpec, scores: Optional[np.ndarray], base: str) -> pa.RecordBatch:
    """Valid rows -> candidate documents with their content keys, and their rows' text when media will load
    (the media stage's dead letters carry it)."""
    docs = _documents_of_layout(rows, spec, scores, base)
    keys = document_keys(docs, _known_hashes(rows, spec))
    docs = docs.set_column(docs.schema.get_field_index(KEY), KEY, pa.array(keys, type=pa.uint64()))
    if set(spec.modalities) <= {"text"}:
        return docs
    texts = row_texts(rows)
    raw = pa.concat_arrays([texts] * (docs.num_rows // rows.num_rows))  # each row's documents, in row order
    return docs.set_column(docs.schema.get_field_index(RAW), RAW, raw)


def _known_hashes(rows: pa.RecordBatch, spec: LayoutSpec) -> dict:
    """Hashes of candidate columns that repeat a CSV column, each CSV column hashed once: in query-document
    pairs the query is the label of both documents and the text of the first."""
    if spec.layout != "pairs" or spec.is_clip or spec.modalities[0] != "text":
        return {}
    query = column_hashes(rows.column(0))
    return {"label": np.concatenate([query, query]), "text": np.concatenate([query, column_hashes(rows.column(1))])}


def _documents_of_layout(rows, spec, scores, base) -> pa.RecordBatch:
    if spec.layout == "labeled":
        return _single(rows.column(0), spec.modalities[0], rows.column(1), rows, base)
    if spec.layout == "values":
        parts = [_single(rows.column(i), kind, None, rows, base) for i, kind in enumerate(spec.modalities)]
        return _concat(parts)
    if spec.layout == "pairs" and not spec.is_clip:
        query, kind = rows.column(0), spec.modalities[0]
        label = query if kind == "text" else _content(query, kind, base)["uri"]  # the query as the dataset names it
        return _concat([_single(query, kind, label, rows, base), _single(rows.column(1), kind, label, rows, base)])
    n = rows.num_rows
    columns = dict(modality=pa.nulls(n, pa.string()).fill_null(PAIR), chunks=_chunks(rows, spec, base),
                   source_file=rows.column("source_file"), source_row=rows.column("source_row"))
    if scores is not None:
        columns["score"] = pa.array(scores, type=pa.float64())
    return _documents(n, columns)


def _concat(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    return pa.concat_batches(batches)
