"""Document writes over HTTP, as jobs: applied in order within a collection, kept, cancellable.

A route stages the uploaded bytes in a local folder and submits the job; a worker thread of the
job's collection applies its writes (keeping the bytes each one replaces) and runs the
incremental reindex (the engine of ``rag reindex``), so writes to a collection never interleave
and a job's summary is a reindex's. Where jobs and their bytes are kept is the ``JobStore``'s
business (``rag_service/state/file_jobs.py``: files under the data folder, the collection's
folder written in place; ``pg_jobs.py``: PostgreSQL, shared by every replica, the documents in
rows and each host's folder a copy of them); this module only schedules.

Fairness: one worker per collection with jobs to run, so a large upload in one collection never
queues another collection's small one behind it. The workers run at a raised nice value
(``RAG_INGEST__JOB_NICE``) and embed with a one-thread model of their own, so queries, which
run at normal priority on the service's model, win the CPU.

Crash safety: applying a write is idempotent (a staged file is moved in, or was already) and the
reindex is crash-safe by itself, so a process that dies mid-job leaves the collection's previous
generation serving. Its jobs' ownership dies with it (a lock the system frees), and the next
process to look adopts every unfinished job whose owner is gone and runs it again (``resumed``
counts how often): with files, the next process to start; with PostgreSQL, any live replica
within seconds. A process that finds its job taken over (it lost its PostgreSQL session, and
another adopted the job) drops it.

Cancelling (``cancel``): a queued job never runs; a running one stops before its next embedding
batch, its reindex commits nothing, and each write it applied is undone (the saved bytes put
back, a new file removed), so the documents again match the generation that serves and no later
job indexes half an upload. A job cancelled while no process ran it is undone, not resumed, when
it is adopted. A job that finished before the cancel arrived keeps its state.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rag_service.errors import (
    IndexBusy,
    JobTakenOver,
    NotFound,
    RagError,
    ReindexCancelled,
    ServerBusy,
    StateUnavailable,
)
from rag_service.protocols import Indexer, JobStore

if TYPE_CHECKING:  # collections.py imports the state package, which imports this module
    from rag_service.collections import Collections

log = logging.getLogger(__name__)

JobState = Literal["queued", "running", "done", "failed", "cancelled"]
_ID = re.compile(r"[0-9a-f]{24}")
# Finished jobs are kept this long for their callers to read, then forgotten.
_KEEP_FINISHED_S = 7 * 86400


@dataclass(frozen=True)
class FileWrite:
    path: str  # the document's path in the collection's folder
    staged: str | None  # the staged file's name in the job's folder; None: delete the document


@dataclass(frozen=True)
class Job:
    id: str
    collection: str
    writes: tuple[FileWrite, ...]
    state: JobState = "queued"
    created_at: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    # chunks embedded / to embed: {} until the reindex knows what to embed
    progress: dict[str, int] = field(default_factory=dict)
    waiting: str | None = None  # why a running job is not progressing (another reindex)
    result: dict[str, Any] | None = None  # the reindex summary
    error: str | None = None
    resumed: int = 0  # times a restarted server took the job up again

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")

    def public(self) -> dict[str, Any]:
        """What ``GET /v1/jobs/{id}`` shows (staged file names are no business of callers)."""
        body = asdict(self)
        body["writes"] = [
            {"path": w.path, "action": "put" if w.staged else "delete"} for w in self.writes
        ]
        return body

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Job:
        return cls(**{**raw, "writes": tuple(FileWrite(**w) for w in raw["writes"])})


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Staging:
    """A job's folder while a route writes the uploaded bytes into it."""

    id: str
    folder: Path

    def file(self, n: int) -> Path:
        return self.folder / str(n)


