"""The folder where models made on first use are cached (``RAG_EMBEDDER__MODELS_DIR``): the e5
embedder's rebuilt model folder and the packaged readers' assembled GGUF files.

Whatever is made there is written under a temporary ``.NAME.building-*`` name beside its final
place and renamed into it, so a crash midway leaves no half model, only a leftover that a later
build removes once it is old enough that no build can still be writing it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path

# A .building- leftover older than this belongs to a build that died.
_STALE_BUILD_S = 3600


def default_models_dir() -> Path:
    """$XDG_CACHE_HOME/rag-service/models (~/.cache/...)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "rag-service" / "models"


def building_prefix(name: str) -> str:
    """The prefix of the temporary names a build of `name` writes under."""
    return f".{name}.building-"


def remove_stale_builds(parent: Path, name: str) -> None:
    for stale in parent.glob(building_prefix(name) + "*"):
        with contextlib.suppress(OSError):
            if time.time() - stale.stat().st_mtime > _STALE_BUILD_S:
                if stale.is_dir():
                    shutil.rmtree(stale, ignore_errors=True)
                else:
                    stale.unlink()
