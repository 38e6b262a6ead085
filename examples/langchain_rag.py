"""LangChain's ``ChatOpenAI`` for this service, keeping what the service sends beside the answer.

``ChatOpenAI`` reads OpenAI's fields only (``BaseChatOpenAI``'s docstring: "Non-standard
response fields added by third-party providers ... are not extracted. Use a provider-specific
subclass"), and on the chat-completions path it drops even the message's ``annotations``. So the
links behind ``[1]``, the ``sources`` list and the refusal flags are lost; nor does
``include_response_headers=True`` help, since the service sends them in the body. This subclass,
the shape langchain-deepseek uses for its ``reasoning_content``, copies them into the message's
``response_metadata``, for ``invoke`` and for ``stream`` (they come in the stream's last chunk)::

    llm = ChatRag(base_url="http://127.0.0.1:8000/v1", api_key="unused", model="rag")
    reply = llm.invoke("How many heads did the original transformer use?")
    reply.response_metadata["sources"]      # [{"n": 1, "source": ..., "quote": ..., "url": ...}]
    reply.response_metadata["annotations"]  # OpenAI url_citation, one per [n] in the content

A standalone file with no import of the service: copy it next to your code.
"""

from __future__ import annotations

from typing import Any

from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_openai import ChatOpenAI

# The service's fields beside OpenAI's, on a response and on a stream's last chunk.
SERVICE_FIELDS = ("sources", "answerable", "refusal_reason", "standalone_question")


def _service_fields(body: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    kept = {key: body[key] for key in SERVICE_FIELDS if key in body}
    if message.get("annotations"):
        kept["annotations"] = message["annotations"]
    return kept


class ChatRag(ChatOpenAI):
    """``ChatOpenAI`` that keeps the service's citations in ``response_metadata``."""

    def _create_chat_result(
        self, response: Any, generation_info: dict[str, Any] | None = None
    ) -> ChatResult:
        result = super()._create_chat_result(response, generation_info)
        body = response if isinstance(response, dict) else response.model_dump()
        for generation, choice in zip(result.generations, body["choices"], strict=True):
            kept = _service_fields(body, choice.get("message") or {})
            generation.message.response_metadata.update(kept)
        return result

    def _convert_chunk_to_generation_chunk(
        self,
        chunk: dict[str, Any],
        default_chunk_class: type,
        base_generation_info: dict[str, Any] | None,
    ) -> ChatGenerationChunk | None:
        generation = super()._convert_chunk_to_generation_chunk(
            chunk, default_chunk_class, base_generation_info
        )
        if generation is not None:
            choices = chunk.get("choices") or [{}]
            kept = _service_fields(chunk, choices[0].get("delta") or {})
            generation.message.response_metadata.update(kept)
        return generation