class JobRunner:
    def __init__(
        self,
        store: JobStore,
        collections: Collections,
        indexer: Indexer,
        *,
        max_queued: int,
        lock_wait_s: float = 600.0,
        nice: int = 0,
    ) -> None:
        """``lock_wait_s``: how long a job waits for a ``rag reindex`` of the same collection
        (which holds its lock) before it fails. ``nice``: added to the workers' nice value."""
        self._store = store
        self._collections = collections
        self._indexer = indexer
        self._max_queued = max_queued
        self._lock_wait_s = lock_wait_s
        self._nice = nice
        self._queues: dict[str, deque[str]] = {}  # collection -> ids of its queued jobs
        self._workers: dict[str, threading.Thread] = {}  # collection -> its worker
        self._owned: set[str] = set()  # ids of the jobs this process has queued or runs
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._adopter: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> None:
        self._adopt_orphans()
        every_s = self._store.adopt_every_s
        if every_s is not None:
            self._adopter = threading.Thread(
                target=self._keep_adopting, args=(every_s,), name="document-jobs-adopt", daemon=True
            )
            self._adopter.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the workers before their next embedding batch (a job cut short is resumed by
        the next process to adopt it)."""
        self._stop.set()
        with self._lock:
            threads = list(self._workers.values())
        if self._adopter is not None:
            threads.append(self._adopter)
        deadline = time.monotonic() + timeout_s
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _keep_adopting(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            try:
                self._adopt_orphans()
            except Exception:  # a bug must not end the looking: the next round tries again
                log.exception("looking for document jobs to adopt failed")

    def _adopt_orphans(self) -> None:
        try:
            self._store.prune(_KEEP_FINISHED_S)
            adopted = self._store.adopt()
        except StateUnavailable as exc:
            log.warning("cannot look for document jobs to adopt now: %s", exc)
            return
        for job in adopted:
            with self._lock:
                if job.id in self._owned:
                    continue  # this process's already (it took its lock again)
                self._owned.add(job.id)
            try:
                self._resume(job)
            except (JobTakenOver, StateUnavailable) as exc:
                log.warning("document job %s not adopted: %s", job.id, exc)
                self._forget(job.id)

    def _resume(self, job: Job) -> None:
        if self._store.cancel_requested(job.id):
            log.info("undoing document job %s, cancelled while no server ran it", job.id)
            self._finish_cancelled(job)
            return
        log.info("resuming document job %s (%s)", job.id, job.state)
        self._save(replace(job, state="queued", resumed=job.resumed + 1, waiting=None))
        self._enqueue(job)

    # -- the routes' side

    @contextlib.contextmanager
    def staging(self) -> Iterator[Staging]:
        """A new job's folder; removed again unless the job is submitted inside the block."""
        job_id = f"{time.time_ns():016x}{secrets.token_hex(4)}"
        folder = self._store.staging(job_id)
        try:
            yield Staging(job_id, folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def submit(self, staging: Staging, collection: str, writes: list[FileWrite]) -> Job:
        with self._lock:
            if len(self._owned) >= self._max_queued:
                raise ServerBusy(
                    f"{len(self._owned)} document jobs are waiting; try again shortly",
                    retry_after_s=5,
                )
        job = Job(staging.id, collection, tuple(writes), created_at=_now())
        self._store.create(job, staging.folder)
        with self._lock:
            self._owned.add(job.id)
        self._enqueue(job)
        return job

    def get(self, job_id: str) -> Job:
        job = self._store.read(job_id) if _ID.fullmatch(job_id) else None
        if job is None:
            raise NotFound(f"no job {job_id[:40]!r}")
        return job

    def unfinished(self, collection: str) -> list[Job]:
        """Jobs of ``collection`` queued or running (``JobStore.unfinished``: in this process,
        or in any replica)."""
        return self._store.unfinished(collection)

    def cancel(self, job_id: str, wait_s: float = 30.0) -> Job:
        """Stop a job (idempotent) and return it as it then is: ``cancelled`` at once if it was
        queued, after its current embedding batch if it was running (waiting up to ``wait_s``
        for that); a finished job is returned unchanged."""
        self._ask_to_stop(self.get(job_id))
        return self._settled(job_id, wait_s)

    def cancel_collection(self, collection: str, wait_s: float = 30.0) -> None:
        """Cancel every unfinished job of ``collection`` and wait until none runs;
        ``IndexBusy`` if one is still running after ``wait_s``."""
        jobs = self.unfinished(collection)
        for job in jobs:  # all at once: the worker must not start the next one meanwhile
            self._ask_to_stop(job)
        deadline = time.monotonic() + wait_s
        for job in jobs:
            self._settled(job.id, max(0.0, deadline - time.monotonic()))
        if pending := self.unfinished(collection):
            raise IndexBusy(f"{len(pending)} document jobs of {collection!r} did not stop in time")

    def _ask_to_stop(self, job: Job) -> None:
        """Mark the job cancelled for whichever process runs it; one still in this process's
        queue is finished here and now."""
        if job.finished:
            return
        self._store.request_cancel(job.id)
        with self._lock:
            queue = self._queues.get(job.collection, deque())
            dequeued = job.id in queue
            if dequeued:
                queue.remove(job.id)
        if dequeued:
            self._finish_cancelled(job)

    def _settled(self, job_id: str, wait_s: float) -> Job:
        deadline = time.monotonic() + wait_s
        job = self.get(job_id)
        while not job.finished and time.monotonic() < deadline:
            time.sleep(0.05)
            job = self.get(job_id)
        return job

    # -- ownership

    def _save(self, job: Job) -> Job:
        self._store.save(job)
        return job

    def _release(self, job_id: str) -> None:
        self._store.release(job_id)
        with self._lock:
            self._owned.discard(job_id)

    def _forget(self, job_id: str) -> None:
        """Leave an unfinished job to whichever process takes it up (this one too, later)."""
        with self._lock:
            self._owned.discard(job_id)
        with contextlib.suppress(StateUnavailable):
            self._store.disown(job_id)

    # -- the workers

    def _enqueue(self, job: Job) -> None:
        with self._lock:
            self._queues.setdefault(job.collection, deque()).append(job.id)
            if job.collection not in self._workers:
                worker = threading.Thread(
                    target=self._work,
                    args=(job.collection,),
                    name=f"document-jobs-{job.collection}",
                    daemon=True,
                )
                self._workers[job.collection] = worker
                worker.start()

    def _next(self, collection: str) -> str | None:
        """The collection's next job, or None: then its worker is gone (decided under the lock
        ``_enqueue`` takes, so a job submitted meanwhile starts a new one)."""
        with self._lock:
            queue = self._queues.get(collection)
            if queue and not self._stop.is_set():
                return queue.popleft()
            self._queues.pop(collection, None)
            self._workers.pop(collection, None)
            return None

    def _work(self, collection: str) -> None:
        _lower_priority(self._nice)
        while (job_id := self._next(collection)) is not None:
            try:
                job = self._store.read(job_id)
                if job is None or self._run(job):
                    self._release(job_id)
            except (JobTakenOver, StateUnavailable) as exc:
                # Another process runs it now, or PostgreSQL went away: whoever holds the job
                # next resumes it.
                log.warning("document job %s left to be resumed: %s", job_id, exc)
                self._forget(job_id)

    def _run(self, job: Job) -> bool:
        """Run one job; False if the service is stopping and the job was left to resume."""
        if self._store.cancel_requested(job.id):
            self._finish_cancelled(job, release=False)
            return True
        job = self._save(replace(job, state="running", started_at=_now()))
        try:
            collection = self._collections.get(job.collection)
            if collection.managed:
                # With PostgreSQL this host's copy of the documents, made by the first job here.
                collection.folder.mkdir(parents=True, exist_ok=True)
            folder = collection.folder
            waiting = self._waiter(job, "another server's job of the collection")
            with self._store.exclusive(job.collection, waiting):
                try:
                    summary = self._write_and_reindex(job, folder)
                except ReindexCancelled:
                    return self._stopped(job)  # undone before another job may write
        except ReindexCancelled:  # while waiting for the collection: this run applied nothing
            return self._stopped(job)
        except (JobTakenOver, StateUnavailable):
            raise  # left for whichever process holds the job next (``_work``)
        except NotFound:
            self._save(_failed(job, f"the collection {job.collection!r} no longer exists"))
            return True
        except RagError as exc:
            self._save(_failed(job, str(exc)))
            return True
        except Exception as exc:  # a bug must fail this job, never the worker
            log.exception("document job %s failed", job.id)
            self._save(_failed(job, f"internal error ({type(exc).__name__}); see the server log"))
            return True
        self._save(_finished(job, summary))
        return True

    def _write_and_reindex(self, job: Job, folder: Path) -> dict[str, Any]:
        for n in range(len(job.writes)):
            if self._store.cancel_requested(job.id):
                raise ReindexCancelled("cancelled before its writes were applied")
            self._store.apply(job, n, folder)
        return self._reindex(job, folder)

    def _stopped(self, job: Job) -> bool:
        """A run that stopped: cancelled (then undone), or left for the next start."""
        if not self._store.cancel_requested(job.id):
            return False  # the service is stopping: the job is resumed later
        self._finish_cancelled(job, release=False)
        return True

    def _finish_cancelled(self, job: Job, *, release: bool = True) -> Job:
        """Undo the writes the job applied, newest first, then mark it cancelled."""
        try:
            folder: Path | None = self._collections.get(job.collection).folder
        except NotFound:
            folder = None
        for n in reversed(range(len(job.writes))):
            self._store.undo(job, n, folder)
        job = self._save(
            replace(job, state="cancelled", finished_at=_now(), waiting=None, error=None)
        )
        if release:
            self._release(job.id)
        return job

    def _waiter(self, job: Job, why: str) -> Callable[[], None]:
        """Called while the job cannot go on: notes why (once), waits a little, and gives up
        (``ReindexCancelled``) once the job is cancelled or the service stops."""
        noted = False

        def wait() -> None:
            nonlocal noted
            if not noted:
                self._save(replace(job, waiting=why))
                noted = True
            if self._stop.wait(0.5) or self._store.cancel_requested(job.id):
                raise ReindexCancelled(f"stopped while waiting for {why}")

        return wait

    def _reindex(self, job: Job, folder: Path) -> dict[str, Any]:
        deadline = time.monotonic() + self._lock_wait_s
        last_saved = 0.0
        waiting = self._waiter(job, "another reindex of the collection")

        def progress(done: int, total: int) -> None:
            nonlocal job, last_saved
            if time.monotonic() - last_saved > 0.5 or done == total:
                job = self._save(replace(job, progress={"embedded": done, "to_embed": total}))
                last_saved = time.monotonic()

        def cancelled() -> bool:
            return self._stop.is_set() or self._store.cancel_requested(job.id)

        while True:
            try:
                return self._indexer.reindex(job.collection, folder, progress, cancelled)
            except IndexBusy:
                if time.monotonic() > deadline:
                    raise IndexBusy(
                        f"another reindex of {job.collection!r} held it for "
                        f"{self._lock_wait_s:g} s; submit the job again"
                    ) from None
                waiting()


def _lower_priority(nice: int) -> None:
    """Raise this thread's nice value (Linux: per thread) by ``nice``; threads it starts (a
    model's intra-op pool) inherit it."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError as exc:  # not permitted in some sandboxes: run at normal priority
        log.warning("cannot lower the document jobs' priority: %s", exc)


def _failed(job: Job, error: str) -> Job:
    return replace(job, state="failed", error=error, finished_at=_now(), waiting=None)


def _finished(job: Job, summary: dict[str, Any]) -> Job:
    """Done, or failed if one of the job's own files could not be indexed."""
    put = {w.path for w in job.writes if w.staged}
    own = [f for f in summary["failed"] if f["path"] in put]
    embedded = summary["chunks"]["embedded"]
    final = replace(
        job,
        result=summary,
        finished_at=_now(),
        waiting=None,
        progress={"embedded": embedded, "to_embed": embedded},
    )
    if own:
        return replace(
            final, state="failed", error="; ".join(f"{f['path']}: {f['error']}" for f in own)
        )
    return replace(final, state="done")
