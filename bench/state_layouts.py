"""The two state layouts side by side: files under a data folder (the default) against
PostgreSQL (``RAG_STATE__URL``), both with the vectors in Chroma's own server, so that only
where the pointer, the manifests and the BM25 files live differs.

    RAG_EMBEDDER__BACKEND=sentence-transformers python bench/state_layouts.py --chunks 100000

The chunks, vectors and queries are search_bench's (SciFact's chunks grown to ``--chunks`` by
perturbing copies, its claims as queries). Each layout gets a Chroma collection of its own in
the one server (prefixes ``rag-files`` and ``rag-pg``) holding the same chunks and vectors,
written as generation 1 through that layout's ``IndexRecords`` under its reindex lock, then
committed by them; the commit (manifest, pointer and, for PostgreSQL, the BM25 archive) is
timed. The private PostgreSQL runs with fsync on, as the files layout fsyncs its manifest and
pointer.

Then one ``rag serve`` per layout (files: on the writer's data folder; PostgreSQL: a data
folder and HOME of its own), measured in one run:

- search: one client in sequence sends each claim to both layouts in turn; p50/p95;
- a second replica per layout (files: the same data folder; PostgreSQL: its own), then 16
  client threads, 8 on each replica, in rounds that alternate the layouts: requests per
  second and p50/p95;
- new generations, alternating the layouts: each adds one chunk (a marker word in it) and
  rebuilds BM25 over all, and is committed (timed); one thread per replica then searches for
  the marker back to back until the replica reports the generation: the seconds from the
  commit's return (files: a new pointer file on a shared folder; PostgreSQL: NOTIFY, then the
  BM25 archive fetched, digest-checked and unpacked), and whether the new chunk was found;
- each replica's peak RSS (VmHWM) after the single-client searches and at the end.

The two cores are shared by the client, the replicas, Chroma and PostgreSQL: compare the
layouts within a run, not the absolute figures across machines.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
from _common import REPO
from search_bench import (
    PY,
    default_store,
    parallel_latencies,
    scifact_chunks,
    sequential_latencies,
    server,
    stage_generation,
    vm_hwm_mb,
    warm_up,
)

from evaluation.metrics import percentile
from rag_service.collections import DEFAULT
from rag_service.protocols import IndexRecords
from rag_service.settings import Settings, StateSettings, StoreSettings
from rag_service.state import close_states, open_state
from rag_service.types import Chunk
from tests.servers import chroma_server, free_port, postgres_server

POLL_DEADLINE_S = 600.0


@dataclass
class Layout:
    name: str
    writer: Settings  # the benchmark writes and commits the generations with these
    records: IndexRecords
    shared_data: bool  # the replicas serve the writer's data folder
    urls: list[str] = field(default_factory=list)  # /v1/search of each replica
    pids: list[int] = field(default_factory=list)
    commits: list[dict[str, Any]] = field(default_factory=list)

    def replica_env(self, home: Path) -> dict[str, str]:
        """A replica's settings: the writer's engines, and a HOME (and, for PostgreSQL, a data
        folder) of its own."""
        s = self.writer
        home.mkdir(parents=True)
        env = {
            "HOME": str(home),
            "RAG_DATA_DIR": str(s.data_dir if self.shared_data else home.parent / "data"),
            "RAG_EMBEDDER__BACKEND": s.embedder.backend,
            "RAG_EMBEDDER__MODEL": s.embedder.model,
            "RAG_STORE__BACKEND": s.store.backend,
            "RAG_STORE__CHROMA_PORT": str(s.store.chroma_port),
            "RAG_STORE__COLLECTION_PREFIX": s.store.collection_prefix,
            # The models are no state: every replica reads them from the one cache.
            "XDG_CACHE_HOME": str(Path.home() / ".cache"),
        }
        if s.state.backend == "postgresql":
            env["RAG_STATE__URL"] = s.state.url.get_secret_value()
        return env

    def commit(
        self,
        generation: int,
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        known: Sequence[Chunk] = (),
    ) -> float:
        """Write and commit ``generation`` as ``rag reindex`` does (under the reindex lock);
        records how long the commit took and returns when it returned (monotonic)."""
        with self.records.reindex_lock():
            manifest = stage_generation(
                self.writer, self.records, generation, chunks, vectors, known
            )
            collection, fingerprint = default_store(self.writer)
            started = time.monotonic()
            self.records.commit(collection, generation, fingerprint, manifest)
            returned = time.monotonic()
        self.commits.append({"generation": generation, "commit_s": returned - started})
        return returned


def layout(root: Path, name: str, prefix: str, chroma_port: int, url: str = "") -> Layout:
    """A layout written from ``root/name/writer``: files there (no ``url``), or PostgreSQL."""
    writer = Settings(
        _env_file=None,
        data_dir=root / name / "writer",
        store=StoreSettings(
            backend="chroma-http", chroma_port=chroma_port, collection_prefix=prefix
        ),
        state=StateSettings(url=url),
    )
    records = open_state(writer).index(DEFAULT, writer.data_dir)
    return Layout(name, writer, records, shared_data=not url)


def add_replicas(stack: ExitStack, lay: Layout, root: Path, count: int) -> None:
    """Start replicas of ``lay`` until it has ``count``; they stop with ``stack``."""
    while len(lay.urls) < count:
        port = free_port()
        env = lay.replica_env(root / lay.name / f"replica-{len(lay.urls) + 1}" / "home")
        argv = [PY, "-m", "rag_cli", "serve", "--port", str(port)]
        proc = stack.enter_context(server(argv, env, f"http://127.0.0.1:{port}/v1/index"))
        lay.urls.append(f"http://127.0.0.1:{port}/v1/search")
        lay.pids.append(proc.pid)


def marker_chunk(generation: int, base: Chunk) -> tuple[Chunk, str]:
    """A new chunk for ``generation``: ``base``'s text with a word no other chunk has, and
    that word (the query that finds it)."""
    word = f"quokkagen{generation}"
    chunk = Chunk(
        id=f"bulletin-{generation}",
        text=f"Bulletin {generation}: the {word} notice. {base.text}",
        source=f"bulletins/{generation}.md",
        title=f"Bulletin {generation}",
        headings=(),
        start=0,
        end=0,
    )
    return chunk, word


def await_generation(
    url: str, generation: int, query: str, chunk_id: str, since: float
) -> dict[str, Any]:
    """Search ``url`` back to back until it reports ``generation``: seconds since ``since``
    (monotonic) and whether ``chunk_id`` was among that first answer's passages."""
    deadline = time.monotonic() + POLL_DEADLINE_S
    with httpx.Client(timeout=120) as client:
        while True:
            body = client.post(url, json={"query": query, "top_k": 5}).raise_for_status().json()
            if body["generation"] == generation:
                found = any(p["chunk_id"] == chunk_id for p in body["passages"])
                return {"serving_s": time.monotonic() - since, "new_chunk_found": found}
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not serve generation {generation} in time")


