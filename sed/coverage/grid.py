"""The planning grid, the building-height raster, and screening on the straight path.

The area of interest is cut into square cells; a cell whose centre lies inside a building is
not a place an event happens outdoors and is dropped. Buildings are rasterised onto the same
cells (a cell takes the height of the building holding its centre), and for every site each
cell within range gets the path difference of the *dominant obstacle* on the straight path
from the source (``source_height_m`` above the cell's centre) to the sensor (its mount
height): the building sample whose roof edge lengthens the path the most,
``delta = |S E| + |E R| - |S R|`` (ISO 9613-2 single diffraction, the input of
:func:`sed.coverage.physics.barrier_attenuation_db`), 0 for a clear line of sight.

The path is sampled every ``step_m`` (default: one cell), all paths of one site at once,
in blocks of cells sorted by distance so every block samples a similar length. Buildings
narrower than a cell can be missed (their centre falls between cell centres); samples within
one cell of the sensor are ignored (the building or pole the sensor is mounted on).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import shapely

from sed.errors import ConfigError

#: Cells per block of the vectorised path sampling: small enough to stay in cache.
_BLOCK_CELLS = 1024
#: How far inside the raster a site on its edge is moved, cells.
_EDGE_CELLS = 1e-3
#: Largest grid the planner builds, cells (a 20 km x 20 km city at 5 m).
MAX_RASTER_CELLS = 16_000_000


@dataclasses.dataclass(frozen=True, kw_only=True)
class Grid:
    """Cells of the area of interest over a building-height raster.

    Attributes
    ----------
    origin_xy_m : (float, float)
        Lower-left corner of the raster, m (working CRS).
    cell_m : float > 0
        Cell side, m.
    height_m : np.ndarray [shape=(n_y, n_x), dtype=float32]
        Building height above ground at each raster cell, m; 0 for open ground.
    cell_index : np.ndarray [shape=(n_cells,), dtype=int64]
        Flat raster index (``row * n_x + col``, row 0 at the south) of each planning cell:
        outdoor cells whose centre is inside the area.
    """

    origin_xy_m: tuple[float, float]
    cell_m: float
    height_m: np.ndarray
    cell_index: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.height_m.shape  # type: ignore[return-value]

    @property
    def n_cells(self) -> int:
        return int(self.cell_index.size)

    @property
    def cell_area_m2(self) -> float:
        return self.cell_m**2

    @property
    def xy_m(self) -> np.ndarray:
        """Centres of the planning cells, m [shape=(n_cells, 2), dtype=float64]."""
        rows, cols = np.divmod(self.cell_index, self.shape[1])
        return np.column_stack(
            [self.origin_xy_m[0] + (cols + 0.5) * self.cell_m, self.origin_xy_m[1] + (rows + 0.5) * self.cell_m]
        )

    def inside(self, polygon: shapely.Geometry) -> np.ndarray:
        """Which planning cells have their centre inside ``polygon`` [shape=(n_cells,), bool]."""
        xy = self.xy_m
        shapely.prepare(polygon)
        return shapely.contains_xy(polygon, xy[:, 0], xy[:, 1])

    def to_raster(self, values: np.ndarray, *, fill: float = np.nan) -> np.ndarray:
        """Per-cell ``values`` (n_cells,) laid out on the raster (n_y, n_x), ``fill`` elsewhere."""
        out = np.full(self.height_m.size, fill, dtype=np.float64)
        out[self.cell_index] = values
        return out.reshape(self.shape)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SitePaths:
    """The cells one site can hear, with the distance and the screening of each path.

    Attributes
    ----------
    cells : np.ndarray [shape=(n,), dtype=int64]
        Indices into the grid's planning cells, nearest first.
    distance_m : np.ndarray [shape=(n,), dtype=float64]
        3-D source-sensor distance, m.
    path_difference_m : np.ndarray [shape=(n,), dtype=float32]
        Dominant obstacle's path difference, m; 0 where the line of sight is clear.
    """

    cells: np.ndarray
    distance_m: np.ndarray
    path_difference_m: np.ndarray


def build_grid(*, area: shapely.Geometry, footprints: np.ndarray, heights_m: np.ndarray, cell_m: float) -> Grid:
    """Rasterise the area and the buildings.

    Parameters
    ----------
    area : shapely Polygon or MultiPolygon, m
    footprints : np.ndarray [shape=(n_buildings,), dtype=object], shapely polygons, m
    heights_m : np.ndarray [shape=(n_buildings,)], m above ground
    cell_m : float > 0

    Raises
    ------
    ConfigError
        If the raster would exceed :data:`MAX_RASTER_CELLS` or no outdoor cell is left.
    """
    x0, y0, x1, y1 = shapely.bounds(area)
    n_x, n_y = max(1, math.ceil((x1 - x0) / cell_m)), max(1, math.ceil((y1 - y0) / cell_m))
    if n_x * n_y > MAX_RASTER_CELLS:
        raise ConfigError(
            f"grid.cell_m = {cell_m:g}: the area's {x1 - x0:.0f} m x {y1 - y0:.0f} m bounds make {n_x * n_y} cells; "
            f"expected at most {MAX_RASTER_CELLS} (use larger cells)"
        )
    height = np.zeros((n_y, n_x), dtype=np.float32)
    bounds = shapely.bounds(footprints)
    for geom, (bx0, by0, bx1, by1), h in zip(footprints, bounds, heights_m, strict=True):
        c0, c1 = max(0, math.floor((bx0 - x0) / cell_m)), min(n_x, math.ceil((bx1 - x0) / cell_m))
        r0, r1 = max(0, math.floor((by0 - y0) / cell_m)), min(n_y, math.ceil((by1 - y0) / cell_m))
        if c0 >= c1 or r0 >= r1:
            continue  # outside the area's bounds
        cols, rows = np.meshgrid(np.arange(c0, c1), np.arange(r0, r1))
        inside = shapely.contains_xy(geom, x0 + (cols + 0.5) * cell_m, y0 + (rows + 0.5) * cell_m)
        window = height[r0:r1, c0:c1]
        window[inside] = np.maximum(window[inside], h)
    rows, cols = np.divmod(np.arange(n_x * n_y), n_x)
    shapely.prepare(area)
    in_area = shapely.contains_xy(area, x0 + (cols + 0.5) * cell_m, y0 + (rows + 0.5) * cell_m)
    cell_index = np.flatnonzero(in_area & (height.ravel() == 0.0))
    if cell_index.size == 0:
        raise ConfigError(f"grid.cell_m = {cell_m:g}: no outdoor cell centre falls inside the area; use smaller cells")
    return Grid(origin_xy_m=(float(x0), float(y0)), cell_m=float(cell_m), height_m=height, cell_index=cell_index)


def site_paths(
    *,
    grid: Grid,
    site_xy_m: np.ndarray,
    site_height_m: float,
    source_height_m: float,
    max_range_m: float,
    step_m: float | None = None,
    settled_m: float = math.inf,
) -> SitePaths:
    """Distances and screening from every cell within ``max_range_m`` to one site.

    Parameters
    ----------
    grid : Grid
    site_xy_m : np.ndarray [shape=(2,)], m
    site_height_m : float, m above ground (the sensor's mount height)
    source_height_m : float, m above ground (the event's)
    max_range_m : float > 0, horizontal, m
    step_m : float > 0 or None
        Spacing of the samples along each path, m; None: one cell.
    settled_m : float > 0
        See :func:`path_difference_m` (the planner passes the path difference at which the
        screening reaches its cap).

    Returns
    -------
    SitePaths
    """
    xy = grid.xy_m
    delta_xy = xy - np.asarray(site_xy_m, dtype=np.float64)
    horizontal_m = np.hypot(delta_xy[:, 0], delta_xy[:, 1])
    cells = np.flatnonzero(horizontal_m <= max_range_m)
    cells = cells[np.argsort(horizontal_m[cells], kind="stable")]
    rise_m = site_height_m - source_height_m
    distance_m = np.sqrt(horizontal_m[cells] ** 2 + rise_m**2)
    path_difference = path_difference_m(
        grid=grid,
        site_xy_m=site_xy_m,
        site_height_m=site_height_m,
        source_height_m=source_height_m,
        offsets_m=delta_xy[cells].astype(np.float32),
        step_m=grid.cell_m if step_m is None else step_m,
        settled_m=settled_m,
    )
    return SitePaths(cells=cells, distance_m=distance_m, path_difference_m=path_difference)


def path_difference_m(
    *,
    grid: Grid,
    site_xy_m: np.ndarray,
    site_height_m: float,
    source_height_m: float,
    offsets_m: np.ndarray,
    step_m: float,
    settled_m: float = math.inf,
) -> np.ndarray:
    """Dominant obstacle's path difference from sources at ``site + offsets`` to the site.

    Parameters
    ----------
    grid : Grid
    site_xy_m : np.ndarray [shape=(2,)], m
    site_height_m, source_height_m : float, m above ground
    offsets_m : np.ndarray [shape=(n, 2), dtype=float32]
        Source minus site, m; fastest when sorted by length.
    step_m : float > 0
    settled_m : float > 0
        A path difference this large already screens as much as the barrier cap allows:
        paths with an obstacle at least this large among the :data:`END_SAMPLES` samples
        nearest either end (where obstacles screen the most) are not sampled further and
        report that obstacle's value. inf: every path sampled in full.

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float32], m
        0 for a clear line of sight; exact below ``settled_m``, at least ``settled_m`` above it.
    """
    out = np.zeros(len(offsets_m), dtype=np.float32)
    sampler = _PathSampler(grid=grid, site_xy_m=site_xy_m, site_height_m=site_height_m,
                           source_height_m=source_height_m, offsets_m=offsets_m)  # fmt: skip
    for start in range(0, len(offsets_m), _BLOCK_CELLS):
        rows = np.arange(start, min(start + _BLOCK_CELLS, len(offsets_m)))
        n_samples = max(1, math.ceil(float(sampler.length_m[rows].max()) / step_m))
        t = (np.arange(n_samples, dtype=np.float32) + np.float32(0.5)) / np.float32(n_samples)
        if math.isfinite(settled_m) and n_samples > 4 * END_SAMPLES:
            ends = sampler.longest_via_m(rows, np.concatenate([t[:END_SAMPLES], t[-END_SAMPLES:]]))
            settled = ends >= settled_m
            out[rows[settled]] = ends[settled]
            rows = rows[~settled]
        if rows.size:
            out[rows] = sampler.longest_via_m(rows, t)
    return out


#: Samples at either end of a path checked first for an obstacle that settles its screening.
END_SAMPLES = 12


class _PathSampler:
    """Samples one site's straight paths on the height raster (float32, vectorised)."""

    def __init__(
        self, *, grid: Grid, site_xy_m: np.ndarray, site_height_m: float, source_height_m: float, offsets_m: np.ndarray
    ) -> None:
        self.n_x = grid.shape[1]
        self.heights = grid.height_m.ravel()
        self.min_s_m = np.float32(grid.cell_m)
        inv_cell = np.float32(1.0 / grid.cell_m)
        # raster coordinates (cells) of the site, and of each source relative to it; a site on
        # the area's east or north edge is moved a hair inside, onto the raster
        n_y, n_x = grid.shape
        col0 = (site_xy_m[0] - grid.origin_xy_m[0]) / grid.cell_m
        row0 = (site_xy_m[1] - grid.origin_xy_m[1]) / grid.cell_m
        self.col0 = np.float32(min(max(col0, 0.0), n_x - _EDGE_CELLS))
        self.row0 = np.float32(min(max(row0, 0.0), n_y - _EDGE_CELLS))
        self.d_col = offsets_m[:, 0] * inv_cell
        self.d_row = offsets_m[:, 1] * inv_cell
        self.z_r, self.z_s = np.float32(site_height_m), np.float32(source_height_m)
        self.length_m = np.hypot(offsets_m[:, 0], offsets_m[:, 1]).astype(np.float32)

    def longest_via_m(self, rows: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Largest path difference over the obstacles at fractions ``t`` (0 at the site) of
        each path in ``rows``; 0 where none rises above the line of sight."""
        # Both ends lie on the raster, so every sample between them does: no bounds checks.
        a = np.multiply(self.d_col[rows, None], t)
        a += self.col0
        cols = a.astype(np.int32)
        np.multiply(self.d_row[rows, None], t, out=a)
        a += self.row0
        index = a.astype(np.int32)
        index *= self.n_x
        index += cols
        h = self.heights[index]
        which, k = np.nonzero(h > self.z_r + (self.z_s - self.z_r) * t)
        d = self.length_m[rows]
        out = np.zeros(rows.size, dtype=np.float32)
        if which.size == 0:
            return out
        s = d[which] * t[k]  # distance of each obstacle sample from the site, m
        near_site = s < self.min_s_m  # the pole's own building or mount: not an obstacle
        which, k, s = which[~near_site], k[~near_site], s[~near_site]
        h_hit, d_hit = h[which, k], d[which]
        via = np.sqrt(s**2 + (h_hit - self.z_r) ** 2) + np.sqrt((d_hit - s) ** 2 + (h_hit - self.z_s) ** 2)
        longest = np.zeros(rows.size, dtype=np.float32)
        np.maximum.at(longest, which, via)
        direct = np.sqrt(d**2 + (self.z_r - self.z_s) ** 2)
        # an obstacle above the line of sight always lengthens the path: keep it > 0 in float32
        return np.where(longest > 0, np.maximum(longest - direct, np.float32(1e-6)), np.float32(0.0))


def naive_path_difference_m(
    *,
    grid: Grid,
    site_xy_m: np.ndarray,
    site_height_m: float,
    source_xy_m: np.ndarray,
    source_height_m: float,
    step_m: float,
) -> float:
    """One path, one sample at a time: the reference :func:`path_difference_m` is checked
    against, and the benchmark's baseline."""  # fmt: skip
    n_y, n_x = grid.shape
    dx, dy = source_xy_m[0] - site_xy_m[0], source_xy_m[1] - site_xy_m[1]
    d = math.hypot(dx, dy)
    n_samples = max(1, math.ceil(d / step_m))
    best = 0.0
    for k in range(n_samples):
        t = (k + 0.5) / n_samples
        col = math.floor((site_xy_m[0] + dx * t - grid.origin_xy_m[0]) / grid.cell_m)
        row = math.floor((site_xy_m[1] + dy * t - grid.origin_xy_m[1]) / grid.cell_m)
        s = d * t
        if not (0 <= col < n_x and 0 <= row < n_y) or s < grid.cell_m:
            continue
        h = float(grid.height_m[row, col])
        if h > site_height_m + (source_height_m - site_height_m) * t:
            via = math.hypot(s, h - site_height_m) + math.hypot(d - s, h - source_height_m)
            best = max(best, via - math.hypot(d, site_height_m - source_height_m))
    return best


__all__ = ["Grid", "SitePaths", "build_grid", "naive_path_difference_m", "path_difference_m", "site_paths"]
