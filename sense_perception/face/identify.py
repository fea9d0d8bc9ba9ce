"""Cosine matching of face embeddings against every enrolled template in one matrix product."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .gallery import DriverRecord
from .sface import EMBEDDING_DIM


@dataclass
class Match:
    """Best enrolled driver per query face.

    Attributes:
        index: (N,) int64 index into :attr:`TemplateIndex.ids`, -1 when the gallery is empty.
        score: (N,) float32 best cosine similarity of that driver (-1 when the gallery is empty).
        per_driver: (N, D) float32 best cosine similarity of each driver.
    """

    index: np.ndarray
    score: np.ndarray
    per_driver: np.ndarray


class TemplateIndex:
    """All templates of a gallery as one contiguous float32 matrix plus the owner of each row.

    Rows are grouped by driver, so the best score per driver is one ``np.maximum.reduceat``.

    Args:
        drivers: enrolled drivers (from :meth:`GalleryStore.drivers`).
    """

    def __init__(self, drivers: Sequence[DriverRecord]) -> None:
        drivers = [d for d in drivers if len(d.templates)]
        self.ids = [d.id for d in drivers]
        self.names = [d.name for d in drivers]
        counts = np.array([len(d.templates) for d in drivers], np.int64)
        self.matrix = np.ascontiguousarray(
            np.concatenate([d.templates for d in drivers]) if drivers
            else np.zeros((0, EMBEDDING_DIM)), np.float32)
        self.owner = np.repeat(np.arange(len(drivers)), counts)
        self._starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)

    def __len__(self) -> int:
        """Number of drivers."""
        return len(self.ids)

    def match(self, embeddings: np.ndarray) -> Match:
        """Score unit-length embeddings (N, 128) against every template.

        Returns:
            The best driver and score per embedding and every driver's best score.
        """
        e = np.asarray(embeddings, np.float32).reshape(-1, EMBEDDING_DIM)
        n = e.shape[0]
        if len(self) == 0 or n == 0:
            return Match(np.full(n, -1, np.int64), np.full(n, -1.0, np.float32),
                         np.zeros((n, len(self)), np.float32))
        sims = e @ self.matrix.T  # (N, M) cosine: both sides are unit length
        per_driver = np.maximum.reduceat(sims, self._starts, axis=1)
        index = per_driver.argmax(axis=1)
        return Match(index.astype(np.int64), per_driver[np.arange(n), index], per_driver)
