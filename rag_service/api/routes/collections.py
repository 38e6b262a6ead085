"""Collections and their documents over HTTP.

Reads take the query scope; writes take admin (with keys off, as on loopback, every caller is
admin). A document write answers ``202`` with a job (``GET /v1/jobs/{id}``): its bytes are
staged first, then the job's worker moves them into the collection's folder (with PostgreSQL,
into its documents' rows, which any replica's folder is checked out from) and runs the
incremental reindex, so identical bytes embed nothing and a deleted document is gone from
BM25 and Chroma in the next generation.
"""

from __future__ import annotations

import shutil
from pathlib import PurePosixPath
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.datastructures import UploadFile

from rag_service.api.auth import ADMIN, QUERY
from rag_service.api.deps import IndexerDep, JobsDep, LibraryDep, SettingsDep
from rag_service.api.schemas import COLLECTION_NAME, NAME_DESCRIPTION, NAME_FORMAT
from rag_service.collections import DEFAULT, Collection
from rag_service.documents import (
    check_new_source,
    check_source,
    claim_source,
    read_document,
    spelled,
)
from rag_service.errors import (
    BadRequest,
    BodyTimeout,
    BodyTooLarge,
    Forbidden,
    IndexBusy,
    LengthRequired,
    NotFound,
)
from rag_service.jobs import FileWrite, Job, JobRunner, Staging
from rag_service.names import folded, nfc
from rag_service.protocols import Indexer
from rag_service.serving import Library
from rag_service.settings import Settings

router = APIRouter(tags=["collections"])

CollectionName = Annotated[
    str,
    Path(max_length=256, description=NAME_DESCRIPTION, json_schema_extra=NAME_FORMAT),
    COLLECTION_NAME,
]


class CollectionOut(BaseModel):
    name: str
    kind: str  # managed (documents written over the API) or mirrored (a folder of the server)
    writable: bool  # documents can be written and deleted over HTTP
    documents: int
    chunks: int
    generation: int | None
    committed_at: str | None
    examples: list[str]  # questions the page offers on an empty thread (RAG_API__EXAMPLE_QUESTIONS)


class DocumentOut(BaseModel):
    path: str
    title: str
    sha256: str | None
    bytes: int | None
    chunks: int
    indexed_at: str | None
    encoding: str | None
    error: str | None  # why the last reindex could not read it (its old chunks, if any, serve)


def writable(collection: Collection, settings: Settings) -> bool:
    if collection.managed:
        return True
    # With PostgreSQL a mirrored folder is on the host that runs `rag reindex`, not on this
    # replica: a file written here would be one replica's alone, and the next reindex's to drop.
    return settings.api.write_mirrored and settings.state.backend == "files"


def _writable_collection(name: str, library: Library, settings: Settings) -> Collection:
    """The collection a document write goes to; ``Forbidden`` for a mirrored folder unless
    ``RAG_API__WRITE_MIRRORED`` allows it (never with PostgreSQL)."""
    collection = library.collections.get(name)
    if writable(collection, settings):
        return collection
    if settings.state.backend != "files":
        raise Forbidden(
            f"the collection {name!r} mirrors a folder on the host that runs `rag reindex`, "
            "which API replicas do not share (RAG_STATE__URL is set): change that folder and "
            "reindex it there, or upload into a collection made with PUT /v1/collections/{name}"
        )
    raise Forbidden(
        f"the collection {name!r} mirrors a folder of the server, which is not written "
        "over HTTP unless RAG_API__WRITE_MIRRORED=true; upload into a collection made "
        "with PUT /v1/collections/{name}"
    )


def _describe(collection: Collection, settings: Settings) -> CollectionOut:
    pointer = collection.state.current()
    return CollectionOut(
        name=collection.name,
        kind="managed" if collection.managed else "mirrored",
        writable=writable(collection, settings),
        documents=pointer.sources if pointer else 0,
        chunks=pointer.chunks if pointer else 0,
        generation=pointer.generation if pointer else None,
        committed_at=pointer.committed_at if pointer else None,
        examples=settings.api.examples_for(collection.name),
    )


@router.get("/v1/collections", dependencies=[QUERY])
def list_collections(library: LibraryDep, settings: SettingsDep) -> dict[str, list[CollectionOut]]:
    store = library.collections
    return {"collections": [_describe(store.get(name), settings) for name in store.names()]}


