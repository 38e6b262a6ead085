"""Shared by the benchmarks: data preparation and whole-process measurement."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EVAL_DIR = REPO.parent / "shared" / "eval"

# The benchmarks start and stop servers exactly as the tests do (tests/servers.py).
sys.path.insert(0, str(REPO))


@dataclass(frozen=True)
class ProcessRun:
    wall_s: float
    peak_rss_mb: float
    stdout: str


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> ProcessRun:
    """Run a command to completion: wall time, and its own peak RSS from wait4."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    assert proc.stdout is not None
    stdout = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} exited {proc.returncode}")
    # ru_maxrss is in KiB on Linux.
    return ProcessRun(wall, usage.ru_maxrss / 1024, stdout)


def materialise_eval_corpus(name: str, target: Path, limit: int | None = None) -> Path:
    """An evaluation corpus.jsonl as one text file per document: title, blank line, text (the
    first `limit` documents, or all)."""
    target.mkdir(parents=True, exist_ok=True)
    with (EVAL_DIR / name / "corpus.jsonl").open(encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            if limit is not None and n >= limit:
                break
            doc = json.loads(line)
            safe_id = "".join(
                ch if ch.isalnum() or ch in "-_" else "_" for ch in str(doc["doc_id"])
            )
            text = f"{doc['title']}\n\n{doc['text']}" if doc.get("title") else doc["text"]
            (target / f"{safe_id}.txt").write_text(text, encoding="utf-8")
    return target
