"""``sedcity coverage plan``: how well a district's sensors hear and locate events; where to add.

One plan file (:data:`sed.coverage.plan_config.EXAMPLE`) names the inputs; the command reads
and checks them (:mod:`sed.coverage.inputs`), grids the area over the building-height raster
and screens every site's paths (:mod:`sed.coverage.grid`), turns received levels into
P(detect) with the shipped detector's measured curve, accumulates coverage per class and
period (:mod:`sed.coverage.select`), optionally picks ``--add K`` candidate sites, and writes
:mod:`sed.coverage.outputs` to a folder::

    sedcity coverage plan deploy/district/plan.toml --add 3 --out coverage-plan
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import shapely

from sed.coverage import inputs as io
from sed.coverage.grid import Grid, SitePaths, build_grid, site_paths
from sed.coverage.outputs import (
    Region,
    draw_maps,
    summary_rows,
    write_cells_csv,
    write_chosen_sites_csv,
    write_geojson,
    write_summary_csv,
)
from sed.coverage.physics import ClassAcoustics, RangeModel, barrier_attenuation_db, received_level_db
from sed.coverage.plan_config import EXAMPLE, PlanConfig, load_plan_config
from sed.coverage.select import Coverage, Pick, Reach, Scenario, detect_probability, greedy_add, reach
from sed.errors import ConfigError
from sed.models.detection_curve import DetectionCurve

PERIODS = ("day", "night")


@dataclasses.dataclass(frozen=True, kw_only=True)
class District:
    """A plan's inputs, read, checked and projected to the working CRS (metres)."""

    crs: object  # pyproj.CRS
    area: shapely.Geometry
    zones: list[tuple[str, shapely.Geometry]]
    footprints: io.Footprints
    sites: io.Sites
    noise_db: dict[str, np.ndarray]  # period -> (n_cells,) Leq, dB re 20 µPa
    grid: Grid


@dataclasses.dataclass(frozen=True, kw_only=True)
class Plan:
    """Everything a plan computed."""

    district: District
    results: dict[Scenario, Coverage]
    candidates: list[int]  # site indices of the candidates, in the order picks refer to
    picks: list[Pick]
    objective_m2: float  # area the greedy choice optimises (zones, else area), m^2
    n_paths: int  # site-cell paths screened
    range_m: float  # longest path computed, m
    timings_s: dict[str, float]


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=textwrap.fill(
            "Predict, per grid cell of a district, event class and time of day, the probability that at least one "
            "sensor hears an event, the expected number that do, the probability that it is located (>= 3 sensors "
            "detect and the predicted 95 % error is under the bound), and the predicted error; optionally pick the "
            "K candidate sites that most increase the located area of the priority zones. Inputs are what a city "
            "has offline: a sites CSV, building footprints (GeoJSON/GeoPackage, any CRS), the area and zones as "
            "polygons, and ambient noise levels. Outputs in --out: coverage.geojson (WGS84 bands, served by the "
            "operations centre), cells.csv, summary.csv, chosen_sites.csv, map_day.png, map_night.png, plan.json.",
            width=100,
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="the plan file (TOML; unknown keys are errors; paths relative to the file), an example:\n\n"
        + EXAMPLE
        + "\nexample: sedcity coverage plan deploy/district/plan.toml --add 3 --out coverage-plan",
    )
    parser.add_argument("config", type=Path, help="the plan file (TOML), e.g. deploy/district/plan.toml")
    parser.add_argument("--add", type=int, help="pick this many candidate sites (default: plan.add, else 0)")
    parser.add_argument("--out", type=Path, help="output folder (default: plan.out, else ./coverage-plan)")
    parser.add_argument(
        "--curve",
        type=Path,
        help="detection curve JSON (sedcity bench snr-curve) instead of plan.curve / the shipped model's",
    )
    parser.add_argument("--no-maps", action="store_true", help="do not draw the PNG maps")
    parser.add_argument("--no-cells", action="store_true", help="do not write cells.csv")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str], *, prog: str) -> int:
    args = _parser(prog).parse_args(argv)
    config = load_plan_config(args.config)
    if args.curve is not None:
        config = config.model_copy(update={"plan": config.plan.model_copy(update={"curve": args.curve})})
    add = config.plan.add if args.add is None else args.add
    if add < 0:
        raise ConfigError(f"--add {add}; expected a number of sites >= 0")
    out = args.out or config.plan.out
    plan = run_plan(config, add=add, progress=not args.no_progress)
    written = write_plan(
        plan, out=out, config=config, maps=not args.no_maps, cells=not args.no_cells, command=f"{prog} {' '.join(argv)}"
    )
    for path in written:
        print(f"wrote {path}")
    return 0


