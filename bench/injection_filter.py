"""How precise the extractive answerer's injection filter is: every sentence of the shipped
corpus and of the evaluation sets, counted as quoted, filtered as an instruction to a model, or
dropped after one (the rest of its passage); and how many carry a citation marker of their own.

    .venv/bin/python bench/injection_filter.py corpus ../shared/eval/xquad_en ...

Ordinary documents should lose nothing: every sentence listed under "filtered" is a miss.
"markers_verified": of the sentences with markers of their own, how many, quoted with the
markers stripped and the answerer's [1] added, still pass the citation check against the text.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

from rag_service.citations import check_citations, strip_markers
from rag_service.llms.extractive import is_instruction
from rag_service.text import split_sentences
from rag_service.types import Chunk


def documents(folder: Path) -> Iterator[str]:
    if (folder / "corpus.jsonl").exists():
        with (folder / "corpus.jsonl").open(encoding="utf-8") as lines:
            for line in lines:
                record = json.loads(line)
                yield f"{record.get('title', '')}\n\n{record['text']}"
    else:
        for path in sorted(folder.rglob("*.md")):
            yield path.read_text(encoding="utf-8")


def main(folders: list[str]) -> None:
    results = {}
    for name in folders:
        sentences = filtered = with_markers = verified = 0
        examples: list[str] = []
        for text in documents(Path(name)):
            for sentence in split_sentences(text):
                sentences += 1
                stripped = strip_markers(sentence.text).strip()
                if stripped != sentence.text:
                    with_markers += 1
                    chunk = Chunk("c", text, "doc", "", (), 0, len(text))
                    verified += not check_citations(f"{stripped} [1]", [chunk], 0.5).dropped
                if is_instruction(sentence.text):
                    filtered += 1
                    examples.append(sentence.text[:200])
        results[Path(name).name] = {
            "sentences": sentences,
            "filtered": filtered,
            "with_own_markers": with_markers,
            "markers_verified": verified,
            "filtered_examples": examples[:20],
        }
    print(json.dumps(results, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
