"""Tokens for lexical search over mixed Chinese and English text.

Normalisation first: NFKC folds full-width letters, digits and punctuation to half-width, text
is lower-cased, and Traditional Chinese is converted to Simplified (OpenCC), so a query in either
script matches documents in either. Then Chinese runs are cut by jieba in search mode (words and
the shorter words inside them, with a user dictionary of this field's terms) and Latin-script
words are Snowball-stemmed. Very common function words are dropped in both languages.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import cache
from importlib import resources
from typing import Any

# Bump when the tokens produced change: cached tokens and BM25 indexes are keyed by it.
TOKENIZER_VERSION = 1

# Chinese characters (CJK unified ideographs, extension A, compatibility ideographs), as the body
# of a character class; every module that tells Chinese text apart uses these two.
CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
CJK_CHAR = re.compile(rf"[{CJK}]")
_TOKEN = re.compile(rf"[{CJK}]+|[a-z0-9]+(?:[._+\-'][a-z0-9]+)*")
_JOINERS = re.compile(r"[._+\-']")

ENGLISH_STOPWORDS = frozenset(
    "a an and are as at be by for from has have how in is it its of on or that the this "
    "to was were what when where which who whom why will with does do did".split()
)
CHINESE_STOPWORDS = frozenset(
    "的 了 是 在 和 与 及 或 也 都 就 而 被 把 让 对 从 将 这 那 这个 那个 一个 之 其 为 以 "
    "中 上 下 吗 呢 吧 啊 么 什么 哪些 哪个 如何 怎么 怎样 为什么 多少 是否 可以 会".split()
)

_init_lock = threading.Lock()


@cache
def _jieba() -> Any:
    import jieba

    with _init_lock:
        jieba.setLogLevel(60)  # its start-up chatter goes to stderr otherwise
        dictionary = resources.files("rag_service.retrieval").joinpath("userdict.txt")
        with resources.as_file(dictionary) as path:
            jieba.load_userdict(str(path))
        jieba.initialize()
    return jieba


@cache
def _to_simplified() -> Any:
    import opencc

    return opencc.OpenCC("t2s")


@cache
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    if CJK_CHAR.search(text):
        text = str(_to_simplified().convert(text))
    return text


def segment(run: str) -> list[str]:
    """A run of Chinese characters cut into words (jieba's accurate mode, with the user
    dictionary), as written: the words a reader sees, not the search tokens."""
    return list(_jieba().cut(run))


def is_joined(token: str) -> bool:
    """A token of joined words ("gpt-4", "llama-styl"), which ``tokenize`` follows with its
    parts."""
    return bool(_JOINERS.search(token))


def tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    jieba = _jieba()
    stem = _stemmer().stemWord
    for match in _TOKEN.finditer(normalize(text)):
        piece = match.group()
        if CJK_CHAR.match(piece):
            tokens.extend(
                word for word in jieba.cut_for_search(piece) if word not in CHINESE_STOPWORDS
            )
        elif piece not in ENGLISH_STOPWORDS:
            tokens.append(stem(piece))
            if _JOINERS.search(piece):  # "gpt-4" also matches "gpt" and "4"
                tokens.extend(stem(part) for part in _JOINERS.split(piece) if part)
    return tokens
