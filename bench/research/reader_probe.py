"""Can a small cross-encoder reader, trained here on CPU, decide answerable from near misses
better than the refusal rule? multilingual-e5-small (the default embedder's own weights) reads
the question and the window around the top passage's nearest sentence as one sequence; its
bottom 8 of 12 layers stay frozen (their output is computed once and kept), the top 4 learn
through low-rank adapters (rank 16 on the attention's projections and the feed-forward layers,
0.44M weights) and a linear head reads the mean of the tokens (the first token, which e5 never
trained to summarise, stayed at chance). AdamW at 1e-3, batches of 16, 3 epochs: about 2.5 min
an epoch per 1,800 pairs on 2 cores. Each epoch prints the AUC on 600 cases of XQuAD-zh (in the
training set for the XQuAD split).

    .venv/bin/python bench/research/evidence_dump.py xquad_en xquad_zh cmrc2018_dev corpus
    .venv/bin/python bench/research/reader_probe.py encode     # the frozen layers, once
    .venv/bin/python bench/research/reader_probe.py train      # each split below

Splits: trained on CMRC, scored on XQuAD-en, XQuAD-zh and the corpus (other articles, and
English it never saw); trained on XQuAD-en + XQuAD-zh, scored on CMRC and the corpus. A training
pair is the question with the window of its top passage: with the gold documents when the
window holds a gold answer (label 1), without them when it holds none (label 0). Every case is
scored, with the eval's labels (asked with the gold documents: should answer). Reports the AUC
of the reader, of the shipped rule and of both in a logistic model fitted on the training set,
and their errors at the threshold that makes the larger error smallest on the training set.
Writes bench/results/research-reader-probe.json.
"""

from __future__ import annotations

import json
import math
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import torch
from evidence_fit import best_threshold, errors, load, shipped_score
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import REPO

from evaluation.answers import contains_answer
from rag_service.embedders.e5 import PASSAGE_PREFIX, QUERY_PREFIX, load_torch_model
from rag_service.embedders.e5_weights import build_model_dir
from rag_service.judging import bounded_passage
from rag_service.models_dir import default_models_dir

DUMPS = Path("/tmp/rag-research")
SETS = ["xquad_en", "xquad_zh", "cmrc2018_dev", "corpus"]
FROZEN = 8  # layers below the adapters (of 12)
WINDOW_TOKENS = 160  # the judge's passage budget
MAX_TOKENS = 320
RANK = 16
LEARNING_RATE = 1e-3
SPLITS = {
    "cmrc": (["cmrc2018_dev"], ["xquad_en", "xquad_zh", "corpus"]),
    "xquad": (["xquad_en", "xquad_zh"], ["cmrc2018_dev", "corpus"]),
}
torch.manual_seed(0)


def model_folder() -> Path:
    return build_model_dir(default_models_dir())


def cases(name: str) -> list[dict]:
    rows = pickle.loads((DUMPS / f"evidence-{name}.pkl").read_bytes())
    out = []
    for r in rows:
        for cond, label in (("gold", 1), ("without", 0)):
            c = r[cond]
            top = c["passages"][0] if c["passages"] else None
            sents, cos = (top["scored"] or ([], [])) if top else ([], [])
            window = bounded_passage(sents, cos, WINDOW_TOKENS) if sents else ""
            out.append(
                {
                    "question": r["question"],
                    "window": window,
                    "label": label,
                    "holds": contains_answer(window, r["answers"]),
                }
            )
    return out


def encode(names: list[str]) -> None:
    """The output of the frozen layers for every case, in batches of similar length."""
    from tokenizers import Tokenizer

    folder = model_folder()
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.enable_truncation(MAX_TOKENS)
    model = load_torch_model(folder)
    model.encoder.layer = model.encoder.layer[:FROZEN]
    for name in names:
        started = time.monotonic()
        encoded = [
            tok.encode(QUERY_PREFIX + c["question"], PASSAGE_PREFIX + c["window"]).ids
            for c in cases(name)
        ]
        hidden: list[torch.Tensor] = [torch.empty(0)] * len(encoded)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        for start in range(0, len(order), 16):
            part = order[start : start + 16]
            longest = max(len(encoded[i]) for i in part)
            ids = torch.ones(len(part), longest, dtype=torch.long)  # <pad> is 1
            mask = torch.zeros(len(part), longest, dtype=torch.long)
            for row, i in enumerate(part):
                ids[row, : len(encoded[i])] = torch.tensor(encoded[i])
                mask[row, : len(encoded[i])] = 1
            with torch.inference_mode():
                out = model(input_ids=ids, attention_mask=mask).last_hidden_state
            for row, i in enumerate(part):
                hidden[i] = out[row, : len(encoded[i])].to(torch.float16).clone()
        torch.save(hidden, DUMPS / f"reader-hidden-{name}.pt")
        print(name, len(hidden), f"{time.monotonic() - started:.0f} s", file=sys.stderr)


class Adapted(torch.nn.Module):
    """A frozen linear layer plus a trainable low-rank update (LoRA)."""

    def __init__(self, base: torch.nn.Linear) -> None:
        super().__init__()
        self.base = base
        scale = 1 / math.sqrt(base.in_features)
        self.down = torch.nn.Parameter(torch.randn(RANK, base.in_features) * scale)
        self.up = torch.nn.Parameter(torch.zeros(base.out_features, RANK))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.down.T) @ self.up.T


