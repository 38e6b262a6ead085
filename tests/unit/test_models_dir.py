"""Leftovers of builds in the models folder: a dead build's folder or file is removed, one that
may still be writing is kept."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from rag_service.models_dir import building_prefix, remove_stale_builds

pytestmark = pytest.mark.unit


def test_stale_builds_are_removed_and_a_running_one_is_kept(tmp_path: Path) -> None:
    name = "some-model"
    stale_folder = tmp_path / (building_prefix(name) + "a")
    stale_file = tmp_path / (building_prefix(name) + "b.part")
    running = tmp_path / (building_prefix(name) + "c.part")
    other = tmp_path / (building_prefix("another-model") + "d")
    stale_folder.mkdir()
    (stale_folder / "config.json").write_text("{}")
    for path in (stale_file, running, other):
        path.write_bytes(b"GGUF")
    two_hours_ago = time.time() - 7200
    for path in (stale_folder, stale_file, other):
        os.utime(path, (two_hours_ago, two_hours_ago))
    remove_stale_builds(tmp_path, name)
    assert not stale_folder.exists() and not stale_file.exists()
    assert running.exists() and other.exists()
