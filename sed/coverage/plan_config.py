"""The plan file of ``sedcity coverage plan``: a strict TOML, every key documented.

Unknown keys are errors naming the key; relative paths are resolved against the file's
folder. :data:`EXAMPLE` is the annotated example ``--help`` prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from sed.config.base import ConfigPath, Section
from sed.config.loader import parse_config, read_toml
from sed.coverage.locate_error import DEFAULT_TIMING_SIGMA_S
from sed.coverage.physics import DEFAULT_CLASSES, ClassAcoustics, RangeModel
from sed.errors import ConfigError

NoiseDb = Annotated[float, Field(ge=0.0, le=140.0)]

EXAMPLE = f"""\
[inputs]
sites = "sites.csv"              # id,kind,mount_height_m,lat,lon (or x,y in sites_crs); kind: existing|candidate
# sites_crs = "EPSG:32633"       # CRS of x/y columns (default: the working CRS)
footprints = "buildings.geojson" # GeoJSON or GeoPackage polygons, any CRS
height_field = "height"          # building height above ground, m
# default_height_m = 12.0        # for buildings without a height (else: an error)
area = "area.geojson"            # the area of interest (one or more polygons)
# zones = "zones.geojson"        # priority zones (field "name"); --add optimises these (default: the area)
# noise_zones = "noise.geojson"  # per-zone Leq (fields day_db, night_db), overriding [noise] inside them
# working_crs = "auto"           # metric CRS to plan in; auto = the UTM zone of the area

[noise]                          # ambient Leq, dB re 20 µPa, where no noise zone says otherwise
day_db = 60.0
night_db = 50.0

[grid]
cell_m = 5.0                     # cell side, m
# source_height_m = 1.5          # event height above ground, m
# max_range_m = 3000.0           # never compute paths longer than this, m
# min_p_detect = 0.001           # P(detect) below this counts as 0

[localization]
# error_bound_m = 25.0           # located = >= 3 sensors detect and 95 % error below this, m
# timing_sigma_ms = {DEFAULT_TIMING_SIGMA_S * 1e3:<12g} # 1-sigma arrival-time error of one sensor, ms

# [range_model]                  # sed.coverage.physics.RangeModel
# excess_db_per_km = {RangeModel.excess_db_per_km:<11g} # fitted on Pittsburgh (sedcity coverage validate)

# [classes.gunshot]              # override a class's acoustics (or add one the detector knows)
# source_level_db = 125.0        # 1-s Leq at 1 m, dB
# frequency_hz = 1000.0

[plan]
classes = ["gunshot", "scream", "glass_break"]
# curve = "my_model.curve.json"  # the detector's P(detect | SNR) (default: the shipped model's)
# add = 0                        # pick this many candidate sites (--add overrides)
# out = "coverage-plan"          # output folder (--out overrides)
"""


class InputsConfig(Section):
    sites: ConfigPath = Field(description="Sites CSV: id, kind, mount_height_m, and lat, lon or x, y.")
    sites_crs: str | None = Field(None, description="CRS of the x/y columns; default the working CRS.")
    footprints: ConfigPath = Field(description="Building footprints, GeoJSON or GeoPackage.")
    height_field: str = Field("height", min_length=1, description="Footprint attribute holding the height, m.")
    default_height_m: float | None = Field(None, gt=0.0, le=1000.0, description="Height of buildings without one, m.")
    area: ConfigPath = Field(description="Area of interest: polygons.")
    zones: ConfigPath | None = Field(None, description="Priority zones: polygons with an optional 'name'.")
    noise_zones: ConfigPath | None = Field(None, description="Noise zones: polygons with day_db and night_db.")
    working_crs: str = Field("auto", min_length=1, description="Metric CRS to plan in; 'auto': local UTM zone.")


class NoiseConfig(Section):
    day_db: NoiseDb = Field(description="Ambient Leq by day, dB re 20 µPa.")
    night_db: NoiseDb = Field(description="Ambient Leq by night, dB re 20 µPa.")


class GridConfig(Section):
    cell_m: float = Field(5.0, gt=0.0, le=1000.0, description="Cell side, m.")
    source_height_m: float = Field(1.5, ge=0.0, le=100.0, description="Event height above ground, m.")
    max_range_m: float = Field(3000.0, gt=0.0, le=50_000.0, description="Longest path computed, m.")
    min_p_detect: float = Field(1e-3, ge=0.0, lt=1.0, description="P(detect) below this counts as 0.")


class LocalizationConfig(Section):
    error_bound_m: float = Field(25.0, gt=0.0, description="Largest 95 % error of a located cell, m.")
    timing_sigma_ms: float = Field(DEFAULT_TIMING_SIGMA_S * 1e3, gt=0.0, le=1000.0, description="Timing error, ms.")


class RangeModelConfig(Section):
    excess_db_per_km: float = Field(RangeModel.excess_db_per_km, ge=0.0, le=100.0)
    barrier_cap_db: float = Field(RangeModel.barrier_cap_db, ge=0.0, le=40.0)
    temperature_c: float = Field(RangeModel.temperature_c, ge=-40.0, le=50.0)
    relative_humidity_pct: float = Field(RangeModel.relative_humidity_pct, gt=0.0, le=100.0)


class ClassConfig(Section):
    source_level_db: float = Field(ge=40.0, le=200.0, description="1-s Leq at 1 m, dB re 20 µPa.")
    frequency_hz: float = Field(gt=20.0, le=20_000.0, description="Band centre, Hz.")


class PlanSection(Section):
    classes: list[str] = Field(list(DEFAULT_CLASSES), min_length=1, description="Classes to plan for.")
    curve: ConfigPath | None = Field(None, description="Detection curve JSON; default the shipped model's.")
    add: int = Field(0, ge=0, le=1000, description="Candidate sites to pick.")
    out: ConfigPath = Field(Path("coverage-plan"), description="Output folder.")


class PlanConfig(Section):
    inputs: InputsConfig
    noise: NoiseConfig
    grid: GridConfig = GridConfig()
    localization: LocalizationConfig = LocalizationConfig()
    range_model: RangeModelConfig = RangeModelConfig()
    classes: dict[str, ClassConfig] = Field(default_factory=dict)
    plan: PlanSection = PlanSection()

    def check(self, source: str) -> None:
        for key in ("sites", "footprints", "area", "zones", "noise_zones"):
            path = getattr(self.inputs, key)
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"{source}: inputs.{key} = '{path}'; no such file")
        for label in self.plan.classes:
            if label not in DEFAULT_CLASSES and label not in self.classes:
                raise ConfigError(
                    f"{source}: plan.classes has {label!r}; expected one of {sorted(DEFAULT_CLASSES)} "
                    f"or a [classes.{label}] section"
                )

    def acoustics(self) -> dict[str, ClassAcoustics]:
        """The acoustics of every planned class, overrides applied."""
        out: dict[str, ClassAcoustics] = {}
        for label in self.plan.classes:
            given = self.classes.get(label)
            out[label] = (
                ClassAcoustics(label=label, source_level_db=given.source_level_db, frequency_hz=given.frequency_hz)
                if given is not None
                else DEFAULT_CLASSES[label]
            )
        return out

    def physics_model(self) -> RangeModel:
        return RangeModel(**self.range_model.model_dump())


def load_plan_config(path: Path) -> PlanConfig:
    """Read and check a plan file; one :class:`ConfigError` naming the file and key."""
    return parse_config(read_toml(path), PlanConfig, source=str(path), base_dir=path.parent)


__all__ = ["EXAMPLE", "PlanConfig", "load_plan_config"]
