"""What a split run adds to its manifest: per-split counts and the largest groups (read by the commit)."""
import json

from transforms.storage import filesystem, join_url

REPORT = "split/report.json"  # in the staging folder: the split plan's report


def manifest_section(split: dict, counts: dict, staging: str) -> dict:
    """The run's split options (as in the manifest), its counts and its staging folder -> the manifest's
    `splits`: {per_split: {name: {fraction, documents, groups, labels, rows}}, seed, by, largest_groups}."""
    fs, path = filesystem(join_url(staging, REPORT))
    report = json.loads(fs.cat_file(path)) if fs.exists(path) else {"largest_groups": []}
    section = {name: {"fraction": fraction, **{kind: counts.get(f"split.{name}.{kind}", 0)
                                               for kind in ("documents", "groups", "labels", "rows")}}
               for name, fraction in split["fractions"]}
    return {"per_split": section, "seed": split["seed"], "by": split["by"], "largest_groups": report["largest_groups"]}
