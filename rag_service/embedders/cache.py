"""A disk cache in front of any embedder, keyed by the embedder's model id, the role (query or
document) and the text's hash.

Evaluation embeds the same corpora and questions again and again; with the cache a rerun costs
seconds instead of the half hour a 15k-chunk corpus takes on a CPU. The role is in the key
because an asymmetric model (E5) embeds the same text differently as a query and as a passage.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from rag_service.protocols import Embedder, Vectors

Role = Literal["query", "document"]


class CachedEmbedder:
    def __init__(self, inner: Embedder, path: Path, namespace: str) -> None:
        """`namespace` must change whenever the vectors would (backend and model)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self._inner = inner
        self._namespace = namespace
        # Several evaluations may share one cache; a writer waits for another rather than fail.
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=120)
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, v BLOB)")
        self._lock = threading.Lock()
        self.misses = 0

    @property
    def model_id(self) -> str:
        return self._inner.model_id

    def _key(self, role: Role, text: str) -> str:
        return hashlib.sha256(f"{self._namespace}\x00{role}\x00{text}".encode()).hexdigest()

    def _cached(
        self, role: Role, texts: Sequence[str], embed: Callable[[list[str]], Vectors]
    ) -> Vectors:
        keys = [self._key(role, t) for t in texts]
        found: dict[str, bytes] = {}
        with self._lock:
            for start in range(0, len(keys), 900):
                batch = keys[start : start + 900]
                marks = ",".join("?" * len(batch))
                rows = self._db.execute(f"SELECT key, v FROM vectors WHERE key IN ({marks})", batch)
                found.update(rows)
        missing = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in found}.items())
        if missing:
            vectors = embed([t for _, t in missing])
            fresh = {
                k: v.astype(np.float32).tobytes()
                for (k, _), v in zip(missing, vectors, strict=True)
            }
            with self._lock, self._db:
                self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", fresh.items())
            found.update(fresh)
            self.misses += len(missing)
        return np.stack([np.frombuffer(found[k], dtype=np.float32) for k in keys])

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        return self._cached("document", texts, self._inner.embed_documents)

    def embed_query(self, text: str) -> Vectors:
        vector: Vectors = self._cached(
            "query", [text], lambda texts: np.stack([self._inner.embed_query(t) for t in texts])
        )[0]
        return vector

    def warm_up(self) -> None:
        self._inner.warm_up()

    def close(self) -> None:
        self._db.close()
        self._inner.close()
