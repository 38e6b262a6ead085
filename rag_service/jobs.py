"""Document writes over HTTP, as jobs: applied one at a time, in order, and kept on disk.

A route stages the uploaded bytes under the job's folder and submits the job; one worker thread
applies each job's writes to its collection's folder and runs the incremental reindex (the
engine of ``rag reindex``), so writes never interleave and a job's summary is a reindex's::

    jobs/<id>.json    the job: collection, writes, state, progress, then its result or error
    jobs/<id>/<n>     the staged bytes of its n-th write, until applied
    jobs/<id>.owner   locked (flock) by the process that will run the job

Crash safety: applying a write is idempotent (a staged file is moved in, or was already) and the
reindex is crash-safe by itself, so a process that dies mid-job leaves the collection's previous
generation serving. The next process to start adopts every unfinished job whose owner is gone
(its lock is free: the kernel drops it with the process) and runs it again; ``resumed`` counts
how often. One worker for all collections: on a CPU, embedding two collections at once would
only make both slower.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import queue
import re
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from rag_service.collections import Collections
from rag_service.errors import IndexBusy, NotFound, RagError, ServerBusy
from rag_service.index_state import write_atomically
from rag_service.protocols import Indexer

log = logging.getLogger(__name__)

JobState = Literal["queued", "running", "done", "failed"]
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
        return self.state in ("done", "failed")

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
    ) -> None:
        """``lock_wait_s``: how long a job waits for a ``rag reindex`` of the same collection
        (which holds its lock) before it fails."""
        self._dir = jobs_dir
        self._collections = collections
        self._indexer = indexer
        self._max_queued = max_queued
        self._lock_wait_s = lock_wait_s
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._owned: dict[str, int] = {}  # job id -> fd of its locked owner file
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name="document-jobs", daemon=True)

    # -- lifecycle

    def start(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        self._adopt_orphans()
        self._worker.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop after the current job (a job cut short is resumed by the next start)."""
        self._stop.set()
        self._queue.put(None)
        if self._worker.is_alive():
            self._worker.join(timeout_s)

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
            log.info("resuming document job %s (%s)", job.id, job.state)
            self._save(replace(job, state="queued", resumed=job.resumed + 1, waiting=None))
            self._queue.put(job.id)

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
        self._queue.put(job.id)
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

    # -- storage

    def _path(self, job_id: str) -> Path:
        return self._dir / f"{job_id}.json"

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
        with self._lock:
            fd = self._owned.pop(job_id, None)
        (self._dir / f"{job_id}.owner").unlink(missing_ok=True)
        if fd is not None:
            os.close(fd)

    def _remove(self, job_id: str) -> None:
        self._path(job_id).unlink(missing_ok=True)
        (self._dir / f"{job_id}.owner").unlink(missing_ok=True)
        shutil.rmtree(self._dir / job_id, ignore_errors=True)

    # -- the worker

    def _work(self) -> None:
        while not self._stop.is_set():
            job_id = self._queue.get()
            if job_id is None:
                return
            job = self._read(job_id)
            if job is None:
                self._release(job_id)
                continue
            finished = self._run(job)
            if finished:
                self._release(job_id)

    def _run(self, job: Job) -> bool:
        """Run one job; False if the service is stopping and the job was left to resume."""
        job = self._save(replace(job, state="running", started_at=_now()))
        try:
            collection = self._collections.get(job.collection)
            for n, write in enumerate(job.writes):
                staged = self._dir / job.id / write.staged if write.staged else None
                apply_write(collection.folder, write, staged, n)
            summary = self._reindex(job, collection.folder)
        except _Stopping:
            return False
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
            final = replace(
                final,
                state="failed",
                error="; ".join(f"{f['path']}: {f['error']}" for f in own),
            )
        else:
            final = replace(final, state="done")
        self._save(final)
        return True

    def _reindex(self, job: Job, folder: Path) -> dict[str, Any]:
        deadline = time.monotonic() + self._lock_wait_s
        last_saved = 0.0

        def progress(done: int, total: int) -> None:
            nonlocal job, last_saved
            if time.monotonic() - last_saved > 0.5 or done == total:
                job = self._save(replace(job, progress={"embedded": done, "to_embed": total}))
                last_saved = time.monotonic()

        while True:
            try:
                return self._indexer.reindex(job.collection, folder, progress)
            except IndexBusy:
                if time.monotonic() > deadline:
                    raise IndexBusy(
                        f"another reindex of {job.collection!r} held it for "
                        f"{self._lock_wait_s:g} s; submit the job again"
                    ) from None
                if job.waiting is None:
                    job = self._save(replace(job, waiting="another reindex of the collection"))
                if self._stop.wait(0.5):
                    raise _Stopping from None


class _Stopping(Exception):
    pass


def _failed(job: Job, error: str) -> Job:
    return replace(job, state="failed", error=error, finished_at=_now(), waiting=None)


def apply_write(folder: Path, write: FileWrite, staged: Path | None, n: int) -> None:
    """Put a staged file in place (atomically: readers see the old bytes or the new), or delete
    one. Idempotent: a staged file already moved in is not there any more."""
    target = folder / write.path
    if write.staged is None:
        _check_inside(folder, target)
        target.unlink(missing_ok=True)
        _prune_empty(folder, target.parent)
        return
    if staged is None or not staged.exists():
        return
    _make_parents(folder, target)
    # Hidden (a scan never reads it), and short: the name itself may take all 255 bytes.
    digest = hashlib.sha256(target.name.encode()).hexdigest()[:16]
    part = target.with_name(f".{digest}.{n}.part")
    shutil.copyfile(staged, part)
    os.replace(part, target)
    staged.unlink()


def _check_inside(folder: Path, target: Path) -> None:
    """No component of the path inside ``folder`` is a symbolic link: a link placed in a
    mirrored folder must not carry a write outside it."""
    current = folder
    for part in target.relative_to(folder).parts[:-1]:
        current = current / part
        if current.is_symlink():
            relative = target.relative_to(folder).as_posix()
            raise RagError(f"{relative}: the path goes through a symbolic link")


def _make_parents(folder: Path, target: Path) -> None:
    _check_inside(folder, target)
    target.parent.mkdir(parents=True, exist_ok=True)


def _prune_empty(folder: Path, parent: Path) -> None:
    while parent != folder and parent.is_relative_to(folder):
        try:
            parent.rmdir()
        except OSError:
            return  # not empty
        parent = parent.parent
