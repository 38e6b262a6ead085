"""Chat clients' background tasks, recognised and answered without a search.

Open WebUI sends its own tasks to the model a chat uses, as ordinary chat completions: after an
answer, a follow-up suggestion task, and on a new chat a title and a tags task (query generation
and autocompletion when those features are on). Run as questions, each one searched the
documents, cost an answer's time, and came back as prose with citations that the client then
failed to parse as JSON (it fell back to the question as title and dropped the rest). Nothing in
the request marks them (Open WebUI pops its ``metadata.task`` before calling a connection, and
sends no header unless an admin adds one), but the prompt has a fixed shape: one user message
that opens with ``### Task:``, holds the chat in ``<chat_history>`` as ``USER: ...`` /
``ASSISTANT: ...`` lines and names its JSON output (``{ "title": ... }``). LobeChat's title
prompt is a fixed system message. ``recognise`` reads those shapes; ``reply`` answers from the
history alone, with what the client parses:

- title: the last question, trimmed (in its own language, since it is the user's words);
- tags: none (``{"tags": []}``): a domain label needs a model, and a wrong one is worse;
- follow-ups: none (``{"follow_ups": []}``), so the client shows no invented suggestions;
- query generation: the last question made standalone by the offline rule (conversation.py);
- autocompletion: nothing to add (``{"text": ""}``, the template's own "if unsure").

A template an admin has rewritten has another shape and is answered as a question; the client's
switches that turn the tasks off are in docs/chat-clients.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rag_service.conversation import RuleCondenser
from rag_service.types import Message

TaskKind = Literal["title", "tags", "follow_ups", "queries", "autocomplete"]

# Open WebUI's templates (backend/open_webui/config.py, DEFAULT_*_GENERATION_PROMPT_TEMPLATE):
# the JSON key each one asks for, in its "### Output:" section, names the task.
_OPEN_WEBUI = re.compile(
    r"\A\s*### Task:(?P<head>.*?)<chat_history>\n?(?P<history>.*?)\n?</chat_history>", re.DOTALL
)
_OUTPUT_KEY = re.compile(r'\{\s*"(title|tags|follow_ups|queries|text)"\s*:')
_KINDS: dict[str, TaskKind] = {
    "title": "title",
    "tags": "tags",
    "follow_ups": "follow_ups",
    "queries": "queries",
    "text": "autocomplete",
}
# Its {{MESSAGES}} rendering: one "ROLE: content" per message, content may span lines.
_TURN = re.compile(r"^(USER|ASSISTANT|SYSTEM): ?", re.MULTILINE)
# LobeChat's chainSummaryTitle (packages/prompts/src/chains/summaryTitle.ts): this system
# message, then the chat as "role: content" lines; it reads the reply as plain text.
_LOBECHAT_TITLE = "You are a professional conversation summarizer. Generate a concise title"
_LOBE_TURN = re.compile(r"^(user|assistant|system): ?", re.MULTILINE)

_TITLE_CHARS = 50
_TRAILING = "?？!！.。:：;；,，、 \"'“”‘’`"


@dataclass(frozen=True)
class ChatTask:
    kind: TaskKind
    client: Literal["open-webui", "lobechat"]
    history: tuple[Message, ...]  # the conversation the task is about, oldest first


def _turns(text: str, pattern: re.Pattern[str]) -> tuple[Message, ...]:
    marks = list(pattern.finditer(text))
    return tuple(
        Message(m.group(1).lower(), text[m.end() : nxt.start() if nxt else len(text)].strip())
        for m, nxt in zip(marks, [*marks[1:], None], strict=True)
    )


def recognise(messages: Sequence[Message]) -> ChatTask | None:
    """The background task these messages ask for, or None for a question."""
    users = [m for m in messages if m.role == "user"]
    if len(users) != 1:  # a task is one rendered prompt, never a turn in a conversation
        return None
    task = _OPEN_WEBUI.match(users[0].content)
    if task is not None:
        key = _OUTPUT_KEY.search(task.group("head"))
        if key is None:
            return None
        return ChatTask(_KINDS[key.group(1)], "open-webui", _turns(task.group("history"), _TURN))
    system = " ".join(m.content for m in messages if m.role == "system")
    if system.lstrip().startswith(_LOBECHAT_TITLE):
        return ChatTask("title", "lobechat", _turns(users[0].content, _LOBE_TURN))
    return None


def _last_question(history: Sequence[Message]) -> tuple[str, list[Message]]:
    """The last user turn, and the conversation before it."""
    for i in range(len(history) - 1, -1, -1):
        if history[i].role == "user" and history[i].content:
            return history[i].content, list(history[:i])
    return "", []


def title(question: str) -> str:
    """The question as a title: one line, no closing punctuation or quotes, at most 50
    characters, cut at a word where there are spaces."""
    line = " ".join(question.split()).strip(_TRAILING)
    if len(line) <= _TITLE_CHARS:
        return line
    cut = line[:_TITLE_CHARS]
    if " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(_TRAILING)


def reply(task: ChatTask) -> str:
    """The content of the completion that answers ``task``, in the format its client parses."""
    last, earlier = _last_question(task.history)
    if task.client == "lobechat":
        return title(last)
    if task.kind == "title":
        # An empty title makes Open WebUI fall back to the chat's first message.
        body: dict[str, object] = {"title": title(last)}
    elif task.kind == "tags":
        body = {"tags": []}
    elif task.kind == "follow_ups":
        body = {"follow_ups": []}
    elif task.kind == "queries":
        body = {"queries": [RuleCondenser().standalone(last, earlier)] if last else []}
    else:
        body = {"text": ""}
    return json.dumps(body, ensure_ascii=False)
