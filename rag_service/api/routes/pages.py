"""The page at ``/``: static files (rag_service/web), no build step, nothing from elsewhere."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

WEB = Path(__file__).resolve().parent.parent.parent / "web"

# The page runs only its own script and talks only to this service: an answer or a passage that
# slipped markup past the renderer still could not run or load anything.
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(tags=["page"], include_in_schema=False)


@router.get("/")
def page() -> FileResponse:
    return FileResponse(WEB / "index.html", headers=_HEADERS)


def mount_static(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=WEB), name="static")
