"""A synthetic district for examples, tests and the speed benchmark (no real city's data).

Streets on a regular grid, each block split into lots, most lots built with a footprint
inset from the lot's edges and a random height; poles at street crossings (existing sites
on a coarse subset, candidates on others); a rectangular area, two priority zones and a
noisy main road. Everything is written the way a city would hand it over: GeoJSON in WGS84
lon/lat (RFC 7946), a sites CSV with lat/lon, and a plan file. Seeded: the same arguments
write the same files.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pyproj

#: Where the synthetic district is put: Plzeň, whose 2021 pilot the planner answers.
DEFAULT_ORIGIN_LON_LAT = (13.3615, 49.7384)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DistrictSpec:
    """Shape of a synthetic district.

    Attributes
    ----------
    size_m : (float, float)
        East-west and north-south extent, m.
    block_m : (float, float)
        Block size between streets, m.
    street_m : float
        Street width, m.
    lots : (int, int)
        Lots per block along x and y.
    n_existing, n_candidates : int
        Sites at street crossings.
    seed : int
    """

    size_m: tuple[float, float] = (1000.0, 800.0)
    block_m: tuple[float, float] = (70.0, 50.0)
    street_m: float = 18.0
    lots: tuple[int, int] = (3, 2)
    n_existing: int = 5
    n_candidates: int = 12
    built_share: float = 0.88
    seed: int = 12
    origin_lon_lat: tuple[float, float] = DEFAULT_ORIGIN_LON_LAT
    noise_day_db: float = 58.0
    noise_night_db: float = 46.0


def write_district(
    folder: Path, spec: DistrictSpec = DistrictSpec(), *, cell_m: float = 5.0, curve: Path | None = None
) -> Path:
    """Write buildings.geojson, area.geojson, zones.geojson, noise.geojson, sites.csv and
    plan.toml into ``folder``; returns the plan file's path (``curve``: a detection curve
    file for the plan, default the shipped model's)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    utm = pyproj.CRS.from_epsg(32633)  # UTM 33N holds Plzeň
    to_lon_lat = pyproj.Transformer.from_crs(utm, "EPSG:4326", always_xy=True)
    x0, y0 = pyproj.Transformer.from_crs("EPSG:4326", utm, always_xy=True).transform(*spec.origin_lon_lat)
    width, height = spec.size_m
    pitch_x, pitch_y = spec.block_m[0] + spec.street_m, spec.block_m[1] + spec.street_m

    def ring(x_a: float, y_a: float, x_b: float, y_b: float) -> list[list[float]]:
        xs, ys = to_lon_lat.transform([x0 + x_a, x0 + x_b, x0 + x_b, x0 + x_a, x0 + x_a],
                                      [y0 + y_a, y0 + y_a, y0 + y_b, y0 + y_b, y0 + y_a])  # fmt: skip
        return [[round(x, 8), round(y, 8)] for x, y in zip(xs, ys, strict=True)]

    buildings = []
    lot_w, lot_h = spec.block_m[0] / spec.lots[0], spec.block_m[1] / spec.lots[1]
    for bx in np.arange(spec.street_m, width - spec.block_m[0], pitch_x):
        for by in np.arange(spec.street_m, height - spec.block_m[1], pitch_y):
            for i in range(spec.lots[0]):
                for j in range(spec.lots[1]):
                    if rng.random() >= spec.built_share:
                        continue  # a courtyard, a car park
                    inset = rng.uniform(0.5, 3.0, size=4)
                    xa, ya = bx + i * lot_w + inset[0], by + j * lot_h + inset[1]
                    xb, yb = bx + (i + 1) * lot_w - inset[2], by + (j + 1) * lot_h - inset[3]
                    h = float(rng.choice([rng.uniform(8.0, 22.0), rng.uniform(25.0, 45.0)], p=[0.9, 0.1]))
                    buildings.append(_feature(ring(xa, ya, xb, yb), {"height": round(h, 1)}))
    _write_geojson(folder / "buildings.geojson", buildings)
    _write_geojson(folder / "area.geojson", [_feature(ring(0, 0, width, height), {"name": "district"})])
    zones = [
        _feature(ring(0.2 * width, 0.45 * height, 0.45 * width, 0.8 * height), {"name": "old town"}),
        _feature(ring(0.6 * width, 0.1 * height, 0.85 * width, 0.35 * height), {"name": "station"}),
    ]
    _write_geojson(folder / "zones.geojson", zones)
    road_y = spec.street_m / 2 + pitch_y * round(0.5 * height / pitch_y)  # one street crossing the district
    _write_geojson(
        folder / "noise.geojson",
        [_feature(ring(0, road_y - 40.0, width, road_y + 40.0),
                  {"name": "main road", "day_db": spec.noise_day_db + 10.0, "night_db": spec.noise_night_db + 8.0})],
    )  # fmt: skip

    crossings = [
        (x, y)
        for x in np.arange(spec.street_m / 2, width, pitch_x)
        for y in np.arange(spec.street_m / 2, height, pitch_y)
        if 1.0 < x < width - 1.0 and 1.0 < y < height - 1.0
    ]
    order = rng.permutation(len(crossings))
    n_sites = min(len(crossings), spec.n_existing + spec.n_candidates)
    with (folder / "sites.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "kind", "mount_height_m", "lat", "lon"])
        for rank, k in enumerate(order[:n_sites]):
            x, y = crossings[k]
            lon, lat = to_lon_lat.transform(x0 + x, y0 + y)
            kind = "existing" if rank < spec.n_existing else "candidate"
            name = f"P{rank + 1:02d}" if kind == "existing" else f"C{rank - spec.n_existing + 1:02d}"
            writer.writerow([name, kind, f"{rng.uniform(5.0, 8.0):.1f}", f"{lat:.8f}", f"{lon:.8f}"])

    plan = folder / "plan.toml"
    plan.write_text(
        "# Synthetic district (sed.coverage.synthetic): generated footprints, not a real city.\n"
        "[inputs]\n"
        'sites = "sites.csv"\nfootprints = "buildings.geojson"\nheight_field = "height"\n'
        'area = "area.geojson"\nzones = "zones.geojson"\nnoise_zones = "noise.geojson"\n\n'
        f"[noise]\nday_db = {spec.noise_day_db}\nnight_db = {spec.noise_night_db}\n\n"
        f"[grid]\ncell_m = {cell_m}\n" + ("" if curve is None else f'\n[plan]\ncurve = "{curve.resolve()}"\n'),
        encoding="utf-8",
    )
    return plan


def _feature(ring: list[list[float]], properties: dict[str, object]) -> dict[str, object]:
    return {"type": "Feature", "properties": properties, "geometry": {"type": "Polygon", "coordinates": [ring]}}


def _write_geojson(path: Path, features: list[dict[str, object]]) -> None:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}) + "\n", encoding="utf-8")


__all__ = ["DEFAULT_ORIGIN_LON_LAT", "DistrictSpec", "write_district"]