def sizes(lay: Layout, pg_url: str) -> dict[str, int]:
    """What a commit of generation 1 carries: the manifest and the BM25 files."""
    collection, _ = default_store(lay.writer)
    bm25 = lay.writer.data_dir / "bm25"
    folders = [p for p in bm25.glob(f"{collection}.1.*") if p.is_dir()]
    found = {"bm25_bytes": sum(f.stat().st_size for p in folders for f in p.rglob("*"))}
    if lay.shared_data:
        manifest = lay.writer.data_dir / "manifests" / f"{collection}.1.json"
        return found | {"manifest_bytes": manifest.stat().st_size}
    with psycopg.connect(pg_url) as conn:
        archive, stored = conn.execute(
            "SELECT sum(octet_length(archive)), sum(pg_column_size(archive)) FROM rag_lexical "
            "WHERE generation = 1"
        ).fetchone() or (0, 0)
        manifest_stored = conn.execute(
            "SELECT pg_column_size(manifest) FROM rag_generations WHERE generation = 1"
        ).fetchone()
    return found | {
        "archive_bytes": int(archive),
        "archive_stored_bytes": int(stored),  # after TOAST's compression
        "manifest_stored_bytes": int(manifest_stored[0]) if manifest_stored else 0,
    }


def summary(latencies: list[float]) -> dict[str, float]:
    return {
        "requests": len(latencies),
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000, help="grow SciFact to this many")
    parser.add_argument("--single", type=int, default=400, help="sequential requests per layout")
    parser.add_argument(
        "--concurrent", type=int, default=800, help="requests per round, 16 clients"
    )
    parser.add_argument("--rounds", type=int, default=2, help="16-client rounds per layout")
    parser.add_argument("--generations", type=int, default=3, help="new generations per layout")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/state-layouts.json")
    args = parser.parse_args()
    began = time.monotonic()

    with tempfile.TemporaryDirectory(prefix="rag-state-layouts-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        # The temporary index inside `scifact_chunks` is embedded, not in the server.
        base = Settings(_env_file=None, data_dir=root / "scifact")
        chunks, matrix, questions = scifact_chunks(base, args.chunks)
        random.Random(1).shuffle(questions)
        pg = stack.enter_context(postgres_server(durable=True))
        chroma_port = free_port()
        stack.enter_context(chroma_server(root / "chroma", chroma_port))
        stack.callback(close_states)  # before PostgreSQL stops
        files = layout(root, "files", "rag-files", chroma_port)
        postgres = layout(root, "postgresql", "rag-pg", chroma_port, pg.url)
        layouts = (files, postgres)
        for lay in layouts:
            lay.commit(1, chunks, matrix)
        results: dict[str, Any] = {
            "chunks": len(chunks),
            "embedder": files.writer.embedder.identity,
            "bm25_backend": files.writer.retrieval.bm25_backend,
            "postgresql": {"fsync": pg.durable},
            "single_requests": args.single,
            "concurrent_requests": args.concurrent * args.rounds,
            "rounds": args.rounds,
            "layouts": {lay.name: {"sizes": sizes(lay, pg.url)} for lay in layouts},
        }
        out: dict[str, dict[str, Any]] = results["layouts"]
        with psycopg.connect(pg.url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            results["postgresql"]["version"] = row[0] if row else ""

        # One replica each: single client, each claim to both layouts in turn.
        for lay in layouts:
            add_replicas(stack, lay, root, 1)
        both = [lay.urls[0] for lay in layouts]
        paired = [q for q in questions[: args.single] for _ in layouts]
        latencies = sequential_latencies(both, paired, len(paired))
        for n, lay in enumerate(layouts):
            out[lay.name]["search_1_replica"] = summary(latencies[n :: len(layouts)])
            out[lay.name]["peak_rss_mb_after_search"] = vm_hwm_mb(lay.pids[0])

        # Two replicas each, 16 clients (8 per replica), the layouts taking turns by round.
        pooled: dict[str, tuple[float, list[float]]] = {lay.name: (0.0, []) for lay in layouts}
        for lay in layouts:
            add_replicas(stack, lay, root, 2)
            warm_up(lay.urls[1:], questions)
        for _ in range(args.rounds):
            for lay in layouts:
                elapsed, ms = parallel_latencies(lay.urls, questions, args.concurrent, clients=16)
                total, seen = pooled[lay.name]
                pooled[lay.name] = (total + elapsed, seen + ms)
        for lay in layouts:
            total, seen = pooled[lay.name]
            out[lay.name]["two_replicas_16_clients"] = summary(seen) | {"rps": len(seen) / total}

        # New generations, the layouts taking turns.
        known = list(chunks)
        for generation in range(2, 2 + args.generations):
            new, word = marker_chunk(generation, chunks[generation])
            vector = matrix[generation : generation + 1]
            for lay in layouts:
                returned = lay.commit(generation, [new], vector, known)
                n = len(lay.urls)
                with ThreadPoolExecutor(n) as pool:
                    served = pool.map(
                        await_generation,
                        lay.urls,
                        repeat(generation, n),
                        repeat(word, n),
                        repeat(new.id, n),
                        repeat(returned, n),
                    )
                    lay.commits[-1]["replicas"] = list(served)
            known.append(new)

        for lay in layouts:
            swaps = lay.commits[1:]
            serving = [r["serving_s"] for c in swaps for r in c["replicas"]]
            out[lay.name] |= {
                "commits": lay.commits,
                "commit_s_generation_1": lay.commits[0]["commit_s"],
                "commit_s_median_later": statistics.median(c["commit_s"] for c in swaps),
                "new_generation_serving_s_median": statistics.median(serving),
                "new_chunk_always_found": all(
                    r["new_chunk_found"] for c in swaps for r in c["replicas"]
                ),
                "peak_rss_mb_at_end": [vm_hwm_mb(pid) for pid in lay.pids],
            }

    f, p = out["files"], out["postgresql"]
    results["ratios_postgresql_over_files"] = {
        "commit_generation_1": p["commit_s_generation_1"] / f["commit_s_generation_1"],
        "commit_later": p["commit_s_median_later"] / f["commit_s_median_later"],
        "search_p50": p["search_1_replica"]["p50_ms"] / f["search_1_replica"]["p50_ms"],
        "search_p95": p["search_1_replica"]["p95_ms"] / f["search_1_replica"]["p95_ms"],
        "two_replicas_rps": p["two_replicas_16_clients"]["rps"]
        / f["two_replicas_16_clients"]["rps"],
        "two_replicas_p50": p["two_replicas_16_clients"]["p50_ms"]
        / f["two_replicas_16_clients"]["p50_ms"],
        "two_replicas_p95": p["two_replicas_16_clients"]["p95_ms"]
        / f["two_replicas_16_clients"]["p95_ms"],
        "new_generation_serving": p["new_generation_serving_s_median"]
        / f["new_generation_serving_s_median"],
        "peak_rss_after_search": p["peak_rss_mb_after_search"] / f["peak_rss_mb_after_search"],
    }
    results["wall_s"] = time.monotonic() - began
    text = json.dumps(results, indent=2)
    args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
