"""What the tests of the PostgreSQL layout's records share: one private PostgreSQL per module,
and hosts over it (each its own pool, listener and data folder), closed after the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rag_service.settings import Settings
from rag_service.state.pg_state import PostgresState
from tests.servers import Postgres, postgres_server

MakeHost = Callable[[Path], PostgresState]


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    with postgres_server() as server:
        yield server


def host(url: str, data: Path) -> PostgresState:
    """One host's view of the PostgreSQL at ``url``, with ``data`` as its data folder."""
    settings = Settings(_env_file=None, data_dir=data, state={"url": url})  # type: ignore[call-arg]
    return PostgresState(settings)


@pytest.fixture
def make_host(pg: Postgres) -> Iterator[MakeHost]:
    made: list[PostgresState] = []

    def make(data: Path) -> PostgresState:
        made.append(host(pg.url, data))
        return made[-1]

    yield make
    for state in made:
        state.close()
