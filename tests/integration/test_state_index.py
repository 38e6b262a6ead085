"""A collection's index records in a real PostgreSQL, as two hosts see them: the reindex lock
is exclusive across processes and freed when its holder is killed, a commit is a
compare-and-set (of two writers of one generation exactly one wins), the BM25 index travels
with its digest, and a replica hears of a commit without asking."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from rag_service.errors import IndexBusy, StateUnavailable
from rag_service.index_state import Failure, SourceEntry
from rag_service.state.pg_state import PostgresState
from rag_service.state.postgres import MIGRATIONS
from tests.integration.conftest import MakeHost, host
from tests.servers import Postgres, wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BM25_DATA = bytes(range(256)) * 64  # every byte value, as in the numeric arrays
MANIFEST = {"a.md": SourceEntry("0" * 64, "A", ["a:0", "a:1"], 10, "2026-12-05", "utf-8")}


def write_bm25(state: PostgresState, name: str, root: Path, store: str, generation: int) -> None:
    folder = state.index(name, root).bm25_path(store, generation, "bm25s")
    (folder / "bm25s").mkdir(parents=True)
    (folder / "rows.json").write_text('{"ids": ["a:0", "a:1"]}', encoding="utf-8")
    (folder / "bm25s" / "params.index.json").write_text("{}", encoding="utf-8")
    (folder / "bm25s" / "data.npy").write_bytes(BM25_DATA)


def test_a_commit_reaches_the_other_host_with_its_bm25_files(
    make_host: MakeHost, tmp_path: Path
) -> None:
    writer, reader = make_host(tmp_path / "w"), make_host(tmp_path / "r")
    mine, theirs = writer.index("notes", tmp_path / "w"), reader.index("notes", tmp_path / "r")
    assert theirs.current() is None
    write_bm25(writer, "notes", tmp_path / "w", "rag-1234", 1)
    committed = mine.commit("rag-1234", 1, "f" * 64, MANIFEST)

    wait_for(lambda: theirs.current() == committed, "the reader to see generation 1", 20)
    assert theirs.manifest(committed) == MANIFEST
    fetched = theirs.lexical_index(committed, "bm25s")
    assert fetched.is_relative_to(tmp_path / "r")  # its own copy, in its own folder
    assert (fetched / "bm25s" / "params.index.json").read_text() == "{}"
    assert (fetched / "rows.json").read_text() == '{"ids": ["a:0", "a:1"]}'
    assert (fetched / "bm25s" / "data.npy").read_bytes() == BM25_DATA

    mine.record_failures({"bad.pdf": Failure("encrypted", "e" * 64)}, "ctx")
    assert theirs.last_failures() == {"bad.pdf": "encrypted"}
    assert theirs.known_failures("ctx") == {"bad.pdf": Failure("encrypted", "e" * 64)}
    assert theirs.known_failures("other settings") == {}


def test_of_two_commits_of_one_generation_exactly_one_wins(
    make_host: MakeHost, tmp_path: Path
) -> None:
    first, second = make_host(tmp_path / "1"), make_host(tmp_path / "2")
    a, b = first.index("race", tmp_path / "1"), second.index("race", tmp_path / "2")
    a.commit("rag-race", 1, "f" * 64, MANIFEST)
    b.commit("rag-race", 2, "f" * 64, MANIFEST)
    with pytest.raises(IndexBusy, match="committed by another reindex first"):
        a.commit("rag-race", 2, "f" * 64, {})
    pointer = a.current()
    assert pointer is not None and pointer.generation == 2
    assert a.manifest(pointer) == MANIFEST  # the winner's, whole


def test_the_reindex_lock_is_one_per_collection_across_hosts(
    make_host: MakeHost, tmp_path: Path
) -> None:
    first, second = make_host(tmp_path / "1"), make_host(tmp_path / "2")
    with first.index("locked", tmp_path / "1").reindex_lock():
        with pytest.raises(IndexBusy), second.index("locked", tmp_path / "2").reindex_lock():
            pass
        with second.index("another", tmp_path / "2").reindex_lock():
            pass  # another collection is not held
    with second.index("locked", tmp_path / "2").reindex_lock():
        pass  # released on leaving


HOLD = """
import sys, time
from pathlib import Path
from rag_service.settings import Settings
from rag_service.state.pg_state import PostgresState
state = PostgresState(Settings(_env_file=None, data_dir=Path(sys.argv[2]), state={"url": sys.argv[1]}))
with state.index("killed", Path(sys.argv[2])).reindex_lock():
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_killed_holder_frees_the_lock(pg: Postgres, make_host: MakeHost, tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, pg.url, str(tmp_path / "holder")],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    other = make_host(tmp_path / "other")
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(IndexBusy), other.index("killed", tmp_path / "other").reindex_lock():
            pass
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)

        def free() -> bool:
            try:
                with other.index("killed", tmp_path / "other").reindex_lock():
                    return True
            except IndexBusy:
                return False

        # PostgreSQL ends the dead client's session when it notices the closed socket.
        wait_for(free, "the killed holder's lock to be released", 20)
    finally:
        holder.kill()


