from __future__ import annotations

import pytest

from rag_service.retrieval.bigrams import bigram_share, cjk_bigrams
from rag_service.retrieval.language import query_language
from rag_service.retrieval.results import SearchFilters
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


def test_chinese_bigrams_fold_script_width_and_punctuation() -> None:
    assert cjk_bigrams("混合專家，模型 MoE") == {"混合", "合专", "专家", "家模", "模型"}
    assert cjk_bigrams("ＢＭ25 and no Chinese") == frozenset()
    assert cjk_bigrams("字") == frozenset()


def test_bigram_share_is_the_share_of_query_pairs_held() -> None:
    grams = cjk_bigrams(
        "门控网络选择专家"
    )  # 门控 控网 网络 络选 选择 择专 专家: all but 络选 below
    assert bigram_share(grams, "混合专家模型用门控网络为每个词元选择专家。") == 6 / 7
    assert bigram_share(grams, "門控網絡選擇專家") == 1.0  # Traditional script
    assert bigram_share(frozenset(), "anything") == 0.0
