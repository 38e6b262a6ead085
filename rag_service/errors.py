"""The service's exceptions. The API maps each to one HTTP status, once, in ``api/errors.py``.

RagError
├── ConfigError            a setting names something that does not exist          (500)
├── BadRequest             valid JSON that cannot be served as asked               (400)
├── NotFound               no such document or model in what is served             (404)
├── DocumentUnreadable     a file cannot be turned into text (ingest reports it)   (422)
├── IndexNotReady          no committed index to search yet                        (503)
├── IndexBusy              another reindex holds the index lock                    (409)
├── ReindexCancelled       a reindex was told to stop; it committed nothing   (a job's state)
├── JobTakenOver           another process owns the job now; this one drops it   (a worker's)
├── NameTaken              the name differs only in case from one in use           (409)
├── StoreUnavailable       the vector store (a Chroma server) cannot be reached    (503)
├── StateUnavailable       the state store (PostgreSQL) cannot be reached           (503)
├── UpstreamError          the LLM endpoint failed: refused, 5xx, garbage          (502)
│   └── UpstreamTimeout    the LLM did not answer within the configured timeout    (504)
├── Unauthorized           no API key, or one that is not valid                    (401)
├── Forbidden              not allowed: the key's scope, a mirrored folder         (403)
│   └── CrossSite          a browser's state-changing request from another site    (403)
├── RateLimited            the caller sent more than its share; retry later        (429)
└── RequestRefused         the request breaks one of the server's bounds
    ├── HostNotAllowed     the Host header names a host this server does not serve (400)
    ├── BodyTooLarge       the body is larger than RAG_API__MAX_BODY_BYTES         (413)
    ├── LengthRequired     an upload without Content-Length                        (411)
    ├── BodyTimeout        the body did not arrive within RAG_API__BODY_TIMEOUT_S  (408)
    ├── RequestTimeout     no response began within RAG_API__REQUEST_TIMEOUT_S     (504)
    └── ServerBusy         every answer slot stayed busy for the queue's timeout   (503)

An error may carry HTTP ``headers`` for its response (``WWW-Authenticate``, ``Retry-After``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType


class RagError(Exception):
    """Base class of every error the service raises on purpose."""

    headers: Mapping[str, str] = MappingProxyType({})


class ConfigError(RagError):
    pass


class BadRequest(RagError):
    pass


class NotFound(RagError):
    pass


class DocumentUnreadable(RagError):
    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class IndexNotReady(RagError):
    pass


class IndexBusy(RagError):
    pass


class ReindexCancelled(RagError):
    """Raised between embedding batches when the run was asked to stop; never an HTTP answer."""


class JobTakenOver(RagError):
    """A document job's record or writes were refused: another process took the job over (it
    found the job's owner gone, as when this one lost its PostgreSQL session), and runs it now;
    never an HTTP answer."""


class NameTaken(RagError):
    pass


class StoreUnavailable(RagError):
    pass


class StateUnavailable(RagError):
    pass


class UpstreamError(RagError):
    pass


class UpstreamTimeout(UpstreamError):
    pass


class Unauthorized(RagError):
    headers = MappingProxyType({"WWW-Authenticate": 'Bearer realm="rag-service"'})


class Forbidden(RagError):
    pass


class CrossSite(Forbidden):
    pass


class RateLimited(RagError):
    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(f"{message}; retry in {retry_after_s} s")
        self.headers = {"Retry-After": str(retry_after_s)}


class RequestRefused(RagError):
    pass


class HostNotAllowed(RequestRefused):
    pass


class BodyTooLarge(RequestRefused):
    # The rest of the body is not read, so the connection cannot carry another request.
    headers = MappingProxyType({"Connection": "close"})


class LengthRequired(RequestRefused):
    pass


class BodyTimeout(RequestRefused):
    # The rest of the body is not read, so the connection cannot carry another request.
    headers = MappingProxyType({"Connection": "close"})


class RequestTimeout(RequestRefused):
    # The rest of the body is not read, so the connection cannot carry another request.
    headers = MappingProxyType({"Connection": "close"})


class ServerBusy(RequestRefused):
    """``retry_after_s``: when a slot is likely free again (sent as ``Retry-After``)."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after_s)}
