"""What a plan writes: the GeoJSON coverage layer, the per-cell CSV, the summary, the maps.

``<out>/coverage.geojson`` is the layer the operations centre serves as is: WGS84 lon/lat
(RFC 7946), one feature per class, period, quantity and band, the cells of a band merged
into (multi)polygons, so a district's file stays small. Its properties::

    label, period ("day" | "night"), layer ("located" | "heard"), band_min, band_max,
    area_m2, mean_p_heard, mean_expected_sensors, mean_p_located, median_error_95_m

``<out>/cells.csv`` holds every cell's values unmerged; ``summary.csv`` the shares per class,
period and zone; ``chosen_sites.csv`` the picks of ``--add``; ``map_day.png`` and
``map_night.png`` the maps.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import shapely

from sed.coverage.grid import Grid
from sed.coverage.inputs import Sites
from sed.coverage.select import Coverage, Pick, Scenario

#: Bands of the GeoJSON layer: P(located) and P(heard by >= 1) split at these values.
LOCATED_BANDS = ((0.1, 0.5), (0.5, 0.9), (0.9, 1.0))
HEARD_BANDS = ((0.5, 0.9), (0.9, 1.0))
#: Decimal places of a WGS84 coordinate (1e-7 deg is about 1 cm).
COORDINATE_DECIMALS = 7


@dataclasses.dataclass(frozen=True, kw_only=True)
class Region:
    """A part of the area the summary reports on: the whole area or one priority zone."""

    name: str
    cells: np.ndarray  # bool (n_cells,)


def summary_rows(
    *, results: Mapping[Scenario, Coverage], regions: Sequence[Region], cell_area_m2: float
) -> list[dict[str, object]]:
    """Per scenario and region: share heard and located, mean sensors, median error.

    Shares are expected shares of the region's outdoor area (mean probability over its cells).
    """
    rows: list[dict[str, object]] = []
    for scenario, cov in results.items():
        heard, located, error = cov.p_heard, cov.p_located, _typical_error_m(cov)
        for region in regions:
            cells = region.cells
            if not cells.any():
                continue
            finite = error[cells][np.isfinite(error[cells])]
            rows.append(
                {
                    "label": scenario.label,
                    "period": scenario.period,
                    "region": region.name,
                    "area_km2": float(cells.sum() * cell_area_m2 / 1e6),
                    "share_heard": float(heard[cells].mean()),
                    "share_located": float(located[cells].mean()),
                    "mean_sensors": float(cov.expected_sensors[cells].mean()),
                    "median_error_95_m": float(np.median(finite)) if finite.size else None,
                }
            )
    return rows


def _typical_error_m(cov: Coverage) -> np.ndarray:
    """The predicted error where at least three sensors usually detect (P >= 0.5), else inf:
    medians over regions then describe places that can be located, not the far edges."""
    return np.where(cov.p_three >= 0.5, cov.error_95_m, np.inf)


def write_summary_csv(path: Path, rows: Sequence[Mapping[str, object]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_cells_csv(path: Path, *, grid: Grid, lon_lat_deg: np.ndarray, results: Mapping[Scenario, Coverage]) -> None:
    """One row per planning cell: position, then four values per scenario."""
    columns = ["x_m", "y_m", "lon", "lat"]
    values = [grid.xy_m, lon_lat_deg]
    for s, cov in results.items():
        prefix = f"{s.label}_{s.period}"
        columns += [f"{prefix}_p_heard", f"{prefix}_expected_sensors", f"{prefix}_p_located", f"{prefix}_error_95_m"]
        values.append(np.column_stack([cov.p_heard, cov.expected_sensors, cov.p_located, cov.error_95_m]))
    table = np.column_stack(values)
    formats = ["%.2f", "%.2f", "%.7f", "%.7f", *(["%.4f"] * (table.shape[1] - 4))]
    np.savetxt(path, table, delimiter=",", header=",".join(columns), comments="", fmt=formats)


def write_chosen_sites_csv(path: Path, *, sites: Sites, candidates: Sequence[int], picks: Sequence[Pick],
                           lon_lat_deg: np.ndarray) -> None:  # fmt: skip
    """The picks of ``--add`` in order; ``candidates`` maps a pick's index to a site index."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["rank", "id", "lon", "lat", "x_m", "y_m", "mount_height_m", "gain_m2", "located_m2"])
        for rank, pick in enumerate(picks, start=1):
            i = candidates[pick.candidate]
            writer.writerow([
                rank, sites.site_id[i], f"{lon_lat_deg[i, 0]:.7f}", f"{lon_lat_deg[i, 1]:.7f}",
                f"{sites.xy_m[i, 0]:.2f}", f"{sites.xy_m[i, 1]:.2f}", f"{sites.mount_height_m[i]:g}",
                f"{pick.gain_m2:.0f}", f"{pick.located_m2:.0f}",
            ])  # fmt: skip


