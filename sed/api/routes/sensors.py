"""Sensors: where they are and whether they are healthy; admins annotate and revoke them.

Revoking a sensor deletes its public key from ``fusion.authorized_keys_dir`` (the fusion
node refuses the key from the sensor's next connection attempt on) and removes it from
the sensor list; the audit log keeps who revoked it and when. A connection that is already
open lasts until it drops or the fusion node restarts, and the sensor reappears in the list
if it speaks meanwhile. Deleting a sensor revokes it the same way: a forgotten sensor
whose key still works would come back unnoticed.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from sed.api.deps import AdminUser, ConfigDep, CurrentUser, StoreDep, remote_addr
from sed.api.params import Line, StoredId
from sed.api.schemas import SensorOut, sensor_out
from sed.keys import revoke_sensor
from sed.store import User

router = APIRouter(prefix="/api/sensors", tags=["sensors"])


class RevokedOut(BaseModel):
    sensor_id: str
    key_file_removed: str | None = Field(description="The deleted public-key file; None: the folder held none.")
    forgotten: bool = Field(description="The sensor was in the list and has been removed from it.")


class SensorUpdate(BaseModel):
    description: Line | None = Field(None, description="Where the sensor stands, for operators.")


@router.get("", response_model=list[SensorOut], summary="Sensors with their latest health")
def list_sensors(store: StoreDep, config: ConfigDep, _user: CurrentUser) -> list[SensorOut]:
    now_ns = time.time_ns()
    return [sensor_out(record, config.site, config.api, now_ns=now_ns) for record in store.list_sensors()]


@router.put("/{sensor_id}", response_model=SensorOut, summary="Describe a sensor (admin)")
def update_sensor(
    sensor_id: StoredId, update: SensorUpdate, store: StoreDep, config: ConfigDep, admin: AdminUser
) -> SensorOut:
    if not store.describe_sensor(sensor_id, update.description):
        raise HTTPException(404, f"sensor {sensor_id} not found")
    store.accounts.audit(username=admin.username, action="sensor.update", target=sensor_id, at_ns=time.time_ns())
    record = next(r for r in store.list_sensors() if r.sensor_id == sensor_id)
    return sensor_out(record, config.site, config.api, now_ns=time.time_ns())


@router.post(
    "/{sensor_id}/revoke",
    response_model=RevokedOut,
    summary="Revoke a sensor: delete its key and forget it (admin, audited)",
    responses={404: {"description": "Neither a registered key nor a known sensor."}},
)
def revoke(sensor_id: StoredId, request: Request, store: StoreDep, config: ConfigDep, admin: AdminUser) -> RevokedOut:
    return _revoke(sensor_id, request, store, config, admin, action="sensor.revoke")


@router.delete(
    "/{sensor_id}",
    status_code=204,
    summary="Decommission a sensor: the same as revoking it (admin, audited)",
    responses={404: {"description": "Neither a registered key nor a known sensor."}},
)
def delete_sensor(sensor_id: StoredId, request: Request, store: StoreDep, config: ConfigDep, admin: AdminUser) -> None:
    _revoke(sensor_id, request, store, config, admin, action="sensor.delete")


def _revoke(
    sensor_id: str, request: Request, store: StoreDep, config: ConfigDep, admin: User, *, action: str
) -> RevokedOut:
    """Delete the key, then the row, and audit it as ``action``. Key first: once it is gone
    the sensor cannot reconnect, whatever happens to the row."""
    try:
        removed = revoke_sensor(config.fusion.authorized_keys_dir, sensor_id)
    except OSError as exc:
        raise HTTPException(
            500, f"sensor {sensor_id}: could not delete its key in {config.fusion.authorized_keys_dir}: {exc.strerror}"
        ) from None
    forgotten = store.forget_sensor(sensor_id)
    if removed is None and not forgotten:
        raise HTTPException(404, f"sensor {sensor_id} not found: no key in fusion.authorized_keys_dir, not in the list")
    store.accounts.audit(
        username=admin.username,
        action=action,
        target=sensor_id,
        at_ns=time.time_ns(),
        remote_addr=remote_addr(request),
    )
    return RevokedOut(
        sensor_id=sensor_id, key_file_removed=None if removed is None else removed.name, forgotten=forgotten
    )
