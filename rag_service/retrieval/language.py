"""Which language a query is in (it picks the bigram boost and the prompt) and which language the
passages it finds are in (with the query's, the pair picks the fusion weights)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

from rag_service.retrieval.tokenize import CJK_CHAR

_LATIN_WORD = re.compile(r"[A-Za-z]+")


def query_language(text: str) -> str:
    """'zh' when the text has at least two Chinese characters per Latin-script word, else 'en'.

    Counting words, not letters, keeps "RecursiveCharacterTextSplitter 按什么切分？" Chinese and
    "What does 注意力 mean in a transformer?" English.
    """
    chinese = len(CJK_CHAR.findall(text))
    return "zh" if chinese and chinese >= 2 * len(_LATIN_WORD.findall(text)) else "en"


def passage_language(languages: Sequence[str]) -> str | None:
    """The language most of the top passages are in (the best-ranked one's on a tie); None
    for no passages.

    The query's language alone picked the fusion weights, so an English question over Chinese
    documents was fused as if BM25 could read them: its English words match only the Latin
    names and numbers in Chinese text, noise that pulled the fused list below the dense one.
    """
    if not languages:
        return None
    counts = Counter(languages)
    return max(languages, key=lambda language: counts[language])