def write_geojson(
    path: Path,
    *,
    grid: Grid,
    results: Mapping[Scenario, Coverage],
    to_wgs84: Callable[[np.ndarray], np.ndarray],
    meta: Mapping[str, object],
) -> int:
    """The merged coverage layer (see the module docstring); returns the file's size in bytes."""
    features = []
    precision = 10.0**-COORDINATE_DECIMALS
    for scenario, cov in results.items():
        heard, located, error = cov.p_heard, cov.p_located, _typical_error_m(cov)
        for layer, values, bands in (("located", located, LOCATED_BANDS), ("heard", heard, HEARD_BANDS)):
            for low, high in bands:
                cells = (values >= low) & ((values < high) if high < 1.0 else (values <= high))
                if not cells.any():
                    continue
                finite = error[cells][np.isfinite(error[cells])]
                polygon = shapely.transform(merge_cells(grid, cells), to_wgs84)
                features.append({
                    "type": "Feature",
                    "properties": {
                        "label": scenario.label, "period": scenario.period, "layer": layer,
                        "band_min": low, "band_max": high,
                        "area_m2": round(float(cells.sum() * grid.cell_area_m2), 1),
                        "mean_p_heard": round(float(heard[cells].mean()), 4),
                        "mean_expected_sensors": round(float(cov.expected_sensors[cells].mean()), 3),
                        "mean_p_located": round(float(located[cells].mean()), 4),
                        "median_error_95_m": round(float(np.median(finite)), 2) if finite.size else None,
                    },
                    "geometry": json.loads(shapely.to_geojson(shapely.set_precision(polygon, precision))),
                })  # fmt: skip
    doc = {"type": "FeatureCollection", "sed_coverage": dict(meta), "features": features}
    text = json.dumps(doc, separators=(",", ":"))
    path.write_text(text, encoding="utf-8")
    return len(text.encode())


def merge_cells(grid: Grid, cells: np.ndarray) -> shapely.Geometry:
    """The union of the chosen cells as (multi)polygons in the working CRS.

    Runs of adjacent cells along a raster row become one strip, strips spanning the same
    columns in consecutive rows one rectangle, so the union handles a few thousand
    rectangles rather than every cell.
    """
    n_y, n_x = grid.shape
    mask = np.zeros(n_y * n_x, dtype=bool)
    mask[grid.cell_index[cells]] = True
    padded = np.zeros((n_y, n_x + 2), dtype=np.int8)
    padded[:, 1:-1] = mask.reshape(n_y, n_x)
    edges = np.diff(padded, axis=1)
    rows, col_start = np.nonzero(edges == 1)
    _, col_end = np.nonzero(edges == -1)  # same row-major order: the i-th end closes the i-th start
    order = np.lexsort((rows, col_end, col_start))
    rows, col_start, col_end = rows[order], col_start[order], col_end[order]
    first = np.ones(rows.size, dtype=bool)
    first[1:] = (col_start[1:] != col_start[:-1]) | (col_end[1:] != col_end[:-1]) | (rows[1:] != rows[:-1] + 1)
    starts = np.flatnonzero(first)
    top_row = np.maximum.reduceat(rows, starts) if starts.size else rows
    x0, y0 = grid.origin_xy_m
    c = grid.cell_m
    rectangles = shapely.box(
        x0 + col_start[starts] * c, y0 + rows[starts] * c, x0 + col_end[starts] * c, y0 + (top_row + 1) * c
    )
    return shapely.union_all(rectangles)


