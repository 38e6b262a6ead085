"""Document writes over HTTP, as jobs: applied in order within a collection, kept on disk,
cancellable.

A route stages the uploaded bytes under the job's folder and submits the job; a worker thread
of the job's collection applies its writes to the collection's folder (keeping the bytes each
one replaces) and runs the incremental reindex (the engine of ``rag reindex``), so writes to a
collection never interleave and a job's summary is a reindex's::

    jobs/<id>.json      the job: collection, writes, state, progress, then its result or error
    jobs/<id>/<n>       the staged bytes of its n-th write, until applied
    jobs/<id>/<n>.before  the bytes that write replaced or deleted (<n>.absent: there were none)
    jobs/<id>.owner     locked (flock) by the process that will run the job
    jobs/<id>.cancel    present once the job was asked to stop (by any process)

Fairness: one worker per collection with jobs to run, so a large upload in one collection never
queues another collection's small one behind it. The workers run at a raised nice value
(``RAG_INGEST__JOB_NICE``) and embed with a one-thread model of their own, so queries, which
run at normal priority on the service's model, win the CPU.

Crash safety: applying a write is idempotent (a staged file is moved in, or was already) and the
reindex is crash-safe by itself, so a process that dies mid-job leaves the collection's previous
generation serving. The next process to start adopts every unfinished job whose owner is gone
(its lock is free: the kernel drops it with the process) and runs it again; ``resumed`` counts
how often.

Cancelling (``cancel``): a queued job never runs; a running one stops before its next embedding
batch, its reindex commits nothing, and each write it applied is undone (the saved bytes put
back, a new file removed), so the folder again matches the generation that serves and no later
job indexes half an upload. A job cancelled while no process ran it is undone, not resumed, at
the next start. A job that finished before the cancel arrived keeps its state.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from rag_service.collections import Collections
from rag_service.errors import IndexBusy, NotFound, RagError, ReindexCancelled, ServerBusy
from rag_service.index_state import write_atomically
from rag_service.protocols import Indexer

log = logging.getLogger(__name__)

JobState = Literal["queued", "running", "done", "failed", "cancelled"]
_ID = re.compile(r"[0-9a-f]{24}")
# Finished jobs are kept this long for their callers to read, then removed at the next start.
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
        jobs_dir: Path,
        collections: Collections,
        indexer: Indexer,
        *,
        max_queued: int,
        lock_wait_s: float = 600.0,
        nice: int = 0,
    ) -> None:
        """``lock_wait_s``: how long a job waits for a ``rag reindex`` of the same collection
        (which holds its lock) before it fails. ``nice``: added to the workers' nice value."""
        self._dir = jobs_dir
        self._collections = collections
        self._indexer = indexer
        self._max_queued = max_queued
        self._lock_wait_s = lock_wait_s
        self._nice = nice
        self._queues: dict[str, deque[str]] = {}  # collection -> ids of its queued jobs
        self._workers: dict[str, threading.Thread] = {}  # collection -> its worker
        self._owned: dict[str, int] = {}  # job id -> fd of its locked owner file
        self._lock = threading.Lock()
        self._stop = threading.Event()

    # -- lifecycle

    def start(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        self._adopt_orphans()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the workers before their next embedding batch (a job cut short is resumed by
        the next start)."""
        self._stop.set()
        with self._lock:
            workers = list(self._workers.values())
        deadline = time.monotonic() + timeout_s
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))

    def _adopt_orphans(self) -> None:
        now = time.time()
        for path in sorted(self._dir.glob("*.json")):
            job = self._read(path.stem)
            if job is None:
                continue
            if job.finished:
                if now - path.stat().st_mtime > _KEEP_FINISHED_S:
                    self._remove(job.id)
                continue
            if not self._own(job.id):
                continue  # another live process runs it
            if self._cancel_requested(job.id):
                log.info("undoing document job %s, cancelled while no server ran it", job.id)
                self._finish_cancelled(job)
                continue
            log.info("resuming document job %s (%s)", job.id, job.state)
            self._save(replace(job, state="queued", resumed=job.resumed + 1, waiting=None))
            self._enqueue(job)

    # -- the routes' side

    @contextlib.contextmanager
    def staging(self) -> Iterator[Staging]:
        """A new job's folder; removed again unless the job is submitted inside the block."""
        job_id = f"{time.time_ns():016x}{secrets.token_hex(4)}"
        folder = self._dir / job_id
        folder.mkdir(parents=True)
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
        self._own(job.id)
        self._save(job)
        self._enqueue(job)
        return job

    def get(self, job_id: str) -> Job:
        job = self._read(job_id) if _ID.fullmatch(job_id) else None
        if job is None:
            raise NotFound(f"no job {job_id[:40]!r}")
        return job

    def unfinished(self, collection: str) -> list[Job]:
        """Jobs of ``collection`` this process has queued or is running."""
        with self._lock:
            ids = list(self._owned)
        jobs = (self._read(i) for i in ids)
        return [j for j in jobs if j is not None and j.collection == collection and not j.finished]

    def cancel(self, job_id: str, wait_s: float = 30.0) -> Job:
        """Stop a job (idempotent) and return it as it then is: ``cancelled`` at once if it was
        queued, after its current embedding batch if it was running (waiting up to ``wait_s``
        for that); a finished job is returned unchanged."""
        self._ask_to_stop(self.get(job_id))
        return self._settled(job_id, wait_s)

    def cancel_collection(self, collection: str, wait_s: float = 30.0) -> None:
        """Cancel every job of ``collection`` this process holds and wait until none runs;
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
        self._cancel_path(job.id).touch()
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

    # -- storage

    def _path(self, job_id: str) -> Path:
        return self._dir / f"{job_id}.json"

    def _cancel_path(self, job_id: str) -> Path:
        return self._dir / f"{job_id}.cancel"

    def _cancel_requested(self, job_id: str) -> bool:
        return self._cancel_path(job_id).exists()

    def _read(self, job_id: str) -> Job | None:
        try:
            return Job.from_json(json.loads(self._path(job_id).read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, KeyError):
            log.warning("ignoring the unreadable job file %s", self._path(job_id))
            return None

    def _save(self, job: Job) -> Job:
        write_atomically(self._path(job.id), asdict(job))
        return job

    def _own(self, job_id: str) -> bool:
        fd = os.open(self._dir / f"{job_id}.owner", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        with self._lock:
            self._owned[job_id] = fd
        return True

    def _release(self, job_id: str) -> None:
        shutil.rmtree(self._dir / job_id, ignore_errors=True)
        self._cancel_path(job_id).unlink(missing_ok=True)
        with self._lock:
            fd = self._owned.pop(job_id, None)
        (self._dir / f"{job_id}.owner").unlink(missing_ok=True)
        if fd is not None:
            os.close(fd)

    def _remove(self, job_id: str) -> None:
        self._path(job_id).unlink(missing_ok=True)
        self._cancel_path(job_id).unlink(missing_ok=True)
        (self._dir / f"{job_id}.owner").unlink(missing_ok=True)
        shutil.rmtree(self._dir / job_id, ignore_errors=True)

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
            job = self._read(job_id)
            if job is None:
                self._release(job_id)
                continue
            if self._run(job):
                self._release(job_id)

    def _run(self, job: Job) -> bool:
        """Run one job; False if the service is stopping and the job was left to resume."""
        if self._cancel_requested(job.id):
            self._finish_cancelled(job, release=False)
            return True
        job = self._save(replace(job, state="running", started_at=_now()))
        try:
            collection = self._collections.get(job.collection)
            for n, write in enumerate(job.writes):
                if self._cancel_requested(job.id):
                    raise ReindexCancelled("cancelled before its writes were applied")
                apply_write(collection.folder, write, self._dir / job.id, n)
            summary = self._reindex(job, collection.folder)
        except ReindexCancelled:
            if not self._cancel_requested(job.id):
                return False  # the service is stopping: the next start resumes the job
            self._finish_cancelled(job, release=False)
            return True
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

    def _finish_cancelled(self, job: Job, *, release: bool = True) -> Job:
        """Undo the writes the job applied, newest first, then mark it cancelled."""
        try:
            folder = self._collections.get(job.collection).folder
        except NotFound:
            folder = None  # the collection is gone, and its folder with it
        if folder is not None:
            for n, write in reversed(list(enumerate(job.writes))):
                undo_write(folder, write, self._dir / job.id, n)
        job = self._save(
            replace(job, state="cancelled", finished_at=_now(), waiting=None, error=None)
        )
        if release:
            self._release(job.id)
        return job

    def _reindex(self, job: Job, folder: Path) -> dict[str, Any]:
        deadline = time.monotonic() + self._lock_wait_s
        last_saved = 0.0

        def progress(done: int, total: int) -> None:
            nonlocal job, last_saved
            if time.monotonic() - last_saved > 0.5 or done == total:
                job = self._save(replace(job, progress={"embedded": done, "to_embed": total}))
                last_saved = time.monotonic()

        def cancelled() -> bool:
            return self._stop.is_set() or self._cancel_requested(job.id)

        while True:
            try:
                return self._indexer.reindex(job.collection, folder, progress, cancelled)
            except IndexBusy:
                if time.monotonic() > deadline:
                    raise IndexBusy(
                        f"another reindex of {job.collection!r} held it for "
                        f"{self._lock_wait_s:g} s; submit the job again"
                    ) from None
                if job.waiting is None:
                    job = self._save(replace(job, waiting="another reindex of the collection"))
                if self._stop.wait(0.5) or cancelled():
                    raise ReindexCancelled("stopped while waiting for another reindex") from None


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


def apply_write(folder: Path, write: FileWrite, job_dir: Path, n: int) -> None:
    """Put the n-th staged file in place (atomically: readers see the old bytes or the new), or
    delete the document, after saving what it replaces in ``job_dir`` for ``undo_write``.
    Idempotent: a staged file already moved in is not there any more, a saved copy is kept."""
    target = folder / write.path
    _check_inside(folder, target)
    if write.staged is None:
        _save_previous(target, job_dir, n)
        target.unlink(missing_ok=True)
        _prune_empty(folder, target.parent)
        return
    staged = job_dir / write.staged
    if not staged.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    _save_previous(target, job_dir, n)
    _place(staged, target, n)
    staged.unlink()


def undo_write(folder: Path, write: FileWrite, job_dir: Path, n: int) -> None:
    """Put back what the n-th write replaced (nothing if it was never applied). Idempotent."""
    target = folder / write.path
    _check_inside(folder, target)  # as apply_write: a link swapped in since must not lead out
    before, absent = job_dir / f"{n}.before", job_dir / f"{n}.absent"
    if before.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        _place(before, target, n)
    elif absent.exists():
        target.unlink(missing_ok=True)
        _prune_empty(folder, target.parent)


def _save_previous(target: Path, job_dir: Path, n: int) -> None:
    before, absent = job_dir / f"{n}.before", job_dir / f"{n}.absent"
    if before.exists() or absent.exists():
        return  # saved by an earlier attempt: the target may hold the new bytes by now
    if target.is_file():
        part = job_dir / f"{n}.before.part"
        shutil.copyfile(target, part)
        os.replace(part, before)
    else:
        absent.touch()


def _place(source: Path, target: Path, n: int) -> None:
    # Hidden (a scan never reads it), and short: the name itself may take all 255 bytes.
    digest = hashlib.sha256(target.name.encode()).hexdigest()[:16]
    part = target.with_name(f".{digest}.{n}.part")
    shutil.copyfile(source, part)
    os.replace(part, target)


def _check_inside(folder: Path, target: Path) -> None:
    """No component of the path inside ``folder`` is a symbolic link: a link placed in a
    mirrored folder must not carry a write outside it."""
    current = folder
    for part in target.relative_to(folder).parts[:-1]:
        current = current / part
        if current.is_symlink():
            relative = target.relative_to(folder).as_posix()
            raise RagError(f"{relative}: the path goes through a symbolic link")


def _prune_empty(folder: Path, parent: Path) -> None:
    while parent != folder and parent.is_relative_to(folder):
        try:
            parent.rmdir()
        except OSError:
            return  # not empty
        parent = parent.parent
