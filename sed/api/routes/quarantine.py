"""Quarantined messages (admins): what sensors sent that the fusion node could not handle.

The list gives who sent what, when, and why it failed; the raw message (msgpack) only when
asked, as base64 of at most :data:`PAYLOAD_PREVIEW_BYTES`. A quarantined evidence clip may
hold audio, so reading payloads is written to the audit log.
"""

from __future__ import annotations

import base64
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from sed.api.deps import AdminUser, StoreDep, remote_addr
from sed.api.params import Offset, StoredId

router = APIRouter(prefix="/api/quarantine", tags=["quarantine"])

#: Most payload bytes one entry shows.
PAYLOAD_PREVIEW_BYTES = 4096
#: Most entries one page holds.
MAX_PAGE = 500


class QuarantinedOut(BaseModel):
    entry_id: int
    received_at_ns: int = Field(description="When the fusion node received it, UTC ns.")
    sensor_id: str = Field(description="The authenticated sensor that sent it.")
    message_type: str | None = Field(None, description="Detection, EvidenceClip, Heartbeat … when decoded.")
    message_id: str | None = Field(None, description="The id it would have been acknowledged under.")
    reason: str = Field(description="Where handling failed: admission, store, association, unexpected_type, internal.")
    detail: str = Field(description="The error, escaped to printable text.")
    payload_bytes: int = Field(ge=0, description="Size of the kept message, bytes.")
    payload_base64: str | None = Field(
        None, description=f"The message as msgpack, base64, its first {PAYLOAD_PREVIEW_BYTES} bytes (when asked)."
    )


class QuarantinePage(BaseModel):
    total: int = Field(ge=0, description="Entries matching the filter.")
    entries: list[QuarantinedOut]


@router.get("", response_model=QuarantinePage, summary="Messages the fusion node quarantined, newest first (admin)")
def list_quarantine(
    request: Request,
    store: StoreDep,
    admin: AdminUser,
    sensor_id: Annotated[StoredId | None, Query(description="Only this sensor's messages.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[Offset, Query()] = 0,
    payload: Annotated[bool, Query(description="Include each message's first bytes as base64.")] = False,
) -> QuarantinePage:
    entries = store.quarantine.entries(
        sensor_id=sensor_id, limit=limit, offset=offset, payload_bytes=PAYLOAD_PREVIEW_BYTES if payload else 0
    )
    if payload and entries:
        store.accounts.audit(
            username=admin.username,
            action="quarantine.payload",
            target=sensor_id or "*",
            at_ns=time.time_ns(),
            remote_addr=remote_addr(request),
        )
    return QuarantinePage(
        total=store.quarantine.count(sensor_id=sensor_id),
        entries=[
            QuarantinedOut(
                entry_id=e.entry_id,
                received_at_ns=e.received_at_ns,
                sensor_id=e.sensor_id,
                message_type=e.message_type,
                message_id=e.message_id,
                reason=e.reason,
                detail=e.detail,
                payload_bytes=e.payload_bytes,
                payload_base64=None if e.payload is None else base64.b64encode(e.payload).decode(),
            )
            for e in entries
        ],
    )
