"""A seeded shuffle buffer over row keys: which rows leave, in which order, without touching the rows.

The buffer holds up to `capacity` rows, each known two ways: by a key (where its owner keeps the row: for
the stream, its position in the held rows followed by the current row group's) and by coordinates (row
group, row), which is what a saved state holds.
Rows come in while the buffer fills; once full, each incoming row sends a random held row out and takes its
slot; at the end of the input, random held rows leave until none is left. Every choice is drawn from the
numpy Generator it is given, so the same generator state and the same input give the same order.
"""
from __future__ import annotations

import numpy as np


class ShuffleBuffer:
    """Keys and coordinates of the rows held back, in slot order: `keys` (n,) and `coordinates` (n, 2)."""

    def __init__(self, capacity: int, rng: np.random.Generator, coordinates: np.ndarray | None = None):
        if capacity < 1:
            raise ValueError(f"a shuffle buffer holds at least one row, not {capacity}.")
        self.capacity, self.rng = capacity, rng
        self.coordinates = np.empty((0, 2), np.int64) if coordinates is None else coordinates.astype(np.int64)
        self.keys = np.arange(len(self.coordinates), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def room(self) -> int:
        """Rows that can come in before rows start to leave."""
        return self.capacity - len(self.keys)

    def hold(self, keys: np.ndarray, coordinates: np.ndarray) -> None:
        """Incoming rows (at most `room`) kept, none leaving."""
        self.keys = np.concatenate([self.keys, keys])
        self.coordinates = np.concatenate([self.coordinates, coordinates])

    def swap(self, keys: np.ndarray, coordinates: np.ndarray) -> np.ndarray:
        """Incoming rows into a full buffer -> the keys of the rows that leave, one per incoming row in order:
        row i sends out the row in a random slot and takes that slot (as if one at a time; vectorised: a row
        that came in earlier in the same call may leave again)."""
        slots = self.rng.integers(0, self.capacity, len(keys))
        # incoming rows grouped by slot, in arrival order (as 16-bit keys when they fit: numpy radix-sorts those)
        order = np.argsort(slots.astype(np.uint16) if self.capacity <= 1 << 16 else slots, kind="stable")
        sorted_slots = slots[order]
        first = np.ones(len(keys), bool)
        first[1:] = sorted_slots[1:] != sorted_slots[:-1]
        last = np.ones(len(keys), bool)
        last[:-1] = first[1:]
        leaving = np.empty(len(keys), np.int64)
        leaving[order[first]] = self.keys[sorted_slots[first]]  # the first into a slot sends out its holder
        later = np.flatnonzero(~first)
        leaving[order[later]] = keys[order[later - 1]]  # later ones, the row that came in just before
        self.keys[sorted_slots[last]] = keys[order[last]]
        self.coordinates[sorted_slots[last]] = coordinates[order[last]]
        return leaving

    def release(self, count: int) -> np.ndarray:
        """The input has ended -> the keys of `count` random held rows, which leave; the rest keep their order."""
        chosen = self.rng.permutation(len(self.keys))[:count]
        leaving = self.keys[chosen]
        kept = np.ones(len(self.keys), bool)
        kept[chosen] = False
        self.keys, self.coordinates = self.keys[kept], self.coordinates[kept]
        return leaving

    def renumber(self) -> None:
        """The owner now keeps the held rows in slot order: their keys become 0..n-1."""
        self.keys = np.arange(len(self.keys), dtype=np.int64)
