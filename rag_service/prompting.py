"""Prompt templates as files, one per language, filled with the numbered passages.

A template has a ``### system`` and a ``### user`` section. An answer template
(``answer.<lang>.txt``) has the placeholders ``{passages}`` and ``{question}`` (both required) and
``{refusal}`` (the sentence the model must reply with when the documents do not answer); a
condense template (``condense.<lang>.txt``, conversation.py) has ``{history}`` and
``{question}``. Passages are wrapped in ``<document n="...">`` tags so the model can tell data
from instructions; a tag inside a document's text is defused.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from rag_service.errors import ConfigError
from rag_service.retrieval.language import query_language
from rag_service.text import MatchForm
from rag_service.types import Chunk, Message, Prompt

LANGUAGES = ("en", "zh")

# What the service says when the documents do not answer; also what the model is told to say.
REFUSALS = {
    "en": "The documents do not contain the answer to this question.",
    "zh": "文档中没有这个问题的答案。",
}

# The placeholders each task's templates must hold.


def is_refusal(text: str) -> bool:
    """The model replied with the refusal sentence it was told to use (in either language)."""
    form = MatchForm.of(text).form
    return any(MatchForm.of(refusal).form in form for refusal in REFUSALS.values())


PLACEHOLDERS = {
    "answer": ("{passages}", "{question}"),
    "condense": ("{history}", "{question}"),
    "judge": ("{passages}", "{question}"),
}

_SECTION = re.compile(r"^### (system|user)[ \t]*$", re.MULTILINE)
_DOCUMENT_TAG = re.compile(r"<(/?)document", re.IGNORECASE)


@dataclass(frozen=True)
class PromptTemplate:
    system: str
    user: str

    @classmethod
    def parse(
        cls, text: str, origin: str, required: tuple[str, ...] = PLACEHOLDERS["answer"]
    ) -> PromptTemplate:
        parts = _SECTION.split(text)
        sections = dict(zip(parts[1::2], (p.strip() for p in parts[2::2]), strict=True))
        if set(sections) != {"system", "user"}:
            raise ConfigError(f"{origin}: needs a '### system' and a '### user' section")
        both = sections["system"] + sections["user"]
        for placeholder in required:
            if placeholder not in both:
                raise ConfigError(f"{origin}: the template has no {placeholder}")
        return cls(sections["system"], sections["user"])

    def fill(self, **values: str) -> tuple[str, str]:
        # Plain replacement, not str.format: templates and passages may hold braces.
        def substitute(section: str) -> str:
            for name, value in values.items():
                section = section.replace("{" + name + "}", value)
            return section

        return substitute(self.system), substitute(self.user)


def load_templates(folder: Path | None, task: str = "answer") -> dict[str, PromptTemplate]:
    """``<task>.<lang>.txt`` for each language, from ``folder`` or the built-in ones."""
    templates = {}
    for language in LANGUAGES:
        name = f"{task}.{language}.txt"
        if folder is None:
            text = resources.files("rag_service.prompts").joinpath(name).read_text("utf-8")
        else:
            try:
                text = (folder / name).read_text("utf-8")
            except OSError as exc:
                raise ConfigError(f"prompt template {folder / name}: {exc.strerror}") from exc
        templates[language] = PromptTemplate.parse(text, name, PLACEHOLDERS[task])
    return templates


def _attribute(value: str) -> str:
    # Titles (a Markdown H1, an HTML <title>) and file names are the document's words too:
    # escaped as XML, so no quote, tag or newline in them can close or forge the fence.
    return html.escape(" ".join(value.split()), quote=True)


def fence(text: str) -> str:
    """A document tag inside a document's text is defused: it cannot close the fence."""
    return _DOCUMENT_TAG.sub(r"<\1doc", text)


def format_passage(n: int, chunk: Chunk) -> str:
    text = fence(chunk.text)
    source, title = _attribute(chunk.source), _attribute(chunk.title)
    return f'<document n="{n}" source="{source}" title="{title}">\n{text}\n</document>'


class PromptBuilder:
    def __init__(self, templates: dict[str, PromptTemplate]) -> None:
        self._templates = templates

    def build(
        self, question: str, passages: Sequence[Chunk], history: Sequence[Message] = ()
    ) -> Prompt:
        language = query_language(question)
        system, user = self._templates[language].fill(
            passages="\n\n".join(format_passage(n, c) for n, c in enumerate(passages, start=1)),
            question=question.strip(),
            refusal=REFUSALS[language],
        )
        messages = (Message("system", system), *history, Message("user", user))
        return Prompt(question, language, tuple(passages), messages)
