"""Search latency and throughput over HTTP on loopback: our /v1/search against the LangChain
recipe (EnsembleRetriever 0.5/0.5 over BM25Retriever and the Chroma retriever) served the same
way, on the same chunks, vectors and embedder.

    python bench/search_bench.py --chunks 0        # the SciFact index as it is (10,809 chunks)
    python bench/search_bench.py --chunks 100000   # grown to 100k chunks, see below

Embedding 100k chunks takes hours on this CPU, so the large corpus is synthesised from the real
SciFact chunks: each copy drops and swaps a few words of the text and adds Gaussian noise to
the vector (then re-normalises), which keeps realistic vocabularies and vector neighbourhoods.
Queries are the SciFact claims. Single client: p50/p95 latency; 8 concurrent clients:
requests per second. Peak RSS is each server process's VmHWM.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import numpy as np
from _common import EVAL_DIR, REPO

from evaluation.metrics import percentile
from evaluation.runner import prepared_set
from ingest.generation import write_generation
from rag_service.collections import DEFAULT, store_name
from rag_service.index_state import IndexState, Manifest, SourceEntry, index_fingerprint
from rag_service.protocols import IndexRecords
from rag_service.settings import Settings
from rag_service.stores import open_store
from rag_service.types import Chunk
from tests.servers import free_port, running

PY = sys.executable
CACHE = REPO / "data" / "eval-cache" / "embeddings.sqlite"


def perturb(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    for _ in range(max(1, len(words) // 20)):
        i, j = rng.randrange(len(words)), rng.randrange(len(words))
        words[i], words[j] = words[j], words[i]
    drop = set(rng.sample(range(len(words)), k=min(len(words) - 1, max(1, len(words) // 25))))
    return " ".join(w for n, w in enumerate(words) if n not in drop)


def build_index(data_dir: Path, target_chunks: int) -> tuple[Settings, list[str]]:
    """Index SciFact into `data_dir` (grown to `target_chunks` if larger); returns its claims."""
    settings = Settings(_env_file=None, data_dir=data_dir)  # type: ignore[call-arg]
    chunks, matrix, questions = scifact_chunks(settings, target_chunks)
    write_index(settings, chunks, matrix)
    return settings, questions


def scifact_chunks(
    settings: Settings, target_chunks: int
) -> tuple[list[Chunk], np.ndarray, list[str]]:
    """SciFact's chunks and vectors (grown to `target_chunks` if larger), and its claims.

    Indexed through a temporary index with `settings`' embedder, chunking and store backend."""
    with prepared_set(EVAL_DIR / "scifact_train", settings, CACHE) as p:
        questions = [q.question for q in p.eval_set.questions]
        ids = list(p.source_of)
        chunks = p.served.store.get(ids)
        vectors = p.embedder.embed_documents([c.embedding_text for c in chunks])
    rng, nrng = random.Random(0), np.random.default_rng(0)
    all_chunks, all_vectors = list(chunks), [vectors]
    copy = 0
    while len(all_chunks) < target_chunks:
        copy += 1
        n = min(len(chunks), target_chunks - len(all_chunks))
        for c in chunks[:n]:
            all_chunks.append(
                Chunk(
                    id=f"{c.id}-{copy}",
                    text=perturb(c.text, rng),
                    source=f"copy{copy}/{c.source}",
                    title=c.title,
                    headings=c.headings,
                    start=c.start,
                    end=c.end,
                )
            )
        noisy = vectors[:n] + nrng.normal(0, 0.02, size=vectors[:n].shape).astype(np.float32)
        all_vectors.append(noisy / np.linalg.norm(noisy, axis=1, keepdims=True))
    return all_chunks, np.concatenate(all_vectors), questions


def default_store(settings: Settings) -> tuple[str, str]:
    """The Chroma collection the default collection's index goes to, and its fingerprint."""
    fingerprint = index_fingerprint(settings)
    return store_name(settings.store.collection_prefix, DEFAULT, fingerprint), fingerprint


def stage_generation(
    settings: Settings,
    records: IndexRecords,
    generation: int,
    chunks: Sequence[Chunk],
    vectors: np.ndarray,
    known: Sequence[Chunk] = (),
) -> Manifest:
    """Write `generation` of the default collection as `rag reindex` does before its commit:
    `chunks` (with `vectors`, a row each) added to the store `settings` names beside `known`,
    which it holds already, and the BM25 files of them all through `records`. Returns the
    manifest to commit, in which each chunk's source is a document."""
    manifest: Manifest = {}
    for c in [*known, *chunks]:
        manifest.setdefault(c.source, SourceEntry("synthetic", c.title, [])).chunk_ids.append(c.id)
    row = {c.id: i for i, c in enumerate(chunks)}
    store = open_store(settings, default_store(settings)[0], create=True)
    try:
        write_generation(
            settings,
            records,
            store,
            generation,
            manifest,
            add=chunks,
            vectors=lambda batch: vectors[[row[c.id] for c in batch]],
            known=known,
        )
    finally:
        store.close()
    return manifest


