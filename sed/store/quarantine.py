"""Quarantine: messages the fusion node could not handle, kept for an admin (``GET /api/quarantine``).

A message lands here when storing or associating it failed for a reason a resend would
not cure (the sensor is told to stop resending it). Everything written is bounded and
printable whatever the message held: text fields are escaped and cut to their column,
the payload to the wire's size limit, and the table to :data:`MAX_ROWS` entries (the
oldest go first), so a sensor that keeps sending junk cannot fill the disk.
"""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from sed import wire
from sed.store import tables as t
from sed.wire import printable

#: Entries kept; a new one beyond this deletes the oldest.
MAX_ROWS = 1000


@dataclasses.dataclass(frozen=True, kw_only=True)
class QuarantinedMessage:
    entry_id: int
    received_at_ns: int
    sensor_id: str
    message_type: str | None
    message_id: str | None
    reason: str
    detail: str
    payload_bytes: int
    payload: bytes | None  # its first bytes, when asked for


class Quarantine:
    """Quarantine rows on the store's engine."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def add(
        self,
        *,
        sensor_id: str,
        received_at_ns: int,
        reason: str,
        detail: str,
        payload: bytes,
        message_type: str | None = None,
        message_id: str | None = None,
    ) -> int:
        """Keep one message; returns its entry id. Never refuses a value: each is made to fit."""
        column = t.quarantine.c
        row = {
            "sensor_id": printable(sensor_id, max_chars=column.sensor_id.type.length),
            "received_at_ns": min(max(int(received_at_ns), 0), 2**63 - 1),
            "message_type": None
            if message_type is None
            else printable(message_type, max_chars=column.message_type.type.length),
            "message_id": None
            if message_id is None
            else printable(message_id, max_chars=column.message_id.type.length),
            "reason": printable(reason, max_chars=column.reason.type.length),
            "detail": printable(detail, max_chars=column.detail.type.length),
            "payload": bytes(payload[: wire.MAX_MESSAGE_BYTES]),
        }
        with self.engine.begin() as conn:
            entry_id = int(conn.execute(t.quarantine.insert().values(**row).returning(column.entry_id)).scalar_one())
            conn.execute(t.quarantine.delete().where(column.entry_id <= entry_id - MAX_ROWS))
        return entry_id

    def entries(
        self, *, sensor_id: str | None = None, limit: int = 100, offset: int = 0, payload_bytes: int = 0
    ) -> list[QuarantinedMessage]:
        """Entries, newest first, each with the first ``payload_bytes`` of its payload (0: none).

        Only the asked-for bytes are read: a page of entries never loads whole messages.
        """
        q = t.quarantine.c
        columns = [q.entry_id, q.received_at_ns, q.sensor_id, q.message_type, q.message_id, q.reason, q.detail]
        size = sa.func.length(q.payload).label("payload_bytes")
        preview = sa.func.substr(q.payload, 1, payload_bytes).label("payload") if payload_bytes > 0 else None
        query = sa.select(*columns, size, *([preview] if preview is not None else []))
        query = query.order_by(q.entry_id.desc()).limit(limit).offset(offset)
        if sensor_id is not None:
            query = query.where(q.sensor_id == sensor_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            QuarantinedMessage(
                entry_id=row["entry_id"],
                received_at_ns=row["received_at_ns"],
                sensor_id=row["sensor_id"],
                message_type=row["message_type"],
                message_id=row["message_id"],
                reason=row["reason"],
                detail=row["detail"],
                payload_bytes=int(row["payload_bytes"]),
                payload=None if preview is None else bytes(row["payload"]),
            )
            for row in rows
        ]

    def count(self, *, sensor_id: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(t.quarantine)
        if sensor_id is not None:
            query = query.where(t.quarantine.c.sensor_id == sensor_id)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def delete_received_before(self, cutoff_ns: int) -> int:
        """Delete entries received before ``cutoff_ns`` (UTC ns); returns how many."""
        with self.engine.begin() as conn:
            return conn.execute(t.quarantine.delete().where(t.quarantine.c.received_at_ns < cutoff_ns)).rowcount


__all__ = ["MAX_ROWS", "Quarantine", "QuarantinedMessage", "printable"]
