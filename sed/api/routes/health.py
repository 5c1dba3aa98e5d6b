"""Liveness: the only endpoint that answers without authentication."""

from __future__ import annotations

from fastapi import APIRouter

from sed import __version__
from sed.api.deps import StoreDep
from sed.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The API is up and its database answers")
def healthz(store: StoreDep) -> Health:
    store.ping()  # raises (500) when the database is unreachable
    return Health(version=__version__)
