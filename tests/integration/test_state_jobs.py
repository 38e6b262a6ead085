"""Document jobs and managed collections' documents in a real PostgreSQL, as two hosts see
them: a job one host records is read, cancelled and (once its owner is gone) adopted by the
other, whose owner's later writes are then refused; writes are idempotent and undone only where
no later write came; a host's folder is checked out to match the documents exactly; one job
per collection at a time across hosts."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_service.errors import JobTakenOver, ReindexCancelled
from rag_service.jobs import FileWrite, Job
from rag_service.state.pg_state import PostgresState
from tests.integration.conftest import MakeHost

pytestmark = pytest.mark.integration


@pytest.fixture
def hosts(make_host: MakeHost, tmp_path: Path) -> tuple[PostgresState, PostgresState]:
    """Two hosts' views: each its own pool, job-lock session and data folder, over tables with
    no other test's jobs."""
    a, b = make_host(tmp_path / "a"), make_host(tmp_path / "b")
    with a.db.connection() as conn:  # another test's jobs are no business of this one
        conn.execute("TRUNCATE rag_jobs, rag_job_files, rag_documents")
    return a, b


def submit(
    state: PostgresState, job_id: str, collection: str, files: dict[str, bytes | None]
) -> Job:
    """A job putting (bytes) or deleting (None) each path, recorded by ``state``'s host."""
    store = state.jobs()
    staging = store.staging(job_id)
    writes = []
    for n, (path, content) in enumerate(files.items()):
        if content is None:
            writes.append(FileWrite(path, None))
        else:
            (staging / str(n)).write_bytes(content)
            writes.append(FileWrite(path, str(n)))
    job = Job(job_id, collection, tuple(writes))
    store.create(job, staging)
    assert not staging.exists()  # the bytes went to PostgreSQL
    return job


def apply_all(state: PostgresState, job: Job) -> None:
    for n in range(len(job.writes)):
        state.jobs().apply(job, n, Path("unused"))


def undo_all(state: PostgresState, job: Job) -> None:
    for n in reversed(range(len(job.writes))):
        state.jobs().undo(job, n, None)


def folder_files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_a_job_is_read_and_cancelled_anywhere_and_adopted_once_its_owner_is_gone(
    hosts: tuple[PostgresState, PostgresState],
) -> None:
    a, b = hosts
    job = submit(a, "0" * 23 + "1", "notes", {"a.md": b"# A"})
    assert b.jobs().read(job.id) == job
    assert [j.id for j in b.jobs().unfinished("notes")] == [job.id]
    assert b.jobs().unfinished("other") == []
    assert b.jobs().adopt() == []  # its owner lives

    b.jobs().request_cancel(job.id)
    assert a.jobs().cancel_requested(job.id)

    a.jobs().close()  # as when its process dies: the session, and every job lock with it, go
    [adopted] = b.jobs().adopt()
    assert adopted.id == job.id
    assert b.jobs().adopt() == []  # once
    b.jobs().save(adopted)
    with pytest.raises(JobTakenOver):
        a.jobs().save(job)  # the old owner's writes are refused from now on
    with pytest.raises(JobTakenOver):
        a.jobs().apply(job, 0, Path("unused"))


def test_postgresql_probes_the_sessions_that_hold_the_locks(
    hosts: tuple[PostgresState, PostgresState],
) -> None:
    """So a host that vanishes without closing them frees its jobs within a minute."""
    session = hosts[0].db.connect()
    try:
        shown = {
            name: session.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
            for name in ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count")
        }
    finally:
        session.close()
    assert shown == {
        "tcp_keepalives_idle": "30",
        "tcp_keepalives_interval": "10",
        "tcp_keepalives_count": "3",
    }


def test_a_finished_job_is_not_adopted_and_old_ones_are_pruned(
    hosts: tuple[PostgresState, PostgresState],
) -> None:
    a, b = hosts
    job = submit(a, "0" * 23 + "2", "pruned", {"a.md": b"# A"})
    a.jobs().save(Job(job.id, job.collection, job.writes, state="done"))
    a.jobs().release(job.id)
    with a.db.connection() as conn:
        left = conn.execute("SELECT count(*) AS n FROM rag_job_files WHERE job_id = %s", (job.id,))
        assert left.fetchone() == {"n": 0}  # its bytes went; its record stays for callers
    assert b.jobs().adopt() == [] and b.jobs().read(job.id) is not None
    b.jobs().prune(3600)
    assert b.jobs().read(job.id) is not None
    with a.db.connection() as conn:
        conn.execute(
            "UPDATE rag_jobs SET updated_at = now() - interval '2 hours' WHERE id = %s", (job.id,)
        )
    b.jobs().prune(3600)
    assert b.jobs().read(job.id) is None


def test_writes_are_idempotent_undone_only_where_no_later_write_came_and_checked_out(
    hosts: tuple[PostgresState, PostgresState], tmp_path: Path
) -> None:
    a, b = hosts
    first = submit(a, "0" * 23 + "3", "docs", {"a.md": b"# A1", "b.md": b"# B1"})
    apply_all(a, first)
    folder = tmp_path / "b" / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "stray.md").write_bytes(b"not a document")  # e.g. left by a crash
    (folder / "b.md").write_bytes(b"# B0")  # an older copy
    b.jobs().checkout("docs", folder)
    assert folder_files(folder) == {"a.md": b"# A1", "b.md": b"# B1"}
    assert not (folder / "sub").exists()

    second = submit(a, "0" * 23 + "4", "docs", {"a.md": b"# A2", "b.md": None, "c/c.md": b"# C"})
    for _ in range(2):  # a resumed job applies its writes again: nothing changes twice
        apply_all(a, second)
    b.jobs().checkout("docs", folder)
    assert folder_files(folder) == {"a.md": b"# A2", "c/c.md": b"# C"}

    for _ in range(2):  # undoing is idempotent too
        undo_all(a, second)
    b.jobs().checkout("docs", folder)
    assert folder_files(folder) == {"a.md": b"# A1", "b.md": b"# B1"}

    # A cancelled job's undo leaves a later job's write of the same document alone.
    third = submit(a, "0" * 23 + "5", "docs", {"a.md": b"# A3", "b.md": None})
    fourth = submit(a, "0" * 23 + "6", "docs", {"a.md": b"# A4", "b.md": b"# B4"})
    apply_all(a, third)
    apply_all(a, fourth)
    undo_all(a, third)
    b.jobs().checkout("docs", folder)
    assert folder_files(folder) == {"a.md": b"# A4", "b.md": b"# B4"}

    b.jobs().drop_documents("docs")
    b.jobs().checkout("docs", folder)
    assert folder_files(folder) == {}


def test_one_job_of_a_collection_at_a_time_across_hosts(
    hosts: tuple[PostgresState, PostgresState],
) -> None:
    a, b = hosts
    waited = []

    def give_up() -> None:
        waited.append(True)
        raise ReindexCancelled("cancelled while waiting")

    with a.jobs().exclusive("shared", give_up):
        with pytest.raises(ReindexCancelled), b.jobs().exclusive("shared", give_up):
            pass
        assert waited == [True]
        with b.jobs().exclusive("another", give_up):
            pass  # another collection is not held
    with b.jobs().exclusive("shared", give_up):
        pass  # free once left
    assert waited == [True]
