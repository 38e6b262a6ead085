"""The pluggable parts, one small Protocol each; a backend is one module satisfying one."""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

from rag_service.index_state import Failure, IndexPointer, Manifest
from rag_service.keys import ApiKey, KeyInfo, Scope
from rag_service.types import Chunk, Completion, GenerationParams, Judgement, Prompt, ScoredId

if TYPE_CHECKING:  # jobs.py imports this module
    from rag_service.jobs import Job

Vectors = NDArray[np.float32]


class Embedder(Protocol):
    """Query and document embedding are different operations: asymmetric models (E5) prefix or
    encode them differently, so a caller always says which one it means."""

    @property
    def model_id(self) -> str:
        """Names the vector space; part of the index fingerprint, so a change forces a rebuild."""
        ...

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Unit-length vectors of passages to be searched, one row per text."""
        ...

    def embed_query(self, text: str) -> Vectors:
        """One unit-length vector (1-D) for a search query."""
        ...

    def warm_up(self) -> None:
        """Load what the first call would (a model), so that call does not pay for it."""
        ...

    def close(self) -> None:
        """Release what it holds (files, connections); it is not used afterwards."""
        ...


class Retriever(Protocol):
    """Ranks the chunks of one index generation for a query."""

    def retrieve(
        self, query: str, k: int, accept: Callable[[str], bool] | None = None
    ) -> list[ScoredId]:
        """The ``k`` best chunk ids; ``accept``, if given, filters on the chunk's source path."""
        ...


class Reranker(Protocol):
    """Re-scores a short list of candidates against the query; higher is better."""

    @property
    def name(self) -> str: ...

    def rerank(self, query: str, candidates: Sequence[Chunk]) -> list[float]: ...

    def warm_up(self) -> None:
        """Load what the first call would (a model), so that call does not pay for it."""
        ...

    def close(self) -> None:
        """Release what it holds (files, connections); it is not used afterwards."""
        ...


class VectorStore(Protocol):
    """Chunk vectors kept in generations, so a reindex never disturbs the index being served.

    A chunk is visible at generation ``g`` when ``added_in <= g < retired_in``. A reindex writes
    generation ``g + 1`` beside ``g`` and only the atomic switch of the index pointer publishes it.
    """

    @property
    def collection_name(self) -> str: ...

    @property
    def max_batch_size(self) -> int: ...

    def add(self, chunks: Sequence[Chunk], vectors: Vectors, generation: int) -> None: ...

    def update_metadata(self, chunks: Sequence[Chunk]) -> None:
        """Refresh offsets and titles of chunks whose text (and so whose vector) did not change."""
        ...

    def retire(self, ids: Collection[str], generation: int) -> None:
        """Hide chunks from ``generation`` on; readers of older generations still see them."""
        ...

    def reset_uncommitted(
        self, committed: int, adopt: Collection[str], generation: int
    ) -> set[str]:
        """Undo what an abandoned reindex wrote after generation ``committed``.

        Chunks it added whose ids are in ``adopt`` are re-labelled as added in ``generation``
        (their vectors are reused, not recomputed) and returned; the others are deleted.
        """
        ...

    def purge_retired(self, up_to: int) -> int:
        """Delete chunks retired at or before generation ``up_to``; returns how many."""
        ...

    def get(self, ids: Sequence[str]) -> list[Chunk]:
        """The chunks with these ids, in this order; unknown ids are left out."""
        ...

    def search(
        self,
        vector: Vectors,
        k: int,
        generation: int,
        accept: Callable[[str], bool] | None = None,
    ) -> list[ScoredId]:
        """The ``k`` chunks visible at ``generation`` nearest to ``vector`` by cosine similarity;
        ``accept``, if given, filters on the chunk's source path."""
        ...

    def count(self) -> int:
        """Every stored chunk, visible or not."""
        ...

    def drop(self) -> None: ...

    def close(self) -> None: ...


class LLM(Protocol):
    """Writes an answer from a prompt. Raises ``UpstreamError`` when a remote model fails."""

    @property
    def backend(self) -> str: ...

    @property
    def model(self) -> str: ...

    def complete(self, prompt: Prompt, params: GenerationParams) -> Completion: ...

    def stream(self, prompt: Prompt, params: GenerationParams) -> Iterator[Completion]:
        """The completion in pieces as the model writes them: deltas, never cumulative text."""
        ...

    def check(self) -> None:
        """Cheaply confirm the model can answer now (readiness); ``UpstreamError`` if not."""
        ...

    def warm_up(self) -> None:
        """Load what the first call would (a model), so that call does not pay for it."""
        ...

    def close(self) -> None:
        """Release what it holds (files, connections); it is not used afterwards."""
        ...


