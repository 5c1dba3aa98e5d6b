"""Merging cells into the GeoJSON layer's polygons, and the summary's shares."""

from __future__ import annotations

import numpy as np
import shapely

from sed.coverage.grid import Grid, build_grid
from sed.coverage.outputs import Region, merge_cells, summary_rows
from sed.coverage.select import Coverage, Reach, Scenario


def _grid() -> Grid:
    rng = np.random.default_rng(1)
    boxes = [shapely.box(x, y, x + 12, y + 9) for x, y in rng.uniform(0, 280, size=(40, 2))]
    return build_grid(area=shapely.box(0, 0, 300, 300), footprints=np.array(boxes),
                      heights_m=np.full(40, 10.0), cell_m=3.0)  # fmt: skip


def test_merged_cells_cover_exactly_the_chosen_cells() -> None:
    grid = _grid()
    xy = grid.xy_m
    chosen = np.hypot(xy[:, 0] - 150, xy[:, 1] - 120) < 90  # a disc with buildings cut out
    merged = merge_cells(grid, chosen)
    assert merged.area == chosen.sum() * grid.cell_area_m2
    shapely.prepare(merged)
    assert np.all(shapely.contains_xy(merged, xy[chosen, 0], xy[chosen, 1]))
    assert not np.any(shapely.contains_xy(merged, xy[~chosen, 0], xy[~chosen, 1]))


def test_summary_shares_are_mean_probabilities_over_each_region() -> None:
    grid = _grid()
    cov = Coverage(cell_xy_m=grid.xy_m, timing_sigma_s=0.002, error_bound_m=25.0)
    p = np.linspace(0.0, 1.0, grid.n_cells)
    cov.add(Reach(site_xy_m=np.array([10.0, 10.0]), cells=np.arange(grid.n_cells), p=p))
    west = grid.xy_m[:, 0] < 150
    rows = summary_rows(
        results={Scenario(label="gunshot", period="night"): cov},
        regions=[Region(name="area", cells=np.ones(grid.n_cells, dtype=bool)), Region(name="west", cells=west)],
        cell_area_m2=grid.cell_area_m2,
    )
    assert [r["region"] for r in rows] == ["area", "west"]
    assert rows[1]["share_heard"] == np.mean(p[west]) and rows[0]["share_located"] == 0.0  # one sensor locates nothing
    assert rows[1]["area_km2"] == west.sum() * 9.0 / 1e6 and rows[0]["median_error_95_m"] is None
