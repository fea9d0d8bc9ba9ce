"""gallery_*_ms: time to identify one face embedding against 10 .. 100,000 enrolled templates.

Templates are synthetic (a car's gallery never holds 100,000 real faces, and the matching cost
does not depend on the values): drivers of 20 templates each, scattered around a random centre
and normalised to unit length like SFace embeddings. Each call matches a different unit query,
one per frame as the driver_monitor node does; the time is the median over calls of
``TemplateIndex.match``.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from sense_perception.face.gallery import EMBEDDING_DIM, ConsentRecord, DriverRecord
from sense_perception.face.identify import TemplateIndex

SIZES = (10, 1_000, 10_000, 100_000)
PER_DRIVER = 20


def synthetic_drivers(total: int, rng: np.random.Generator) -> list[DriverRecord]:
    """``total`` unit-length templates in drivers of :data:`PER_DRIVER`."""
    consent = ConsentRecord.now("benchmark")
    drivers = []
    for d, start in enumerate(range(0, total, PER_DRIVER)):
        k = min(PER_DRIVER, total - start)
        centre = rng.standard_normal(EMBEDDING_DIM).astype(np.float32)
        t = centre + 0.6 * rng.standard_normal((k, EMBEDDING_DIM)).astype(np.float32)
        t /= np.linalg.norm(t, axis=1, keepdims=True)
        drivers.append(DriverRecord(f"drv-{d:08x}", f"driver {d}", "", consent, t))
    return drivers


def run(calls: int, sizes: tuple[int, ...] = SIZES, seed: int = 0) -> dict[str, Any]:
    """Median milliseconds of one match per gallery size; also checks it against brute force."""
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    detail: dict[str, Any] = {}
    for size in sizes:
        index = TemplateIndex(synthetic_drivers(size, rng))
        queries = rng.standard_normal((calls + 1, EMBEDDING_DIM)).astype(np.float32)
        # Half the queries are near an enrolled template (the driver), half are strangers.
        near = index.matrix[rng.integers(0, len(index.matrix), calls + 1)]
        queries[::2] = near[::2] + 0.05 * queries[::2]
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        index.match(queries[-1])  # warm-up: first-call allocations
        ms = []
        for q in queries[:calls]:
            start = time.perf_counter()
            index.match(q)
            ms.append((time.perf_counter() - start) * 1e3)
        brute = queries[:calls] @ index.matrix.T
        want = index.owner[brute.argmax(axis=1)]
        got = np.array([index.match(q).index[0] for q in queries[:calls]])
        key = f"gallery_{_label(size)}_ms"
        out[key] = round(float(np.median(ms)), 4)
        detail[key] = {"templates": size, "drivers": len(index), "calls": calls,
                       "p90_ms": round(float(np.percentile(ms, 90)), 4),
                       "same_as_brute_force": bool((got == want).all())}
    detail["what"] = ("TemplateIndex.match of one unit 128-D query against N synthetic unit "
                      f"templates ({PER_DRIVER} per driver); median over calls")
    return {**out, "detail": detail}


def _label(size: int) -> str:
    return f"{size // 1000}k" if size >= 1000 else str(size)
