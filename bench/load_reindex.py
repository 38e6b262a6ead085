"""Latency under load while reindexes commit new generations, over a real `rag serve`.

    python bench/load_reindex.py --clients 8
    python bench/load_reindex.py --clients 32
    python bench/load_reindex.py --clients 32 --sse-share 0.3   # SSE clients that disconnect

The index is XQuAD's English and Chinese contexts (480 documents). Each client thread loops over
the XQuAD questions: /v1/search, /v1/ask, and (with ``--sse-share``) /v1/ask streamed, hanging
up after the first ``delta``. Meanwhile ``--reindexes`` times a new document is written and
``rag reindex`` (its own process, as an operator would run it) commits a new generation. The
swap window of a commit runs from the moment the reindex process exits to 5 s later; requests
in flight in that window count as during the swap. Reports every status seen, the worst and
p99 latency overall and in the swap windows, and how many generations the server loaded
(``rag_index_loads``: one at start plus one per reindex when each is loaded exactly once).
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from _common import EVAL_DIR, REPO, materialise_eval_corpus

from evaluation.metrics import percentile
from tests.servers import api_process, rag_reindex

SETS = ("xquad_en", "xquad_zh")
SWAP_WINDOW_S = 5.0


@dataclass(frozen=True)
class Sample:
    op: str
    started: float
    ended: float
    status: int  # 0: the connection failed


def questions() -> list[str]:
    out: list[str] = []
    for name in SETS:
        with (EVAL_DIR / name / "questions.jsonl").open(encoding="utf-8") as fh:
            out += [json.loads(line)["question"] for line in fh]
    return out


def one_request(client: httpx.Client, op: str, question: str) -> int:
    if op == "search":
        return client.post("/v1/search", json={"query": question}).status_code
    if op == "ask":
        return client.post("/v1/ask", json={"question": question}).status_code
    # An SSE client that hangs up after the first delta (or whatever ends the stream first).
    with client.stream("POST", "/v1/ask", json={"question": question, "stream": True}) as resp:
        if resp.status_code != 200:
            return resp.status_code
        for line in resp.iter_lines():
            if line.startswith("event: delta") or line.startswith("event: error"):
                break
    return 200


def client_loop(
    url: str, qs: list[str], sse_share: float, seed: int, stop: threading.Event, out: list[Sample]
) -> None:
    rng = random.Random(seed)
    with httpx.Client(base_url=url, timeout=120) as client:
        for question in itertools.cycle(rng.sample(qs, len(qs))):
            if stop.is_set():
                return
            roll = rng.random()
            op = "sse" if roll < sse_share else ("search" if roll < (1 + sse_share) / 2 else "ask")
            started = time.monotonic()
            try:
                status = one_request(client, op, question)
            except httpx.HTTPError:
                status = 0
            out.append(Sample(op, started, time.monotonic(), status))


def reindex(env: dict[str, str]) -> None:
    rag_reindex(env, REPO)


def loads(url: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("rag_index_loads "):
            return float(line.split()[1])
    raise RuntimeError("no rag_index_loads in /metrics")


def summary(samples: list[Sample]) -> dict[str, object]:
    ms = [(s.ended - s.started) * 1000 for s in samples]
    return {
        "requests": len(samples),
        "p50_ms": round(percentile(ms, 50), 1) if ms else None,
        "p99_ms": round(percentile(ms, 99), 1) if ms else None,
        "max_ms": round(max(ms), 1) if ms else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--reindexes", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds before each reindex")
    parser.add_argument("--sse-share", type=float, default=0.0)
    parser.add_argument(
        "--answer-slots",
        type=int,
        default=None,
        help="RAG_API__MAX_CONCURRENT_ANSWERS (default: one per client, so what is measured "
        "is the swap, not the answer queue's 503s)",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="rag-load-") as tmp:
        root = Path(tmp)
        docs = root / "docs"
        for name in SETS:
            materialise_eval_corpus(name, docs / name)
        env = {"RAG_DATA_DIR": str(root / "data"), "RAG_CORPUS_DIR": str(docs)}
        reindex(env)
        slots = str(args.answer_slots or args.clients)
        serve_env = {**env, "RAG_API__MAX_CONCURRENT_ANSWERS": slots}
        with api_process(root, serve_env, log=root / "serve.log") as (url, _):
            loads_before = loads(url)
            stop = threading.Event()
            samples: list[Sample] = []
            threads = [
                threading.Thread(
                    target=client_loop, args=(url, questions(), args.sse_share, n, stop, samples)
                )
                for n in range(args.clients)
            ]
            for thread in threads:
                thread.start()
            commits: list[float] = []
            reindex_s: list[float] = []
            for n in range(args.reindexes):
                time.sleep(args.warmup)
                (docs / f"new-{n}.md").write_text(
                    f"# Bulletin {n}\n\nThe harbour ferry number {n} now leaves at dawn.\n"
                )
                started = time.monotonic()
                reindex(env)
                commits.append(time.monotonic())
                reindex_s.append(round(commits[-1] - started, 1))
            time.sleep(SWAP_WINDOW_S + 1)
            stop.set()
            for thread in threads:
                thread.join()
            loads_after = loads(url)

    def in_swap(s: Sample) -> bool:
        return any(s.ended >= c and s.started <= c + SWAP_WINDOW_S for c in commits)

    statuses: dict[str, int] = {}
    for s in samples:
        statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
    result = {
        "clients": args.clients,
        "answer_slots": int(slots),
        "sse_share": args.sse_share,
        "reindexes": args.reindexes,
        "reindex_s": reindex_s,
        "statuses": dict(sorted(statuses.items())),
        "server_errors": sum(1 for s in samples if s.status >= 500 or s.status == 0),
        "generations_loaded": loads_after - loads_before,
        "overall": summary(samples),
        "during_swap": summary([s for s in samples if in_swap(s)]),
        "outside_swap": summary([s for s in samples if not in_swap(s)]),
        "by_op": {
            op: summary([s for s in samples if s.op == op])
            for op in sorted({s.op for s in samples})
        },
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
