"""Sentence embeddings: the ``Embedder`` interface, its providers, and which texts get embedded.

Providers: ``e5`` (the default: multilingual-e5-small in 4 bits from an installed package,
offline), ``local`` (all-MiniLM-L6-v2, English, from an installed package, numpy, offline) and
``openai`` (any OpenAI-compatible ``/v1/embeddings`` endpoint). Every vector is unit-length and
has ``EMBEDDING_DIMENSIONS`` components (the ``conversation_embeddings.embedding`` column), and
every stored row names the model that produced it, so a model change re-embeds instead of mixing
vector spaces.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any, Protocol

from zapflow.config import Settings
from zapflow.models.conversation_embedding import EMBEDDING_DIMENSIONS

__all__ = [
    "EMBEDDING_DIMENSIONS",
    "Embedder",
    "Embedders",
    "content_hash",
    "create_embedder",
    "embeddable_text",
    "embedding_model",
]


class Embedder(Protocol):
    model: str
    dimensions: int

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One unit vector per text to store, in order."""
        ...

    async def embed_query(self, text: str) -> list[float]:
        """The unit vector of a search query (e5 embeds queries apart from stored texts)."""
        ...

    async def aclose(self) -> None: ...


def embedding_model(settings: Settings) -> str:
    """The name of the model ``create_embedder(settings)`` embeds with (what rows are keyed by)."""
    if settings.embedding_provider == "openai":
        return settings.openai_embedding_model
    if settings.embedding_provider == "e5":
        from zapflow.embeddings.e5 import MODEL_NAMES

        return MODEL_NAMES[settings.embedding_e5_variant]
    from zapflow.embeddings.local import MODEL_NAME

    return MODEL_NAME


def create_embedder(settings: Settings) -> Embedder:
    if settings.embedding_provider == "e5":
        from zapflow.embeddings.e5 import E5Embedder

        return E5Embedder(settings.embedding_e5_variant)
    if settings.embedding_provider == "openai":
        from zapflow.embeddings.openai import OpenAIEmbedder

        return OpenAIEmbedder(
            base_url=settings.openai_base_url,
            model=settings.openai_embedding_model,
            api_key=settings.openai_api_key,
            dimensions=EMBEDDING_DIMENSIONS,
            timeout=settings.openai_timeout_seconds,
        )
    from zapflow.embeddings.local import LocalEmbedder

    return LocalEmbedder()


def _embedder_of(settings: Settings, model: str) -> Embedder | None:
    """An embedder producing ``model``'s vectors, if this process can run or reach it."""
    from zapflow.embeddings.e5 import MODEL_NAMES, E5Embedder
    from zapflow.embeddings.local import MODEL_NAME, LocalEmbedder

    variants = {name: variant for variant, name in MODEL_NAMES.items()}
    if model in variants:
        return E5Embedder(variants[model])
    if model == MODEL_NAME:
        return LocalEmbedder()
    if model == settings.openai_embedding_model:
        return create_embedder(settings.model_copy(update={"embedding_provider": "openai"}))
    return None


class Embedders:
    """The configured embedder (``current``: new rows are written with its model) and, built on
    first need, those of older models whose rows a company's search keeps using while
    ``embeddings backfill`` re-embeds its messages with the current one."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.current = create_embedder(settings)
        self._others: dict[str, Embedder | None] = {}
        # per company: (when it was decided, monotonic seconds; the model its search uses)
        self.searched: dict[uuid.UUID, tuple[float, str]] = {}

    def of(self, model: str) -> Embedder | None:
        if model == self.current.model:
            return self.current
        if model not in self._others:
            self._others[model] = _embedder_of(self.settings, model)
        return self._others[model]

    async def aclose(self) -> None:
        for embedder in [self.current, *self._others.values()]:
            if embedder is not None:
                await embedder.aclose()


def embeddable_text(body: str | None, media: dict[str, Any] | None, min_chars: int) -> str | None:
    """The text to embed for a message (its body, else its media caption), or None to skip it.

    The rule: a text with fewer than ``min_chars`` letters or digits carries no meaning worth a
    vector ("ok", "sim", "👍", "kkk", a sticker or an empty body), so it is skipped; keyword
    search still finds it.
    """
    text = (body or (media or {}).get("caption") or "").strip()
    if sum(ch.isalnum() for ch in text) < min_chars:
        return None
    return text


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
