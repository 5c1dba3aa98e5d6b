"""Evidence clips: reading one, which detections have one, retention, and the reviewed corpus."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator

import sqlalchemy as sa

from sed import wire
from sed.store import tables as t


@dataclasses.dataclass(frozen=True, kw_only=True)
class StoredClip:
    detection_id: str
    sensor_id: str
    start_time_ns: int
    sample_rate_hz: int
    codec: str
    data: bytes
    received_at_ns: int


@dataclasses.dataclass(frozen=True, kw_only=True)
class ReviewedClip:
    """A clip of a detection that belongs to a reviewed incident: one row of the feedback corpus."""

    clip: StoredClip
    incident_id: str
    incident_label: wire.Label
    detection_label: wire.Label
    detection_score: float
    status: wire.IncidentStatus
    reason: str | None  # the latest review text (why it was a false alarm)


class Evidence:
    """Clip queries on the store's engine (clips are written by :meth:`Store.add_clip`)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def get_clip(self, detection_id: str) -> StoredClip | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.clips).where(t.clips.c.detection_id == detection_id)).mappings().first()
        return None if row is None else StoredClip(**row)

    def with_clips(self, detection_ids: Iterable[str]) -> set[str]:
        """Which of these detections have a stored clip."""
        ids = list(detection_ids)
        if not ids:
            return set()
        query = sa.select(t.clips.c.detection_id).where(t.clips.c.detection_id.in_(ids))
        with self.engine.connect() as conn:
            return set(conn.execute(query).scalars())

    def delete_received_before(self, cutoff_ns: int) -> int:
        """Delete clips received before ``cutoff_ns`` (UTC ns); returns how many."""
        with self.engine.begin() as conn:
            return conn.execute(t.clips.delete().where(t.clips.c.received_at_ns < cutoff_ns)).rowcount

    def reviewed_clips(self, statuses: Iterable[wire.IncidentStatus]) -> Iterator[ReviewedClip]:
        """Clips of incidents whose status is one of ``statuses``, oldest incident first."""
        latest_review = (
            sa.select(t.reviews.c.incident_id, sa.func.max(t.reviews.c.review_id).label("review_id"))
            .where(t.reviews.c.action != "note")
            .group_by(t.reviews.c.incident_id)
            .subquery()
        )
        query = (
            sa.select(
                t.clips,
                t.incidents.c.incident_id,
                t.incidents.c.label.label("incident_label"),
                t.incidents.c.status,
                t.detections.c.label.label("detection_label"),
                t.detections.c.score.label("detection_score"),
                t.reviews.c.text.label("reason"),
            )
            .join(t.detections, t.detections.c.detection_id == t.clips.c.detection_id)
            .join(t.incidents, t.incidents.c.incident_id == t.detections.c.incident_id)
            .outerjoin(latest_review, latest_review.c.incident_id == t.incidents.c.incident_id)
            .outerjoin(t.reviews, t.reviews.c.review_id == latest_review.c.review_id)
            .where(t.incidents.c.status.in_([str(s) for s in statuses]))
            .order_by(t.incidents.c.origin_time_ns, t.clips.c.detection_id)
        )
        clip_columns = {c.name for c in t.clips.columns}
        with self.engine.connect() as conn:
            for row in conn.execute(query).mappings():
                yield ReviewedClip(
                    clip=StoredClip(**{k: row[k] for k in clip_columns}),
                    incident_id=row["incident_id"],
                    incident_label=wire.Label(row["incident_label"]),
                    detection_label=wire.Label(row["detection_label"]),
                    detection_score=row["detection_score"],
                    status=wire.IncidentStatus(row["status"]),
                    reason=row["reason"],
                )


__all__ = ["Evidence", "ReviewedClip", "StoredClip"]
