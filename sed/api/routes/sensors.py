"""Sensors: where they are and whether they are healthy; admins annotate and retire them."""

from __future__ import annotations

import time

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from sed.api.deps import AdminUser, ConfigDep, CurrentUser, StoreDep
from sed.api.schemas import SensorOut, sensor_out

router = APIRouter(prefix="/api/sensors", tags=["sensors"])


class SensorUpdate(BaseModel):
    description: str | None = Field(None, max_length=200, description="Where the sensor stands, for operators.")


@router.get("", response_model=list[SensorOut], summary="Sensors with their latest health")
def list_sensors(store: StoreDep, config: ConfigDep, _user: CurrentUser) -> list[SensorOut]:
    now_ns = time.time_ns()
    return [sensor_out(record, config.site, config.api, now_ns=now_ns) for record in store.list_sensors()]


@router.put("/{sensor_id}", response_model=SensorOut, summary="Describe a sensor (admin)")
def update_sensor(
    sensor_id: str, update: SensorUpdate, store: StoreDep, config: ConfigDep, admin: AdminUser
) -> SensorOut:
    if not store.describe_sensor(sensor_id, update.description):
        raise HTTPException(404, f"sensor {sensor_id} not found")
    store.accounts.audit(username=admin.username, action="sensor.update", target=sensor_id, at_ns=time.time_ns())
    record = next(r for r in store.list_sensors() if r.sensor_id == sensor_id)
    return sensor_out(record, config.site, config.api, now_ns=time.time_ns())


@router.delete("/{sensor_id}", status_code=204, summary="Forget a decommissioned sensor (admin)")
def delete_sensor(sensor_id: str, store: StoreDep, admin: AdminUser) -> None:
    if not store.forget_sensor(sensor_id):
        raise HTTPException(404, f"sensor {sensor_id} not found")
    store.accounts.audit(username=admin.username, action="sensor.delete", target=sensor_id, at_ns=time.time_ns())
