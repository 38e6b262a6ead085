"""The collection records in a real PostgreSQL, as two API replicas see them (each its own
``PostgresState``, pool, listener and empty data folder): a collection made on one exists on the
other, a name is checked against both (lookalikes too, and two creations of one new name at once
make it once), a deletion is seen by both; with PostgreSQL stopped, reads answer from what was
read before and a creation fails with StateUnavailable."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag_service.collections import DEFAULT, Collection, Collections
from rag_service.errors import NameTaken, StateUnavailable
from rag_service.state.pg_state import PostgresState
from tests.integration.conftest import MakeHost
from tests.servers import Postgres, wait_for

pytestmark = pytest.mark.integration


class Replica:
    """One host's view: its own state store and data folder."""

    def __init__(self, state: PostgresState, data: Path) -> None:
        self.state = state
        self.collections = Collections(data, data / "corpus", state)


@pytest.fixture
def replicas(make_host: MakeHost, tmp_path: Path) -> Iterator[tuple[Replica, Replica]]:
    one, two = (Replica(make_host(tmp_path / n), tmp_path / n) for n in ("one", "two"))
    yield one, two
    with one.state.db.connection() as conn:  # the next test starts with no collections
        conn.execute("DELETE FROM rag_collections")


def test_a_collection_made_on_one_replica_exists_on_the_other(
    replicas: tuple[Replica, Replica], tmp_path: Path
) -> None:
    one, two = replicas
    assert not two.collections.exists("papers")  # read, and kept, before it is made
    made, created = one.collections.create("papers")
    assert created and made.folder == tmp_path / "one" / "collections" / "papers" / "documents"

    wait_for(lambda: two.collections.exists("papers"), "the other replica to see it", 20)
    theirs = two.collections.get("papers")
    assert theirs.managed and theirs.created_at == made.created_at
    # Its documents folder is each replica's own, under its own data folder.
    assert theirs.folder == tmp_path / "two" / "collections" / "papers" / "documents"
    assert two.collections.create("papers") == (theirs, False)

    (tmp_path / "notes").mkdir()
    mirrored = two.collections.for_reindex("notes", tmp_path / "notes")
    wait_for(lambda: one.collections.exists("notes"), "the mirrored collection to reach one", 20)
    assert one.collections.get("notes").folder == mirrored.folder == tmp_path / "notes"
    assert one.collections.names() == two.collections.names() == [DEFAULT, "notes", "papers"]


def test_a_name_that_differs_only_in_case_is_refused_on_the_other_replica(
    replicas: tuple[Replica, Replica], tmp_path: Path
) -> None:
    one, two = replicas
    assert two.collections.names() == [DEFAULT]  # read, and kept
    # From now on two hears of no change (as if a notice were slow): naming a collection must
    # ask PostgreSQL itself, not the copy.
    two.state.notes.close()
    one.collections.create("Handbook")
    with pytest.raises(NameTaken, match="differ only in case"):
        two.collections.create("HANDBOOK")
    (tmp_path / "notes").mkdir()
    with pytest.raises(NameTaken):
        two.collections.for_reindex("handbook", tmp_path / "notes")
    one.collections.create("Straße")
    with pytest.raises(NameTaken):
        two.collections.create("STRASSE")
    assert one.collections.names() == [DEFAULT, "Handbook", "Straße"]


Outcome = tuple[Collection, bool] | Exception | None


def race(replicas: tuple[Replica, Replica], names: tuple[str, str]) -> list[Outcome]:
    """Each replica creates its name in a thread of its own, both let go at once; what each
    got: ``(collection, created)`` or the exception."""
    start = threading.Barrier(2)
    outcomes: list[Outcome] = [None, None]

    def create(i: int) -> None:
        start.wait()
        try:
            outcomes[i] = replicas[i].collections.create(names[i])
        except Exception as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=create, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_two_replicas_creating_one_name_at_once_make_it_once(
    replicas: tuple[Replica, Replica],
) -> None:
    for i in range(5):
        outcomes = race(replicas, (f"race{i}", f"race{i}"))
        made = [o for o in outcomes if isinstance(o, tuple)]
        assert len(made) == 2, outcomes
        assert sorted(created for _, created in made) == [False, True]
        assert made[0][0].created_at == made[1][0].created_at  # one record, the winner's


def test_two_lookalike_names_created_at_once_give_one_collection(
    replicas: tuple[Replica, Replica],
) -> None:
    for i in range(5):
        outcomes = race(replicas, (f"look{i}", f"LOOK{i}"))
        made = [o for o in outcomes if isinstance(o, tuple)]
        refused = [o for o in outcomes if isinstance(o, NameTaken)]
        assert len(made) == len(refused) == 1, outcomes
    one, _ = replicas
    assert len(one.collections.names()) == 1 + 5


def test_a_collection_unlisted_on_one_replica_is_gone_on_the_other(
    replicas: tuple[Replica, Replica],
) -> None:
    one, two = replicas
    made, _ = one.collections.create("doomed")
    wait_for(lambda: two.collections.exists("doomed"), "the other replica to see it", 20)
    one.collections.unlist(made)
    assert not one.collections.exists("doomed")  # at once in the process that unlisted it
    wait_for(lambda: not two.collections.exists("doomed"), "the other replica to lose it", 20)
    assert two.collections.names() == [DEFAULT]
    one.collections.relist(made)  # a deletion that could not finish
    wait_for(lambda: two.collections.exists("doomed"), "the other replica to see it again", 20)
    again, created = two.collections.create("doomed")
    assert not created and again.created_at == made.created_at


def test_with_postgresql_stopped_reads_answer_from_the_copy_and_creating_fails(
    pg: Postgres, replicas: tuple[Replica, Replica]
) -> None:
    one, two = replicas
    one.collections.create("kept")
    wait_for(lambda: two.collections.exists("kept"), "the other replica to see it", 20)
    pg.stop()
    try:
        wait_for(lambda: not two.state.notes.listening, "the replica to notice the outage", 20)
        assert two.collections.exists("kept") and not two.collections.exists("never")
        assert two.collections.names() == [DEFAULT, "kept"]
        assert two.collections.get("kept").managed
        with pytest.raises(StateUnavailable, match=r"PostgreSQL at \S+ is unavailable"):
            two.collections.create("new")
        with pytest.raises(StateUnavailable):
            one.collections.unlist(one.collections.get("kept"))
    finally:
        pg.start()
    wait_for(lambda: two.state.notes.listening, "the replica to listen again", 20)
    assert two.collections.create("new")[1]  # created
    wait_for(lambda: one.collections.exists("new"), "the other replica to see it", 20)