def load_district(config: PlanConfig) -> District:
    """Read every input of ``config``, project it and build the grid (ConfigError on bad input)."""
    inputs = config.inputs
    area_layer, area_crs = io.read_layer(inputs.area, crs=None, what="area")
    centroid = shapely.union_all(area_layer.geometry).centroid
    lon_lat = io.transformer(source=area_crs, target=io.parse_crs(io.WGS84, where="WGS84"))(
        np.array([[centroid.x, centroid.y]])
    )[0]
    crs = io.working_crs(spec=inputs.working_crs, area_lon_lat_deg=(lon_lat[0], lon_lat[1]), key="inputs.working_crs")
    area_layer, _ = io.read_layer(inputs.area, crs=crs, what="area")
    area = shapely.union_all(area_layer.geometry)
    zones: list[tuple[str, shapely.Geometry]] = []
    if inputs.zones is not None:
        zone_layer, _ = io.read_layer(inputs.zones, crs=crs, what="zones")
        zones = list(zip(io.zone_names(zone_layer), zone_layer.geometry, strict=True))
    noise_layer = io.read_layer(inputs.noise_zones, crs=crs, what="noise zones")[0] if inputs.noise_zones else None
    noise_zones, day_db, night_db = io.noise_levels(
        noise_layer, day_db=config.noise.day_db, night_db=config.noise.night_db
    )
    footprints = io.read_footprints(
        inputs.footprints, crs=crs, height_field=inputs.height_field, default_height_m=inputs.default_height_m
    )
    sites = io.read_sites(inputs.sites, crs=crs, xy_crs=inputs.sites_crs)
    io.check_sites_inside(sites, area=area, path=inputs.sites)
    grid = build_grid(
        area=area, footprints=footprints.geometry, heights_m=footprints.height_m, cell_m=config.grid.cell_m
    )
    for row, (name, polygon) in enumerate(zones):
        if not grid.inside(polygon).any():
            raise ConfigError(
                f"{inputs.zones}: feature {row + 1}: zone {name!r} holds no outdoor cell of the area; "
                "expected priority zones inside the area of interest"
            )
    noise = {"day": np.full(grid.n_cells, day_db), "night": np.full(grid.n_cells, night_db)}
    for polygon, zone_day_db, zone_night_db in noise_zones:
        inside = grid.inside(polygon)
        noise["day"][inside], noise["night"][inside] = zone_day_db, zone_night_db
    return District(crs=crs, area=area, zones=zones, footprints=footprints, sites=sites, noise_db=noise, grid=grid)


def class_range_m(
    *,
    acoustics: ClassAcoustics,
    model: RangeModel,
    curve: DetectionCurve,
    noise_db: float,
    min_p_detect: float,
    max_range_m: float,
    step_m: float,
) -> float:
    """Farthest distance at which an unscreened event can still be detected with P >= floor, m
    (at the quietest noise level; capped at ``max_range_m``)."""  # fmt: skip
    distance = np.arange(step_m, max_range_m + step_m, step_m)
    level = received_level_db(
        source_level_db=acoustics.source_level_db, distance_m=distance, frequency_hz=acoustics.frequency_hz,
        path_difference_m=None, model=model,
    )  # fmt: skip
    heard = detect_probability(curve=curve, label=acoustics.label, snr_db=level - noise_db) >= min_p_detect
    return float(distance[np.flatnonzero(heard)[-1]]) + step_m if heard.any() else step_m


