"""Follow-up questions made standalone, for retrieval, the refusal rule and the prompt.

A chat's second question leans on the first: "What is DPO?" then "Who introduced it?". Searched
alone, "Who introduced it?" finds whatever mentions an introduction (the Transformer's paper)
and is answered from it with confidence. A ``Condenser`` turns the question and the conversation
before it into the question that is searched, judged and answered:

- ``RuleCondenser``, the extractive default (no model, offline): a question that refers back (a
  pronoun or demonstrative, "What about X?", "X 呢？") or says nothing on its own ("When?", no
  informative word) is searched with the informative words of the previous user turn
  appended, that turn itself resolved the same way; any other question is left exactly as it
  is, so history never drags a self-contained question off its topic. Chosen by measurement on
  corpus/CONVERSATIONS.jsonl against appending history to every follow-up
  (docs/evaluation.md, *Conversations*).
- ``LLMCondenser``, when an LLM writes the answers: the LLM rewrites history and question into
  one standalone question in the question's language (``prompts/condense.<lang>.txt``), with a
  budget of tokens and of time; on a failure, a timeout or an unusable reply the rule's question
  is used, so a follow-up is never searched worse than without an LLM.

A question with no history is returned as it is by both, without a call: single questions (and
every evaluation set of single questions) are searched exactly as before.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence
from typing import Protocol

from rag_service.errors import UpstreamError, UpstreamTimeout
from rag_service.prompting import PromptTemplate, is_refusal, load_templates
from rag_service.protocols import LLM
from rag_service.retrieval.language import query_language
from rag_service.retrieval.tokenize import CJK, segment, tokenize
from rag_service.settings import ConversationSettings, Settings
from rag_service.types import Completion, GenerationParams, Message, Prompt

log = logging.getLogger(__name__)


class Condenser(Protocol):
    def standalone(self, question: str, history: Sequence[Message]) -> str:
        """The question as it is searched: ``question`` itself when it stands on its own."""
        ...


# Words that point back at something said before. English: personal and demonstrative pronouns
# ("that one", "this method"). Chinese: 它/他们/这/那/其/该/此 and their compounds, minus the
# words that merely contain them (其他, 尤其, 应该, 因此, 那么 ...).
_EN_REFERS = re.compile(
    r"\b(?:it|its|itself|they|them|their|theirs|themselves|this|that|these|those"
    r"|he|him|his|she|her|hers)\b",
    re.IGNORECASE,
)
_ZH_REFERS = re.compile(
    r"(?<!其)[它他她]|这|那(?!么)|(?<![尤极与])其(?![他它余实次])|(?<!应)该|(?<![因如彼从由])此"
    r"|上述|前者|后者"
)
# Ellipsis: "And Llama 2's?", "What about GShard?", "Llama 2 呢？", "那 BM25 呢？".
_EN_ELLIPSIS = re.compile(r"^\W*(?:and|what about|how about|same for)\b", re.IGNORECASE)
_ZH_ELLIPSIS = re.compile(r"呢\W*$")
# Question words say what is asked, not what about: "Who proposed it?" has one informative word.
_QUESTION_WORDS = frozenset(
    "who whom whose which how many much why when where wher "
    "谁 哪 哪里 哪儿 哪年 哪一年 一年 何时 几 多大 多久 什么 时候 什么时候".split()
)
# A word of a previous turn: a Latin-script term (kept as written: the dense model is
# case-sensitive) or a run of Chinese characters, cut by jieba below.
_WORD = re.compile(rf"[{CJK}]+|[A-Za-z0-9]+(?:[._+\-'][A-Za-z0-9]+)*")


def refers_back(question: str) -> bool:
    """Whether the question points at something said before (a pronoun, a demonstrative, an
    elliptical "what about X?")."""
    return bool(
        _EN_REFERS.search(question)
        or _ZH_REFERS.search(question)
        or _EN_ELLIPSIS.search(question)
        or _ZH_ELLIPSIS.search(question)
    )


def _informative(tokens: Sequence[str]) -> set[str]:
    return {t for t in tokens if t not in _QUESTION_WORDS and not _ZH_REFERS.fullmatch(t)}


def _is_pointer(word: str) -> bool:
    return bool(_EN_REFERS.fullmatch(word) or _ZH_REFERS.fullmatch(word))


def informative_words(text: str) -> list[str]:
    """The words of ``text`` that say what it is about, as written, in order, once each:
    not stop words, question words or pronouns."""
    words: list[str] = []
    for match in _WORD.finditer(text):
        piece = match.group()
        pieces = segment(piece) if re.match(rf"[{CJK}]", piece) else [piece]
        for word in pieces:
            if word not in words and not _is_pointer(word) and _informative(tokenize(word)):
                words.append(word)
    return words


def needs_context(question: str) -> bool:
    """A question that cannot be searched on its own: it refers back, or it has no informative
    word ("When?", "Why?"). One is enough: "What is DPO?" after another topic is a new topic."""
    return refers_back(question) or not _informative(tokenize(question))


class RuleCondenser:
    """The follow-up plus the informative words of the previous user turn, when it needs them."""

    name = "rule"

    def standalone(self, question: str, history: Sequence[Message]) -> str:
        previous = ""
        for turn in (m.content for m in history if m.role == "user"):
            previous = self._resolve(turn, previous)
        resolved = self._resolve(question, previous)
        if resolved != question:
            log.info("standalone question (rule): %r for %r", resolved, question)
        return resolved

    @staticmethod
    def _resolve(question: str, previous: str) -> str:
        if not previous or not needs_context(question):
            return question
        own = set(tokenize(question))
        context = [w for w in informative_words(previous) if not set(tokenize(w)) <= own]
        return f"{question} ({' '.join(context)})" if context else question


# Labels a model may put before its rewrite despite being told not to.
_LABEL = re.compile(
    r"^\W*(?:standalone question|rewritten question|question|独立问题|问题)\s*[:：]\s*"
)


def _first_line(text: str) -> str:
    line = next((line for line in text.strip().splitlines() if line.strip()), "")
    return _LABEL.sub("", line).strip().strip("\"'“”‘’「」").strip()


def _render(history: Sequence[Message], limit: int, chars: int) -> str:
    """The most recent ``limit`` messages, each cut to ``chars`` characters: the prompt stays
    small however long the answers were."""
    names = {"user": "User", "assistant": "Assistant"}
    lines = []
    for message in history[-limit:]:
        text = " ".join(message.content.split())
        if len(text) > chars:
            text = text[:chars] + "…"
        lines.append(f"{names.get(message.role, message.role)}: {text}")
    return "\n".join(lines)


class LLMCondenser:
    """The LLM rewrites the follow-up as a standalone question; the rule stands in when it
    fails, runs out of time or replies with something that is not a question in its language."""

    name = "llm"

    # Each message of the history is cut to this many characters in the condense prompt.
    MESSAGE_CHARS = 400

    def __init__(
        self,
        llm: LLM,
        settings: ConversationSettings,
        templates: dict[str, PromptTemplate],
        rule: RuleCondenser | None = None,
    ) -> None:
        self._llm = llm
        self._settings = settings
        self._templates = templates
        self._rule = rule or RuleCondenser()

    def standalone(self, question: str, history: Sequence[Message]) -> str:
        if not history:
            return question
        started = time.perf_counter()
        try:
            reply, why = self._condense(question, history), ""
        except UpstreamError as exc:
            reply, why = "", str(exc)
        ms = (time.perf_counter() - started) * 1000
        language = query_language(question)
        if not why:
            why = self._unusable(reply, language)
        if why:
            log.warning("condense step: %s; the rule's question is searched (%.0f ms)", why, ms)
            return self._rule.standalone(question, history)
        log.info("standalone question (llm, %.0f ms): %r for %r", ms, reply, question)
        return reply

    def _condense(self, question: str, history: Sequence[Message]) -> str:
        settings = self._settings
        language = query_language(question)
        system, user = self._templates[language].fill(
            history=_render(history, settings.history_messages, self.MESSAGE_CHARS),
            question=question.strip(),
        )
        prompt = Prompt(question, language, (), (Message("system", system), Message("user", user)))
        params = GenerationParams(temperature=0.0, top_p=1.0, max_tokens=settings.max_tokens)
        deadline = time.monotonic() + settings.timeout_s
        pieces: list[str] = []
        stream = self._llm.stream(prompt, params)
        try:
            for piece in stream:
                pieces.append(piece.text)
                # One line is all that is asked for; past the deadline it is abandoned (closing
                # the stream stops the model), and a model that never sends a first piece is
                # bounded by its own timeout (RAG_LLM__TIMEOUT_S).
                if "\n" in "".join(pieces).strip() or time.monotonic() > deadline:
                    break
        finally:
            _close(stream)
        if time.monotonic() > deadline:
            raise UpstreamTimeout(f"no standalone question within {settings.timeout_s:g} s")
        return _first_line("".join(pieces))

    @staticmethod
    def _unusable(reply: str, language: str) -> str:
        """Why the reply cannot be searched ("" if it can)."""
        if not reply:
            return "the LLM's reply was empty"
        if is_refusal(reply):
            return "the LLM declined"
        if query_language(reply) != language:
            return f"the LLM's reply is not in the question's language ({language})"
        return ""


def _close(stream: Iterator[Completion]) -> None:
    close = getattr(stream, "close", None)
    if close is not None:
        close()


def build_condenser(settings: Settings, llm: LLM) -> Condenser:
    """``RAG_CONVERSATION__CONDENSE``: ``rule``, ``llm``, or ``auto`` (the LLM when one writes
    the answers, the rule with the extractive answerer)."""
    choice = settings.conversation.condense
    if choice == "auto":
        choice = "rule" if llm.backend == "extractive" else "llm"
    if choice == "rule":
        return RuleCondenser()
    templates = load_templates(settings.conversation.prompt_dir, task="condense")
    return LLMCondenser(llm, settings.conversation, templates)
