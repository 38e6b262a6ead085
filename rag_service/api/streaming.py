"""Responses that stream Server-Sent Events, for /v1/ask and /v1/chat/completions."""

from __future__ import annotations

from collections import abc
from typing import Any

import anyio
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


class ClosingStreamingResponse(StreamingResponse):
    """A stream whose generator is closed however the response ends, a client hanging up
    included. Starlette leaves an abandoned generator to the garbage collector, and until it
    runs, the LLM behind it goes on generating for nobody (issue #12, finding 8)."""

    def __init__(self, content: abc.Generator[bytes], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._generator = content

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Shielded: a cancelled request must still stop its generation. In a thread: closing
            # runs the generator's cleanup, which closes an HTTP stream or signals a worker.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._generator.close)