def capped_path_difference_m(*, frequency_hz: float, model: RangeModel) -> float:
    """Smallest path difference whose screening reaches the barrier cap, m (a little above:
    beyond it the value no longer changes a received level); inf if the cap is never reached."""
    candidates_m = np.geomspace(1e-4, 1e4, 8001)
    capped = barrier_attenuation_db(
        path_difference_m=candidates_m, frequency_hz=frequency_hz, cap_db=model.barrier_cap_db
    )
    reached = np.flatnonzero(capped >= model.barrier_cap_db)
    return float(candidates_m[reached[0]]) if reached.size else np.inf


def run_plan(config: PlanConfig, *, add: int, progress: bool = False, district: District | None = None) -> Plan:
    """Compute a plan (no files written); ``district`` skips reading the inputs again."""
    from tqdm import tqdm

    timings: dict[str, float] = {}
    started = time.perf_counter()
    district = district or load_district(config)
    timings["inputs_and_grid_s"] = time.perf_counter() - started
    grid, sites = district.grid, district.sites
    curve = DetectionCurve.from_file(config.plan.curve)
    acoustics = config.acoustics()
    for label in acoustics:
        if label not in curve.labels:
            raise ConfigError(
                f"plan.classes has {label!r}; the detection curve ({curve.model_version}) has {list(curve.labels)}"
            )
    model = config.physics_model()
    quietest_db = min(float(v.min()) for v in district.noise_db.values())
    ranges_m = {
        label: class_range_m(
            acoustics=a, model=model, curve=curve, noise_db=quietest_db, min_p_detect=config.grid.min_p_detect,
            max_range_m=config.grid.max_range_m, step_m=grid.cell_m,
        )
        for label, a in acoustics.items()
    }  # fmt: skip

    settled_m = max(capped_path_difference_m(frequency_hz=a.frequency_hz, model=model) for a in acoustics.values())
    started = time.perf_counter()
    paths: list[SitePaths] = [
        site_paths(
            grid=grid, site_xy_m=sites.xy_m[i], site_height_m=float(sites.mount_height_m[i]),
            source_height_m=config.grid.source_height_m, max_range_m=max(ranges_m.values()), settled_m=settled_m,
        )
        for i in tqdm(range(len(sites)), desc="screening paths", unit="site", disable=not progress, file=sys.stderr)
    ]  # fmt: skip
    timings["screening_s"] = time.perf_counter() - started

    started = time.perf_counter()
    scenarios = [Scenario(label=label, period=period) for label in acoustics for period in PERIODS]
    reaches: list[list[Reach]] = [
        [
            reach(
                paths=paths[i], site_xy_m=sites.xy_m[i], acoustics=acoustics[s.label], model=model,
                noise_db=district.noise_db[s.period], curve=curve, min_p_detect=config.grid.min_p_detect,
            )
            for s in scenarios
        ]
        for i in range(len(sites))
    ]  # fmt: skip
    cell_xy = grid.xy_m
    sigma_s = config.localization.timing_sigma_ms / 1e3
    results = {
        s: Coverage(cell_xy_m=cell_xy, timing_sigma_s=sigma_s, error_bound_m=config.localization.error_bound_m)
        for s in scenarios
    }
    for i in np.flatnonzero(sites.existing):
        for s, site in zip(scenarios, reaches[i], strict=True):
            results[s].add(site)
    timings["coverage_s"] = time.perf_counter() - started

    started = time.perf_counter()
    candidates = [int(i) for i in np.flatnonzero(~sites.existing)]
    objective = np.zeros(grid.n_cells, dtype=bool)
    for _, polygon in district.zones:
        objective |= grid.inside(polygon)
    if not district.zones:
        objective[:] = True
    weight = objective * grid.cell_area_m2
    coverages = [results[s] for s in scenarios]

    objective_name = "zones" if district.zones else "area"
    if add > 0 and candidates:
        print(
            f"--add: gains are located area of the {objective_name}, the mean over {len(scenarios)} scenarios "
            f"({', '.join(acoustics)} x {', '.join(PERIODS)})"
        )

    def report(pick: Pick) -> None:
        share = pick.located_m2 / max(float(weight.sum()), 1e-9)
        picked = sites.site_id[candidates[pick.candidate]]
        print(
            f"pick: {picked}  +{pick.gain_m2:,.0f} m² located "
            f"(now {pick.located_m2:,.0f} m², {100 * share:.1f} % of the {objective_name})"
        )

    if add > 0 and not candidates:
        print(f"--add {add}: the sites file has no candidate sites; nothing to pick")
    picks = greedy_add(
        coverages=coverages, candidates=[reaches[i] for i in candidates], weight=weight, k=add, on_pick=report
    )
    timings["add_s"] = time.perf_counter() - started
    return Plan(
        district=district, results=results, candidates=candidates, picks=picks,
        objective_m2=float(weight.sum()), n_paths=sum(p.cells.size for p in paths), range_m=max(ranges_m.values()),
        timings_s=timings,
    )  # fmt: skip


