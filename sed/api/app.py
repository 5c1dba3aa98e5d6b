"""``create_app(config, store)``: the FastAPI application, its background workers and the dashboard.

Besides the routers, the app owns four workers started and stopped with its lifespan:
the live :class:`~sed.api.live.IncidentFeed`, the :class:`~sed.api.webhooks.WebhookDispatcher`,
the clip :class:`~sed.api.retention.RetentionJob` and, for a separate ``sed fusion``, a
:class:`~sed.api.live.FeedSubscriber` on its incident PUB socket.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from sed import __version__
from sed.api.limits import BodyLimitMiddleware, LoginThrottle
from sed.api.live import FeedSubscriber, IncidentFeed
from sed.api.metrics import ApiMetrics, MetricsMiddleware
from sed.api.params import public_validation_errors
from sed.api.retention import RetentionJob
from sed.api.routes import (
    audit,
    auth,
    clips,
    coverage,
    export,
    health,
    incidents,
    live,
    meta,
    quarantine,
    rules,
    sensors,
    users,
)
from sed.api.webhooks import WebhookDispatcher
from sed.config import ServerConfig
from sed.store import Store
from sed.supervise import Supervisor

STATIC_DIR = Path(str(resources.files("sed.api") / "static"))
ROUTERS = (health, auth, users, incidents, sensors, clips, live, rules, export, audit, meta, quarantine, coverage)


def create_app(config: ServerConfig, store: Store, *, follow_fusion: bool = False) -> FastAPI:
    """Build the API around an open store; the caller owns the store's life cycle.

    Parameters
    ----------
    config : ServerConfig
    store : Store
    follow_fusion : bool
        Subscribe to ``api.incident_feed_endpoint`` for live push from a separate fusion
        process (``sed api``); in one process (``sed server``) the fusion node calls
        ``app.state.feed.announce_incident`` instead.
    """
    metrics = ApiMetrics(store, config.api)
    feed = IncidentFeed(store, config.site)
    webhooks = WebhookDispatcher(store, config.api, config.site, metrics)
    feed.listeners += [metrics.on_incident, webhooks.on_incident]
    retention = RetentionJob(store, config, on_deleted=metrics.clips_expired.inc)
    endpoint = config.api.incident_feed_endpoint
    subscriber = FeedSubscriber(endpoint, feed) if follow_fusion and endpoint else None

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        feed.start()
        webhooks.start()
        retention.start()
        if subscriber is not None:
            subscriber.start()
        try:
            yield
        finally:
            if subscriber is not None:
                subscriber.stop()
            retention.stop()
            webhooks.stop()
            feed.close()

    app = FastAPI(
        title="sed operations centre",
        version=__version__,
        description=(
            "Acoustic incidents (gunshot, scream, glass break) located by the sed sensor network. "
            "Every endpoint but /healthz and POST /api/auth/login needs 'Authorization: Bearer <token>'; "
            "operators read, review and listen, admins also manage sensors, rules and users."
        ),
        lifespan=lifespan,
        docs_url=None,  # the Swagger/ReDoc pages load scripts from a CDN; the schema is at /openapi.json
        redoc_url=None,
        openapi_url=None,
    )
    app.state.config = config
    app.state.store = store
    app.state.feed = feed
    app.state.metrics = metrics
    app.state.webhooks = webhooks
    app.state.retention = retention
    # /healthz reports these; a process that serves the app exits when one dies (sed.supervise).
    app.state.supervisor = Supervisor(
        feed.liveness, webhooks.liveness, retention.liveness, subscriber.liveness if subscriber else None
    )
    app.state.login_throttle = LoginThrottle(
        max_failures=config.api.login_max_failures, window_s=config.api.login_window_s
    )
    for module in ROUTERS:
        app.include_router(module.router)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(BodyLimitMiddleware, api=config.api)  # outermost: before anything reads the body
    _mount_dashboard(app, config)
    return app


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """422 naming each bad field, without repeating secrets or large values back."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": public_validation_errors(exc.errors())}, status_code=422)


def _mount_dashboard(app: FastAPI, config: ServerConfig) -> None:
    """The dashboard: static files with no data in them, served without authentication."""
    tiles = ""
    if config.site.tile_url:
        parts = urlsplit(config.site.tile_url.replace("{z}", "0").replace("{x}", "0").replace("{y}", "0"))
        tiles = f" {parts.scheme}://{parts.netloc.replace('{s}', '*')}"
    headers = {
        "Content-Security-Policy": (
            f"default-src 'self'; img-src 'self' blob: data:{tiles}; media-src 'self' blob:; "
            "connect-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'"
        ),
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=headers)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        # index.html links the SVG; this answers tools and old browsers that ask the root anyway
        return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


__all__ = ["create_app"]
