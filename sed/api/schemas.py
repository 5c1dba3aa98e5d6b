"""Request and response models of the HTTP API (pydantic), and their conversions from storage."""

from __future__ import annotations

import enum
import math
from typing import Literal

from pydantic import BaseModel, Field

from sed import wire
from sed.api.params import Text
from sed.config import ApiSection, ServerConfig, SiteSection
from sed.store import Review, ReviewAction, SensorRecord, StoredDetection

#: Mean Earth radius for the local tangent-plane → latitude/longitude conversion, m.
EARTH_RADIUS_M = 6_371_008.8


class PositionOut(BaseModel):
    x_m: float = Field(description="East of the site origin, m.")
    y_m: float = Field(description="North of the site origin, m.")
    z_m: float = Field(description="Up, m.")
    lat_deg: float | None = Field(None, description="Latitude, when the site has a geodetic origin.")
    lon_deg: float | None = Field(None, description="Longitude, when the site has a geodetic origin.")


class IncidentOut(BaseModel):
    incident_id: str
    label: wire.Label
    score: float = Field(ge=0, le=1)
    status: wire.IncidentStatus
    priority: wire.IncidentPriority = Field(
        description="alert (webhooks, alert sound); unconfirmed (one pole, low confidence or a noisy sensor: "
        "shown muted, upgraded when corroborated); suppressed (started during a storm of its class)."
    )
    origin_time_ns: int = Field(description="Emission time of the first shot, UTC ns.")
    position: PositionOut | None = Field(description="None when the detections could not determine a point.")
    uncertainty_m: float | None = Field(description="Radius of the 95 % position circle, m.")
    covariance_m2: list[float] | None = Field(description="Horizontal covariance [xx, xy, yy], m².")
    n_shots: int
    sensor_ids: list[str]
    detection_ids: list[str]
    created_at_ns: int
    stage: wire.IncidentStage = Field(
        description="provisional (first detections, shown at once: may move, be located or merged); located "
        "(has a position, may be refined); unlocated (final, no position: its sensors are the region); merged "
        "(superseded by merged_into: remove it from view)."
    )
    merged_into: str | None = Field(description="For a merged incident: the incident its detections now belong to.")
    revision: int = Field(
        ge=0, description="Counts the updates of this incident_id: drop an update older than the one you hold."
    )


class DetectionOut(BaseModel):
    detection_id: str
    sensor_id: str
    label: wire.Label
    score: float
    arrival_time_ns: int
    arrival_uncertainty_ns: int
    peak_dbfs: float
    clock_status: wire.ClockStatus
    position: PositionOut
    received_at_ns: int
    has_clip: bool = Field(description="An evidence clip is stored: GET /api/clips/{detection_id}.")


class ReviewIn(BaseModel):
    action: ReviewAction = Field(description="acknowledge, confirm, false_alarm (needs a reason) or note.")
    text: Text | None = Field(None, description="Reason of a false alarm, or the note.")


class ReviewOut(BaseModel):
    review_id: int
    username: str
    action: ReviewAction
    text: str | None
    at_ns: int


class IncidentDetail(IncidentOut):
    detections: list[DetectionOut]
    reviews: list[ReviewOut] = Field(description="Who reviewed it and how, oldest first.")


class SensorStatus(enum.StrEnum):
    ONLINE = "online"
    STALE = "stale"
    CLOCK_UNSYNCED = "clock_unsynced"
    SILENT = "silent"
    CLIPPING = "clipping"
    NOISY = "noisy"  # online, but flagged by the fusion node for too many detections of a class


class SensorOut(BaseModel):
    sensor_id: str
    position: PositionOut | None
    status: SensorStatus
    last_seen_ns: int
    clock_status: wire.ClockStatus | None
    input_rms_dbfs: float | None
    clipping_fraction: float | None
    outbox_depth: int | None
    cpu_load: float | None
    software_version: str | None
    model_version: str | None
    description: str | None = Field(description="An admin's note: where the sensor stands.")
    noisy: list[wire.Label] = Field(
        default_factory=list,
        description="Classes it reported more often than fusion.policy.<class>.sensor_max_per_hour within the "
        "last hour: its uncorroborated incidents of these are not alerts.",
    )


class SiteOut(BaseModel):
    """What the dashboard needs to draw the map."""

    name: str
    origin_lat_deg: float | None
    origin_lon_deg: float | None
    tile_url: str | None = Field(description="Slippy-map tile template; None: local coordinates, plain background.")
    tile_attribution: str
    sensor_stale_s: float


class WorkerHealth(BaseModel):
    """One worker thread of the process (no error text: ``/healthz`` is anonymous; the log says why)."""

    name: str = Field(description="fusion, live-feed, webhooks, retention, feed-subscriber or http.")
    alive: bool
    stalled: bool = Field(description="Alive, but its loop has not turned for longer than its bound.")
    behind_s: float = Field(ge=0, description="Since its loop last turned, s.")
    backlog: int | None = Field(None, ge=0, description="Work waiting (detections, announcements, deliveries).")
    problems: int = Field(0, ge=0, description="Conditions it works around, e.g. unreadable key files (see the log).")