@router.put(
    "/v1/collections/{name}",
    dependencies=[ADMIN],
    status_code=201,
    responses={200: {"model": CollectionOut, "description": "It exists already (either kind)."}},
)
def create_collection(
    name: CollectionName,
    library: LibraryDep,
    indexer: IndexerDep,
    settings: SettingsDep,
    response: Response,
) -> Any:
    """Creates a managed collection; an existing one (of either kind) is answered 200."""
    collection, created = library.collections.create(name)
    if created:
        # An empty first generation: searching a new collection finds nothing (200), rather
        # than "no index yet" (503), and its documents are a 404 until they are written.
        try:
            indexer.reindex(collection.name, collection.folder, lambda done, total: None)
        except IndexBusy:
            pass  # a document job's reindex of it got there first and makes that generation
        except Exception:
            # A create that failed leaves nothing behind (what it wrote to the store, if
            # anything, is undone by the first reindex of a collection of that name).
            library.collections.unlist(collection)
            library.collections.remove_files(collection)
            raise
    else:
        response.status_code = 200
    return _describe(collection, settings)


@router.delete("/v1/collections/{name}", dependencies=[ADMIN], status_code=204)
def delete_collection(name: CollectionName, library: LibraryDep, jobs: JobsDep) -> Response:
    """Deletes the collection's index and, if managed, its documents (a mirrored collection's
    folder is left alone), after cancelling its document jobs. 409 while a reindex of it (the
    CLI's) is under way."""
    if name == DEFAULT:
        raise BadRequest("the default collection cannot be deleted")
    collection = library.collections.get(name)
    jobs.cancel_collection(name)
    with collection.state.reindex_lock():
        library.remove(collection)
    return Response(status_code=204)


@router.get("/v1/collections/{name}/documents", dependencies=[QUERY])
def list_documents(name: CollectionName, library: LibraryDep) -> dict[str, Any]:
    collection = library.collections.get(name)
    state = collection.state
    pointer = state.current()
    manifest = state.manifest(pointer) if pointer else {}
    failures = state.last_failures()
    documents = [
        DocumentOut(
            path=path,
            title=entry.title,
            sha256=entry.sha256,
            bytes=entry.bytes,
            chunks=len(entry.chunk_ids),
            indexed_at=entry.indexed_at or None,
            encoding=entry.encoding,
            error=failures.get(path),
        )
        for path, entry in manifest.items()
    ]
    documents += [
        DocumentOut(
            path=path,
            title=PurePosixPath(path).stem,
            sha256=None,
            bytes=None,
            chunks=0,
            indexed_at=None,
            encoding=None,
            error=error,
        )
        for path, error in failures.items()
        if path not in manifest
    ]
    documents.sort(key=lambda d: d.path)
    return {
        "collection": name,
        "generation": pointer.generation if pointer else None,
        "documents": [d.model_dump() for d in documents],
    }


@router.get("/v1/collections/{name}/documents/{path:path}", dependencies=[QUERY])
def get_document(name: CollectionName, path: str, library: LibraryDep) -> dict[str, Any]:
    """The document's metadata and its text as indexed (what citations' offsets refer to)."""
    document = read_document(library.search(name), path)
    entry = document.entry
    return {
        "collection": name,
        "path": path,
        "title": document.title,
        "sha256": entry.sha256,
        "bytes": entry.bytes,
        "chunks": len(entry.chunk_ids),
        "indexed_at": entry.indexed_at or None,
        "encoding": entry.encoding,
        "generation": document.generation,
        "text": document.text,
    }


def check_document_path(path: str, indexer: Indexer) -> str:
    """A path a document can be written to, in NFC: relative, inside the folder, not hidden (a
    scan skips hidden files), of a format the loaders read."""
    path = check_new_source(path)
    if _hidden(path):
        raise BadRequest("a document path has no empty or hidden (dot) components")
    if not indexer.supports(path):
        raise BadRequest(f"{PurePosixPath(path).name!r}: not a supported format")
    return path


def _hidden(path: str) -> bool:
    return any(part.startswith(".") or not part for part in path.split("/"))


def _documents(collection: Collection, jobs: JobRunner) -> set[str]:
    """The collection's documents once its queued jobs are done: indexed, failed to read, or
    written by a job (less those a job deletes)."""
    state = collection.state
    pointer = state.current()
    found = set(state.manifest(pointer)) if pointer else set()
    found |= set(state.last_failures())
    for job in jobs.unfinished(collection.name):
        for write in job.writes:
            if write.staged is None:
                found.discard(write.path)
            else:
                found.add(write.path)
    return found


def _accepted(job: Job) -> Response:
    return JSONResponse(job.public(), status_code=202, headers={"Location": f"/v1/jobs/{job.id}"})


def _content_length(request: Request, limit: int, what: str) -> int:
    raw = request.headers.get("content-length")
    if raw is None:
        raise LengthRequired(f"{what} needs a Content-Length header")
    if not (raw.isascii() and raw.isdigit()) or int(raw) > limit:
        raise BodyTooLarge(f"{what} is larger than {limit} bytes")
    return int(raw)


