"""``create_app(config, store)``: the FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI

from sed import __version__
from sed.api.routes import health, incidents, sensors
from sed.config import ServerConfig
from sed.store import Store


def create_app(config: ServerConfig, store: Store) -> FastAPI:
    """Build the API around an open store; the caller owns the store's life cycle."""
    app = FastAPI(
        title="sed operations centre",
        version=__version__,
        description="Acoustic incidents (gunshot, scream, glass break) located by the sed sensor network.",
    )
    app.state.config = config
    app.state.store = store
    for module in (health, incidents, sensors):
        app.include_router(module.router)
    return app


__all__ = ["create_app"]
