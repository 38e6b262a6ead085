"""Following a new generation under load (issue #12, finding 4): each generation is loaded once,
and no reader waits for other readers' traffic to stop. Real embedder, real Chroma, real reindex."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.reindex import reindex
from rag_service.serving import SearchService
from rag_service.settings import Settings
from tests.conftest import CountingEmbedder

pytestmark = pytest.mark.integration

# A bound the code must meet with a wide margin on a loaded 2-core machine; what is checked is
# that nobody waits for a reader that never leaves, which would block for ever.
BOUND_S = 30


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "llama.md").write_text("# Llamas\n\nLlamas are South American camelids.\n")
    return Settings(_env_file=None, data_dir=tmp_path / "data", corpus_dir=docs)  # type: ignore[call-arg]


@pytest.fixture
def service(settings: Settings, embedder: CountingEmbedder) -> Iterator[SearchService]:
    reindex(settings, embedder=embedder)
    service = SearchService(settings, embedder)
    yield service
    service.close()


def _commit_new_generation(settings: Settings, embedder: CountingEmbedder, n: int) -> None:
    (settings.corpus_dir / f"paris-{n}.md").write_text(f"# Paris {n}\n\nParis is in France.\n")
    reindex(settings, embedder=embedder)


def test_a_reader_that_never_leaves_does_not_stop_the_swap(
    service: SearchService, settings: Settings, embedder: CountingEmbedder
) -> None:
    leave = threading.Event()
    held = threading.Event()

    def slow_reader() -> None:
        with service.current() as served:
            assert served.pointer.generation == 1
            held.set()
            leave.wait(BOUND_S * 2)

    reader = threading.Thread(target=slow_reader)
    reader.start()
    try:
        assert held.wait(BOUND_S)
        _commit_new_generation(settings, embedder, 1)
        got: list[int] = []
        newcomer = threading.Thread(target=lambda: got.append(_generation(service)))
        newcomer.start()
        newcomer.join(BOUND_S)
        # Before the fix, the newcomer waited for the slow reader to leave.
        assert not newcomer.is_alive(), "a new request waited for another request to finish"
        assert got == [2]
        hits = service.search("Paris France", 3).passages
        assert any(p.chunk.source == "paris-1.md" for p in hits)
    finally:
        leave.set()
        reader.join(BOUND_S)
    assert service.loads == 2


def _generation(service: SearchService) -> int:
    with service.current() as served:
        return served.pointer.generation


def test_many_readers_while_the_pointer_moves_load_each_generation_once(
    service: SearchService, settings: Settings, embedder: CountingEmbedder
) -> None:
    stop = threading.Event()
    errors: list[BaseException] = []
    seen: list[int] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                seen.append(service.search("Paris France llamas", 2).pointer.generation)
            except BaseException as exc:  # reported below, with the others
                errors.append(exc)
                return

    threads = [threading.Thread(target=reader) for _ in range(16)]
    for thread in threads:
        thread.start()
    try:
        for n in range(1, 4):
            _commit_new_generation(settings, embedder, n)
            # Let the readers notice this generation before the next one lands.
            target = len(seen) + 50
            for _ in range(BOUND_S * 10):
                if len(seen) >= target and seen[-1] == n + 1:
                    break
                stop.wait(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(BOUND_S)
    assert not errors, errors[:3]
    assert not any(t.is_alive() for t in threads)
    assert seen[-1] == 4
    # Before the fix, threads woken from the wait each loaded the generation again.
    assert service.loads == 4
    assert set(seen) <= {1, 2, 3, 4}
