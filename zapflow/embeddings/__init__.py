"""Sentence embeddings: the ``Embedder`` interface, its providers, and which texts get embedded.

Providers: ``local`` (the default: all-MiniLM-L6-v2 from an installed package, numpy, offline) and
``openai`` (any OpenAI-compatible ``/v1/embeddings`` endpoint). Every vector is unit-length and
has ``EMBEDDING_DIMENSIONS`` components (the ``conversation_embeddings.embedding`` column), and
every stored row names the model that produced it, so a model change re-embeds instead of mixing
vector spaces.
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

from zapflow.config import Settings
from zapflow.models.conversation_embedding import EMBEDDING_DIMENSIONS

__all__ = [
    "EMBEDDING_DIMENSIONS",
    "Embedder",
    "content_hash",
    "create_embedder",
    "embeddable_text",
    "embedding_model",
]


class Embedder(Protocol):
    model: str
    dimensions: int

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One unit vector per text, in order."""
        ...

    async def aclose(self) -> None: ...


def embedding_model(settings: Settings) -> str:
    """The name of the model ``create_embedder(settings)`` embeds with (what rows are keyed by)."""
    if settings.embedding_provider == "openai":
        return settings.openai_embedding_model
    from zapflow.embeddings.local import MODEL_NAME

    return MODEL_NAME


def create_embedder(settings: Settings) -> Embedder:
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