class Health(BaseModel):
    status: Literal["ok", "degraded", "down"] = Field(
        "ok",
        description="down (HTTP 503): the database does not answer or a worker is dead or stalled; degraded "
        "(200): something an operator should fix, such as unreadable sensor key files.",
    )
    version: str
    database: bool = True
    key_files_ok: bool | None = Field(None, description="Every authorised key file loaded (None: no fusion node here).")
    overloaded: str | None = Field(
        None, description="Set while a worker cannot keep up, e.g. 'overloaded: association 2.1 s behind' (degraded)."
    )
    workers: list[WorkerHealth] = Field(default_factory=list)


def position_out(position: wire.Position, site: SiteSection) -> PositionOut:
    """Local metres plus latitude/longitude on a local tangent plane (fine for a city)."""
    lat = lon = None
    if site.origin_lat_deg is not None and site.origin_lon_deg is not None:
        lat = site.origin_lat_deg + math.degrees(position.y_m / EARTH_RADIUS_M)
        lon = site.origin_lon_deg + math.degrees(
            position.x_m / (EARTH_RADIUS_M * math.cos(math.radians(site.origin_lat_deg)))
        )
    return PositionOut(x_m=position.x_m, y_m=position.y_m, z_m=position.z_m, lat_deg=lat, lon_deg=lon)


def incident_out(incident: wire.Incident, site: SiteSection) -> IncidentOut:
    return IncidentOut(
        incident_id=incident.incident_id,
        label=incident.label,
        score=incident.score,
        status=incident.status,
        priority=incident.priority,
        origin_time_ns=incident.origin_time_ns,
        position=None if incident.position is None else position_out(incident.position, site),
        uncertainty_m=incident.uncertainty_m,
        covariance_m2=incident.covariance_m2,
        n_shots=incident.n_shots,
        sensor_ids=list(incident.sensor_ids),
        detection_ids=list(incident.detection_ids),
        created_at_ns=incident.created_at_ns,
        stage=incident.stage,
        merged_into=incident.merged_into,
        revision=incident.revision,
    )


def review_out(review: Review) -> ReviewOut:
    return ReviewOut(
        review_id=review.review_id, username=review.username, action=review.action, text=review.text, at_ns=review.at_ns
    )


def site_out(config: ServerConfig) -> SiteOut:
    site = config.site
    return SiteOut(
        name=site.name,
        origin_lat_deg=site.origin_lat_deg,
        origin_lon_deg=site.origin_lon_deg,
        tile_url=site.tile_url,
        tile_attribution=site.tile_attribution,
        sensor_stale_s=config.api.sensor_stale_s,
    )


def detection_out(stored: StoredDetection, site: SiteSection, *, has_clip: bool) -> DetectionOut:
    d = stored.detection
    return DetectionOut(
        detection_id=d.detection_id,
        sensor_id=d.sensor_id,
        label=d.label,
        score=d.score,
        arrival_time_ns=d.arrival_time_ns,
        arrival_uncertainty_ns=d.arrival_uncertainty_ns,
        peak_dbfs=d.peak_dbfs,
        clock_status=d.clock_status,
        position=position_out(d.position, site),
        received_at_ns=stored.received_at_ns,
        has_clip=has_clip,
    )


def sensor_status(record: SensorRecord, api: ApiSection, *, now_ns: int) -> SensorStatus:
    """Worst applicable health state, most urgent first."""
    heartbeat = record.heartbeat
    if now_ns - record.last_seen_ns > api.sensor_stale_s * 1e9:
        return SensorStatus.STALE
    if heartbeat is not None:
        if heartbeat.clock_status is wire.ClockStatus.UNSYNCED:
            return SensorStatus.CLOCK_UNSYNCED
        if heartbeat.input_rms_dbfs < api.silent_below_dbfs:
            return SensorStatus.SILENT
        if heartbeat.clipping_fraction > api.clipping_above:
            return SensorStatus.CLIPPING
    if record.noisy_labels:
        return SensorStatus.NOISY
    return SensorStatus.ONLINE


def sensor_out(record: SensorRecord, site: SiteSection, api: ApiSection, *, now_ns: int) -> SensorOut:
    hb = record.heartbeat
    return SensorOut(
        sensor_id=record.sensor_id,
        position=None if record.position is None else position_out(record.position, site),
        status=sensor_status(record, api, now_ns=now_ns),
        last_seen_ns=record.last_seen_ns,
        clock_status=hb.clock_status if hb else None,
        input_rms_dbfs=hb.input_rms_dbfs if hb else None,
        clipping_fraction=hb.clipping_fraction if hb else None,
        outbox_depth=hb.outbox_depth if hb else None,
        cpu_load=hb.cpu_load if hb else None,
        software_version=hb.software_version if hb else None,
        model_version=hb.model_version if hb else None,
        description=record.description,
        noisy=list(record.noisy_labels),
    )
