from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from rag_service.api.auth import ADMIN, QUERY
from rag_service.api.deps import JobsDep

router = APIRouter(tags=["collections"], dependencies=[QUERY])

JobId = Annotated[str, Path(max_length=64)]


@router.get("/v1/jobs/{job_id}")
def get_job(job_id: JobId, jobs: JobsDep) -> dict[str, Any]:
    """A document job: ``queued``, ``running`` (with ``progress``), then ``done`` (``result``:
    the reindex summary), ``failed`` (``error``: why) or ``cancelled``."""
    return jobs.get(job_id).public()


@router.delete("/v1/jobs/{job_id}", dependencies=[ADMIN])
def cancel_job(job_id: JobId, jobs: JobsDep) -> dict[str, Any]:
    """Cancels a queued or running job and answers it as it then is. A queued job is
    ``cancelled`` at once; a running one stops before its next embedding batch (this waits for
    that, up to 30 s), commits nothing, and its writes are undone: the documents it replaced or
    deleted are put back, the ones it added removed. Idempotent; a job that already finished
    (``done``, ``failed``) is answered unchanged: it was too late to cancel."""
    return jobs.cancel(job_id).public()