def draw_maps(
    out: Path,
    *,
    grid: Grid,
    results: Mapping[Scenario, Coverage],
    area: shapely.Geometry,
    zones: Sequence[shapely.Geometry],
    sites: Sites,
    chosen: Sequence[int],
) -> list[Path]:
    """``map_<period>.png``: per class, P(heard by >= 1) (top) and P(located) (bottom) over
    the buildings (grey), with the sensors.

    Existing sites are black triangles, chosen candidates red stars numbered in pick order,
    the other candidates hollow red circles; the area is outlined in black, zones dashed orange.
    Coordinates are metres from the grid's south-west corner.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    periods = sorted({s.period for s in results}, key=["day", "night"].index)
    labels = list(dict.fromkeys(s.label for s in results))
    x0, y0 = grid.origin_xy_m
    n_y, n_x = grid.shape
    extent = (0.0, n_x * grid.cell_m, 0.0, n_y * grid.cell_m)
    buildings = np.where(grid.height_m > 0, 1.0, np.nan)
    shift = np.array([x0, y0])
    outlines = [(area, {"color": "black", "linestyle": "-"})]
    outlines += [(zone, {"color": "orange", "linestyle": "--"}) for zone in zones]
    written = []
    for period in periods:
        fig, axes = plt.subplots(2, len(labels), figsize=(4.6 * len(labels), 8.4), squeeze=False, layout="constrained")
        image = None
        for col, label in enumerate(labels):
            cov = results[Scenario(label=label, period=period)]
            for row, (name, values) in enumerate((("P(heard by >= 1)", cov.p_heard), ("P(located)", cov.p_located))):
                ax = axes[row, col]
                ax.imshow(buildings, origin="lower", extent=extent, cmap="Greys", vmin=0, vmax=2.5,
                          interpolation="nearest")  # fmt: skip
                image = ax.imshow(grid.to_raster(values), origin="lower", extent=extent, cmap="viridis", vmin=0,
                                  vmax=1, interpolation="nearest")  # fmt: skip
                for geometry, style in outlines:
                    _outline(ax, geometry, shift=shift, **style)
                _draw_sites(ax, sites, chosen, shift=shift)
                ax.set_title(f"{label}, {period}: {name}", fontsize=10)
                ax.set_xlabel("m east")
                ax.set_ylabel("m north")
                ax.set_xlim(extent[0], extent[1])
                ax.set_ylim(extent[2], extent[3])
        handles, names = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, names, loc="outside lower center", ncol=len(names), fontsize=9)
        if image is not None:
            fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, label="probability")
        path = out / f"map_{period}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def _outline(ax: object, geometry: shapely.Geometry, *, shift: np.ndarray, **style: object) -> None:
    for polygon in getattr(geometry, "geoms", [geometry]):
        x, y = polygon.exterior.xy
        ax.plot(np.asarray(x) - shift[0], np.asarray(y) - shift[1], linewidth=1.0, **style)  # type: ignore[attr-defined]


def _draw_sites(ax: object, sites: Sites, chosen: Sequence[int], *, shift: np.ndarray) -> None:
    xy = sites.xy_m - shift
    others = ~sites.existing
    others[list(chosen)] = False
    ax.scatter(*xy[sites.existing].T, marker="^", s=46, c="black", label="existing site", zorder=3)  # type: ignore[attr-defined]
    ax.scatter(*xy[others].T, marker="o", s=26, facecolors="none", edgecolors="red", label="candidate", zorder=3)  # type: ignore[attr-defined]
    if chosen:
        ax.scatter(
            *xy[list(chosen)].T, marker="*", s=150, c="red", edgecolors="black", label="chosen (--add)", zorder=4
        )  # type: ignore[attr-defined]
        for rank, i in enumerate(chosen, start=1):
            ax.annotate(str(rank), xy[i], xytext=(5, 5), textcoords="offset points", fontsize=9, color="red",
                        fontweight="bold")  # type: ignore[attr-defined]  # fmt: skip


__all__ = [
    "Region",
    "draw_maps",
    "merge_cells",
    "summary_rows",
    "write_cells_csv",
    "write_chosen_sites_csv",
    "write_geojson",
    "write_summary_csv",
]
