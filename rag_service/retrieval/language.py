"""Which language a query is in: it picks the fusion weights, the bigram boost and the prompt."""

from __future__ import annotations

import re

from rag_service.retrieval.tokenize import CJK_CHAR

_LATIN_WORD = re.compile(r"[A-Za-z]+")


def query_language(text: str) -> str:
    """'zh' when the text has at least two Chinese characters per Latin-script word, else 'en'.

    Counting words, not letters, keeps "RecursiveCharacterTextSplitter 按什么切分？" Chinese and
    "What does 注意力 mean in a transformer?" English.
    """
    chinese = len(CJK_CHAR.findall(text))
    return "zh" if chinese and chinese >= 2 * len(_LATIN_WORD.findall(text)) else "en"
