"""The int8 form of an E5 model folder: exported once to ONNX and quantised, then run on
onnxruntime (no torch at query or ingest time).

Dynamic quantisation with one scale per output channel (``per_channel``) kept the vectors at a
cosine of 0.996 or more to fp32 on SciFact and CMRC passages; one scale per matrix fell to 0.98
(docs/benchmarks.md, *The default embedder*, has the measurement). The 250k-row embedding table
is quantised too, which shrinks the file from 470 MB to 118 MB.

Written beside the model it comes from (``model-int8.onnx``), under a temporary name first and
renamed into place, so a crash mid-build leaves no half file; the fp32 export in between is
deleted.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path

from rag_service.errors import ConfigError

INT8_FILE = "model-int8.onnx"


class _QuietQuantiser(logging.Filter):
    """onnxruntime's quantiser logs on the root logger: a line per tensor it leaves in float
    (about 80 for E5), and advice to pre-process first, which is for static quantisation of
    vision models. For this one fixed model none of it is news, and it buried the one line that
    says what is happening (``e5.py``); a real failure raises."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not {"onnxruntime", "quantization"} <= set(Path(record.pathname).parts)


def _export_fp32(folder: Path, out: Path) -> None:
    import torch

    from rag_service.embedders.e5 import load_torch_model

    model = load_torch_model(folder)

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            out = self.bert(input_ids=input_ids, attention_mask=attention_mask)
            hidden: torch.Tensor = out.last_hidden_state
            return hidden

    ids = torch.tensor([[0, 100, 200, 2]])
    axes = {0: "batch", 1: "tokens"}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
        torch.onnx.export(
            LastHiddenState(),
            (ids, torch.ones_like(ids)),
            str(out),
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "last_hidden_state": axes},
            opset_version=17,
            dynamo=False,
        )


def build_int8(folder: Path) -> Path:
    """``folder``'s int8 ONNX model, built now (about a minute on 2 cores) if it is not there."""
    target = folder / INT8_FILE
    if target.is_file():
        return target
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise ConfigError(
            f"e5's int8 precision builds its model with {exc.name}: pip install onnx onnxruntime"
            " (or set RAG_EMBEDDER__PRECISION=fp32)"
        ) from exc
    with tempfile.TemporaryDirectory(prefix=".int8-building-", dir=folder) as tmp:
        fp32, int8 = Path(tmp) / "model.onnx", Path(tmp) / INT8_FILE
        _export_fp32(folder, fp32)
        quiet = _QuietQuantiser()
        logging.getLogger().addFilter(quiet)
        try:
            quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8, per_channel=True)
        finally:
            logging.getLogger().removeFilter(quiet)
        int8.chmod(0o644)
        with int8.open("rb") as f:
            os.fsync(f.fileno())
        int8.rename(target)
    return target
