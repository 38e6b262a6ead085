"""API keys in a real PostgreSQL, as two replicas see them (two ``PostgresState`` objects, each
with its own pool and listener): a key made through one verifies on the other, a revocation
reaches the other without its asking, both sign alike, a use is recorded, and while PostgreSQL
is away keys keep verifying from the copy while creating one fails cleanly."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rag_service.errors import StateUnavailable
from rag_service.keys import PREFIX, KeyStoreError
from rag_service.state.pg_state import PostgresState
from tests.integration.conftest import MakeHost
from tests.integration.test_state_index import REPO
from tests.servers import Postgres, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def replicas(make_host: MakeHost, tmp_path: Path) -> tuple[PostgresState, PostgresState]:
    return make_host(tmp_path / "1"), make_host(tmp_path / "2")


def reachable(state: PostgresState) -> bool:
    try:
        state.check()
    except StateUnavailable:
        return False
    return True


def test_a_key_made_on_one_replica_works_on_the_other_until_revoked(
    replicas: tuple[PostgresState, PostgresState],
) -> None:
    a, b = replicas[0].keys(), replicas[1].keys()
    assert b.verify(PREFIX + "A" * 43) is None  # b now holds a copy of the key set
    key = a.create("reader", "query")
    assert key.startswith(PREFIX)

    wait_for(lambda: b.verify(key) is not None, "the new key to verify on the other replica", 20)
    found = b.verify(key)
    assert found is not None and found.name == "reader" and found.scope == "query"
    with pytest.raises(KeyStoreError, match="exists"):
        b.create("reader", "admin")  # one name across replicas

    a.revoke("reader")
    wait_for(lambda: b.verify(key) is None, "the revocation to reach the other replica", 20)
    assert a.verify(key) is None
    with pytest.raises(KeyStoreError, match="no key named 'reader'"):
        b.revoke("reader")


def test_only_digests_are_stored_and_a_use_is_listed(
    replicas: tuple[PostgresState, PostgresState],
) -> None:
    a, b = replicas[0].keys(), replicas[1].keys()
    key = a.create("listed", "admin")
    assert next(k for k in a.list_keys() if k.name == "listed").last_used is None

    wait_for(lambda: b.verify(key) is not None, "the key to verify on the other replica", 20)
    used = next(k for k in a.list_keys() if k.name == "listed")
    assert used.scope == "admin" and used.last_used is not None and used.created

    with replicas[0].db.connection() as conn:
        rows = conn.execute("SELECT * FROM rag_keys").fetchall()
        stored = repr(rows) + repr(conn.execute("SELECT * FROM rag_secrets").fetchall())
    assert key not in stored and key[len(PREFIX) :] not in stored
    a.revoke("listed")


def test_both_replicas_sign_alike(
    make_host: MakeHost, tmp_path: Path, replicas: tuple[PostgresState, PostgresState]
) -> None:
    a, b = replicas[0].keys(), replicas[1].keys()
    signature = a.sign("document-link", '["default", "a.md", 1]')
    assert signature == b.sign("document-link", '["default", "a.md", 1]')
    assert signature != b.sign("another-purpose", '["default", "a.md", 1]')
    third = make_host(tmp_path / "3")  # a replica started later reads the same secret
    assert third.keys().sign("document-link", '["default", "a.md", 1]') == signature


def test_without_postgresql_keys_verify_from_the_copy_and_cannot_be_made(
    pg: Postgres,
    tmp_path: Path,
    replicas: tuple[PostgresState, PostgresState],
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, b = replicas[0].keys(), replicas[1].keys()
    key = a.create("outage", "query")
    wait_for(lambda: b.verify(key) is not None, "the key to verify on the other replica", 20)
    pg.stop()
    try:
        wait_for(lambda: not replicas[1].notes.listening, "the replica to notice the outage", 20)
        with caplog.at_level(logging.WARNING, logger="rag_service.state.pg_keys"):
            for _ in range(3):
                found = b.verify(key)
                assert found is not None and found.name == "outage"
                assert b.verify(PREFIX + "A" * 43) is None
        warned = [r.getMessage() for r in caplog.records if r.name == "rag_service.state.pg_keys"]
        assert len(warned) == 1 and "PostgreSQL" in warned[0]
        assert b.any()

        with pytest.raises(StateUnavailable, match="PostgreSQL"):
            a.create("meanwhile", "query")
        with pytest.raises(StateUnavailable, match="PostgreSQL"):
            a.revoke("outage")
        cli = subprocess.run(
            [sys.executable, "-m", "rag_cli", "keys", "create", "--name", "cli"],
            env={
                **os.environ,
                "PYTHONPATH": str(REPO),
                "RAG_STATE__URL": pg.url,
                "RAG_STATE__CONNECT_TIMEOUT_S": "1",
                "RAG_DATA_DIR": str(tmp_path / "cli"),
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert cli.returncode == 2 and cli.stdout == ""
        # Beside the connection pool's warnings (JSON log lines), one line says why.
        said = [line for line in cli.stderr.splitlines() if not line.startswith("{")]
        assert len(said) == 1 and said[0].startswith("error: PostgreSQL at "), cli.stderr
        assert "rag@" not in cli.stderr
    finally:
        pg.start()

    # The pools reconnect with a backoff that grew during the outage: wait for it, not a time.
    for state in replicas:
        wait_for(lambda state=state: reachable(state), "PostgreSQL to be reachable again", 60)
    later = a.create("after", "query")
    wait_for(lambda: b.verify(later) is not None, "a key made after the outage on the other", 20)
    b.revoke("outage")
    wait_for(lambda: a.verify(key) is None, "a revocation after the outage on the other", 20)
    a.revoke("after")