def write_plan(
    plan: Plan, *, out: Path, config: PlanConfig, maps: bool = True, cells: bool = True, command: str = ""
) -> list[Path]:
    """Write the plan's outputs to ``out`` and print its summary table; returns the files written
    (``command``: how the plan was made, for ``plan.json``)."""
    from sed.bench.report import provenance, table

    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    district, grid, sites = plan.district, plan.district.grid, plan.district.sites
    wgs84 = io.parse_crs(io.WGS84, where="WGS84")
    to_wgs84 = io.transformer(source=district.crs, target=wgs84)  # type: ignore[arg-type]
    regions = [Region(name="area", cells=np.ones(grid.n_cells, dtype=bool))]
    regions += [Region(name=name, cells=grid.inside(polygon)) for name, polygon in district.zones]
    rows = summary_rows(results=plan.results, regions=regions, cell_area_m2=grid.cell_area_m2)
    print(table(rows, [("label", "class"), ("period", "period"), ("region", "region"), ("area_km2", "km²"),
                       ("share_heard", "heard"), ("share_located", "located"), ("mean_sensors", "sensors"),
                       ("median_error_95_m", "err95 m")]))  # fmt: skip
    chosen = [plan.candidates[p.candidate] for p in plan.picks]
    written = [out / "summary.csv", out / "coverage.geojson"]
    write_summary_csv(written[0], rows)
    meta = {
        "crs": "EPSG:4326",
        "cell_m": grid.cell_m,
        "classes": list(config.plan.classes),
        "periods": list(PERIODS),
        "error_bound_m": config.localization.error_bound_m,
        "chosen_sites": [sites.site_id[i] for i in chosen],
    }
    write_geojson(written[1], grid=grid, results=plan.results, to_wgs84=to_wgs84, meta=meta)
    site_lon_lat = to_wgs84(sites.xy_m)
    if plan.picks:
        written.append(out / "chosen_sites.csv")
        write_chosen_sites_csv(written[-1], sites=sites, candidates=plan.candidates, picks=plan.picks,
                               lon_lat_deg=site_lon_lat)  # fmt: skip
    if cells:
        written.append(out / "cells.csv")
        write_cells_csv(written[-1], grid=grid, lon_lat_deg=to_wgs84(grid.xy_m), results=plan.results)
    if maps:
        written += draw_maps(out, grid=grid, results=plan.results, area=district.area,
                             zones=[z for _, z in district.zones], sites=sites, chosen=chosen)  # fmt: skip
    timings = {**plan.timings_s, "outputs_s": time.perf_counter() - started}
    report = {
        **provenance(command or "sed.coverage.plan.write_plan"),
        "working_crs": str(getattr(district.crs, "name", district.crs)),
        "n_cells": grid.n_cells, "n_buildings": len(district.footprints.height_m), "n_sites": len(sites),
        "objective_m2": plan.objective_m2, "n_paths": plan.n_paths, "range_m": plan.range_m, "timings_s": timings,
        "summary": rows,
        "picks": [{"id": sites.site_id[plan.candidates[p.candidate]], "gain_m2": p.gain_m2, "located_m2": p.located_m2}
                  for p in plan.picks],
    }  # fmt: skip
    written.append(out / "plan.json")
    written[-1].write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return written


__all__ = [
    "District",
    "Plan",
    "capped_path_difference_m",
    "class_range_m",
    "load_district",
    "main",
    "run_plan",
    "write_plan",
]
