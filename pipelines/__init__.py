"""Runnable jobs and the command line; `load_table` / `load_docs` read a prepared dataset back."""
import logging


class _DropBeamImportNoise(logging.Filter):
    """Beam warns at import that BigQuery's client is missing; this tool never uses BigQuery."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("apitools not found")


logging.getLogger().addFilter(_DropBeamImportNoise())

from pipelines.datasets.load import load_dead_letters, load_docs, load_manifest, load_table  # noqa: E402

__all__ = ["load_docs", "load_table", "load_dead_letters", "load_manifest"]
