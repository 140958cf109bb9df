"""``RecentVectors``: the vectors of the texts the embedder embedded last, for one model (an
embedder process has one), so a text repeated within a while ("bom dia, tudo bem?", the same
question many customers ask, a campaign's quick answer) is not sent to the model again: the
model costs ~13 CPU-ms a text, a lookup microseconds. Keyed by the text itself (a dict hashes
it once); vectors kept as float32, what pgvector stores anyway (1.5 KB at 384 dimensions), the
least recently used dropped past ``size``."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np


class RecentVectors:
    def __init__(self, size: int) -> None:
        self._size = size
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()

    def get(self, text: str) -> list[float] | None:
        vector = self._vectors.get(text)
        if vector is None:
            return None
        self._vectors.move_to_end(text)
        return vector.tolist()

    def put(self, text: str, vector: list[float]) -> None:
        if self._size == 0:
            return
        self._vectors[text] = np.asarray(vector, dtype=np.float32)
        self._vectors.move_to_end(text)
        while len(self._vectors) > self._size:
            self._vectors.popitem(last=False)

    def __len__(self) -> int:
        return len(self._vectors)
