"""The ``[scene]`` file: a simulated city block, a capture source (:mod:`sed.capture.scene`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from sed.config.base import ConfigPath, HorizontalM, Section, VerticalM, require_exists
from sed.errors import ConfigError
from sed.wire import INT64_MAX, Label


class SceneSensor(Section):
    id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    x_m: HorizontalM
    y_m: HorizontalM
    z_m: VerticalM = 4.0


class SceneEvent(Section):
    label: Label | Literal["negative"]
    time_s: float = Field(ge=0, description="Emission time after the scene start, s.")
    x_m: HorizontalM
    y_m: HorizontalM
    z_m: VerticalM = 1.5
    clip: ConfigPath | Literal["auto", "synthetic"] = Field(
        "auto", description="Sound file; 'auto' picks a dev clip of the label, else a synthetic sound."
    )
    level_db: float = Field(0.0, ge=-60, le=20, description="Peak level at 10 m, dB re full scale.")
    max_duration_s: float = Field(
        3.0, gt=0, le=60, description="Play at most this much of the clip, from just before its first loud sample, s."
    )


class SceneReflector(Section):
    """A vertical wall (axis-aligned plane) that adds one echo per event."""

    axis: Literal["x", "y"] = Field(description="The wall is the plane axis = at_m.")
    at_m: HorizontalM
    gain: float = Field(0.5, gt=0, le=1, description="Pressure reflection coefficient.")


class SceneSection(Section):
    sample_rate_hz: Literal[16000] = Field(16000, description="Rate of the rendered streams.")
    duration_s: float = Field(30.0, gt=0, le=3600)
    temperature_c: float = Field(15.0, ge=-50, le=60)
    noise_dbfs: float = Field(-50.0, ge=-120, le=0, description="Background noise RMS, dBFS.")
    seed: int = Field(0, ge=0, le=INT64_MAX)
    sensors: list[SceneSensor] = Field(min_length=1)
    events: list[SceneEvent] = Field(default_factory=list)
    reflectors: list[SceneReflector] = Field(default_factory=list)


class SceneConfig(Section):
    scene: SceneSection

    # ---------------------------------------------------------------------------- loading

    def check(self, source: str) -> None:
        ids = [s.id for s in self.scene.sensors]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ConfigError(f"{source}: scene.sensors: duplicate id(s) {duplicates}")
        for i, event in enumerate(self.scene.events):
            if event.time_s >= self.scene.duration_s:
                raise ConfigError(
                    f"{source}: scene.events.{i}.time_s = {event.time_s}; "
                    f"must be before scene.duration_s = {self.scene.duration_s}"
                )
            if isinstance(event.clip, Path):
                require_exists(source, f"scene.events.{i}.clip", event.clip)