class EvidenceJudge(Protocol):
    """Reads a question and a passage and says how likely the passage answers it: the part of
    the refusal decision that words and cosines cannot make (answering.py, judging.py). Raises
    ``UpstreamError`` when the model fails."""

    @property
    def model(self) -> str: ...

    def judge(self, question: str, language: str, passage: str) -> Judgement:
        """``language``: the question's ("en" or "zh"), which picks the prompt."""
        ...

    def warm_up(self) -> None: ...

    def close(self) -> None: ...


class Indexer(Protocol):
    """Brings a collection's index up to date with its folder: ``ingest``'s incremental reindex,
    which the API's document jobs run (``rag_service`` does not import ``ingest``; the CLI
    hands it in)."""

    def reindex(
        self,
        collection: str,
        folder: Path,
        progress: Callable[[int, int], None],
        cancelled: Callable[[], bool] = ...,
    ) -> dict[str, Any]:
        """The summary ``rag reindex --json`` prints; ``IndexBusy`` if another reindex of the
        collection is running; ``ReindexCancelled`` (nothing committed) once ``cancelled``
        answers True, which it asks between embedding batches."""
        ...

    def supports(self, source: str) -> bool:
        """Whether a file of this name would be read (by its extension)."""
        ...


class IndexRecords(Protocol):
    """One collection's committed index: which generation serves, its manifest and lexical
    index, the files its last reindex could not read, and the lock one reindex holds. Files
    under the collection's folder (``IndexState``) or rows in PostgreSQL; either way the BM25
    files are loaded from a local folder (a cache of the shared copy in PostgreSQL's case)."""

    token_cache_path: Path  # a local cache of tokens by chunk id, never shared

    def current(self) -> IndexPointer | None: ...

    def pointer_stamp(self) -> Hashable | None:
        """Changes whenever a new pointer may have been committed; cheap on every request."""
        ...

    def manifest(self, pointer: IndexPointer) -> Manifest: ...

    def bm25_path(self, store: str, generation: int, backend: str) -> Path:
        """Where a reindex writes this generation's BM25 index before committing it."""
        ...

    def lexical_index(self, pointer: IndexPointer, backend: str) -> Path:
        """A local folder holding the committed generation's BM25 index, to load."""
        ...

    def commit(
        self, store: str, generation: int, fingerprint: str, manifest: Manifest
    ) -> IndexPointer:
        """Make ``generation`` (its manifest and the BM25 index written at ``bm25_path``) the
        served one, atomically; ``IndexBusy`` if another commit got there first."""
        ...

    def share_lexical(self, pointer: IndexPointer, backend: str) -> None:
        """Let every process serving the committed ``pointer`` load its BM25 index for
        ``backend``, built at ``bm25_path`` after the commit (another backend was configured
        since); nothing if a newer generation was committed meanwhile."""
        ...

    def record_failures(self, failed: dict[str, Failure], context: str) -> None: ...

    def last_failures(self) -> dict[str, str]: ...

    def known_failures(self, context: str) -> dict[str, Failure]: ...

    def drop(self) -> None:
        """Forget every generation, manifest and failure of the collection (it is being
        deleted, or made anew under a name that was deleted)."""
        ...

    def reindex_lock(self) -> AbstractContextManager[None]:
        """Held by the one reindex of this collection allowed at a time, in any process on any
        host; ``IndexBusy`` when taken; released when its holder exits or dies."""
        ...


class CollectionRecords(Protocol):
    """Which collections exist: one record (a JSON object: the folder it indexes, whether it is
    managed, when it was made) per listed collection, shared by every process that shares the
    state. Persistence only: what a name may be and what a record means are decided by
    ``Collections``.

    Outside ``naming`` a read may lag another process's write by the time its notice takes to
    arrive (files: never); under ``naming`` it sees every write committed before."""

    def read(self, name: str) -> dict[str, Any] | None:
        """``name``'s record; None if it is not listed."""
        ...

    def write(self, name: str, record: dict[str, Any]) -> None:
        """List ``name`` with ``record``, replacing the record it had."""
        ...

    def names(self) -> list[str]:
        """Every listed name, sorted."""
        ...

    def remove(self, name: str) -> None:
        """Unlist ``name``: from now on it does not exist, for every process."""
        ...

    def naming(self) -> AbstractContextManager[None]:
        """Held from checking that a name is free to writing its record, by one holder at a
        time in any process on any host; waits for the holder before."""


