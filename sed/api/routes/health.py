"""Liveness and readiness: the only endpoint that answers without authentication.

``GET /healthz`` answers 200 while the database answers and every worker thread of the
process (the fusion node in ``sed server``, the live feed, webhooks, retention, the feed
subscriber, the HTTP server) is alive and its loop turning; 503 otherwise, so a load
balancer or a watchdog takes the process out. It is anonymous, so it names workers and
gives counts and times, never an error text, a path or a key: the log says why.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response

from sed import __version__
from sed.api.deps import StoreDep
from sed.api.schemas import Health, WorkerHealth
from sed.supervise import Supervisor

log = logging.getLogger("sed.api.health")

router = APIRouter(tags=["health"])

#: The worker whose problems are the receiver's unreadable key files.
FUSION_WORKER = "fusion"


@router.get(
    "/healthz",
    response_model=Health,
    summary="The database answers and every worker is alive and keeping up",
    responses={503: {"model": Health, "description": "The database or a worker is down or stalled."}},
)
def healthz(request: Request, response: Response, store: StoreDep) -> Health:
    supervisor: Supervisor | None = getattr(request.app.state, "supervisor", None)
    statuses = supervisor.statuses() if supervisor is not None else []
    workers = [
        WorkerHealth(
            name=s.name, alive=s.alive, stalled=s.stalled, behind_s=s.behind_s, backlog=s.backlog, problems=s.problems
        )
        for s in statuses
    ]
    try:
        store.ping()
        database = True
    except Exception as exc:
        log.warning("health: the database does not answer: %s", type(exc).__name__)
        database = False
    fusion = next((w for w in workers if w.name == FUSION_WORKER), None)
    down = not database or any(not w.alive or w.stalled for w in workers)
    overloaded = next((s.overload for s in statuses if s.overload), None)  # nothing dropped, but late
    status = "down" if down else "degraded" if overloaded or any(w.problems for w in workers) else "ok"
    if down:
        response.status_code = 503
    return Health(
        status=status,
        version=__version__,
        database=database,
        key_files_ok=None if fusion is None else fusion.problems == 0,
        overloaded=overloaded,
        workers=workers,
    )
