from __future__ import annotations

import pytest

from rag_service.retrieval.hybrid import SearchFilters, query_language
from rag_service.retrieval.tokenize import normalize, tokenize

pytestmark = pytest.mark.unit


def test_full_width_and_case_are_folded() -> None:
    assert normalize("ＬｏＲＡ　１２３") == "lora 123"
    assert tokenize("ＬｏＲＡ") == tokenize("lora") == ["lora"]


def test_traditional_and_simplified_chinese_give_the_same_tokens() -> None:
    assert tokenize("檢索增強生成與向量") == tokenize("检索增强生成与向量")


def test_chinese_is_cut_into_words_with_the_field_dictionary() -> None:
    tokens = tokenize("注意力机制是Transformer的核心，向量数据库存储嵌入向量")
    for word in ("注意力机制", "向量数据库", "transform"):
        assert word in tokens
    assert "的" not in tokens  # function words are dropped


def test_english_is_stemmed_and_stopwords_dropped() -> None:
    assert tokenize("The retrieval of retrieved models") == ["retriev", "retriev", "model"]


def test_joined_terms_also_give_their_parts() -> None:
    assert tokenize("GPT-4") == ["gpt-4", "gpt", "4"]


def test_query_language() -> None:
    assert query_language("什么是 RAG？") == "zh"
    assert query_language("What does 注意力 mean in a transformer?") == "en"
    assert query_language("12345") == "en"
    assert query_language("RecursiveCharacterTextSplitter 切分文本时首先按什么来切？") == "zh"
    assert query_language("Is 向量 a word?") == "en"


def test_filters() -> None:
    f = SearchFilters(sources=frozenset({"en/a.md", "zh/b.md"}), source_prefix="en/")
    assert f.active and f.accepts("en/a.md")
    assert not f.accepts("zh/b.md") and not f.accepts("en/c.md")
    assert not SearchFilters().active
