"""Exports: incidents as GeoJSON for a city's GIS, and reviewed clips as a labelled corpus.

The corpus is a zip in the ``sed bench detect`` manifest format: ``MANIFEST.csv`` with
``path,label`` plus ``subclass,group,incident_id,detection_id,sensor_id,status,score,reason``
columns, and the FLAC clips beside it under ``clips/<label>/<sensor>__<detection>.flac``.
Confirmed incidents give clips of their class; false alarms give ``negative`` clips whose
``subclass`` names the class that was wrongly raised, so a city can measure and retrain on
its own streets (``sed bench detect corpus/MANIFEST.csv``). ``group`` is the incident, so
a split never puts clips of one sound on both sides.
"""

from __future__ import annotations

import csv
import io
import json
import re
import tempfile
import time
import zipfile
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from sed import wire
from sed.api.deps import AdminUser, ConfigDep, CurrentUser, StoreDep, remote_addr
from sed.api.params import TimeNs
from sed.api.schemas import incident_out
from sed.store import ReviewedClip

router = APIRouter(prefix="/api/export", tags=["export"])

#: The ``label`` of clips from false alarms (``sed bench detect`` treats any non-model label as negative).
NEGATIVE_LABEL = "negative"
MANIFEST_COLUMNS = (
    "path",
    "label",
    "subclass",
    "group",
    "incident_id",
    "detection_id",
    "sensor_id",
    "status",
    "score",
    "reason",
)
#: Largest GeoJSON export, incidents.
MAX_GEOJSON_FEATURES = 10000
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


@router.get(
    "/incidents.geojson",
    summary="Located incidents as a GeoJSON FeatureCollection (WGS84)",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/geo+json": {}}}, 409: {"description": "No geodetic site origin."}},
)
def incidents_geojson(
    store: StoreDep,
    config: ConfigDep,
    _user: CurrentUser,
    since_ns: Annotated[TimeNs | None, Query(description="Origin time at or after, UTC ns.")] = None,
    until_ns: Annotated[TimeNs | None, Query(description="Origin time before, UTC ns.")] = None,
    label: Annotated[list[wire.Label] | None, Query()] = None,
    status: Annotated[list[wire.IncidentStatus] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_GEOJSON_FEATURES)] = 1000,
) -> StreamingResponse:
    if config.site.origin_lat_deg is None or config.site.origin_lon_deg is None:
        raise HTTPException(409, "GeoJSON needs longitude/latitude: set site.origin_lat_deg and site.origin_lon_deg")
    incidents = store.list_incidents(since_ns=since_ns, until_ns=until_ns, labels=label, statuses=status, limit=limit)
    features = []
    for incident in incidents:
        out = incident_out(incident, config.site)
        if out.position is None:
            continue
        properties: dict[str, Any] = out.model_dump(mode="json", exclude={"position"})
        properties |= {"x_m": out.position.x_m, "y_m": out.position.y_m}
        features.append(
            {
                "type": "Feature",
                "id": incident.incident_id,
                "geometry": {"type": "Point", "coordinates": [out.position.lon_deg, out.position.lat_deg]},
                "properties": properties,
            }
        )
    body = json.dumps({"type": "FeatureCollection", "features": features}).encode()
    return StreamingResponse(
        iter([body]),
        media_type="application/geo+json",
        headers={"Content-Disposition": 'attachment; filename="incidents.geojson"'},
    )


@router.get(
    "/corpus.zip",
    summary="Reviewed clips as a labelled corpus for `sed bench detect` (admin, audited)",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": {}}}},
)
def corpus_zip(request: Request, store: StoreDep, admin: AdminUser) -> StreamingResponse:
    spool = tempfile.SpooledTemporaryFile(max_size=32 << 20)  # noqa: SIM115 (closed by _chunks after streaming)
    manifest = io.StringIO()
    writer = csv.DictWriter(manifest, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    exported: list[str] = []
    statuses = (wire.IncidentStatus.CONFIRMED, wire.IncidentStatus.FALSE_ALARM)
    with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_STORED) as archive:  # FLAC is compressed already
        for row in store.evidence.reviewed_clips(statuses):
            path, record = _manifest_row(row)
            archive.writestr(f"corpus/{path}", row.clip.data)
            writer.writerow(record)
            exported.append(row.clip.detection_id)
        archive.writestr("corpus/MANIFEST.csv", manifest.getvalue())
    now_ns = time.time_ns()
    address = remote_addr(request)
    for detection_id in exported:
        store.accounts.audit(
            username=admin.username, action="clip.export", target=detection_id, at_ns=now_ns, remote_addr=address
        )
    store.accounts.audit(
        username=admin.username,
        action="corpus.export",
        target=f"{len(exported)} clips",
        at_ns=now_ns,
        remote_addr=address,
    )
    spool.seek(0)
    return StreamingResponse(
        _chunks(spool),
        media_type="application/zip",
        headers={"Content-Disposition": 'attachment; filename="sed-corpus.zip"', "Cache-Control": "no-store"},
    )


def _manifest_row(row: ReviewedClip) -> tuple[str, dict[str, object]]:
    confirmed = row.status is wire.IncidentStatus.CONFIRMED
    label = str(row.incident_label) if confirmed else NEGATIVE_LABEL
    name = f"{_UNSAFE.sub('_', row.clip.sensor_id)}__{_UNSAFE.sub('_', row.clip.detection_id)}.{row.clip.codec}"
    path = f"clips/{label}/{name}"
    return path, {
        "path": path,
        "label": label,
        "subclass": "" if confirmed else f"false_alarm_{row.incident_label}",
        "group": row.incident_id,
        "incident_id": row.incident_id,
        "detection_id": row.clip.detection_id,
        "sensor_id": row.clip.sensor_id,
        "status": str(row.status),
        "score": f"{row.detection_score:.4f}",
        "reason": row.reason or "",
    }


def _chunks(spool: Any, size: int = 1 << 16) -> Iterator[bytes]:
    try:
        while chunk := spool.read(size):
            yield chunk
    finally:
        spool.close()
