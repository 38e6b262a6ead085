"""Question to answer: retrieve, judge the evidence, prompt, generate, check the citations.

The service refuses (``answerable: false``, a fixed message per language) without calling the
LLM when the evidence is weak, and also when the LLM replies that the documents do not answer.
The evidence is ``coverage`` (the share of the question's informative words in the best passage)
plus ``similarity_weight`` x ``similarity`` (the question's best cosine with a sentence of the
top passage), against ``min_coverage`` for the question's language; with a weight of 0 it is
coverage alone, and no sentence is embedded. Words alone cannot tell a paraphrase from a near
miss; a dense model that reads both languages can tell some of them, and tells more from the one
sentence that says the answer than from a passage on the topic as a whole (docs/evaluation.md,
*Answer quality and refusal*).

Near the threshold, and when the top passage is in the other language, a reader model decides
instead if one is configured (``RAG_JUDGE__BACKEND``, judging.py): the rule decides the clear
cases in milliseconds, the judge the uncertain band in seconds. ``decided_by`` says which did.

Each stage hands the next a frozen value: ``Evidence`` (what was found, how well it covers the
question, the prompt if it is worth asking), then the ``Answer``, built once at the end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from rag_service.citations import Mark, check_citations
from rag_service.conversation import Condenser, RuleCondenser, build_condenser
from rag_service.errors import UpstreamError
from rag_service.judging import bounded_passage, build_judge
from rag_service.llms import build_fallback_llm, build_llm, build_quoter
from rag_service.llms.extractive import ExtractiveAnswerer
from rag_service.prompting import REFUSALS, PromptBuilder, is_refusal, load_templates
from rag_service.protocols import LLM, EvidenceJudge
from rag_service.retrieval.centering import centering_for
from rag_service.retrieval.language import query_language
from rag_service.retrieval.results import RetrievedPassage, SearchFilters, SearchTimings
from rag_service.retrieval.tokenize import is_joined, tokenize
from rag_service.serving import SearchService
from rag_service.settings import AnswerSettings, JudgeSettings, Settings
from rag_service.similarity import SentenceSimilarity
from rag_service.types import Citation, GenerationParams, Judgement, Message, Prompt, Usage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Question:
    text: str
    params: GenerationParams
    top_k: int | None = None  # passages in the prompt; None: the setting
    filters: SearchFilters | None = None
    history: tuple[Message, ...] = ()


@dataclass(frozen=True)
class Evidence:
    """What one search of one generation found for a question, judged before any LLM runs."""

    question: str
    standalone_question: str  # what was searched and judged: the question, or a follow-up resolved
    language: str
    passages: tuple[RetrievedPassage, ...]
    coverage: float  # share of the question's informative words in the best passage
    similarity: float | None  # best cosine with a sentence of the top passage; None: not weighed
    rule: str  # "en", "zh", "cross" or "cross_en" (cross: top passage in the other language)
    decided_by: str  # "rule", "judge", or "rule_judge_failed" (the judge was asked and failed)
    judgement: Judgement | None  # the judge's, when it was asked and answered
    generation: int  # the index generation that was searched
    prompt: Prompt | None  # None: too weak to ask the LLM, the answer is a refusal
    search: SearchTimings
    elapsed_ms: float  # from the question to this value: search, coverage, judgement and prompt


@dataclass(frozen=True)
class AnswerTimings:
    retrieve_ms: float  # both retrievers and their fusion
    rerank_ms: float  # the shortlist: fetch, bigram boost, reranker
    judge_ms: float  # 0 when the judge was not asked
    generate_ms: float  # 0 when the LLM was not asked
    total_ms: float

    def as_dict(self) -> dict[str, float]:
        """The ``timings_ms`` of an answer response."""
        return {
            "retrieve": self.retrieve_ms,
            "rerank": self.rerank_ms,
            "judge": self.judge_ms,
            "generate": self.generate_ms,
            "total": self.total_ms,
        }


@dataclass(frozen=True)
class Answer:
    question: str
    standalone_question: str
    language: str
    answer: str
    answerable: bool
    passages: tuple[RetrievedPassage, ...]
    coverage: float
    similarity: float | None
    rule: str  # the refusal rule that judged the evidence: "en", "zh", "cross" or "cross_en"
    decided_by: str  # "rule", "judge" or "rule_judge_failed"
    judgement: Judgement | None
    backend: str
    model: str
    generation: int
    prompt: Prompt | None  # None when the service refused without asking the LLM
    citations: tuple[Citation, ...]
    marks: tuple[Mark, ...]  # where each kept [n] is in `answer`
    dropped_citations: int
    refusal_reason: str | None  # "weak_evidence", "llm_declined" or "unverified"
    fallback_reason: str | None  # why the fallback answerer stood in for the LLM
    usage: Usage | None
    timings: AnswerTimings


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class _Verdict:
    """The checked text of an answer, or the refusal that replaces it."""

    text: str
    citations: tuple[Citation, ...] = ()
    marks: tuple[Mark, ...] = ()
    dropped: int = 0
    refusal: str | None = None  # "weak_evidence", "llm_declined" or "unverified"


# Why the quote stands in for an LLM's answer.
UNVERIFIED = "the LLM's answer had no verified citation; quoted from the documents instead"
_QUOTE_PARAMS = GenerationParams(temperature=0.0, top_p=1.0, max_tokens=512)  # it ignores them


@dataclass(frozen=True)
class _Generated:
    """What the LLM (or its stand-in) wrote, and who wrote it."""

    text: str
    llm: LLM
    usage: Usage | None
    fallback_reason: str | None
    ms: float


def coverage(question_tokens: Sequence[str], passage: str, idf: dict[str, float]) -> float:
    """The share of the question's words (by idf) that ``passage`` holds. A joined word that the
    passage writes apart ("LLaMA-style" against "LLaMA ... style") is judged by its parts alone,
    which the question's tokens hold too: counted whole as well, it was a word missing twice."""
    held = set(tokenize(passage))
    words = {t for t in question_tokens if t in held or not is_joined(t)}
    total = sum(idf[t] for t in words)
    return sum(idf[t] for t in words & held) / total if total else 0.0


