"""The dataset card: `README.md` at the top of a dataset folder, written by the commit with the manifest.

Its YAML front matter makes the folder a Hugging Face dataset: `datasets.load_dataset(FOLDER)` returns a
DatasetDict of the splits (`train` alone without --split) read from the Parquet documents, `blob` decoded as
PIL images and point clouds as lists of [x, y, z], with no code of ours. Its body says, in a few lines, how
the data was made: the tool, the inputs, the options that differ from the defaults, the counts.

In: the manifest the commit completed (shards, counts, options, inputs). Out: the card's bytes.
"""
import dataclasses
import fnmatch
import json
import posixpath

import yaml

from schemas.documents import DOCUMENT_SCHEMA
from schemas.options import CSVOptions, DuplicateOptions, MediaOptions, OutputOptions, SplitOptions, hub_split_name
from transforms.write.formats import WRITERS
from transforms.write.hf_features import yaml_features

README = "README.md"
LAYOUTS = {
    "labeled": "one document per row (text, image or mesh) with its label",
    "pairs": "query-document pairs: each query and each document is a document labelled with the query's text",
    "clip": "text-image pairs: one document per row, modality `pair`, its chunks the text and the image",
    "scores": "sentence pairs with a similarity score: one document per row, its two chunks the sentences",
    "values": "every cell is an unlabelled document",
}
OPTION_DEFAULTS = {"csv": CSVOptions, "output": OutputOptions, "media": MediaOptions, "split": SplitOptions,
                   "duplicates": DuplicateOptions}
PUBLISHING_OPTIONS = {"overwrite", "keep_versions"}  # output options that say nothing about the data
SHOWN_INPUTS = 5


def dataset_card(manifest: dict) -> bytes:
    """The README.md of the dataset the manifest describes."""
    front = front_matter(manifest)
    head = f"---\n{yaml.safe_dump(front, sort_keys=False, allow_unicode=True)}---\n\n" if front else ""
    return (head + "\n".join(body(manifest)) + "\n").encode()


def front_matter(manifest: dict) -> dict:
    """The card's metadata: one config whose data_files are the splits' Parquet shards, and the columns'
    features; {} when the run wrote no Parquet documents (nothing here for `datasets` to load)."""
    files = data_files(manifest)
    if not files:
        return {}
    return {"configs": [{"config_name": "default", "data_files": files}],
            "dataset_info": {"features": yaml_features(DOCUMENT_SCHEMA)}}


def data_files(manifest: dict) -> list[dict]:
    """[{split, path}] per split of the Parquet documents, in --split order (`train` without --split; a name
    with '-' as schemas.options.hub_split_name gives it, since `datasets` refuses '-'): path is
    the glob FOLDER/SPLIT-*.parquet when it names exactly that split's shards, else the list of their paths
    (object stores: `versions/RUN/documents/bNNNNN-PPPP.parquet`)."""
    parquet = WRITERS["parquet"]
    shards = manifest["shards"].get(parquet.folder, [])
    paths = [shard["path"] for shard in shards]
    order = [name for name, _ in (manifest["options"].get("split") or {}).get("fractions") or ()]
    files = []
    for split in sorted({s.get("split", "") for s in shards}, key=lambda s: order.index(s) if s in order else -1):
        own = [shard["path"] for shard in shards if shard.get("split", "") == split]
        pattern = f"{parquet.folder}/{split or 'part'}-*{parquet.suffix}"
        files.append({"split": hub_split_name(split) or "train",
                      "path": pattern if fnmatch.filter(paths, pattern) == own else own})
    return files


