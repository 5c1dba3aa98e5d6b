"""The audit log (admins): logins, clip plays, exports, changes to users, sensors and rules."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from sed.api.deps import AdminUser, StoreDep
from sed.api.params import Name, StoredId, TimeNs

router = APIRouter(prefix="/api/audit", tags=["audit"])


class AuditOut(BaseModel):
    entry_id: int
    at_ns: int
    username: str
    action: str
    target: str
    remote_addr: str | None


@router.get("", response_model=list[AuditOut], summary="Audit log entries, newest first (admin)")
def list_audit(
    store: StoreDep,
    _admin: AdminUser,
    username: Annotated[Name | None, Query(max_length=64)] = None,
    action: Annotated[Name | None, Query(max_length=32, description="e.g. clip.play, login, user.add")] = None,
    target: Annotated[StoredId | None, Query(max_length=128, description="e.g. a detection id")] = None,
    since_ns: Annotated[TimeNs | None, Query(description="At or after, UTC ns.")] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 100,
) -> list[AuditOut]:
    entries = store.accounts.audit_entries(
        username=username, action=action, target=target, since_ns=since_ns, limit=limit
    )
    return [AuditOut(**vars(e)) for e in entries]