class AnswerService:
    def __init__(
        self,
        search: SearchService,
        llm: LLM,
        prompts: PromptBuilder,
        settings: AnswerSettings,
        fallback: LLM | None = None,
        sentences: SentenceSimilarity | None = None,
        condenser: Condenser | None = None,
        judge: EvidenceJudge | None = None,
        judging: JudgeSettings | None = None,
        quoter: LLM | None = None,
    ) -> None:
        """``fallback``, if given, answers when ``llm`` fails before it has written anything.
        ``sentences``: shared with the answerers of other collections (same embedder).
        ``condenser``: makes a follow-up standalone (default: the rule).
        ``judge``: decides the uncertain band of the refusal rule, as ``judging`` says.
        ``quoter``: answers instead of an LLM whose answer has no verified citation."""
        self._search = search
        self.llm = llm
        self._prompts = prompts
        self._settings = settings
        self._fallback = fallback
        self._sentences = sentences or SentenceSimilarity(search.embedder)
        self._cross_en_centering = centering_for(
            search.embedder.model_id, {"en": settings.query_centering_cross_en}
        )
        self._condenser = condenser or RuleCondenser()
        self.judge = judge
        self._judging = judging or JudgeSettings()
        self._quoter = quoter or ExtractiveAnswerer(settings.extractive_sentences)

    def over(self, search: SearchService) -> AnswerService:
        """The same answerer (one LLM, one judge, one set of prompts) over another collection's
        index."""
        return AnswerService(
            search,
            self.llm,
            self._prompts,
            self._settings,
            self._fallback,
            self._sentences,
            self._condenser,
            self.judge,
            self._judging,
            self._quoter,
        )

    def warm_up(self) -> None:
        """Load the models now, not at the first question."""
        self.llm.warm_up()
        if self.judge is not None:
            self.judge.warm_up()

    def close(self) -> None:
        self.llm.close()
        if self.judge is not None:
            self.judge.close()

    def _rule(self, language: str, passage_language: str) -> tuple[str, float, float]:
        """Which rule judges the evidence ("en", "zh", "cross" or "cross_en"), its similarity
        weight and its threshold."""
        s = self._settings
        if passage_language != language:
            if language == "zh" and s.min_coverage_cross is not None:
                return "cross", s.similarity_weight_cross, s.min_coverage_cross
            if language == "en" and s.min_coverage_cross_en is not None:
                return "cross_en", s.similarity_weight_cross_en, s.min_coverage_cross_en
        if language == "zh":
            return "zh", s.similarity_weight_zh, s.min_coverage_zh
        return "en", s.similarity_weight_en, s.min_coverage_en

    def check_llm(self) -> str:
        """Readiness of the answering side: who answers now. ``UpstreamError`` when the LLM
        cannot answer and nothing stands in for it."""
        try:
            self.llm.check()
        except UpstreamError as exc:
            if self._fallback is None:
                raise
            return f"degraded, answering extractively: {exc}"
        return f"{self.llm.backend} ({self.llm.model})"

    def evidence(self, question: Question) -> Evidence:
        """Search one generation and judge what it found; the idf of the question's words comes
        from the same generation, even if a reindex commits meanwhile."""
        clock = time.perf_counter()
        top_k = question.top_k or self._settings.top_k
        text = self._condenser.standalone(question.text, question.history)
        q_tokens = tokenize(text)
        with self._search.current() as served:
            found = self._search.search_served(served, text, top_k, question.filters)
            idf = served.idf(q_tokens)
            best = max(
                (coverage(q_tokens, p.chunk.text, idf) for p in found.passages),
                default=0.0,
            )
            top = found.passages[0].chunk.text if found.passages else ""
            rule, weight, threshold = self._rule(found.language, query_language(top))
            sentences: list[str] = []
            cosines: list[float] = []
            if top and (weight or self.judge is not None):
                # Across languages a centered vector: it drops the direction every question of
                # its language shares, which a passage in the other lacks. A Chinese question's
                # is centered as the dense search centers it; an English question's as far as
                # its own rule was measured best (docs/evaluation.md).
                query = self._sentences.query_vector(text)
                if rule == "cross":
                    query = served.retriever.dense.query_vector(text)
                elif rule == "cross_en" and self._cross_en_centering is not None:
                    query = self._cross_en_centering.apply(query, "en")
                sentences, cosines = self._sentences.scored(query, top)
        similarity = max(cosines) if weight and cosines else None
        score = best + weight * (similarity or 0.0)
        passes, decided_by, judgement = score >= threshold, "rule", None
        if found.passages and self._needs_judge(rule, score, threshold):
            try:
                judgement = self._ask_judge(text, found.language, rule, sentences, cosines)
            except UpstreamError as exc:
                log.warning("the judge failed (%s); the rule decides", exc)
                decided_by = "rule_judge_failed"
            else:
                passes, decided_by = judgement.probability >= self._min_probability(rule), "judge"
        prompt = None
        if found.passages and passes:
            chunks = [p.chunk for p in found.passages]
            prompt = self._prompts.build(text, chunks, question.history)
        return Evidence(
            question=question.text,
            standalone_question=text,
            language=found.language,
            passages=found.passages,
            coverage=best,
            similarity=similarity,
            rule=rule,
            decided_by=decided_by,
            judgement=judgement,
            generation=found.pointer.generation,
            prompt=prompt,
            search=found.timings,
            elapsed_ms=(time.perf_counter() - clock) * 1000,
        )

    def _needs_judge(self, rule: str, score: float, threshold: float) -> bool:
        """The band the rule is unsure of, and every question across languages."""
        j = self._judging
        if self.judge is None:
            return False
        if rule.startswith("cross") and j.cross:
            return True
        return threshold - j.band_below <= score < threshold + j.band_above

    def _min_probability(self, rule: str) -> float:
        j = self._judging
        return {
            "en": j.min_probability_en,
            "zh": j.min_probability_zh,
            "cross": j.min_probability_cross,
            "cross_en": j.min_probability_cross,
        }[rule]

    def _ask_judge(
        self,
        question: str,
        language: str,
        rule: str,
        sentences: list[str],
        cosines: list[float],
    ) -> Judgement:
        assert self.judge is not None
        passage = bounded_passage(sentences, cosines, self._judging.passage_tokens)
        judgement = self.judge.judge(question, language, passage)
        log.info(
            "judge (%s rule): P(answers) %.3f, %d of %d prompt tokens read in %.0f ms",
            rule,
            judgement.probability,
            judgement.evaluated_tokens,
            judgement.prompt_tokens,
            judgement.ms,
        )
        return judgement

    def _stand_in(self, exc: UpstreamError) -> LLM:
        if self._fallback is None:
            raise exc
        log.warning("LLM failed (%s); answering with %s", exc, self._fallback.backend)
        return self._fallback

    def ask(self, question: Question) -> Answer:
        evidence = self.evidence(question)
        if evidence.prompt is None:
            return self._conclude(evidence, None)
        started = time.perf_counter()
        llm, reason = self.llm, None
        try:
            completion = llm.complete(evidence.prompt, question.params)
        except UpstreamError as exc:
            llm, reason = self._stand_in(exc), str(exc)
            completion = llm.complete(evidence.prompt, question.params)
        ms = (time.perf_counter() - started) * 1000
        return self._conclude(
            evidence, _Generated(completion.text, llm, completion.usage, reason, ms)
        )

    def ask_stream(self, question: Question) -> tuple[Evidence, Iterator[Delta | Answer]]:
        """Retrieves now; returns what was found and the answer to come: ``Delta``s, then the
        checked ``Answer``. An LLM failure before the first delta falls back (if configured);
        after it, it is raised from the iterator."""
        evidence = self.evidence(question)
        return evidence, self._generate(evidence, question.params)

    def _generate(self, evidence: Evidence, params: GenerationParams) -> Iterator[Delta | Answer]:
        prompt = evidence.prompt
        if prompt is None:
            answer = self._conclude(evidence, None)
            yield Delta(answer.answer)
            yield answer
            return
        started = time.perf_counter()
        pieces: list[str] = []
        llm, reason, usage = self.llm, None, None
        while True:
            try:
                stream = llm.stream(prompt, params)
                try:
                    for piece in stream:
                        usage = piece.usage or usage
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
                llm, reason = self._stand_in(exc), str(exc)
        ms = (time.perf_counter() - started) * 1000
        yield self._conclude(evidence, _Generated("".join(pieces), llm, usage, reason, ms))

    def _verdict(self, evidence: Evidence, generated: _Generated | None) -> _Verdict:
        """The answer's text and the citations that stand in it, or a refusal."""
        refusal = REFUSALS[evidence.language]
        if generated is None or evidence.prompt is None:
            return _Verdict(refusal, refusal="weak_evidence")
        if is_refusal(generated.text):
            return _Verdict(refusal, refusal="llm_declined")
        minimum = self._settings.min_citation_support
        checked = check_citations(generated.text, evidence.prompt.passages, minimum)
        if checked.dropped:
            log.info("dropped %d unverifiable citations", checked.dropped)
        lead = len(checked.answer) - len(checked.answer.lstrip())  # the marks follow the strip
        return _Verdict(
            checked.answer.strip(),
            tuple(checked.citations),
            tuple(Mark(m.start - lead, m.end - lead, m.citation) for m in checked.marks),
            checked.dropped,
        )

    def _conclude(self, evidence: Evidence, generated: _Generated | None) -> Answer:
        """The answer, built once: a refusal, or the LLM's text with the citations that stand.
        An LLM's answer none of whose citations stand is not returned as an answer: the
        documents' own sentences are quoted instead (``fallback_reason`` says so); if even they
        cannot be, it is a refusal (``unverified``)."""
        verdict = self._verdict(evidence, generated)
        if generated is not None and verdict.refusal is None and not verdict.citations:
            dropped = verdict.dropped  # the LLM's, still counted after its answer is replaced
            if generated.llm.backend != self._quoter.backend:
                log.warning("the LLM's answer has no verified citation; quoting the documents")
                assert evidence.prompt is not None  # there is no verdict without one
                quote = self._quoter.complete(evidence.prompt, _QUOTE_PARAMS)
                generated = _Generated(
                    quote.text, self._quoter, generated.usage, UNVERIFIED, generated.ms
                )
                verdict = self._verdict(evidence, generated)
            if verdict.refusal is None and not verdict.citations:
                verdict = _Verdict(REFUSALS[evidence.language], refusal="unverified")
            verdict = replace(verdict, dropped=dropped + verdict.dropped)
        llm = generated.llm if generated is not None else self.llm
        generate_ms = generated.ms if generated is not None else 0.0
        return Answer(
            question=evidence.question,
            standalone_question=evidence.standalone_question,
            language=evidence.language,
            answer=verdict.text,
            answerable=verdict.refusal is None,
            passages=evidence.passages,
            coverage=evidence.coverage,
            similarity=evidence.similarity,
            rule=evidence.rule,
            decided_by=evidence.decided_by,
            judgement=evidence.judgement,
            backend=llm.backend,
            model=llm.model,
            generation=evidence.generation,
            prompt=evidence.prompt,
            citations=verdict.citations,
            marks=verdict.marks,
            dropped_citations=verdict.dropped,
            refusal_reason=verdict.refusal,
            fallback_reason=generated.fallback_reason if generated is not None else None,
            usage=generated.usage if generated is not None else None,
            timings=AnswerTimings(
                retrieve_ms=evidence.search.retrieve_ms,
                rerank_ms=evidence.search.shortlist_ms,
                judge_ms=evidence.judgement.ms if evidence.judgement else 0.0,
                generate_ms=generate_ms,
                total_ms=evidence.elapsed_ms + generate_ms,
            ),
        )


def build_answer_service(settings: Settings, search: SearchService) -> AnswerService:
    sentences = SentenceSimilarity(search.embedder)  # the refusal rule's and the extractive's
    llm = build_llm(settings, sentences)
    return AnswerService(
        search,
        llm,
        PromptBuilder(load_templates(settings.answer.prompt_dir)),
        settings.answer,
        fallback=build_fallback_llm(settings, sentences),
        sentences=sentences,
        condenser=build_condenser(settings, llm),
        judge=build_judge(settings, llm),
        judging=settings.judge,
        quoter=build_quoter(settings, sentences),
    )
