"""Sensors: where they are and whether they are healthy."""

from __future__ import annotations

import time

from fastapi import APIRouter

from sed.api.deps import ConfigDep, StoreDep
from sed.api.schemas import SensorOut, sensor_out

router = APIRouter(prefix="/api/sensors", tags=["sensors"])


@router.get("", response_model=list[SensorOut], summary="Sensors with their latest health")
def list_sensors(store: StoreDep, config: ConfigDep) -> list[SensorOut]:
    now_ns = time.time_ns()
    return [sensor_out(record, config.site, config.api, now_ns=now_ns) for record in store.list_sensors()]
