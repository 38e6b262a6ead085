"""Follow-up questions in conversations: per turn, is the gold note among the first three
documents found, and does the answer hold a gold answer string?

Each conversation of a set's ``CONVERSATIONS.jsonl`` is asked turn by turn twice: with the
history (the earlier questions and the answers the service gave them, as a chat client sends
them) and with the last message only, as the service searched before follow-ups were resolved.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluation.answers import contains_answer
from evaluation.metrics import dedupe
from evaluation.runner import prepared_set
from rag_service.answering import Answer, AnswerService, Question, build_answer_service
from rag_service.errors import ConfigError
from rag_service.settings import Settings
from rag_service.types import GenerationParams, Message

FILE = "CONVERSATIONS.jsonl"
# Documents counted as found: about what the top passages of an answer come from.
HIT_DEPTH = 3
SYSTEMS = ("last_message", "conversation")


@dataclass(frozen=True)
class Turn:
    question: str
    answers: list[str]
    gold: frozenset[str]  # source paths
    kind: str  # first, refers_back, self_contained or topic_switch


@dataclass(frozen=True)
class Conversation:
    cid: str
    lang: str
    turns: list[Turn]


@dataclass(frozen=True)
class TurnRecord:
    cid: str
    position: int  # 1 for the first question
    kind: str
    system: str
    searched: str  # the standalone question
    hit: bool  # a gold note among the first HIT_DEPTH documents
    correct: bool  # answered, with a gold answer string in the answer


def load_conversations(path: Path) -> list[Conversation]:
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    conversations = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            raw = json.loads(line)
            turns = [
                Turn(t["question"], t["answers"], frozenset(t["gold_doc_ids"]), t["kind"])
                for t in raw["turns"]
            ]
            conversations.append(Conversation(raw["cid"], raw["lang"], turns))
    return conversations


def _answer_text(answer: Answer) -> str:
    return re.sub(r"\[\d+\]", " ", answer.answer) if answer.answerable else ""


def ask_conversation(
    service: AnswerService, conversation: Conversation, params: GenerationParams, system: str
) -> list[TurnRecord]:
    """Every turn of one conversation; the history holds the service's own earlier answers."""
    history: list[Message] = []
    records = []
    for position, turn in enumerate(conversation.turns, start=1):
        context = tuple(history) if system == "conversation" else ()
        answer = service.ask(Question(turn.question, params, history=context))
        found = dedupe(p.chunk.source for p in answer.passages)[:HIT_DEPTH]
        records.append(
            TurnRecord(
                cid=conversation.cid,
                position=position,
                kind=turn.kind,
                system=system,
                searched=answer.standalone_question,
                hit=bool(turn.gold.intersection(found)),
                correct=contains_answer(_answer_text(answer), turn.answers),
            )
        )
        history += [Message("user", turn.question), Message("assistant", answer.answer)]
    return records


def conversation_records(
    dataset_dir: Path,
    settings: Settings,
    cache_path: Path,
    limit: int | None = None,
    conversations_path: Path | None = None,
) -> list[TurnRecord]:
    """``conversations_path``: the set's own ``CONVERSATIONS.jsonl`` by default."""
    conversations = load_conversations(conversations_path or dataset_dir / FILE)[:limit]
    with prepared_set(dataset_dir, settings, cache_path) as prepared:
        service = build_answer_service(prepared.settings, prepared.service)
        params = settings.llm.generation_params()
        return [
            record
            for system in SYSTEMS
            for conversation in conversations
            for record in ask_conversation(service, conversation, params, system)
        ]


def _rates(records: Sequence[TurnRecord]) -> dict[str, float]:
    n = len(records) or 1
    return {
        "turns": len(records),
        "hit@3": sum(r.hit for r in records) / n,
        "correct": sum(r.correct for r in records) / n,
    }


def summarise_conversations(records: Sequence[TurnRecord]) -> dict[str, Any]:
    """For each system: overall, turn 1, the follow-ups (turns 2 and later), each position and
    each kind of turn."""
    result: dict[str, Any] = {}
    for system in SYSTEMS:
        mine = [r for r in records if r.system == system]
        groups: dict[str, list[TurnRecord]] = {
            "overall": mine,
            "turn 1": [r for r in mine if r.position == 1],
            "follow-ups": [r for r in mine if r.position > 1],
        }
        for position in sorted({r.position for r in mine if r.position > 1}):
            groups[f"turn {position}"] = [r for r in mine if r.position == position]
        for kind in sorted({r.kind for r in mine if r.position > 1}):
            groups[kind] = [r for r in mine if r.kind == kind]
        result[system] = {name: _rates(group) for name, group in groups.items()}
    return {"conversations": len({r.cid for r in records}), "systems": result}
