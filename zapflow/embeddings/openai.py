"""The ``openai`` embedder: any OpenAI-compatible ``POST {base_url}/embeddings`` endpoint.

A 429, a 5xx or a transport error is retried a few times here (honouring ``Retry-After``, capped)
and then raised as ``EmbeddingUnavailable``, which callers may retry later (the embedder does, a
bounded number of times). Any other 4xx is ``EmbeddingRejected``: retrying cannot help.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

RETRIES = 3
BACKOFF_SECONDS = 0.5
MAX_RETRY_AFTER_SECONDS = 10.0


class EmbeddingUnavailable(Exception):
    """The provider is rate limiting or failing; the same request may succeed later."""


class EmbeddingRejected(Exception):
    """The provider refused the request (bad key, unknown model, bad input): do not retry."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def blames_input(self) -> bool:
        """The texts sent are the problem (too long, refused, answered wrongly), not the key,
        the model or the URL: the same texts would be refused again, others may pass."""
        return self.status in (None, 400, 413, 422)


class OpenAIEmbedder:
    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None,
        dimensions: int,
        timeout: float = 30.0,
    ) -> None:
        self.model = model
        self.dimensions = dimensions
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/", headers=headers, timeout=timeout
        )

    async def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        body = {
            "model": self.model,
            "input": texts,
            "dimensions": self.dimensions,
            "encoding_format": "float",
        }
        data = await self._post(body)
        rows = sorted(data.get("data") or [], key=lambda row: row.get("index", 0))
        vectors = [row.get("embedding") for row in rows]
        if len(vectors) != len(texts) or any(
            not isinstance(v, list) or len(v) != self.dimensions for v in vectors
        ):
            raise EmbeddingRejected(
                f"{self.model} answered {len(vectors)} vectors for {len(texts)} texts, or vectors "
                f"not of {self.dimensions} dimensions (the column's size)"
            )
        return vectors

    async def embed_query(self, text: str) -> list[float]:
        [vector] = await self.embed([text])
        return vector

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        failure, retry_after = "", ""
        for attempt in range(RETRIES + 1):
            if attempt:
                await asyncio.sleep(self._delay(attempt, retry_after))
            try:
                response = await self._http.post("embeddings", json=body)
            except httpx.TransportError as exc:
                failure, retry_after = f"{type(exc).__name__}: {exc}", ""
                continue
            if response.status_code == 429 or response.status_code >= 500:
                failure = f"{response.status_code} {response.text[:200]}"
                retry_after = response.headers.get("retry-after", "")
                continue
            if response.is_error:
                raise EmbeddingRejected(
                    f"{response.status_code} {response.text[:500]}", response.status_code
                )
            return response.json()
        raise EmbeddingUnavailable(f"embeddings failing after {RETRIES + 1} tries: {failure}")

    @staticmethod
    def _delay(attempt: int, retry_after: str) -> float:
        try:
            return min(float(retry_after), MAX_RETRY_AFTER_SECONDS)
        except ValueError:
            return BACKOFF_SECONDS * 2 ** (attempt - 1)

    async def aclose(self) -> None:
        await self._http.aclose()