def test_a_run_that_lost_its_lock_to_a_restart_cannot_commit(
    pg: Postgres, make_host: MakeHost, tmp_path: Path
) -> None:
    first, second = make_host(tmp_path / "1"), make_host(tmp_path / "2")
    a, b = first.index("restart", tmp_path / "1"), second.index("restart", tmp_path / "2")
    with a.reindex_lock():
        pg.stop()  # PostgreSQL restarts under the run: its session, and the lock, are gone
        pg.start()
        with b.reindex_lock():  # so another run may take it, and commits
            b.commit("rag-restart", 1, "f" * 64, MANIFEST)
        with pytest.raises(StateUnavailable, match="lost the reindex lock"):
            a.commit("rag-restart", 1, "f" * 64, {})
    pointer = b.current()
    assert pointer is not None and b.manifest(pointer) == MANIFEST


def test_a_dropped_collection_is_gone_for_every_host(make_host: MakeHost, tmp_path: Path) -> None:
    first, second = make_host(tmp_path / "1"), make_host(tmp_path / "2")
    a, b = first.index("dropped", tmp_path / "1"), second.index("dropped", tmp_path / "2")
    write_bm25(first, "dropped", tmp_path / "1", "rag-drop", 1)
    a.commit("rag-drop", 1, "f" * 64, MANIFEST)
    a.record_failures({"bad.pdf": Failure("encrypted", None)}, "ctx")
    wait_for(lambda: b.current() is not None, "the commit to be seen", 20)
    a.drop()
    # A collection made anew under the name starts from nothing, on every host.
    wait_for(lambda: b.current() is None, "the drop to be seen", 20)
    assert a.current() is None and b.last_failures() == {}
    assert not a.bm25_path("rag-drop", 1, "bm25s").exists()


def test_another_backends_bm25_index_reaches_the_other_host(
    make_host: MakeHost, tmp_path: Path
) -> None:
    """Built after the commit (another BM25 backend configured since), it is shared with the
    committed generation, and not with one that a newer commit has replaced."""
    writer, reader = make_host(tmp_path / "w"), make_host(tmp_path / "r")
    mine, theirs = writer.index("other", tmp_path / "w"), reader.index("other", tmp_path / "r")
    write_bm25(writer, "other", tmp_path / "w", "rag-other", 1)
    first = mine.commit("rag-other", 1, "f" * 64, MANIFEST)
    wait_for(lambda: theirs.current() == first, "the reader to see generation 1", 20)
    assert not theirs.lexical_index(first, "rank-bm25").exists()  # not built yet

    built = mine.bm25_path("rag-other", 1, "rank-bm25")
    built.mkdir(parents=True)
    (built / "index.pkl").write_bytes(BM25_DATA)
    mine.share_lexical(first, "rank-bm25")
    mine.share_lexical(first, "rank-bm25")  # again: already there, nothing to do
    fetched = theirs.lexical_index(first, "rank-bm25")
    assert fetched.is_relative_to(tmp_path / "r")
    assert (fetched / "index.pkl").read_bytes() == BM25_DATA

    write_bm25(writer, "other", tmp_path / "w", "rag-other", 2)
    mine.commit("rag-other", 2, "f" * 64, MANIFEST)
    late = mine.bm25_path("rag-other", 1, "late")
    late.mkdir(parents=True)
    (late / "index.pkl").write_bytes(b"late")
    mine.share_lexical(first, "late")  # generation 1 is no longer the committed one
    other = make_host(tmp_path / "o").index("other", tmp_path / "o")
    assert not other.lexical_index(first, "late").exists()


def test_bm25_archives_are_stored_without_compression(
    pg: Postgres, make_host: MakeHost, tmp_path: Path
) -> None:
    """pglz cannot shrink them and only slowed every commit (state/postgres.py's migration)."""
    make_host(tmp_path)  # opening a host migrates the schema
    with psycopg.connect(pg.url) as conn:
        row = conn.execute(
            "SELECT attstorage FROM pg_attribute "
            "WHERE attrelid = 'rag_lexical'::regclass AND attname = 'archive'"
        ).fetchone()
    assert row == ("e",)  # EXTERNAL: out of line, uncompressed


def test_a_database_of_the_first_schema_is_upgraded_and_serves(
    pg: Postgres, tmp_path: Path
) -> None:
    """A deployment made before migration 2 (its schema at version 1) is migrated when a host
    opens it, and a commit then reaches another host with its BM25 files."""
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE first_schema")
    url = pg.url.rsplit("/", 1)[0] + "/first_schema"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE rag_schema (version integer PRIMARY KEY)")
        conn.execute(MIGRATIONS[0])
        conn.execute("INSERT INTO rag_schema (version) VALUES (1)")
    writer, reader = host(url, tmp_path / "w"), host(url, tmp_path / "r")
    try:
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT max(version) FROM rag_schema").fetchone() == (
                len(MIGRATIONS),
            )
        write_bm25(writer, "notes", tmp_path / "w", "rag-1234", 1)
        committed = writer.index("notes", tmp_path / "w").commit("rag-1234", 1, "f" * 64, MANIFEST)
        fetched = reader.index("notes", tmp_path / "r").lexical_index(committed, "bm25s")
        assert (fetched / "bm25s" / "data.npy").read_bytes() == BM25_DATA
    finally:
        writer.close()
        reader.close()