class ApiKeys(Protocol):
    """The API keys a server accepts, kept as keyed digests (never the keys), and the secret
    they are hashed with, which also signs document links. Files under the data folder
    (``KeyStore``) or rows in PostgreSQL (``PostgresKeys``)."""

    def create(self, name: str, scope: Scope) -> str:
        """A new key, returned once; ``KeyStoreError`` for a bad or taken name."""
        ...

    def revoke(self, name: str) -> None:
        """Every process sharing the store refuses the key from its next request (PostgreSQL:
        once the change is announced); ``KeyStoreError`` if there is no such key."""
        ...

    def list_keys(self) -> list[KeyInfo]: ...

    def any(self) -> bool: ...

    def verify(self, presented: str) -> ApiKey | None:
        """The key ``presented`` is, or None; on every request, so it is answered from a copy
        re-read only when the keys changed, and compares in constant time."""
        ...

    def sign(self, purpose: str, message: str) -> str:
        """An HMAC of ``message`` under the keys' secret, the same in every process sharing
        the store."""
        ...


class JobStore(Protocol):
    """The document jobs (``rag_service.jobs.JobRunner`` schedules them) and what they write:
    each job's record, the bytes it stages and the bytes each of its writes replaced (for
    undo), its cancel request, which process owns it, and the documents of managed collections.
    Files under the data folder (one host: a managed collection's folder is its documents) or
    PostgreSQL (every replica: the documents are rows, and a collection's folder on each host
    is a copy of them, checked out before each reindex).

    Ownership is a lock the system frees when its holder dies (``flock``, a session advisory
    lock), so an unfinished job whose owner died can be adopted by the next process to look."""

    # How often a live process looks for jobs to adopt; None: only when it starts (files: a
    # dead process's jobs wait for the next start on the same host).
    adopt_every_s: float | None

    def staging(self, job_id: str) -> Path:
        """A new local folder for a new job's files (named as its writes' ``staged``)."""
        ...

    def create(self, job: Job, staging: Path) -> None:
        """Record a new job with the files staged for it, owned by this process."""
        ...

    def save(self, job: Job) -> None:
        """``JobTakenOver`` if another process owns the job now."""
        ...

    def read(self, job_id: str) -> Job | None: ...

    def unfinished(self, collection: str) -> list[Job]:
        """The collection's queued and running jobs that can be seen from here (files: this
        process's; PostgreSQL: every replica's)."""
        ...

    def adopt(self) -> list[Job]:
        """The unfinished jobs whose owner is gone, now owned by this process."""
        ...

    def prune(self, older_than_s: float) -> None:
        """Forget the jobs that finished more than ``older_than_s`` ago."""
        ...

    def request_cancel(self, job_id: str) -> None:
        """Ask whichever process runs the job to stop it."""
        ...

    def cancel_requested(self, job_id: str) -> bool: ...

    def disown(self, job_id: str) -> None:
        """Give the job up, unfinished, for another process (or a later look) to adopt."""
        ...

    def release(self, job_id: str) -> None:
        """A finished job: drop the bytes it kept (staged and replaced) and its ownership; the
        record stays for its callers to read."""
        ...

    def exclusive(
        self, collection: str, waiting: Callable[[], None]
    ) -> AbstractContextManager[None]:
        """Held while a job writes and reindexes ``collection``, so that no other process's job
        of it interleaves; ``waiting`` is called between attempts to take it (it may raise to
        give up)."""
        ...

    def apply(self, job: Job, n: int, folder: Path) -> None:
        """Put the job's n-th write in place (``folder``: the collection's), after keeping what
        it replaces; idempotent. ``JobTakenOver`` if another process owns the job now."""
        ...

    def undo(self, job: Job, n: int, folder: Path | None) -> None:
        """Put back what the n-th write replaced (nothing if it was never applied); idempotent.
        ``folder`` is None when the collection is gone."""
        ...

    def checkout(self, collection: str, folder: Path) -> None:
        """Make a managed collection's folder hold exactly its documents (under its reindex
        lock, before a reindex scans it)."""
        ...

    def drop_documents(self, collection: str) -> None:
        """Forget a deleted managed collection's documents."""
        ...

    def close(self) -> None: ...


class StateStore(Protocol):
    """Where a process keeps everything but the vectors (``rag_service.state.open_state``)."""

    backend: str  # files or postgresql

    def index(self, name: str, root: Path) -> IndexRecords:
        """Collection ``name``'s index records; ``root`` is its local folder (for files, the
        records themselves; for PostgreSQL, the caches)."""
        ...

    def collection_records(self) -> CollectionRecords:
        """Which collections exist, and what each indexes."""

    def keys(self) -> ApiKeys:
        """The API keys; PostgreSQL's store hands every caller the one copy of the process."""

    def jobs(self) -> JobStore:
        """The document jobs and managed collections' documents (the same store each call)."""
        ...

    def check(self) -> None:
        """Raise ``StateUnavailable`` unless the records can be read now."""
        ...

    def close(self) -> None: ...
