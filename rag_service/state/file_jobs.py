"""Document jobs as files under the data folder (the ``JobStore`` of the file layout); a
managed collection's folder is its documents::

    jobs/<id>.json      the job: collection, writes, state, progress, then its result or error
    jobs/<id>/<n>       the staged bytes of its n-th write, until applied
    jobs/<id>/<n>.before  the bytes that write replaced or deleted (<n>.absent: there were none)
    jobs/<id>.owner     locked (flock) by the process that will run the job
    jobs/<id>.cancel    present once the job was asked to stop (by any process)

The kernel drops a dead process's ``flock``, so the next process to start adopts its jobs.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

from rag_service.errors import RagError
from rag_service.index_state import write_atomically
from rag_service.jobs import FileWrite, Job

log = logging.getLogger(__name__)


class FileJobStore:
    # A dead process's jobs are adopted by the next start on this host (a live one would have to
    # read every job file to find them).
    adopt_every_s: float | None = None

    def __init__(self, jobs_dir: Path) -> None:
        self._dir = jobs_dir
        self._owned: dict[str, int] = {}  # job id -> fd of its locked owner file
        self._lock = threading.Lock()

    def staging(self, job_id: str) -> Path:
        folder = self._dir / job_id
        folder.mkdir(parents=True)
        return folder

    def create(self, job: Job, staging: Path) -> None:
        """The staged files are in place already: the staging folder is the job's."""
        self._own(job.id)
        self.save(job)

    def save(self, job: Job) -> None:
        write_atomically(self._path(job.id), asdict(job))

    def read(self, job_id: str) -> Job | None:
        try:
            return Job.from_json(json.loads(self._path(job_id).read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, KeyError):
            log.warning("ignoring the unreadable job file %s", self._path(job_id))
            return None

    def unfinished(self, collection: str) -> list[Job]:
        """This process's: another's would be found only by reading every job file."""
        with self._lock:
            ids = list(self._owned)
        jobs = (self.read(i) for i in ids)
        return [j for j in jobs if j is not None and j.collection == collection and not j.finished]

    def adopt(self) -> list[Job]:
        adopted = []
        for job in self._jobs():
            if not job.finished and self._own(job.id):
                adopted.append(job)
        return adopted

    def prune(self, older_than_s: float) -> None:
        now = time.time()
        for job in self._jobs():
            with contextlib.suppress(FileNotFoundError):
                if job.finished and now - self._path(job.id).stat().st_mtime > older_than_s:
                    self._remove(job.id)

    def request_cancel(self, job_id: str) -> None:
        self._cancel_path(job_id).touch()

    def cancel_requested(self, job_id: str) -> bool:
        return self._cancel_path(job_id).exists()

    def disown(self, job_id: str) -> None:
        with self._lock:
            fd = self._owned.pop(job_id, None)
        if fd is not None:
            os.close(fd)

    def release(self, job_id: str) -> None:
        shutil.rmtree(self._dir / job_id, ignore_errors=True)
        self._cancel_path(job_id).unlink(missing_ok=True)
        with self._lock:
            fd = self._owned.pop(job_id, None)
        (self._dir / f"{job_id}.owner").unlink(missing_ok=True)
        if fd is not None:
            os.close(fd)

    @contextlib.contextmanager
    def exclusive(self, collection: str, waiting: Callable[[], None]) -> Iterator[None]:
        """Nothing to take: this process's one worker of the collection runs its jobs one at a
        time."""
        yield

    def apply(self, job: Job, n: int, folder: Path) -> None:
        apply_write(folder, job.writes[n], self._dir / job.id, n)

    def undo(self, job: Job, n: int, folder: Path | None) -> None:
        if folder is not None:  # else the collection is gone, and its folder with it
            undo_write(folder, job.writes[n], self._dir / job.id, n)

    def checkout(self, collection: str, folder: Path) -> None:
        """The folder is the documents."""

    def drop_documents(self, collection: str) -> None:
        """They went with the collection's folder."""

    def close(self) -> None:
        """The owner files' locks are held until the jobs end (or the process does)."""

    def _jobs(self) -> Iterator[Job]:
        for path in sorted(self._dir.glob("*.json")):
            job = self.read(path.stem)
            if job is not None:
                yield job

    def _path(self, job_id: str) -> Path:
        return self._dir / f"{job_id}.json"

    def _cancel_path(self, job_id: str) -> Path:
        return self._dir / f"{job_id}.cancel"

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

    def _remove(self, job_id: str) -> None:
        self._path(job_id).unlink(missing_ok=True)
        self._cancel_path(job_id).unlink(missing_ok=True)
        (self._dir / f"{job_id}.owner").unlink(missing_ok=True)
        shutil.rmtree(self._dir / job_id, ignore_errors=True)


def apply_write(folder: Path, write: FileWrite, job_dir: Path, n: int) -> None:
    """Put the n-th staged file in place (atomically: readers see the old bytes or the new), or
    delete the document, after saving what it replaces in ``job_dir`` for ``undo_write``.
    Idempotent: a staged file already moved in is not there any more, a saved copy is kept."""
    target = folder / write.path
    _check_inside(folder, target)
    if write.staged is None:
        _save_previous(target, job_dir, n)
        target.unlink(missing_ok=True)
        prune_empty(folder, target.parent)
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
        prune_empty(folder, target.parent)


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


def prune_empty(folder: Path, parent: Path) -> None:
    while parent != folder and parent.is_relative_to(folder):
        try:
            parent.rmdir()
        except OSError:
            return  # not empty
        parent = parent.parent
