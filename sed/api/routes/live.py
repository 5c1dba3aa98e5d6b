"""Live push of new, updated and reviewed incidents as Server-Sent Events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from sed.api.deps import ConfigDep, CurrentUser, FeedDep, MetricsDep

router = APIRouter(prefix="/api", tags=["live"])

#: Reconnect delay the browser is told to use, ms.
RETRY_MS = 1000


@router.get(
    "/live",
    summary="Incident events as they happen (text/event-stream)",
    description=(
        'Each event is `event: incident` with `data: {"incident": IncidentOut, "announced_at_ns": int}`, '
        "sent when the fusion node commits an incident (provisional, refined, located, unlocated or merged: "
        "see IncidentOut.stage; keep the highest revision per incident_id, remove merged ones) and when an "
        "operator reviews one. "
        "A comment line keeps idle connections open. After a reconnect, reload GET /api/incidents: "
        "events missed while disconnected are not replayed."
    ),
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def live(feed: FeedDep, config: ConfigDep, metrics: MetricsDep, _user: CurrentUser) -> StreamingResponse:
    subscriber = feed.subscribe()
    keepalive_s = config.api.live_keepalive_s

    async def events() -> AsyncIterator[bytes]:
        metrics.live_clients.inc()
        try:
            yield f"retry: {RETRY_MS}\n: connected\n\n".encode()
            while True:
                try:
                    event = await asyncio.wait_for(subscriber.queue.get(), timeout=keepalive_s)
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                if event is None:  # the server is stopping, or this client fell too far behind
                    return
                yield event.encode()
        finally:
            feed.unsubscribe(subscriber)
            metrics.live_clients.dec()

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
