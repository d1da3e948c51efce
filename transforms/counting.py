"""Accounting shared by every stage: count dicts, dead-letter batches, and how counts merge.

Counts travel as data (small dicts summed by CombineGlobally) so the manifest gets them on any runner;
each count is also a Beam metrics counter (namespace `finetune_etl`) for runner UIs.
"""
import collections
from typing import Iterable

import apache_beam as beam
import pyarrow as pa

from schemas.documents import dead_letter_batch

NAMESPACE = "finetune_etl"


def count(stage: str, dead: Iterable[dict] = (), **numbers: int) -> dict:
    """Counts of one step -> a flat dict; dead letters are also counted by stage and reason class."""
    counts = collections.Counter({k: v for k, v in numbers.items() if v})
    for letter in dead:
        counts["dead_letters"] += 1
        counts[f"dead_letters.{stage}.{letter['reason_class']}"] += 1
    for name, value in counts.items():
        beam.metrics.Metrics.counter(NAMESPACE, name).inc(value)
    return dict(counts)


def dead_letters(dead: list[dict]) -> pa.RecordBatch:
    """Dead-letter dicts -> one RecordBatch of DEAD_LETTER_SCHEMA."""
    return dead_letter_batch(dead)


class SumCounts(beam.CombineFn):
    """Merge count dicts by adding values per key."""

    def create_accumulator(self):
        return collections.Counter()

    def add_input(self, acc, counts):
        acc.update(counts)
        return acc

    def merge_accumulators(self, accs):
        total = collections.Counter()
        for acc in accs:
            total.update(acc)
        return total

    def extract_output(self, acc):
        return dict(sorted(acc.items()))