class Reader(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        model = load_torch_model(model_folder())
        self.layers = model.encoder.layer[FROZEN:]
        for p in self.layers.parameters():
            p.requires_grad = False
        for layer in self.layers:
            att = layer.attention.self
            att.query, att.key, att.value = Adapted(att.query), Adapted(att.key), Adapted(att.value)
            layer.attention.output.dense = Adapted(layer.attention.output.dense)
            layer.intermediate.dense = Adapted(layer.intermediate.dense)
            layer.output.dense = Adapted(layer.output.dense)
        self.head = torch.nn.Linear(384, 1)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        extended = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        for layer in self.layers:
            out = layer(h, attention_mask=extended)
            h = out[0] if isinstance(out, tuple) else out
        # Mean over the tokens, as e5 pools: its first token was never trained to summarise.
        pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return self.head(pooled).squeeze(-1)


def batches(hidden: list[torch.Tensor], order: list[int], size: int):
    for start in range(0, len(order), size):
        part = order[start : start + size]
        longest = max(hidden[i].shape[0] for i in part)
        h = torch.zeros(len(part), longest, 384)
        mask = torch.zeros(len(part), longest, dtype=torch.long)
        for row, i in enumerate(part):
            n = hidden[i].shape[0]
            h[row, :n] = hidden[i].float()
            mask[row, :n] = 1
        yield part, h, mask


def scores(reader: Reader, hidden: list[torch.Tensor]) -> np.ndarray:
    reader.eval()
    out = np.zeros(len(hidden))
    order = sorted(range(len(hidden)), key=lambda i: hidden[i].shape[0])
    with torch.inference_mode():
        for part, h, mask in batches(hidden, order, 32):
            out[part] = reader(h, mask).numpy()
    return out


def train(names: list[str], epochs: int = 3, watch: str = "xquad_zh") -> Reader:
    hidden, labels = [], []
    for name in names:
        hs = torch.load(DUMPS / f"reader-hidden-{name}.pt")
        for h, c in zip(hs, cases(name), strict=True):
            if c["label"] == int(c["holds"]):  # clean pairs only
                hidden.append(h)
                labels.append(float(c["label"]))
    watched = torch.load(DUMPS / f"reader-hidden-{watch}.pt")[:600]
    watched_y = [c["label"] for c in cases(watch)[:600]]
    reader = Reader()
    trainable = [p for p in reader.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=LEARNING_RATE, weight_decay=0.01)
    y = torch.tensor(labels)
    rng = np.random.default_rng(0)
    print(f"training on {len(hidden)} pairs, {sum(labels):.0f} positive", file=sys.stderr)
    for epoch in range(epochs):
        reader.train()
        started, total = time.monotonic(), 0.0
        for part, h, mask in batches(hidden, list(rng.permutation(len(hidden))), 16):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(reader(h, mask), y[part])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(part)
        auc = roc_auc_score(watched_y, scores(reader, watched))
        print(
            f"epoch {epoch}: loss {total / len(hidden):.4f}, {time.monotonic() - started:.0f} s,"
            f" AUC on 600 of {watch} {auc:.3f}",
            file=sys.stderr,
        )
    return reader


def evaluate() -> None:
    results: dict[str, dict] = {}
    for split, (train_sets, test_sets) in SPLITS.items():
        reader = train(train_sets)
        columns: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name in train_sets + test_sets:
            X, y, names = load(name)  # the cases in cases()'s order: each question, gold first
            read = scores(reader, torch.load(DUMPS / f"reader-hidden-{name}.pt"))
            columns[name] = (np.column_stack([shipped_score(X, names), read]), y)
        Xt = np.vstack([columns[n][0] for n in train_sets])
        yt = np.concatenate([columns[n][1] for n in train_sets])
        both = LogisticRegression().fit(Xt, yt)
        kinds = {
            "rule": lambda X: X[:, 0],
            "reader": lambda X: X[:, 1],
            "rule + reader": both.decision_function,
        }
        thresholds = {k: best_threshold(f(Xt), yt) for k, f in kinds.items()}
        thresholds["rule"] = 0.0  # the shipped threshold
        results[split] = {"trained_on": train_sets, "weights": both.coef_[0].round(3).tolist()}
        for name in test_sets:
            X, y = columns[name]
            results[split][name] = {}
            for k, f in kinds.items():
                s = f(X)
                refused, answered = errors(s >= thresholds[k], y)
                results[split][name][k] = {
                    "refused_answerable": round(refused, 3),
                    "answered_unanswerable": round(answered, 3),
                    "auc": round(float(roc_auc_score(y, s)), 3),
                    "own_threshold_max_error": round(max(errors(s >= best_threshold(s, y), y)), 3),
                }
                print(split, name, k, results[split][name][k])
    out = REPO / "bench" / "results" / "research-reader-probe.json"
    out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    torch.set_num_threads(2)
    if sys.argv[1] == "encode":
        encode(sys.argv[2:] or SETS)
    else:
        evaluate()
