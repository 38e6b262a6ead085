"""The child process that runs a GGUF model for the ``llamacpp`` backend (see llamacpp.py).

It imports llama_cpp, loads the model, says ``("ready",)`` (or ``("failed", reason)`` and exits)
and then answers one request at a time over its end of a multiprocessing pipe:

    parent -> child   ("generate", messages, temperature, top_p, max_tokens, stream)
                      ("judge", messages, yes_words, no_words)
                      ("cancel",)          stop the stream being written; ignored otherwise
    child -> parent   ("delta", text)      streams only, each a new piece
                      ("done", text, prompt_tokens, completion_tokens)
                      ("judged", p_yes, prompt_tokens, evaluated_tokens)
                      ("error", reason)    the request failed; the worker carries on

A judgement is one forward pass, no sampling: the probability of the first answer token being
one of ``yes_words`` rather than one of ``no_words``. The prompt's tokens already in the context
from the previous request (the same system prompt and instructions) are not evaluated again:
only ``evaluated_tokens`` of ``prompt_tokens`` cost time.

It exits when the parent's end closes, so an API killed with SIGKILL leaves no model behind.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

import numpy as np


def serve(conn: Connection, model_path: str, n_ctx: int, n_threads: int) -> None:
    # OpenMP's threads spin while they wait for work by default: on a host whose cores are
    # shared (the API, the embedder, other processes), a spinning thread that loses its core
    # stalls every step, and two threads decoded slower than one (docs/benchmarks.md). Read
    # when llama.cpp's OpenMP runtime loads, so it is set before the import; an explicit
    # setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    try:
        from llama_cpp import Llama

        llama: Any = Llama(model_path=model_path, n_ctx=n_ctx, n_threads=n_threads, verbose=False)
    except ImportError:
        conn.send(("failed", "llama-cpp-python is not installed: pip install '.[llamacpp]'"))
        return
    except Exception as exc:  # a model file llama.cpp cannot read, and the like
        conn.send(("failed", f"cannot load the model: {type(exc).__name__}: {exc}"))
        return
    conn.send(("ready",))
    judge: _Judge | None = None
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request[0] not in ("generate", "judge"):
            continue  # a cancel that arrived after its generation had finished
        try:
            if request[0] == "judge":
                judge = judge or _Judge(llama)
                conn.send(("judged", *judge(*request[1:])))
                continue
            _, messages, temperature, top_p, max_tokens, stream = request
            if stream:
                _stream(conn, llama, messages, temperature, top_p, max_tokens)
            else:
                result = llama.create_chat_completion(
                    messages=messages, temperature=temperature, top_p=top_p, max_tokens=max_tokens
                )
                usage = result.get("usage") or {}
                text = result["choices"][0]["message"]["content"] or ""
                conn.send(
                    ("done", text, usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))
                )
        except (EOFError, OSError, BrokenPipeError):
            return
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


def _stream(
    conn: Connection,
    llama: Any,
    messages: list[dict[str, str]],
    temperature: float,
    top_p: float,
    max_tokens: int,
) -> None:
    pieces: list[str] = []
    events = llama.create_chat_completion(
        messages=messages, temperature=temperature, top_p=top_p, max_tokens=max_tokens, stream=True
    )
    for event in events:
        text = event["choices"][0]["delta"].get("content") or ""
        if text:
            pieces.append(text)
            conn.send(("delta", text))
        if conn.poll() and conn.recv()[0] == "cancel":
            events.close()  # llama-cpp-python stops sampling when its generator is closed
            break
    # A stream reports no usage: count the answer's tokens; the rest of the context
    # (llama.n_tokens) is the prompt.
    generated = len(llama.tokenize("".join(pieces).encode(), add_bos=False))
    conn.send(("done", "", max(llama.n_tokens - generated, 0), generated))


class _Judge:
    """Judgements with one model: its chat template, and the token ids of the answer words."""

    def __init__(self, llama: Any) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._llama = llama
        self._format: Any = Jinja2ChatFormatter(
            template=llama.metadata["tokenizer.chat_template"],
            eos_token=llama._model.token_get_text(llama.token_eos()),
            bos_token=llama._model.token_get_text(llama.token_bos()),
        )
        self._ids: dict[tuple[str, ...], list[int]] = {}

    def __call__(
        self, messages: list[dict[str, str]], yes_words: Sequence[str], no_words: Sequence[str]
    ) -> tuple[float, int, int]:
        """P(yes) over {yes, no} for the next token after the prompt, the prompt's tokens, and
        how many of them were evaluated (the rest were kept from the previous request)."""
        from llama_cpp import llama_get_logits_ith

        llama = self._llama
        text = self._format(messages=messages).prompt
        tokens = llama.tokenize(text.encode(), add_bos=False, special=True)
        # The longest prefix already evaluated, short of the last token (its logits are needed).
        kept = 0
        for cached, token in zip(llama._input_ids, tokens[:-1], strict=False):
            if cached != token:
                break
            kept += 1
        llama.n_tokens = kept  # eval() drops the context's cache past this point
        llama.eval(tokens[kept:])
        logits = np.ctypeslib.as_array(
            llama_get_logits_ith(llama.ctx, -1), shape=(llama.n_vocab(),)
        )
        probabilities = np.exp(logits - logits.max())
        yes = float(probabilities[self._token_ids(yes_words)].sum())
        no = float(probabilities[self._token_ids(no_words)].sum())
        return yes / (yes + no) if yes + no > 0 else 0.5, len(tokens), len(tokens) - kept

    def _token_ids(self, words: Sequence[str]) -> list[int]:
        """The first token of each word: what the model writes first when it answers so."""
        key = tuple(words)
        if key not in self._ids:
            first = {self._llama.tokenize(w.encode(), add_bos=False)[0] for w in words}
            self._ids[key] = sorted(first)
        return self._ids[key]
