"""Incidents: what the operations centre acts on."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from sed import wire
from sed.api.deps import ConfigDep, StoreDep
from sed.api.schemas import IncidentDetail, IncidentOut, detection_out, incident_out

router = APIRouter(prefix="/api/incidents", tags=["incidents"])


@router.get("", response_model=list[IncidentOut], summary="List incidents, newest first")
def list_incidents(
    store: StoreDep,
    config: ConfigDep,
    since_ns: Annotated[int | None, Query(ge=0, description="Origin time at or after, UTC ns.")] = None,
    until_ns: Annotated[int | None, Query(ge=0, description="Origin time before, UTC ns.")] = None,
    label: Annotated[list[wire.Label] | None, Query(description="Only these classes.")] = None,
    status: Annotated[list[wire.IncidentStatus] | None, Query(description="Only these statuses.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[IncidentOut]:
    incidents = store.list_incidents(
        since_ns=since_ns, until_ns=until_ns, labels=label, statuses=status, limit=limit, offset=offset
    )
    return [incident_out(incident, config.site) for incident in incidents]


@router.get("/{incident_id}", response_model=IncidentDetail, summary="One incident with its detections")
def get_incident(incident_id: str, store: StoreDep, config: ConfigDep) -> IncidentDetail:
    incident = store.get_incident(incident_id)
    if incident is None:
        raise HTTPException(404, f"incident {incident_id} not found")
    summary = incident_out(incident, config.site)
    detections = [detection_out(d, config.site) for d in store.detections_of(incident_id)]
    return IncidentDetail(**summary.model_dump(), detections=detections)
