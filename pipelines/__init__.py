"""Runnable jobs and the command line; `load_table` / `load_docs` read a prepared dataset back."""
from pipelines.load import load_dead_letters, load_docs, load_manifest, load_table

__all__ = ["load_docs", "load_table", "load_dead_letters", "load_manifest"]