def write_index(settings: Settings, all_chunks: list[Chunk], matrix: np.ndarray) -> None:
    """Commit the chunks and their vectors as generation 1: into the store `settings` names,
    and the pointer, manifest and BM25 files under its data dir, as `rag reindex` writes them."""
    state = IndexState(settings.data_dir)
    manifest = stage_generation(settings, state, 1, all_chunks, matrix)
    collection, fingerprint = default_store(settings)
    state.commit(collection, 1, fingerprint, manifest)


def server(
    argv: list[str], env: dict[str, str], health: str
) -> AbstractContextManager[subprocess.Popen[bytes]]:
    """A server process, healthy on entry (loading 100k chunks takes a while), stopped on exit;
    its stderr goes to a log under the system's temporary folder."""
    return running(argv, health, Path(tempfile.gettempdir()), env, wait_s=600)


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def warm_up(urls: list[str], questions: list[str]) -> None:
    with httpx.Client(timeout=120) as client:
        for u in urls:
            for q in questions[:5]:
                client.post(u, json={"query": q, "top_k": 5}).raise_for_status()


def sequential_latencies(urls: list[str], questions: list[str], n: int) -> list[float]:
    """The latency (ms) of `n` requests in sequence, after 5 to each URL to warm up; request
    `i` goes to `urls[i % len(urls)]`: replicas of one service taking turns, as behind a
    proxy, or services compared request by request."""
    warm_up(urls, questions)
    with httpx.Client(timeout=120) as client:
        latencies = []
        for i, q in enumerate(questions[:n]):
            started = time.perf_counter()
            client.post(urls[i % len(urls)], json={"query": q, "top_k": 5}).raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def parallel_latencies(
    urls: list[str], questions: list[str], n: int, clients: int = 8
) -> tuple[float, list[float]]:
    """`n` requests over `clients` threads, thread `i` sending to `urls[i % len(urls)]`: the
    seconds they took together, and each one's latency (ms)."""
    work = list(questions[:n])
    lock = threading.Lock()
    latencies: list[float] = []

    def worker(target: str) -> None:
        with httpx.Client(timeout=120) as client:
            while True:
                with lock:
                    if not work:
                        return
                    q = work.pop()
                started = time.perf_counter()
                client.post(target, json={"query": q, "top_k": 5}).raise_for_status()
                with lock:
                    latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(urls[i % len(urls)],)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started, latencies


def measure(
    url: str | list[str], questions: list[str], single: int, concurrent: int
) -> dict[str, float]:
    """Several URLs (replicas of one service) share the load round-robin, as a proxy would:
    the sequential requests in turn, and the 8 client threads one URL each."""
    urls = [url] if isinstance(url, str) else url
    latencies = sequential_latencies(urls, questions, single)
    elapsed, _ = parallel_latencies(urls, questions, concurrent)
    return {
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "rps_8_clients": concurrent / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=0, help="grow the index to this many chunks")
    parser.add_argument("--single", type=int, default=200, help="sequential requests")
    parser.add_argument("--concurrent", type=int, default=200, help="requests over 8 clients")
    parser.add_argument("--langchain-single", type=int, default=50)
    parser.add_argument("--langchain-concurrent", type=int, default=50)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rag-search-bench-") as tmp:
        data_dir = Path(tmp) / "index"
        _, questions = build_index(data_dir, args.chunks)
        pointer = IndexState(data_dir).current()
        assert pointer is not None
        random.Random(1).shuffle(questions)
        env = {"RAG_DATA_DIR": str(data_dir)}
        results: dict[str, object] = {"chunks": pointer.chunks}

        port = free_port()
        with server(
            [PY, "-m", "rag_cli", "serve", "--port", str(port)],
            env,
            f"http://127.0.0.1:{port}/v1/index",
        ) as ours:
            results["ours"] = measure(
                f"http://127.0.0.1:{port}/v1/search", questions, args.single, args.concurrent
            )
            results["ours"]["peak_rss_mb"] = vm_hwm_mb(ours.pid)  # type: ignore[index]

        port = free_port()
        with server(
            [PY, str(REPO / "bench" / "langchain_server.py"), str(data_dir), str(port)],
            env,
            f"http://127.0.0.1:{port}/healthz",
        ) as theirs:
            results["langchain_ensemble"] = measure(
                f"http://127.0.0.1:{port}/v1/search",
                questions,
                args.langchain_single,
                args.langchain_concurrent,
            )
            results["langchain_ensemble"]["peak_rss_mb"] = vm_hwm_mb(theirs.pid)  # type: ignore[index]

    o, lc = results["ours"], results["langchain_ensemble"]
    results["ratio_p50_langchain_over_ours"] = lc["p50_ms"] / o["p50_ms"]  # type: ignore[index]
    results["ratio_p95_langchain_over_ours"] = lc["p95_ms"] / o["p95_ms"]  # type: ignore[index]
    results["ratio_rps_ours_over_langchain"] = o["rps_8_clients"] / lc["rps_8_clients"]  # type: ignore[index]
    out = REPO / "bench" / "results" / f"search-{pointer.chunks}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
