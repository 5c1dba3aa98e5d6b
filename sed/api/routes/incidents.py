"""Incidents: what the operations centre acts on; listing, detail and review."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from sed import wire
from sed.api.deps import ConfigDep, CurrentUser, FeedDep, StoreDep
from sed.api.params import Offset, SiteMetres, StoredId, TimeNs, invalid
from sed.api.schemas import IncidentDetail, IncidentOut, ReviewIn, detection_out, incident_out, review_out
from sed.store import Area, ReviewAction

router = APIRouter(prefix="/api/incidents", tags=["incidents"])


@router.get("", response_model=list[IncidentOut], summary="List incidents, newest first")
def list_incidents(
    store: StoreDep,
    config: ConfigDep,
    _user: CurrentUser,
    since_ns: Annotated[TimeNs | None, Query(description="Origin time at or after, UTC ns.")] = None,
    until_ns: Annotated[TimeNs | None, Query(description="Origin time before, UTC ns.")] = None,
    label: Annotated[list[wire.Label] | None, Query(description="Only these classes.")] = None,
    status: Annotated[list[wire.IncidentStatus] | None, Query(description="Only these statuses.")] = None,
    priority: Annotated[
        list[wire.IncidentPriority] | None,
        Query(description="Only these priorities (alert, unconfirmed, suppressed: the false-alarm policy's)."),
    ] = None,
    stage: Annotated[
        list[wire.IncidentStage] | None,
        Query(description="Only these stages; without it, merged incidents (superseded) are left out."),
    ] = None,
    x_min_m: Annotated[SiteMetres | None, Query(description="Area: east of, m (site frame).")] = None,
    x_max_m: Annotated[SiteMetres | None, Query(description="Area: west of, m.")] = None,
    y_min_m: Annotated[SiteMetres | None, Query(description="Area: north of, m.")] = None,
    y_max_m: Annotated[
        SiteMetres | None, Query(description="Area: south of, m. Any area bound drops unlocated incidents.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[Offset, Query()] = 0,
) -> list[IncidentOut]:
    area = Area(x_min_m=x_min_m, x_max_m=x_max_m, y_min_m=y_min_m, y_max_m=y_max_m)
    incidents = store.list_incidents(
        since_ns=since_ns,
        until_ns=until_ns,
        labels=label,
        statuses=status,
        priorities=priority,
        stages=stage,
        area=None if area.is_unbounded() else area,
        limit=limit,
        offset=offset,
    )
    return [incident_out(incident, config.site) for incident in incidents]


@router.get("/{incident_id}", response_model=IncidentDetail, summary="One incident with its detections and reviews")
def get_incident(incident_id: StoredId, store: StoreDep, config: ConfigDep, _user: CurrentUser) -> IncidentDetail:
    incident = store.get_incident(incident_id)
    if incident is None:
        raise HTTPException(404, f"incident {incident_id} not found")
    return _detail(incident, store, config)


@router.post(
    "/{incident_id}/review",
    response_model=IncidentDetail,
    summary="Acknowledge, confirm, mark a false alarm (with a reason) or add a note",
    description="Every review is kept with the user and time; the new status is pushed to live clients.",
)
def review_incident(
    incident_id: StoredId, review: ReviewIn, store: StoreDep, config: ConfigDep, feed: FeedDep, user: CurrentUser
) -> IncidentDetail:
    text = (review.text or "").strip() or None
    if review.action in (ReviewAction.FALSE_ALARM, ReviewAction.NOTE) and text is None:
        raise invalid("body", "text", msg=f"{review.action} needs a text (the reason or the note)", kind="missing")
    incident = store.review_incident(
        incident_id, username=user.username, action=review.action, text=text, at_ns=time.time_ns()
    )
    if incident is None:
        raise HTTPException(404, f"incident {incident_id} not found")
    feed.announce(incident_id)
    return _detail(incident, store, config)


def _detail(incident: wire.Incident, store: StoreDep, config: ConfigDep) -> IncidentDetail:
    summary = incident_out(incident, config.site)
    stored = store.detections_of(incident.incident_id)
    with_clips = store.evidence.with_clips(d.detection.detection_id for d in stored)
    detections = [detection_out(d, config.site, has_clip=d.detection.detection_id in with_clips) for d in stored]
    reviews = [review_out(r) for r in store.reviews_of(incident.incident_id)]
    return IncidentDetail(**summary.model_dump(), detections=detections, reviews=reviews)
