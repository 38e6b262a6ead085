from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from rag_service.api.auth import QUERY
from rag_service.api.deps import JobsDep

router = APIRouter(tags=["collections"], dependencies=[QUERY])


@router.get("/v1/jobs/{job_id}")
def get_job(job_id: Annotated[str, Path(max_length=64)], jobs: JobsDep) -> dict[str, Any]:
    """A document job: ``queued``, ``running`` (with ``progress``), then ``done`` (``result``:
    the reindex summary) or ``failed`` (``error``: why)."""
    return jobs.get(job_id).public()
