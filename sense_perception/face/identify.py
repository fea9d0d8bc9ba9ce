"""Cosine matching of face embeddings against every enrolled template.

Small galleries are scored in one float32 matrix product. From :data:`COARSE_MIN_TEMPLATES` on, that
product is bound by memory bandwidth (100,000 templates are 51 MB per query), so matching runs in
two stages that give the same answer: int8 copies of the templates (a quarter of the bytes, scored
by onnxruntime's integer GEMM) yield approximate scores with a guaranteed error bound, and only the
templates whose approximate score is within twice that bound of the best are re-scored exactly in
float32.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from .gallery import DriverRecord
from .sface import EMBEDDING_DIM

LOG = logging.getLogger(__name__)

#: Templates from which the two-stage (int8 then exact) search is used: measured crossover on a
#: 2-core x86 machine, and above it BLAS goes multi-threaded and slows down badly under CPU load.
COARSE_MIN_TEMPLATES = 8_192
# The query is quantised to -63..63 and stored as uint8 1..127 (zero point 64): x86 integer GEMM
# kernels (VPMADDUBSW) add two uint8*int8 products in int16, which saturates for uint8 > 128.
_QUERY_LEVELS = 63.0
_ZERO = 64
# Covers float32 rounding of the scaled integer scores and of the exact products (~1e-6).
_SLACK = 1e-5


@dataclass
class Match:
    """Best enrolled driver per query face.

    Attributes:
        index: (N,) int64 index into :attr:`TemplateIndex.ids`, -1 when the gallery is empty.
        score: (N,) float32 best cosine similarity of that driver (-1 when the gallery is empty).
        per_driver: (N, D) float32 best cosine similarity of each driver (computed on first
            access for large galleries: the identification itself does not need it).
    """

    index: np.ndarray
    score: np.ndarray
    _per_driver: np.ndarray | Callable[[], np.ndarray] = field(repr=False)

    @property
    def per_driver(self) -> np.ndarray:
        if callable(self._per_driver):
            self._per_driver = self._per_driver()
        return self._per_driver


class _Int8Scores:
    """Approximate template scores from int8 copies, with a rigorous error bound.

    With t = t8 + r (t8 the dequantised int8 template) and e = e8 + d (same for the query),
    |e.t - e8.t8| <= |e| |r| + |d| |t8| (Cauchy-Schwarz), bounded over all templates by
    |e| max|r| + |d| max|t8|.
    """

    def __init__(self, matrix: np.ndarray) -> None:
        import onnx
        from onnx import TensorProto, helper, numpy_helper

        from ..core.runtime.session import OnnxModel, RuntimeOptions

        absmax = np.abs(matrix).max(axis=1)
        self.scale = np.where(absmax > 0, absmax / 127.0, 1.0).astype(np.float32)
        q8 = np.rint(matrix / self.scale[:, None]).astype(np.int8)
        dequant = q8.astype(np.float32) * self.scale[:, None]
        self.max_residual = float(np.linalg.norm(matrix - dequant, axis=1).max())
        self.max_dequant = float(np.linalg.norm(dequant, axis=1).max())
        graph = helper.make_graph(
            [helper.make_node("MatMulInteger", ["q", "templates", "zero"], ["scores"])],
            "int8_scores",
            [helper.make_tensor_value_info("q", TensorProto.UINT8, ["n", EMBEDDING_DIM])],
            [helper.make_tensor_value_info("scores", TensorProto.INT32, ["n", len(matrix)])],
            [numpy_helper.from_array(np.ascontiguousarray(q8.T), "templates"),
             numpy_helper.from_array(np.array(_ZERO, np.uint8), "zero")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        onnx.checker.check_model(model)
        # One thread: the cabin pipeline shares the CPU with the exterior detectors.
        self._model = OnnxModel(model.SerializeToString(), RuntimeOptions(
            providers=("CPUExecutionProvider",), intra_op_threads=1), "gallery_int8")

    def __call__(self, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Approximate scores (N, M) float32 and the error bound of each query row (N, 1)."""
        absmax = np.abs(e).max(axis=1, keepdims=True)
        qscale = np.where(absmax > 0, absmax / _QUERY_LEVELS, 1.0).astype(np.float32)
        q8 = np.rint(e / qscale)
        d_norm = np.linalg.norm(e - q8 * qscale, axis=1, keepdims=True)
        e_norm = np.linalg.norm(e, axis=1, keepdims=True)
        (ints,) = self._model.run({"q": (q8 + _ZERO).astype(np.uint8)})
        approx = ints.astype(np.float32)
        approx *= qscale * self.scale
        bound = e_norm * self.max_residual + d_norm * self.max_dequant + _SLACK
        return approx, bound


class TemplateIndex:
    """All templates of a gallery as one contiguous float32 matrix plus the owner of each row.

    Rows are grouped by driver, so the best score per driver is one ``np.maximum.reduceat``.

    Args:
        drivers: enrolled drivers (from :meth:`GalleryStore.drivers`).
        coarse_min_templates: gallery size from which the two-stage search is used.
    """

    def __init__(self, drivers: Sequence[DriverRecord],
                 coarse_min_templates: int = COARSE_MIN_TEMPLATES) -> None:
        drivers = [d for d in drivers if len(d.templates)]
        self.ids = [d.id for d in drivers]
        self.names = [d.name for d in drivers]
        counts = np.array([len(d.templates) for d in drivers], np.int64)
        self.matrix = np.ascontiguousarray(
            np.concatenate([d.templates for d in drivers]) if drivers
            else np.zeros((0, EMBEDDING_DIM)), np.float32)
        self.owner = np.repeat(np.arange(len(drivers)), counts)
        self._starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self._coarse: _Int8Scores | None = None
        if len(self.matrix) >= max(1, coarse_min_templates):
            try:
                self._coarse = _Int8Scores(self.matrix)
            except Exception as exc:  # any onnx/onnxruntime failure: the float path is exact too
                LOG.warning("int8 gallery search unavailable, using float32 only: %s", exc)

    def __len__(self) -> int:
        """Number of drivers."""
        return len(self.ids)

    def _per_driver(self, e: np.ndarray) -> np.ndarray:
        sims = e @ self.matrix.T  # (N, M) cosine: both sides are unit length
        return np.maximum.reduceat(sims, self._starts, axis=1)

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
        if self._coarse is None:
            per_driver = self._per_driver(e)
            index = per_driver.argmax(axis=1)
            return Match(index.astype(np.int64), per_driver[np.arange(n), index], per_driver)
        approx, bound = self._coarse(e)
        best_row = np.empty(n, np.int64)
        score = np.empty(n, np.float32)
        for i in range(n):  # one row per query face (one per frame in the node)
            # True scores lie within +-bound of approx, so the best one is at least
            # max(approx) - bound: only templates with approx >= max(approx) - 2 bound can reach it.
            candidates = np.flatnonzero(approx[i] >= approx[i].max() - 2.0 * bound[i, 0])
            exact = self.matrix[candidates] @ e[i]
            k = int(exact.argmax())
            best_row[i], score[i] = candidates[k], exact[k]
        return Match(self.owner[best_row].astype(np.int64), score, lambda: self._per_driver(e))
