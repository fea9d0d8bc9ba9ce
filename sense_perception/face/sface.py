"""SFace face embedding on ONNX Runtime: L2-normalised 128-D vectors from aligned 112x112 crops."""
from __future__ import annotations

import numpy as np

from ..core.runtime.session import OnnxModel, RuntimeOptions
from ..errors import ImageDecodeError
from .align import ALIGNED_SIZE
from .model_fold import folded_model

EMBEDDING_DIM = 128


class SFaceEmbedder:
    """SFace (2021dec) recogniser; the folded model takes any batch size.

    Args:
        options: onnxruntime providers and threads.
        max_batch: faces per inference call; larger inputs are split.
    """

    def __init__(self, options: RuntimeOptions | None = None, max_batch: int = 16) -> None:
        self.model = OnnxModel(folded_model("sface"), options, name="sface")
        self.input_name = self.model.inputs[0].name
        self.max_batch = int(max_batch)
        self._blob = np.empty((self.max_batch, 3, ALIGNED_SIZE, ALIGNED_SIZE), np.float32)

    def embed(self, aligned_bgr: np.ndarray) -> np.ndarray:
        """Embed aligned crops.

        Args:
            aligned_bgr: (N, 112, 112, 3) uint8 BGR crops from :func:`align_faces`.

        Returns:
            (N, 128) float32 unit-length embeddings; cosine similarity is their dot product.
        """
        crops = np.asarray(aligned_bgr)
        if crops.ndim != 4 or crops.shape[1:] != (ALIGNED_SIZE, ALIGNED_SIZE, 3) or crops.dtype != np.uint8:
            raise ImageDecodeError("aligned_bgr", f"expected (N, 112, 112, 3) uint8 aligned faces, got "
                                                  f"{crops.shape} {crops.dtype}; use align_faces()")
        out = np.empty((crops.shape[0], EMBEDDING_DIM), np.float32)
        for start in range(0, crops.shape[0], self.max_batch):
            chunk = crops[start:start + self.max_batch]
            blob = self._blob[: chunk.shape[0]]
            # SFace wants RGB 0..255 NCHW; it subtracts 127.5 and scales by 1/128 inside the graph.
            blob[:] = chunk[..., ::-1].transpose(0, 3, 1, 2)
            out[start:start + chunk.shape[0]] = self.model.run({self.input_name: blob})[0]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.maximum(norms, 1e-12, out=norms)
        out /= norms
        return out
