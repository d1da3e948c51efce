"""Runnable jobs and the command line; `prepare_dataset` runs the prepare job from Python, `load_table` /
`load_docs` / `load_duplicates` read a prepared dataset back, `stream` / `iter_docs` stream it to a training
job, `TrainingDataset` is it as a PyTorch IterableDataset (with the `torch` extra), `sentence_pairs` gives
it the columns sentence-transformers expects. Each loads (with Beam, docarray, torch or pandas) only when
first used, so `finetune-etl` commands start without paying for the others."""
import importlib
import logging


class _DropBeamImportNoise(logging.Filter):
    """Beam warns at import that BigQuery's client is missing; this tool never uses BigQuery."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("apitools not found")


logging.getLogger().addFilter(_DropBeamImportNoise())

_HOMES = {
    "prepare_dataset": "pipelines.prepare.api",
    "load_table": "pipelines.datasets.load",
    "load_docs": "pipelines.datasets.load",
    "load_dead_letters": "pipelines.datasets.load",
    "load_duplicates": "pipelines.datasets.load",
    "load_manifest": "pipelines.datasets.load",
    "sentence_pairs": "pipelines.datasets.sentence_pairs",
    "stream": "pipelines.datasets.stream",
    "iter_docs": "pipelines.datasets.stream",
    "TrainingDataset": "pipelines.datasets.training_dataset",
}
__all__ = list(_HOMES)


def __getattr__(name: str):
    """`pipelines.load_table` and the others, imported from their module on first use."""
    if name not in _HOMES:
        raise AttributeError(f"module 'pipelines' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