async def _stream_to(request: Request, staging: Staging, limit: int, timeout_s: float) -> None:
    size = 0
    with staging.file(0).open("wb") as out:
        try:
            with anyio.fail_after(timeout_s):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise BodyTooLarge(f"the document is larger than {limit} bytes")
                    out.write(chunk)
        except TimeoutError:
            raise BodyTimeout(f"the upload did not arrive within {timeout_s:g} s") from None


@router.put(
    "/v1/collections/{name}/documents/{path:path}",
    dependencies=[ADMIN],
    status_code=202,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def put_document(
    request: Request,
    name: CollectionName,
    path: str,
    library: LibraryDep,
    jobs: JobsDep,
    indexer: IndexerDep,
    settings: SettingsDep,
) -> Response:
    """The request body is the file's bytes; the path's extension chooses the loader."""
    path = check_document_path(path, indexer)
    collection = _writable_collection(name, library, settings)  # 404/403 before any byte is read
    path = claim_source(path, _documents(collection, jobs))
    limit = min(settings.api.max_upload_bytes, settings.ingest.max_file_bytes)
    _content_length(request, limit, "the document")
    with jobs.staging() as staging:
        await _stream_to(request, staging, limit, settings.api.upload_timeout_s)
        job = jobs.submit(staging, name, [FileWrite(path, "0")])
    return _accepted(job)


@router.post(
    "/v1/collections/{name}/documents",
    dependencies=[ADMIN],
    status_code=202,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "files": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                            }
                        },
                    }
                }
            },
        }
    },
)
async def upload_documents(
    request: Request,
    name: CollectionName,
    library: LibraryDep,
    jobs: JobsDep,
    indexer: IndexerDep,
    settings: SettingsDep,
) -> Response:
    """A multipart upload of one or more files, each document named by its file name."""
    collection = _writable_collection(name, library, settings)  # 404/403 before any byte is read
    _content_length(request, settings.api.max_upload_bytes, "the upload")
    api = settings.api
    try:
        with anyio.fail_after(api.upload_timeout_s):
            form = await request.form(
                max_files=api.max_upload_files, max_fields=api.max_upload_files
            )
    except TimeoutError:
        raise BodyTimeout(f"the upload did not arrive within {api.upload_timeout_s:g} s") from None
    try:
        uploads = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
        if not uploads:
            raise BadRequest("the upload holds no file (multipart parts with a filename)")
        with jobs.staging() as staging:
            known = _documents(collection, jobs)
            writes = _stage_uploads(
                uploads, staging, indexer, settings.ingest.max_file_bytes, known
            )
            job = jobs.submit(staging, name, writes)
    finally:
        await form.close()
    return _accepted(job)


def _stage_uploads(
    uploads: list[UploadFile],
    staging: Staging,
    indexer: Indexer,
    max_file_bytes: int,
    known: set[str],
) -> list[FileWrite]:
    writes: list[FileWrite] = []
    seen: set[str] = set()
    for n, upload in enumerate(uploads):
        path = claim_source(check_document_path(upload.filename or "", indexer), known)
        if folded(path) in seen:
            raise BadRequest(f"{path!r} appears twice in the upload (or differs only in case)")
        seen.add(folded(path))
        if upload.size is not None and upload.size > max_file_bytes:
            raise BodyTooLarge(f"{path!r} is larger than {max_file_bytes} bytes")
        with staging.file(n).open("wb") as out:
            shutil.copyfileobj(upload.file, out)
        writes.append(FileWrite(path, str(n)))
    return writes


@router.delete(
    "/v1/collections/{name}/documents/{path:path}", dependencies=[ADMIN], status_code=202
)
def delete_document(
    name: CollectionName,
    path: str,
    library: LibraryDep,
    jobs: JobsDep,
    indexer: IndexerDep,
    settings: SettingsDep,
) -> Response:
    """Deletes a document of the collection, never another file of its folder (a mirrored
    folder holds the user's notes, dotfiles, a .git): that is a 404, and the file stays."""
    path = check_source(nfc(path))
    collection = _writable_collection(name, library, settings)
    documents = _documents(collection, jobs)
    path = spelled(path, documents)
    # Of a format the collection indexes, not hidden, and known to it: being a file in the
    # folder is not enough.
    if _hidden(path) or not indexer.supports(path) or path not in documents:
        raise NotFound(f"no document {path!r} in {name!r}")
    with jobs.staging() as staging:
        job = jobs.submit(staging, name, [FileWrite(path, None)])
    return _accepted(job)
