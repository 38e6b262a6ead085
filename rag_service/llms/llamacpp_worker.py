"""The child process that runs a GGUF model for the ``llamacpp`` backend (see llamacpp.py).

It imports llama_cpp, loads the model, says ``("ready",)`` (or ``("failed", reason)`` and exits)
and then answers one request at a time over its end of a multiprocessing pipe:

    parent -> child   ("generate", messages, temperature, top_p, max_tokens, stream)
                      ("cancel",)          stop the stream being written; ignored otherwise
    child -> parent   ("delta", text)      streams only, each a new piece
                      ("done", text, prompt_tokens, completion_tokens)
                      ("error", reason)    the request failed; the worker carries on

It exits when the parent's end closes, so an API killed with SIGKILL leaves no model behind.
"""

from __future__ import annotations

from multiprocessing.connection import Connection
from typing import Any


def serve(conn: Connection, model_path: str, n_ctx: int, n_threads: int) -> None:
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
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request[0] != "generate":
            continue  # a cancel that arrived after its generation had finished
        _, messages, temperature, top_p, max_tokens, stream = request
        try:
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