def body(manifest: dict) -> list[str]:
    """The card's text: a title, how the data was made, and how to load it."""
    counts = manifest.get("counts", {})
    output = manifest["options"]["output"]
    name = posixpath.basename(output.get("output", "").rstrip("/")) or "Dataset"
    lines = [f"# {name}", "",
             f"Training documents for embedding fine-tuning, prepared by {manifest.get('tool', 'finetune-etl')} "
             f"(run `{manifest.get('run_id')}`, committed {manifest.get('committed_at')}).", ""]
    layout = "clip" if manifest.get("clip") else manifest.get("layout")
    if layout in LAYOUTS:
        lines.append(f"- Layout: `{manifest['layout']}`, {LAYOUTS[layout]}.")
    lines += [f"- Inputs: {_inputs(manifest.get('inputs', []))}.",
              f"- Options other than the defaults: {_options(manifest['options']) or 'none'}.",
              f"- Documents: {_documents(counts, manifest)}.",
              f"- Dead letters: {_dead_letters(counts)}.",
              f"- Files: {_files(manifest['shards'])}; `manifest.json` lists every file with its rows and bytes.",
              ""]
    files = data_files(manifest)
    if files:
        lines += ["## Loading", "", "```python", "from datasets import load_dataset", "",
                  'dataset = load_dataset("path/to/this/folder")  # a DatasetDict of the splits', "```"]
        renamed = [f"`{name}` is `{hub_split_name(name)}`" for name in sorted({s.get("split", "") for s in
                   manifest["shards"].get(WRITERS["parquet"].folder, [])}) if hub_split_name(name) != name]
        if renamed:
            lines += ["", f"Hugging Face `datasets` allows no '-' in split names: here {', '.join(renamed)}."]
    return lines


def _inputs(inputs: list[dict]) -> str:
    shown = [f"`{entry['url']}` ({entry.get('size', 0):,} bytes)" for entry in inputs[:SHOWN_INPUTS]]
    more = [f"and {len(inputs) - SHOWN_INPUTS} more"] if len(inputs) > SHOWN_INPUTS else []
    return ", ".join(shown + more) or "none"


def _options(options: dict) -> str:
    """`section.name` = value for each option the run set to something other than its default."""
    changed = []
    for section, kind in OPTION_DEFAULTS.items():
        for field in dataclasses.fields(kind):
            if (field.default is dataclasses.MISSING or field.name in PUBLISHING_OPTIONS
                    or field.name not in options.get(section, {})):
                continue
            value = json.loads(json.dumps(options[section][field.name]))  # tuples as the manifest file has them
            if value != json.loads(json.dumps(field.default)):
                changed.append(f"`{section}.{field.name}` = {_value(value)}")
    return ", ".join(changed)


def _value(value) -> str:
    """An option's value as a person writes it: split fractions as train=0.8,test=0.2."""
    if isinstance(value, list) and value and all(isinstance(v, list) and len(v) == 2 for v in value):
        return ",".join(f"{name}={fraction}" for name, fraction in value)
    return json.dumps(value)


def _documents(counts: dict, manifest: dict) -> str:
    per_split = manifest.get("splits", {}).get("per_split", {})
    splits = ", ".join(f"{name} {split['documents']:,}" for name, split in per_split.items())
    splits = f" ({splits})" if splits else ""
    text = f"{counts.get('documents_written', 0):,} written{splits} from {counts.get('rows_read', 0):,} rows read"
    removed = {"exact duplicates removed": counts.get("duplicates_removed", 0),
               "near duplicates removed": counts.get("near_duplicates_removed", 0),
               "rows sampled out": counts.get("sampled_out", 0)}
    return "; ".join([text] + [f"{n:,} {what}" for what, n in removed.items() if n])


def _dead_letters(counts: dict) -> str:
    """How many rows or media did not become documents, by stage and reason, and where they are."""
    total = counts.get("dead_letters", 0)
    if not total:
        return "none"
    reasons = sorted((key.split(".", 1)[1], n) for key, n in counts.items() if key.startswith("dead_letters."))
    by_reason = ", ".join(f"{reason.replace('.', ' ')} {n:,}" for reason, n in reasons)
    return f"{total:,} (by stage and reason: {by_reason}), in `dead_letters/` (`finetune-etl errors` explains them)"


def _files(shards: dict) -> str:
    return ", ".join(f"`{folder}/` ({len(listed)} {'file' if len(listed) == 1 else 'files'})"
                     for folder, listed in shards.items() if listed)
