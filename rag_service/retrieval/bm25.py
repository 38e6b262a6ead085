"""BM25 over one generation's chunks, built at reindex and kept on disk beside the vectors.

Two scorers with the same interface (a score per chunk for a tokenised query): bm25s, whose
sparse matrices make a query cost microseconds, and rank-bm25, the pure-Python classic, kept as
an option. Tokens are cached by chunk id, so a reindex tokenises only the chunks it adds.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from rag_service.errors import ConfigError
from rag_service.retrieval.tokenize import TOKENIZER_VERSION, tokenize
from rag_service.types import ScoredId

K1, B = 1.2, 0.75


class _Scorer(Protocol):
    def scores(self, tokens: list[str]) -> NDArray[np.float32]: ...

    def document_frequency(self, token: str) -> int: ...

    def save(self, path: Path) -> None: ...


def _bm25s() -> Any:
    import bm25s

    # bm25s sets its logger to DEBUG when imported; its per-call messages are noise here.
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


class _Bm25sScorer:
    def __init__(self, model: Any) -> None:
        self._model = model

    @classmethod
    def build(cls, token_lists: Sequence[list[str]]) -> _Bm25sScorer:
        model = _bm25s().BM25(k1=K1, b=B)
        # bm25s cannot index no documents (a collection whose last document was deleted): one
        # document of a token no query yields stands in; Bm25Index has no row for it.
        model.index(list(token_lists) or [["\x00"]], show_progress=False)
        return cls(model)

    @classmethod
    def load(cls, path: Path) -> _Bm25sScorer:
        return cls(_bm25s().BM25.load(str(path / "bm25s")))

    def scores(self, tokens: list[str]) -> NDArray[np.float32]:
        ids = self._model.get_tokens_ids(tokens)
        if not ids:
            return np.zeros(self._model.scores["num_docs"], dtype=np.float32)
        return np.asarray(self._model.get_scores_from_ids(ids), dtype=np.float32)

    def document_frequency(self, token: str) -> int:
        # The score matrix is stored by token; a token's column has one entry per document
        # that holds it.
        column = self._model.vocab_dict.get(token)
        if column is None:
            return 0
        indptr = self._model.scores["indptr"]
        return int(indptr[column + 1] - indptr[column])

    def save(self, path: Path) -> None:
        self._model.save(str(path / "bm25s"))


class _RankBm25Scorer:
    def __init__(self, model: Any) -> None:
        self._model = model

    @classmethod
    def build(cls, token_lists: Sequence[list[str]]) -> _RankBm25Scorer:
        from rank_bm25 import BM25Okapi

        # rank-bm25 divides by the average length and idf: an empty corpus needs a stand-in
        # document, as for bm25s.
        return cls(BM25Okapi(list(token_lists) or [["\x00"]], k1=K1, b=B))

    @classmethod
    def load(cls, path: Path) -> _RankBm25Scorer:
        with (path / "rank_bm25.pkl").open("rb") as fh:
            return cls(pickle.load(fh))

    def scores(self, tokens: list[str]) -> NDArray[np.float32]:
        return np.asarray(self._model.get_scores(tokens), dtype=np.float32)

    def document_frequency(self, token: str) -> int:
        return sum(1 for frequencies in self._model.doc_freqs if token in frequencies)

    def save(self, path: Path) -> None:
        with (path / "rank_bm25.pkl").open("wb") as fh:
            pickle.dump(self._model, fh, protocol=pickle.HIGHEST_PROTOCOL)


_BACKENDS: dict[str, type[_Bm25sScorer] | type[_RankBm25Scorer]] = {
    "bm25s": _Bm25sScorer,
    "rank-bm25": _RankBm25Scorer,
}


def _backend(name: str) -> type[_Bm25sScorer] | type[_RankBm25Scorer]:
    try:
        return _BACKENDS[name]
    except KeyError:
        raise ConfigError(
            f"unknown BM25 backend {name!r}; valid: {', '.join(sorted(_BACKENDS))}"
        ) from None


@dataclass
class Bm25Index:
    ids: list[str]
    sources: list[str]
    scorer: _Scorer

    @classmethod
    def build(
        cls,
        ids: list[str],
        sources: list[str],
        token_lists: Sequence[list[str]],
        backend: str,
    ) -> Bm25Index:
        return cls(ids, sources, _backend(backend).build(token_lists))

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.mkdir(parents=True, exist_ok=True)
        self.scorer.save(tmp)
        (tmp / "rows.json").write_text(json.dumps({"ids": self.ids, "sources": self.sources}))
        tmp.rename(path)

    @classmethod
    def load(cls, path: Path, backend: str) -> Bm25Index:
        rows = json.loads((path / "rows.json").read_text())
        return cls(rows["ids"], rows["sources"], _backend(backend).load(path))

    @cached_property
    def _source_table(self) -> tuple[list[str], NDArray[np.intp]]:
        """The distinct sources, and for each row the index of its source among them."""
        names, row_source = np.unique(np.array(self.sources, dtype=object), return_inverse=True)
        return [str(name) for name in names], row_source

    def idf(self, token: str) -> float:
        """How rare ``token`` is here (Lucene's BM25 idf, always positive; highest for a token
        no chunk holds)."""
        n, df = len(self.ids), self.scorer.document_frequency(token)
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def search(
        self, tokens: list[str], k: int, accept: Callable[[str], bool] | None = None
    ) -> list[ScoredId]:
        if not tokens or not self.ids:
            return []
        scores = self.scorer.scores(tokens)
        if accept is not None:
            # The filter runs once per source, not once per chunk (100k chunks: tens of ms).
            names, row_source = self._source_table
            scores = np.where(np.array([accept(name) for name in names])[row_source], scores, 0.0)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [ScoredId(self.ids[i], float(scores[i])) for i in top if scores[i] > 0]


class Bm25Retriever:
    """A ``Retriever`` over one generation's BM25 index: the query tokenised as the chunks were."""

    def __init__(self, index: Bm25Index) -> None:
        self._index = index

    def retrieve(
        self, query: str, k: int, accept: Callable[[str], bool] | None = None
    ) -> list[ScoredId]:
        return self._index.search(tokenize(query), k, accept)


class TokenCache:
    """Tokens by chunk id, in SQLite, so reindexing tokenises only new chunks."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path)
        self._table = f"tokens_v{TOKENIZER_VERSION}"
        self._db.execute(
            f"CREATE TABLE IF NOT EXISTS {self._table} (id TEXT PRIMARY KEY, tokens TEXT NOT NULL)"
        )

    def get_many(self, ids: Sequence[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for start in range(0, len(ids), 900):  # SQLite's bound-parameter limit
            batch = ids[start : start + 900]
            marks = ",".join("?" * len(batch))
            rows = self._db.execute(
                f"SELECT id, tokens FROM {self._table} WHERE id IN ({marks})", batch
            )
            found.update((row[0], json.loads(row[1])) for row in rows)
        return found

    def put_many(self, items: Iterable[tuple[str, list[str]]]) -> None:
        with self._db:
            self._db.executemany(
                f"INSERT OR REPLACE INTO {self._table} VALUES (?, ?)",
                ((cid, json.dumps(tokens, ensure_ascii=False)) for cid, tokens in items),
            )

    def keep_only(self, ids: set[str]) -> None:
        stale = [
            row[0] for row in self._db.execute(f"SELECT id FROM {self._table}") if row[0] not in ids
        ]
        with self._db:
            self._db.executemany(f"DELETE FROM {self._table} WHERE id = ?", ((i,) for i in stale))

    def close(self) -> None:
        self._db.close()
