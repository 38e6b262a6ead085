"""The reader that judges the evidence: does the top passage answer the question?

The refusal rule (answering.py) weighs words and cosines; it is cheap and, far from its
threshold, right. Near it, it cannot tell a passage that says the answer from another paragraph
of the same article, and across languages it has few words to weigh. An instruction-tuned model
asked "does this passage answer this question? yes or no" separates those cases far better
(research: AUC 0.95-0.99 with Qwen2.5-Coder-1.5B-Instruct on XQuAD and CMRC, against the rule's
error rates of 8-17%), at the cost of a forward pass over the passage. So the model judges only
the band around the rule's threshold and the questions whose top passage is in the other
language (a cascade), and reads a bounded window of the passage: the sentence the question is
nearest to and its neighbours, up to ``RAG_JUDGE__PASSAGE_TOKENS``.

The verdict is the probability of "yes" over "yes"+"no" as the first token of the reply, from one
forward pass with no sampling. The prompt's start (system prompt and, for the same passage, the
passage) stays in llama.cpp's context, so only what changed is read again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from rag_service.llms.llamacpp import LlamaCppLLM
from rag_service.prompting import PromptTemplate, fence, load_templates
from rag_service.protocols import LLM, EvidenceJudge
from rag_service.retrieval.tokenize import CJK_CHAR
from rag_service.settings import LLMSettings, Settings
from rag_service.types import Judgement, Message

# The first token of a reply that means yes or no, in the forms these models write it.
YES_WORDS = ("yes", "Yes", "YES", " yes", " Yes", "是")
NO_WORDS = ("no", "No", "NO", " no", " No", "否", "不")


def estimated_tokens(text: str) -> float:
    """Qwen's tokenizer: about 1.4 Chinese characters or 4 other characters a token."""
    cjk = len(CJK_CHAR.findall(text))
    return cjk / 1.4 + (len(text) - cjk) / 4


def bounded_passage(sentences: Sequence[str], cosines: Sequence[float], budget: float) -> str:
    """The sentence nearest the question and its neighbours (the next first: an answer's
    sentence often leans on the one after it as much as the one before), in their order, while
    the estimate stays within ``budget`` tokens; the nearest one always, cut to the budget."""
    if not sentences:
        return ""
    best = max(range(len(sentences)), key=lambda i: cosines[i]) if cosines else 0
    first = last = best
    used = estimated_tokens(sentences[best])
    grew = True
    while grew:
        grew = False
        for i in (last + 1, first - 1):
            if 0 <= i < len(sentences) and used + estimated_tokens(sentences[i]) <= budget:
                used += estimated_tokens(sentences[i])
                first, last = min(first, i), max(last, i)
                grew = True
    text = " ".join(s.strip() for s in sentences[first : last + 1])
    if used > budget:  # one sentence longer than the budget: its start, as much as fits
        text = text[: max(int(len(text) * budget / used), 1)]
    return text


class LlamaCppJudge:
    """The judge run by a llama.cpp worker: its own, or the answering model's when both are the
    same model (one process, one copy of the weights; a lock takes turns)."""

    def __init__(
        self, llm: LlamaCppLLM, templates: dict[str, PromptTemplate], owns_llm: bool = True
    ) -> None:
        self._llm = llm
        self._templates = templates
        self._owns_llm = owns_llm

    @property
    def model(self) -> str:
        return self._llm.model

    def judge(self, question: str, language: str, passage: str) -> Judgement:
        started = time.perf_counter()
        system, user = self._templates[language].fill(
            passages=f"<document>\n{fence(passage)}\n</document>", question=question.strip()
        )
        messages = (Message("system", system), Message("user", user))
        judged = self._llm.judge(messages, YES_WORDS, NO_WORDS)
        return Judgement(
            judged.probability,
            judged.prompt_tokens,
            judged.evaluated_tokens,
            (time.perf_counter() - started) * 1000,
        )

    def warm_up(self) -> None:
        self._llm.warm_up()

    def close(self) -> None:
        if self._owns_llm:
            self._llm.close()


def build_judge(settings: Settings, llm: LLM) -> EvidenceJudge | None:
    """The judge ``RAG_JUDGE__BACKEND`` names, or None (``off``: the rule decides alone)."""
    judging = settings.judge
    if judging.backend == "off":
        return None
    answering = settings.llm
    if (
        isinstance(llm, LlamaCppLLM)
        and answering.model == judging.model
        and answering.model_path == judging.model_path
    ):
        return LlamaCppJudge(llm, load_templates(judging.prompt_dir, task="judge"), owns_llm=False)
    return own_judge(settings)


def own_judge(settings: Settings) -> LlamaCppJudge:
    """The model ``RAG_JUDGE__MODEL`` names in a llama.cpp worker of its own."""
    judging = settings.judge
    llm_settings = LLMSettings(
        backend="llamacpp",
        model=judging.model,
        model_path=judging.model_path,
        n_ctx=judging.n_ctx,
        n_threads=judging.n_threads,
        timeout_s=judging.timeout_s,
    )
    return LlamaCppJudge(
        LlamaCppLLM(llm_settings, models_dir=settings.embedder.models_dir),
        load_templates(judging.prompt_dir, task="judge"),
    )
