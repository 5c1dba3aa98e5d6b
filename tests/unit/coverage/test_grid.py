"""The planning grid, the height raster and straight-path screening against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from sed.coverage.grid import Grid, build_grid, naive_path_difference_m, path_difference_m, site_paths
from sed.errors import ConfigError


def _wall_grid(*, wall_x_m: tuple[float, float], wall_height_m: float, cell_m: float = 1.0) -> Grid:
    """A 200 m x 20 m strip with a wall across it."""
    wall = shapely.box(wall_x_m[0], -50.0, wall_x_m[1], 50.0)
    return build_grid(area=shapely.box(0, 0, 200, 20), footprints=np.array([wall]),
                      heights_m=np.array([wall_height_m]), cell_m=cell_m)  # fmt: skip


def _delta(s_m: float, *, d_m: float, h_m: float, z_r: float, z_s: float) -> float:
    """Path difference over an edge at distance s from the receiver (ISO 9613-2, single edge)."""
    return math.hypot(s_m, h_m - z_r) + math.hypot(d_m - s_m, h_m - z_s) - math.hypot(d_m, z_r - z_s)


def test_cells_inside_buildings_are_not_planning_cells_and_carry_their_height() -> None:
    grid = build_grid(area=shapely.box(0, 0, 100, 50), footprints=np.array([shapely.box(20, 10, 40, 30)]),
                      heights_m=np.array([15.0]), cell_m=5.0)  # fmt: skip
    assert grid.shape == (10, 20)
    assert grid.n_cells == 200 - 16  # a 20 m x 20 m building covers 4 x 4 cells
    assert grid.height_m.max() == 15.0 and (grid.height_m > 0).sum() == 16
    xy = grid.xy_m
    assert not np.any((xy[:, 0] > 20) & (xy[:, 0] < 40) & (xy[:, 1] > 10) & (xy[:, 1] < 30))
    assert grid.cell_area_m2 == 25.0


def test_cells_outside_a_non_rectangular_area_are_dropped() -> None:
    triangle = shapely.Polygon([(0, 0), (100, 0), (0, 100)])
    grid = build_grid(area=triangle, footprints=np.array([], dtype=object), heights_m=np.array([]), cell_m=10.0)
    assert grid.n_cells == 45  # cell centres strictly below the diagonal: 9 + 8 + ... + 1
    assert np.all(grid.xy_m.sum(axis=1) < 100)


def test_grid_too_fine_for_the_area_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"grid.cell_m = 0.01: .* expected at most"):
        build_grid(area=shapely.box(0, 0, 1e5, 1e5), footprints=np.array([], dtype=object), heights_m=np.array([]),
                   cell_m=0.01)  # fmt: skip


def test_clear_line_of_sight_has_no_path_difference() -> None:
    grid = _wall_grid(wall_x_m=(150.0, 151.0), wall_height_m=10.0)
    paths = site_paths(grid=grid, site_xy_m=np.array([10.5, 10.5]), site_height_m=6.0, source_height_m=1.5,
                       max_range_m=100.0)  # fmt: skip
    assert paths.cells.size > 0 and np.all(paths.path_difference_m == 0.0)
    assert np.all(np.diff(paths.distance_m) >= 0)  # nearest first
    horizontal = np.hypot(*(grid.xy_m[paths.cells] - [10.5, 10.5]).T)
    assert np.allclose(paths.distance_m, np.hypot(horizontal, 6.0 - 1.5))  # 3-D distance
    assert horizontal.max() <= 100.0


def test_wall_between_source_and_sensor_gives_the_standard_path_difference() -> None:
    # ISO 9613-2 single diffraction: delta = |S E| + |E R| - |S R| over the wall's top edge. The
    # wall is 2 m thick; its top edge lies somewhere in [40, 42] m from the sensor.
    grid = _wall_grid(wall_x_m=(40.0, 42.0), wall_height_m=10.0)
    site, source = np.array([0.5, 10.5]), np.array([100.5, 10.5])
    got = path_difference_m(grid=grid, site_xy_m=site, site_height_m=6.0, source_height_m=1.5,
                            offsets_m=np.array([source - site], dtype=np.float32), step_m=1.0)[0]  # fmt: skip
    edges = [_delta(s, d_m=100.0, h_m=10.0, z_r=6.0, z_s=1.5) for s in (40.0, 42.0)]
    assert min(edges) - 1e-3 <= got <= max(edges) + 1e-3
    # by hand: sqrt(40^2 + 4^2) + sqrt(60^2 + 8.5^2) - sqrt(100^2 + 4.5^2) = 0.698 m (D_z = 16.4 dB at 1 kHz)
    assert got == pytest.approx(0.698, abs=0.005)


def test_wall_below_the_line_of_sight_does_not_screen() -> None:
    grid = _wall_grid(wall_x_m=(40.0, 42.0), wall_height_m=3.0)
    # sensor at 20 m height: the line of sight passes above 3 m everywhere between
    got = path_difference_m(grid=grid, site_xy_m=np.array([0.5, 10.5]), site_height_m=20.0, source_height_m=1.5,
                            offsets_m=np.array([[100.0, 0.0]], dtype=np.float32), step_m=1.0)  # fmt: skip
    assert got[0] == 0.0


def test_sensor_on_its_own_building_is_not_screened_by_it() -> None:
    grid = _wall_grid(wall_x_m=(0.0, 1.0), wall_height_m=12.0)  # the sensor sits in this building's cell
    got = path_difference_m(grid=grid, site_xy_m=np.array([0.5, 10.5]), site_height_m=6.0, source_height_m=1.5,
                            offsets_m=np.array([[60.0, 0.0]], dtype=np.float32), step_m=1.0)  # fmt: skip
    assert got[0] == 0.0


def _random_city(seed: int) -> Grid:
    rng = np.random.default_rng(seed)
    boxes = [shapely.box(x, y, x + w, y + h) for x, y, w, h in zip(
        rng.uniform(0, 380, 150), rng.uniform(0, 380, 150), rng.uniform(5, 20, 150), rng.uniform(5, 20, 150),
        strict=True)]  # fmt: skip
    return build_grid(area=shapely.box(0, 0, 400, 400), footprints=np.array(boxes),
                      heights_m=rng.uniform(4.0, 30.0, 150), cell_m=4.0)  # fmt: skip


def test_vectorised_screening_matches_the_per_sample_loop() -> None:
    grid = _random_city(5)
    site = grid.xy_m[grid.n_cells // 2]
    offsets = (grid.xy_m - site).astype(np.float32)
    order = np.argsort(np.hypot(*offsets.T))
    fast = path_difference_m(grid=grid, site_xy_m=site, site_height_m=7.0, source_height_m=1.5,
                             offsets_m=offsets[order], step_m=4.0)  # fmt: skip
    rng = np.random.default_rng(0)
    pick = rng.choice(len(order), size=300, replace=False)
    slow = np.array([
        naive_path_difference_m(grid=grid, site_xy_m=site, site_height_m=7.0, source_xy_m=grid.xy_m[order[i]],
                                source_height_m=1.5, step_m=4.0)
        for i in pick
    ])  # fmt: skip
    # Both sample every <= 4 m but at slightly different places (a block shares one sample count).
    assert np.mean((fast[pick] > 0) == (slow > 0)) > 0.97
    screened = (fast[pick] > 0) & (slow > 0)
    assert screened.sum() > 50
    assert np.median(np.abs(fast[pick][screened] - slow[screened]) / slow[screened]) < 0.05


def test_settled_paths_agree_with_full_sampling_up_to_the_settling_value() -> None:
    grid = _random_city(8)
    site = grid.xy_m[grid.n_cells // 3]
    offsets = (grid.xy_m - site).astype(np.float32)
    offsets = offsets[np.argsort(np.hypot(*offsets.T))]
    kwargs = {"grid": grid, "site_xy_m": site, "site_height_m": 6.0, "source_height_m": 1.5, "offsets_m": offsets,
              "step_m": 4.0}  # fmt: skip
    full = path_difference_m(**kwargs)
    settled = path_difference_m(**kwargs, settled_m=1.5)
    assert (full >= 1.5).mean() > 0.3  # the shortcut is exercised
    assert np.array_equal(np.minimum(full, 1.5), np.minimum(settled, 1.5))
    assert np.all(settled <= full + 1e-6)


def test_values_on_the_raster_round_trip() -> None:
    grid = _random_city(2)
    values = np.arange(grid.n_cells, dtype=float)
    raster = grid.to_raster(values)
    assert np.array_equal(raster.ravel()[grid.cell_index], values)
    assert np.isnan(raster.ravel()[grid.height_m.ravel() > 0]).all()
    inside = grid.inside(shapely.box(0, 0, 200, 400))
    assert np.array_equal(inside, grid.xy_m[:, 0] < 200)


def test_site_on_the_area_corner_screens_like_one_just_inside() -> None:
    grid = _random_city(4)  # the raster spans exactly 0-400 m: a site at x = 400 sits on its edge
    kwargs = {"grid": grid, "site_height_m": 6.0, "source_height_m": 1.5, "max_range_m": 600.0}
    on_edge = site_paths(site_xy_m=np.array([400.0, 400.0]), **kwargs)
    inside = site_paths(site_xy_m=np.array([399.99, 399.99]), **kwargs)
    a, b = np.argsort(on_edge.cells), np.argsort(inside.cells)
    assert np.array_equal(on_edge.cells[a], inside.cells[b])
    assert np.mean(np.isclose(on_edge.path_difference_m[a], inside.path_difference_m[b], rtol=0.01, atol=0.01)) > 0.99
