"""Prometheus metrics of one API process, on a registry of its own (so tests can build many apps).

Requests are labelled by route template, never by raw path, so a scan of random URLs cannot blow
up the number of series. Index figures are read when scraped, not kept up to date by hand.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from rag_service.answering import Answer
from rag_service.retrieval.results import SearchTimings
from rag_service.serving import SearchService

# From a 1 ms BM25 lookup to a slow LLM answer.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class IndexCollector(Collector):
    def __init__(self, search: SearchService) -> None:
        self._search = search

    def collect(self) -> Iterator[Metric]:
        generation = GaugeMetricFamily(
            "rag_index_generation",
            "Index generation: the last committed one and the one this process serves.",
            labels=["state"],
        )
        chunks = GaugeMetricFamily("rag_index_chunks", "Chunks in the served index.")
        sources = GaugeMetricFamily("rag_index_sources", "Documents in the served index.")
        committed = self._search.committed_pointer()
        if committed is not None:
            generation.add_metric(["committed"], committed.generation)
        served = self._search.served_pointer
        if served is not None:
            generation.add_metric(["served"], served.generation)
            chunks.add_metric([], served.chunks)
            sources.add_metric([], served.sources)
        loads = GaugeMetricFamily(
            "rag_index_loads", "Index generations this process has loaded since it started."
        )
        loads.add_metric([], self._search.loads)
        yield from (generation, chunks, sources, loads)


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "rag_http_requests",
            "HTTP requests by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "rag_http_request_duration_seconds",
            "Time to the response's start (for streams, to the first event).",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.stages = Histogram(
            "rag_stage_duration_seconds",
            "Time per pipeline stage: bm25, dense, fusion, rerank (every search, /v1/ask's "
            "included) and generate (answers written by an LLM).",
            ["stage"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.answers = Counter(
            "rag_answers",
            "Answers by outcome: answered, refused (weak evidence or the LLM declined), fallback.",
            ["outcome"],
            registry=self.registry,
        )
        self.chat_tasks = Counter(
            "rag_chat_tasks",
            "Chat clients' background tasks (title, tags, follow_ups, queries, autocomplete) "
            "answered without a search.",
            ["task"],
            registry=self.registry,
        )

    def watch_index(self, search: SearchService) -> None:
        self.registry.register(IndexCollector(search))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def observe_search(self, timings: SearchTimings) -> None:
        # The total is left out: the request histogram has it.
        for stage, ms in (
            ("bm25", timings.bm25_ms),
            ("dense", timings.dense_ms),
            ("fusion", timings.fusion_ms),
            ("rerank", timings.shortlist_ms),
        ):
            self.stages.labels(stage).observe(ms / 1000)

    def observe_chat_task(self, kind: str) -> None:
        self.chat_tasks.labels(kind).inc()

    def observe_answer(self, answer: Answer) -> None:
        if answer.fallback_reason is not None:
            outcome = "fallback"
        else:
            outcome = "answered" if answer.answerable else "refused"
        self.answers.labels(outcome).inc()
        if answer.prompt is not None:  # a model was asked
            self.stages.labels("generate").observe(answer.timings.generate_ms / 1000)
