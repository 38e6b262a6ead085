"""The reindex plan is a pure function of the previous manifest and the scan: no store needed."""

from __future__ import annotations

import pytest

from ingest.reindex import plan
from ingest.scan import Scan
from rag_service.index_state import SourceEntry
from rag_service.types import Chunk

pytestmark = pytest.mark.unit


def chunk(cid: str, source: str) -> Chunk:
    return Chunk(cid, f"text of {cid}", source, "Title", (), 0, 10)


def scan_of(manifest: dict[str, SourceEntry], chunks: tuple[Chunk, ...]) -> Scan:
    return Scan(manifest, chunks, (), (), (), (), ())


def test_only_new_ids_are_embedded_and_vanished_ones_retired() -> None:
    previous = {
        "a.md": SourceEntry("h1", "A", ["a1", "a2"]),
        "b.md": SourceEntry("h2", "B", ["b1"]),
    }
    # a.md changed: a1 kept its text (moved), a2 is gone, a3 is new; b.md was deleted.
    now = {"a.md": SourceEntry("h3", "A", ["a1", "a3"])}
    planned = plan(previous, scan_of(now, (chunk("a1", "a.md"), chunk("a3", "a.md"))))
    assert [c.id for c in planned.embed] == ["a3"]
    assert [c.id for c in planned.relabel] == ["a1"]
    assert planned.retire == {"a2", "b1"}
    assert planned.chunks_total == 2 and planned.changed


def test_an_unchanged_folder_plans_nothing() -> None:
    previous = {"a.md": SourceEntry("h1", "A", ["a1"])}
    planned = plan(previous, scan_of(dict(previous), ()))
    assert not planned.changed and not planned.embed and not planned.retire
    assert planned.chunks_total == 1


def test_a_first_index_embeds_everything() -> None:
    now = {"a.md": SourceEntry("h1", "A", ["a1", "a2"])}
    planned = plan({}, scan_of(now, (chunk("a1", "a.md"), chunk("a2", "a.md"))))
    assert [c.id for c in planned.embed] == ["a1", "a2"] and planned.retire == frozenset()
