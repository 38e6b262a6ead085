"""Which follow-ups should borrow words from the conversation, and which words? On
corpus/CONVERSATIONS.jsonl, with the extractive answerer and the default embedder, each way of
making a follow-up standalone is asked every conversation (the history holds the service's own
answers), and scored as `rag eval-conversations` scores it: the gold note among the first three
documents, and a gold answer string in the answer.

    .venv/bin/python bench/research/conversation_variants.py

- rule: the shipped RuleCondenser (the previous question's informative words, only when the
  follow-up refers back or has no word of its own);
- concat_last / concat_all: every follow-up with the previous user turn's text / all of them;
- always_words: the rule's words appended to every follow-up (no gate);
- rule+answer: the rule, plus the first ten informative words of the previous answer.

Prints each variant's rates by turn group, and the follow-ups it got wrong.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import REPO

from evaluation.conversations import (
    FILE,
    ask_conversation,
    load_conversations,
    summarise_conversations,
)
from evaluation.runner import prepared_set
from rag_service.answering import AnswerService
from rag_service.conversation import Condenser, RuleCondenser, informative_words
from rag_service.llms import build_llm
from rag_service.prompting import PromptBuilder, load_templates
from rag_service.retrieval.tokenize import tokenize
from rag_service.settings import Settings
from rag_service.similarity import SentenceSimilarity
from rag_service.types import Message


def _users(history: Sequence[Message]) -> list[str]:
    return [m.content for m in history if m.role == "user"]


class ConcatLast:
    def standalone(self, question: str, history: Sequence[Message]) -> str:
        return " ".join([question, *_users(history)[-1:]])


class ConcatAll:
    def standalone(self, question: str, history: Sequence[Message]) -> str:
        return " ".join([question, *reversed(_users(history))])


class AlwaysWords(RuleCondenser):
    @staticmethod
    def _resolve(question: str, previous: str) -> str:
        own = set(tokenize(question))
        context = [w for w in informative_words(previous) if not set(tokenize(w)) <= own]
        return f"{question} ({' '.join(context)})" if context else question


class RuleWithAnswer(RuleCondenser):
    def standalone(self, question: str, history: Sequence[Message]) -> str:
        resolved = super().standalone(question, history)
        answers = [m.content for m in history if m.role == "assistant"]
        if resolved == question or not answers:
            return resolved
        return f"{resolved} {' '.join(informative_words(answers[-1])[:10])}"


VARIANTS: dict[str, Condenser] = {
    "rule": RuleCondenser(),
    "concat_last": ConcatLast(),
    "concat_all": ConcatAll(),
    "always_words": AlwaysWords(),
    "rule+answer": RuleWithAnswer(),
}


def main() -> None:
    settings = Settings()
    cache = REPO / "data" / "eval-cache" / "embeddings.sqlite"
    conversations = load_conversations(REPO / "corpus" / FILE)
    params = settings.llm.generation_params()
    with prepared_set(REPO / "corpus", settings, cache) as prepared:
        sentences = SentenceSimilarity(prepared.service.embedder)
        llm = build_llm(prepared.settings, sentences)
        prompts = PromptBuilder(load_templates(None))
        for name, condenser in VARIANTS.items():
            service = AnswerService(
                prepared.service,
                llm,
                prompts,
                prepared.settings.answer,
                sentences=sentences,
                condenser=condenser,
            )
            records = [
                r
                for c in conversations
                for r in ask_conversation(service, c, params, "conversation")
            ]
            groups = summarise_conversations(records)["systems"]["conversation"]
            print(name)
            for group, rates in groups.items():
                hit, correct = rates["hit@3"], rates["correct"]
                print(f"  {group:<16}{rates['turns']:>5}{hit:>8.3f}{correct:>8.3f}")
            for r in records:
                if r.position > 1 and not (r.hit and r.correct):
                    print(f"    wrong: {r.cid} turn {r.position} ({r.kind}): {r.searched}")


if __name__ == "__main__":
    main()
