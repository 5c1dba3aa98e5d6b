"""What a city gives the planner, read and checked: sites, footprints, area, zones, noise.

Everything a city has offline: a sites CSV (existing poles and candidate sites), building
footprints (GeoJSON or GeoPackage: an OpenStreetMap extract or the cadastre), the area of
interest and optional priority and noise zones as polygons. Layers come in any CRS pyproj
knows and are projected to one metric working CRS (by default the UTM zone of the area's
centroid), so every coordinate after this module is metres, x east, y north.

Every problem is one :class:`~sed.errors.ConfigError` naming the file, the row (CSV line or
feature number, 1-based) and the field, e.g.::

    ConfigError: buildings.geojson: feature 17: self-intersecting polygon (Self-intersection[13.37 49.74])
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyogrio.errors
import pyogrio.raw
import pyproj
import shapely
from pyproj.exceptions import CRSError

from sed.errors import ConfigError

#: CRS of ``lat``/``lon`` columns and of GeoJSON without a ``crs`` member (RFC 7946).
WGS84 = "EPSG:4326"
SITE_KINDS = ("existing", "candidate")
#: Highest plausible sensor mount above ground, m (a mast on a tall roof).
MAX_MOUNT_HEIGHT_M = 300.0
#: Highest plausible building, m.
MAX_BUILDING_HEIGHT_M = 1000.0
#: Plausible range of an ambient noise level, dB re 20 µPa (Leq).
NOISE_RANGE_DB = (0.0, 140.0)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Sites:
    """Sensor sites in the working CRS.

    Attributes
    ----------
    site_id : tuple[str, ...]  (n_sites,)
    xy_m : np.ndarray [shape=(n_sites, 2), dtype=float64], m
    mount_height_m : np.ndarray [shape=(n_sites,), dtype=float64], m above ground
    existing : np.ndarray [shape=(n_sites,), dtype=bool]
        True for sites already mounted, False for candidates.
    """

    site_id: tuple[str, ...]
    xy_m: np.ndarray
    mount_height_m: np.ndarray
    existing: np.ndarray

    def __len__(self) -> int:
        return len(self.site_id)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Layer:
    """Polygons of one file in the working CRS, with their attribute columns.

    Attributes
    ----------
    path : Path
    geometry : np.ndarray [shape=(n_features,), dtype=object]
        shapely Polygons or MultiPolygons, valid and non-empty, m.
    fields : dict[str, np.ndarray]
        Attribute name -> values (n_features,).
    """

    path: Path
    geometry: np.ndarray
    fields: dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Footprints:
    """Buildings in the working CRS.

    Attributes
    ----------
    geometry : np.ndarray [shape=(n_buildings,), dtype=object], shapely polygons, m
    height_m : np.ndarray [shape=(n_buildings,), dtype=float64], m above ground
    """

    geometry: np.ndarray
    height_m: np.ndarray


def working_crs(*, spec: str, area_lon_lat_deg: tuple[float, float], key: str) -> pyproj.CRS:
    """The metric CRS everything is projected to.

    Parameters
    ----------
    spec : str
        ``"auto"`` (the UTM zone holding the area's centroid) or anything pyproj reads
        (``"EPSG:5514"``, a WKT string) that is projected with metre axes.
    area_lon_lat_deg : (float, float)
        The area's centroid, degrees (used for ``"auto"``).
    key : str
        The config key ``spec`` came from (for the error message).
    """
    if spec == "auto":
        lon, lat = area_lon_lat_deg
        infos = pyproj.database.query_utm_crs_info(
            datum_name="WGS 84", area_of_interest=pyproj.aoi.AreaOfInterest(lon, lat, lon, lat)
        )
        if not infos:
            raise ConfigError(f"{key} = 'auto': no UTM zone holds the area's centroid ({lon:.5f}, {lat:.5f})")
        return pyproj.CRS.from_epsg(int(infos[0].code))
    crs = parse_crs(spec, where=key)
    units = {axis.unit_name for axis in crs.axis_info}
    if not crs.is_projected or units != {"metre"}:
        raise ConfigError(f"{key} = {spec!r}: {crs.name}; expected a projected CRS in metres, or 'auto'")
    return crs


def transformer(*, source: pyproj.CRS, target: pyproj.CRS) -> Callable[[np.ndarray], np.ndarray]:
    """A function mapping (n, 2) coordinates from ``source`` to ``target`` (x/lon first)."""
    transform = pyproj.Transformer.from_crs(source, target, always_xy=True)

    def apply(xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        x, y = transform.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return apply


def read_layer(path: Path, *, crs: pyproj.CRS | None, what: str) -> tuple[Layer, pyproj.CRS]:
    """Read a polygon layer (GeoJSON, GeoPackage, anything GDAL reads) and project it.

    Parameters
    ----------
    path : Path
    crs : pyproj.CRS or None
        Working CRS; None keeps the file's own CRS (used to find the UTM zone first).
    what : str
        What the layer is (``"area"``, ``"footprints"``), for messages.

    Returns
    -------
    (Layer, pyproj.CRS)
        The layer in ``crs`` (or its own), and the file's own CRS.

    Raises
    ------
    ConfigError
        Unreadable file, unknown or missing CRS, no features, or a feature that is empty,
        not a polygon, or self-intersecting (naming the feature).
    """
    try:
        meta, _, wkb, field_data = pyogrio.raw.read(path)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, OSError) as exc:
        raise ConfigError(f"{path}: cannot read the {what} layer: {exc}") from None
    if meta.get("crs") is None:
        raise ConfigError(f"{path}: {what} layer has no CRS; expected one (e.g. EPSG:4326 or a .prj/.gpkg CRS)")
    source = parse_crs(meta["crs"], where=f"{path}: {what} layer CRS")
    if len(wkb) == 0:
        raise ConfigError(f"{path}: {what} layer has no features; expected at least one polygon")
    geometry = shapely.from_wkb(np.asarray(wkb, dtype=object))
    _check_polygons(geometry, path=path)
    if crs is not None and not source.equals(crs):
        geometry = _project(geometry, source=source, target=crs, path=path)
    fields = {str(name): np.asarray(values) for name, values in zip(meta["fields"], field_data, strict=True)}
    return Layer(path=path, geometry=geometry, fields=fields), source


def read_footprints(path: Path, *, crs: pyproj.CRS, height_field: str, default_height_m: float | None) -> Footprints:
    """Buildings and their heights.

    Parameters
    ----------
    path : Path
    crs : pyproj.CRS
        Working CRS.
    height_field : str
        Attribute holding the height above ground, m (OpenStreetMap: ``height``).
    default_height_m : float or None
        Height of buildings without one (a missing field, or an empty value); None: every
        building must have a height.
    """
    layer, _ = read_layer(path, crs=crs, what="footprints")
    n = len(layer.geometry)
    if height_field not in layer.fields:
        if default_height_m is None:
            raise ConfigError(
                f"{path}: no height field {height_field!r} (fields: {sorted(layer.fields)}); "
                "set inputs.height_field, or inputs.default_height_m for buildings without one"
            )
        return Footprints(geometry=layer.geometry, height_m=np.full(n, float(default_height_m)))
    heights = np.empty(n)
    for row, value in enumerate(layer.fields[height_field]):
        heights[row] = _height(value, default_height_m, where=f"{path}: feature {row + 1}: field {height_field}")
    return Footprints(geometry=layer.geometry, height_m=heights)


def read_sites(path: Path, *, crs: pyproj.CRS, xy_crs: str | None) -> Sites:
    """The sites CSV: ``id, kind, mount_height_m`` and ``lat, lon`` (degrees) or ``x, y``.

    Parameters
    ----------
    path : Path
    crs : pyproj.CRS
        Working CRS.
    xy_crs : str or None
        CRS of ``x``/``y`` columns (config ``inputs.sites_crs``); None: the working CRS.

    Raises
    ------
    ConfigError
        Naming the file, the line and the field.
    """
    try:
        # utf-8-sig: spreadsheet programs start their CSVs with a byte-order mark
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = set(reader.fieldnames or ())
            rows = list(reader)
    except FileNotFoundError:
        raise ConfigError(f"{path}: sites file not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"{path}: unreadable sites CSV: {exc}") from None
    if {"lat", "lon"} <= columns:
        position_fields, source = ("lon", "lat"), parse_crs(WGS84, where="lat/lon")
    elif {"x", "y"} <= columns:
        position_fields = ("x", "y")
        source = crs if xy_crs is None else parse_crs(xy_crs, where=f"{path}: inputs.sites_crs")
    else:
        raise ConfigError(f"{path}: columns {sorted(columns)}; expected id, kind, mount_height_m and lat, lon or x, y")
    missing = {"id", "kind", "mount_height_m"} - columns
    if missing:
        raise ConfigError(f"{path}: missing column(s) {sorted(missing)}; expected id, kind, mount_height_m")
    if not rows:
        raise ConfigError(f"{path}: no sites; expected at least one row")
    ids: list[str] = []
    xy = np.empty((len(rows), 2))
    heights = np.empty(len(rows))
    existing = np.empty(len(rows), dtype=bool)
    for i, row in enumerate(rows):
        line = f"{path}: line {i + 2}"  # the header is line 1
        site_id = (row.get("id") or "").strip()
        if not site_id:
            raise ConfigError(f"{line}: field id is empty; expected a site name")
        if site_id in ids:
            raise ConfigError(f"{line}: field id = {site_id!r} repeats line {ids.index(site_id) + 2}")
        kind = (row.get("kind") or "").strip()
        if kind not in SITE_KINDS:
            raise ConfigError(f"{line}: field kind = {kind!r}; expected one of {SITE_KINDS}")
        ids.append(site_id)
        existing[i] = kind == "existing"
        heights[i] = _number(row, "mount_height_m", where=line, low=0.0, high=MAX_MOUNT_HEIGHT_M)
        if position_fields == ("lon", "lat"):
            xy[i] = (
                _number(row, "lon", where=line, low=-180, high=180),
                _number(row, "lat", where=line, low=-90, high=90),
            )
        else:
            xy[i] = (_number(row, "x", where=line), _number(row, "y", where=line))
    if not source.equals(crs):
        xy = transformer(source=source, target=crs)(xy)
        bad = np.flatnonzero(~np.all(np.isfinite(xy), axis=1))
        if bad.size:
            raise ConfigError(f"{path}: line {bad[0] + 2}: position outside the domain of {crs.name}")
    return Sites(site_id=tuple(ids), xy_m=xy, mount_height_m=heights, existing=existing)


def check_sites_inside(sites: Sites, *, area: shapely.Geometry, path: Path) -> None:
    """Refuse a site outside the area of interest (a typo in a coordinate, most often)."""
    inside = shapely.covers(area, shapely.points(sites.xy_m))
    if not np.all(inside):
        i = int(np.flatnonzero(~inside)[0])
        outside_m = float(shapely.distance(area, shapely.Point(sites.xy_m[i])))
        raise ConfigError(
            f"{path}: line {i + 2}: site {sites.site_id[i]!r} lies {outside_m:.0f} m outside the area of interest; "
            "expected every site inside it"
        )


def noise_levels(
    layer: Layer | None, *, day_db: float, night_db: float
) -> tuple[list[tuple[shapely.Geometry, float, float]], float, float]:
    """Per-zone day and night noise levels (fields ``day_db``, ``night_db``), checked.

    Returns
    -------
    (zones, day_db, night_db)
        ``zones``: (polygon, day Leq dB, night Leq dB) per feature, later ones winning where
        they overlap; the defaults for everywhere else.
    """
    zones: list[tuple[shapely.Geometry, float, float]] = []
    if layer is None:
        return zones, day_db, night_db
    for field in ("day_db", "night_db"):
        if field not in layer.fields:
            raise ConfigError(
                f"{layer.path}: no field {field!r} (fields: {sorted(layer.fields)}); expected day_db and night_db"
            )
    for row, geometry in enumerate(layer.geometry):
        where = f"{layer.path}: feature {row + 1}"
        levels = [_level(layer.fields[f][row], where=f"{where}: field {f}") for f in ("day_db", "night_db")]
        zones.append((geometry, levels[0], levels[1]))
    return zones, day_db, night_db


def zone_names(layer: Layer) -> list[str]:
    """A name per priority zone: its ``name`` field, or ``zone N``; names must be unique."""
    raw = layer.fields.get("name")
    names = [
        str(raw[i]) if raw is not None and raw[i] is not None and str(raw[i]).strip() else f"zone {i + 1}"
        for i in range(len(layer.geometry))
    ]
    for i, name in enumerate(names):
        if names.index(name) != i:
            raise ConfigError(
                f"{layer.path}: feature {i + 1}: zone name {name!r} repeats feature {names.index(name) + 1}"
            )
    return names


def parse_crs(spec: object, *, where: str) -> pyproj.CRS:
    """``spec`` as a CRS (anything pyproj reads), else a ConfigError naming ``where``."""
    try:
        return pyproj.CRS.from_user_input(spec)
    except CRSError as exc:
        raise ConfigError(f"{where}: unknown CRS {str(spec)[:80]!r} ({exc})") from None


def _check_polygons(geometry: np.ndarray, *, path: Path) -> None:
    for row, geom in enumerate(geometry):
        where = f"{path}: feature {row + 1}"
        if geom is None or shapely.is_empty(geom):
            raise ConfigError(f"{where}: empty geometry; expected a polygon")
        if shapely.get_type_id(geom) not in (3, 6):  # Polygon, MultiPolygon
            raise ConfigError(f"{where}: {geom.geom_type}; expected a Polygon or MultiPolygon")
        if not shapely.is_valid(geom):
            reason = shapely.is_valid_reason(geom)
            kind = "self-intersecting polygon" if "intersection" in reason.lower() else "invalid polygon"
            raise ConfigError(f"{where}: {kind} ({reason}); expected a valid polygon")
        if shapely.area(geom) <= 0.0:
            raise ConfigError(f"{where}: polygon of zero area; expected a non-empty polygon")


def _project(geometry: np.ndarray, *, source: pyproj.CRS, target: pyproj.CRS, path: Path) -> np.ndarray:
    projected = shapely.transform(geometry, transformer(source=source, target=target))
    bounds = shapely.bounds(projected)
    bad = np.flatnonzero(~np.all(np.isfinite(bounds), axis=1))
    if bad.size:
        raise ConfigError(f"{path}: feature {bad[0] + 1}: coordinates outside the domain of {target.name}")
    return projected


def _number(row: dict[str, str], field: str, *, where: str, low: float = -math.inf, high: float = math.inf) -> float:
    text = (row.get(field) or "").strip()
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{where}: field {field} = {text!r}; expected a number") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise ConfigError(f"{where}: field {field} = {text}; expected a number in [{low:g}, {high:g}]")
    return value


def _height(value: object, default_m: float | None, *, where: str) -> float:
    value = _plain(value)
    empty = value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""
    if empty:
        if default_m is None:
            raise ConfigError(f"{where} is empty; expected a height in metres (or set inputs.default_height_m)")
        return float(default_m)
    try:
        height = float(str(value).strip().removesuffix("m").strip())  # OSM writes "12 m" at times
    except ValueError:
        raise ConfigError(f"{where} = {value!r}; expected a height in metres") from None
    if not 0.0 < height <= MAX_BUILDING_HEIGHT_M:
        raise ConfigError(f"{where} = {value!r}; expected a height in (0, {MAX_BUILDING_HEIGHT_M:g}] m")
    return height


def _plain(value: object) -> object:
    """A numpy scalar as the Python value it holds (so messages show ``300``, not ``np.int32(300)``)."""
    return value.item() if isinstance(value, np.generic) else value


def _level(value: object, *, where: str) -> float:
    value = _plain(value)
    try:
        level = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{where} = {value!r}; expected a noise level in dB") from None
    low, high = NOISE_RANGE_DB
    if not low <= level <= high:
        raise ConfigError(f"{where} = {value!r}; expected a level in [{low:g}, {high:g}] dB re 20 µPa")
    return level


__all__ = [
    "WGS84",
    "Footprints",
    "Layer",
    "Sites",
    "check_sites_inside",
    "noise_levels",
    "parse_crs",
    "read_footprints",
    "read_layer",
    "read_sites",
    "transformer",
    "working_crs",
    "zone_names",
]
