"""``GET /v1/keys``: the API keys this server accepts, for admins; never the keys themselves
(they are made and revoked with ``rag keys`` on the server)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from rag_service.api.auth import ADMIN, GateDep

router = APIRouter(tags=["operations"], dependencies=[ADMIN])


class KeyListing(BaseModel):
    name: str
    scope: str
    created: str
    last_used: str | None


@router.get("/v1/keys")
def list_keys(gate: GateDep) -> list[KeyListing]:
    return [KeyListing(**vars(info)) for info in gate.keys.list_keys()]
