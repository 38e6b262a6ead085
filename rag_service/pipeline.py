"""Question to answer: retrieve, judge the evidence, prompt, generate, check the citations.

The service refuses (``answerable: false``, a fixed message per language) without calling the
LLM when the best passage holds too little of the question (``coverage`` below the setting for
the question's language), and also when the LLM replies that the documents do not answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from rag_service.citations import check_citations
from rag_service.errors import UpstreamError
from rag_service.llms import build_llm
from rag_service.llms.extractive import ExtractiveAnswerer
from rag_service.prompting import REFUSALS, PromptBuilder, load_templates
from rag_service.protocols import LLM
from rag_service.retrieval.hybrid import RetrievedPassage, SearchFilters
from rag_service.retrieval.tokenize import tokenize
from rag_service.search import SearchService
from rag_service.settings import AnswerSettings, Settings
from rag_service.text import MatchForm
from rag_service.types import Citation, GenerationParams, Message, Prompt, Usage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Question:
    text: str
    params: GenerationParams
    top_k: int | None = None  # passages in the prompt; None: the setting
    filters: SearchFilters | None = None
    history: tuple[Message, ...] = ()


@dataclass
class Answer:
    question: str
    language: str
    answer: str
    answerable: bool
    passages: list[RetrievedPassage]
    coverage: float  # share of the question's informative words in the best passage
    backend: str
    model: str
    generation: int  # the index generation that was searched
    prompt: Prompt | None = None  # None when the service refused without asking the LLM
    citations: list[Citation] = field(default_factory=list)
    dropped_citations: int = 0
    refusal_reason: str | None = None  # "weak_evidence" or "llm_declined"
    fallback_reason: str | None = None  # why the extractive answerer stood in for the LLM
    usage: Usage | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Delta:
    text: str


def coverage(
    question_tokens: Sequence[str], passage_tokens: set[str], idf: dict[str, float]
) -> float:
    words = set(question_tokens)
    total = sum(idf[t] for t in words)
    return sum(idf[t] for t in words & passage_tokens) / total if total else 0.0


def is_refusal(text: str) -> bool:
    """The model replied with the refusal sentence it was told to use (in either language)."""
    form = MatchForm.of(text).form
    return any(MatchForm.of(refusal).form in form for refusal in REFUSALS.values())


class AnswerService:
    def __init__(
        self,
        search: SearchService,
        llm: LLM,
        prompts: PromptBuilder,
        settings: AnswerSettings,
        fallback: bool = False,
    ) -> None:
        self._search = search
        self.llm = llm
        self._prompts = prompts
        self._settings = settings
        self._fallback = ExtractiveAnswerer(settings.extractive_sentences) if fallback else None

    def _threshold(self, language: str) -> float:
        s = self._settings
        return s.min_coverage_zh if language == "zh" else s.min_coverage_en

    def _retrieve(self, question: Question) -> Answer:
        """The answer's frame: passages, coverage, timings, and the prompt for the LLM, or a
        refusal (no prompt) when the evidence is too weak to ask it."""
        clock = time.perf_counter()
        top_k = question.top_k or self._settings.top_k
        found = self._search.search(question.text, top_k, question.filters)
        passages = found.passages
        q_tokens = tokenize(question.text)
        idf = self._search.idf(q_tokens)
        best = max(
            (coverage(q_tokens, set(tokenize(p.chunk.text)), idf) for p in passages), default=0.0
        )
        frame = Answer(
            question=question.text,
            language=found.language,
            answer="",
            answerable=True,
            passages=passages,
            coverage=best,
            backend=self.llm.backend,
            model=self.llm.model,
            generation=found.pointer.generation,
        )
        timings = found.timings_ms
        frame.timings_ms["retrieve"] = timings["total"] - timings["rerank_and_fetch"]
        frame.timings_ms["rerank"] = timings["rerank_and_fetch"]
        if not passages or best < self._threshold(found.language):
            self._refuse(frame, "weak_evidence")
            frame.timings_ms["generate"] = 0.0
        else:
            frame.prompt = self._prompts.build(
                question.text, [p.chunk for p in passages], question.history
            )
        frame.timings_ms["total"] = (time.perf_counter() - clock) * 1000
        return frame

    def _refuse(self, answer: Answer, reason: str) -> None:
        answer.answer = REFUSALS[answer.language]
        answer.answerable = False
        answer.refusal_reason = reason
        answer.citations = []

    def _finish(self, answer: Answer, prompt: Prompt, text: str, started: float) -> Answer:
        if is_refusal(text):
            self._refuse(answer, "llm_declined")
        else:
            checked = check_citations(text, prompt.passages, self._settings.min_citation_support)
            answer.answer = checked.answer.strip()
            answer.citations = checked.citations
            answer.dropped_citations = checked.dropped
            if checked.dropped:
                log.info("dropped %d unverifiable citations", checked.dropped)
        generate_ms = (time.perf_counter() - started) * 1000
        answer.timings_ms["generate"] = generate_ms
        answer.timings_ms["total"] += generate_ms
        return answer

    def _stand_in(self, answer: Answer, exc: UpstreamError) -> ExtractiveAnswerer:
        if self._fallback is None:
            raise exc
        log.warning("LLM failed (%s); answering extractively", exc)
        answer.fallback_reason = str(exc)
        answer.backend, answer.model = self._fallback.backend, self._fallback.model
        return self._fallback

    def ask(self, question: Question) -> Answer:
        answer = self._retrieve(question)
        prompt = answer.prompt
        if prompt is None:
            return answer
        started = time.perf_counter()
        try:
            completion = self.llm.complete(prompt, question.params)
        except UpstreamError as exc:
            completion = self._stand_in(answer, exc).complete(prompt, question.params)
        answer.usage = completion.usage
        return self._finish(answer, prompt, completion.text, started)

    def ask_stream(self, question: Question) -> tuple[Answer, Iterator[Delta | Answer]]:
        """Retrieves now; returns what was found and the answer to come: ``Delta``s, then the
        checked ``Answer``. An LLM failure before the first delta falls back (if configured);
        after it, it is raised from the iterator."""
        answer = self._retrieve(question)
        return answer, self._generate(answer, question.params)

    def _generate(self, answer: Answer, params: GenerationParams) -> Iterator[Delta | Answer]:
        prompt = answer.prompt
        if prompt is None:
            yield Delta(answer.answer)
            yield answer
            return
        started = time.perf_counter()
        pieces: list[str] = []
        llm: LLM = self.llm
        while True:
            try:
                stream = llm.stream(prompt, params)
                try:
                    for piece in stream:
                        answer.usage = piece.usage or answer.usage
                        if piece.text:
                            pieces.append(piece.text)
                            yield Delta(piece.text)
                finally:  # closed when this generator is: that is what stops the LLM
                    close = getattr(stream, "close", None)
                    if close is not None:
                        close()
                break
            except UpstreamError as exc:
                if pieces or llm is not self.llm:
                    raise
                llm = self._stand_in(answer, exc)
        yield self._finish(answer, prompt, "".join(pieces), started)


def build_answer_service(settings: Settings, search: SearchService) -> AnswerService:
    return AnswerService(
        search,
        build_llm(settings),
        PromptBuilder(load_templates(settings.answer.prompt_dir)),
        settings.answer,
        fallback=settings.llm.fallback,
    )
