"""Reading a city's inputs: CRS round trips, projections, and one clear error per bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyogrio.raw
import pyproj
import pytest
import shapely

from sed.coverage.inputs import (
    check_sites_inside,
    noise_levels,
    parse_crs,
    read_footprints,
    read_layer,
    read_sites,
    transformer,
    working_crs,
    zone_names,
)
from sed.errors import ConfigError

PLZEN_LON_LAT = (13.3776, 49.7475)
UTM_33N = pyproj.CRS.from_epsg(32633)
WGS84 = pyproj.CRS.from_epsg(4326)


def _square(lon: float, lat: float, size_deg: float = 0.001) -> list[list[float]]:
    return [[lon, lat], [lon + size_deg, lat], [lon + size_deg, lat + size_deg], [lon, lat + size_deg], [lon, lat]]


def _geojson(path: Path, features: list[tuple[dict | None, dict]], crs: str | None = None) -> Path:
    doc: dict = {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "properties": props, "geometry": geom} for geom, props in features],
    }
    if crs is not None:
        doc["crs"] = {"type": "name", "properties": {"name": crs}}
    path.write_text(json.dumps(doc))
    return path


def _polygon(ring: list[list[float]]) -> dict:
    return {"type": "Polygon", "coordinates": [ring]}


def _sites_csv(path: Path, rows: list[str], header: str = "id,kind,mount_height_m,lat,lon") -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_auto_working_crs_is_the_local_utm_zone() -> None:
    assert working_crs(spec="auto", area_lon_lat_deg=PLZEN_LON_LAT, key="k").to_epsg() == 32633
    assert working_crs(spec="auto", area_lon_lat_deg=(-79.99, 40.44), key="k").to_epsg() == 32617  # Pittsburgh


def test_lon_lat_to_utm_and_back_is_the_identity() -> None:
    rng = np.random.default_rng(3)
    lon_lat = np.column_stack([rng.uniform(13.3, 13.45, 50), rng.uniform(49.7, 49.8, 50)])
    there = transformer(source=WGS84, target=UTM_33N)(lon_lat)
    back = transformer(source=UTM_33N, target=WGS84)(there)
    assert np.abs(back - lon_lat).max() < 1e-9
    # and the projection is metric: 0.001 deg of latitude is about 111 m
    step = transformer(source=WGS84, target=UTM_33N)(np.array([[13.38, 49.75], [13.38, 49.751]]))
    assert np.hypot(*(step[1] - step[0])) == pytest.approx(111.2, abs=0.5)


def test_a_layer_in_web_mercator_lands_where_the_same_layer_in_wgs84_does(tmp_path: Path) -> None:
    ring = _square(*PLZEN_LON_LAT)
    mercator = pyproj.Transformer.from_crs(WGS84, "EPSG:3857", always_xy=True)
    ring_3857 = [list(mercator.transform(x, y)) for x, y in ring]
    a = _geojson(tmp_path / "a.geojson", [(_polygon(ring), {})])
    b = tmp_path / "b.gpkg"
    pyogrio.raw.write(
        b, np.array([shapely.to_wkb(shapely.Polygon(ring_3857))], dtype=object), [], [],
        driver="GPKG", crs="EPSG:3857", geometry_type="Polygon",
    )  # fmt: skip
    layer_a, crs_a = read_layer(a, crs=UTM_33N, what="area")
    layer_b, crs_b = read_layer(b, crs=UTM_33N, what="area")
    assert crs_a.to_epsg() == 4326 and crs_b.to_epsg() == 3857
    assert shapely.equals_exact(layer_a.geometry[0], layer_b.geometry[0], tolerance=0.01)
    assert shapely.area(layer_a.geometry[0]) == pytest.approx(0.001 * 111_200 * 0.001 * 71_900, rel=0.02)


def test_sites_as_lat_lon_or_as_projected_xy_agree(tmp_path: Path) -> None:
    utm = transformer(source=WGS84, target=UTM_33N)(np.array([PLZEN_LON_LAT]))[0]
    lat_lon = _sites_csv(tmp_path / "a.csv", [f"P1,existing,6,{PLZEN_LON_LAT[1]},{PLZEN_LON_LAT[0]}"])
    xy = _sites_csv(tmp_path / "b.csv", [f"P1,existing,6,{utm[0]},{utm[1]}"], header="id,kind,mount_height_m,x,y")
    a = read_sites(lat_lon, crs=UTM_33N, xy_crs=None)
    b = read_sites(xy, crs=UTM_33N, xy_crs="EPSG:32633")
    assert np.abs(a.xy_m - b.xy_m).max() < 1e-6
    assert a.site_id == ("P1",) and a.existing.tolist() == [True] and a.mount_height_m.tolist() == [6.0]


def test_footprint_heights_come_from_the_field_or_the_default(tmp_path: Path) -> None:
    path = _geojson(tmp_path / "b.geojson", [
        (_polygon(_square(*PLZEN_LON_LAT)), {"height": 12.5}),
        (_polygon(_square(PLZEN_LON_LAT[0] + 0.002, PLZEN_LON_LAT[1])), {"height": None}),
    ])  # fmt: skip
    footprints = read_footprints(path, crs=UTM_33N, height_field="height", default_height_m=9.0)
    assert footprints.height_m.tolist() == [12.5, 9.0]
    with pytest.raises(ConfigError, match=r"b\.geojson: feature 2: field height is empty"):
        read_footprints(path, crs=UTM_33N, height_field="height", default_height_m=None)


def test_missing_height_column_names_the_file_and_the_field(tmp_path: Path) -> None:
    path = _geojson(tmp_path / "b.geojson", [(_polygon(_square(*PLZEN_LON_LAT)), {"levels": 3})])
    with pytest.raises(ConfigError, match=r"b\.geojson: no height field 'height' \(fields: \['levels'\]\)"):
        read_footprints(path, crs=UTM_33N, height_field="height", default_height_m=None)
    assert read_footprints(path, crs=UTM_33N, height_field="height", default_height_m=10.0).height_m.tolist() == [10.0]


def test_self_intersecting_footprint_names_the_feature(tmp_path: Path) -> None:
    lon, lat = PLZEN_LON_LAT
    bow_tie = [[lon, lat], [lon + 0.001, lat + 0.001], [lon + 0.001, lat], [lon, lat + 0.001], [lon, lat]]
    path = _geojson(tmp_path / "b.geojson", [
        (_polygon(_square(lon, lat)), {"height": 10}), (_polygon(bow_tie), {"height": 10}),
    ])  # fmt: skip
    with pytest.raises(ConfigError, match=r"b\.geojson: feature 2: self-intersecting polygon"):
        read_footprints(path, crs=UTM_33N, height_field="height", default_height_m=None)


@pytest.mark.parametrize(
    ("geometry", "expected"),
    [
        (None, "feature 1: empty geometry"),
        ({"type": "Polygon", "coordinates": []}, "feature 1: empty geometry"),
        (
            {"type": "LineString", "coordinates": [[13.3, 49.7], [13.4, 49.8]]},
            "feature 1: LineString; expected a Polygon",
        ),
    ],
)
def test_empty_or_non_polygon_area_is_refused(tmp_path: Path, geometry: dict | None, expected: str) -> None:
    path = _geojson(tmp_path / "area.geojson", [(geometry, {})])
    with pytest.raises(ConfigError, match=rf"area\.geojson: {expected}"):
        read_layer(path, crs=UTM_33N, what="area")


def test_unknown_crs_is_refused_naming_where_it_came_from(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"inputs\.sites_crs: unknown CRS 'EPSG:999999'"):
        parse_crs("EPSG:999999", where="inputs.sites_crs")
    sites = _sites_csv(tmp_path / "s.csv", ["P1,existing,6,100,200"], header="id,kind,mount_height_m,x,y")
    with pytest.raises(ConfigError, match=r"s\.csv: inputs\.sites_crs: unknown CRS"):
        read_sites(sites, crs=UTM_33N, xy_crs="EPSG:999999")
    with pytest.raises(ConfigError, match="expected a projected CRS in metres"):
        working_crs(spec="EPSG:4326", area_lon_lat_deg=PLZEN_LON_LAT, key="inputs.working_crs")
    gpkg = tmp_path / "nocrs.gpkg"
    with pytest.warns(UserWarning, match="crs"):  # GDAL warns of exactly what we test
        pyogrio.raw.write(gpkg, np.array([shapely.to_wkb(shapely.box(0, 0, 10, 10))], dtype=object), [], [],
                          driver="GPKG", geometry_type="Polygon")  # fmt: skip
    with pytest.raises(ConfigError, match=r"nocrs\.gpkg: area layer has no CRS"):
        read_layer(gpkg, crs=UTM_33N, what="area")


def test_unreadable_layer_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "broken.geojson").write_text('{"type": "Feat')
    with pytest.raises(ConfigError, match=r"broken\.geojson: cannot read the footprints layer"):
        read_layer(tmp_path / "broken.geojson", crs=UTM_33N, what="footprints")


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("P1,existing,6,91.0,13.3", r"line 3: field lat = 91.0; expected a number in \[-90, 90\]"),
        ("P1,existing,6,49.7,east", r"line 3: field lon = 'east'; expected a number"),
        ("P2,pole,6,49.7,13.3", r"line 3: field kind = 'pole'; expected one of \('existing', 'candidate'\)"),
        ("P0,existing,6,49.7,13.3", r"line 3: field id = 'P0' repeats line 2"),
        (",existing,6,49.7,13.3", r"line 3: field id is empty"),
        ("P2,existing,-1,49.7,13.3", r"line 3: field mount_height_m = -1; expected a number in \[0, 300\]"),
    ],
)
def test_bad_site_rows_name_the_line_and_field(tmp_path: Path, row: str, expected: str) -> None:
    path = _sites_csv(tmp_path / "sites.csv", ["P0,existing,6,49.7,13.3", row])
    with pytest.raises(ConfigError, match=rf"sites\.csv: {expected}"):
        read_sites(path, crs=UTM_33N, xy_crs=None)


def test_sites_without_position_columns_are_refused(tmp_path: Path) -> None:
    path = _sites_csv(tmp_path / "sites.csv", ["P0,existing,6"], header="id,kind,mount_height_m")
    with pytest.raises(ConfigError, match=r"sites\.csv: columns .* expected id, kind, mount_height_m and lat, lon"):
        read_sites(path, crs=UTM_33N, xy_crs=None)


def test_site_outside_the_area_names_the_line_and_the_site(tmp_path: Path) -> None:
    lon, lat = PLZEN_LON_LAT
    path = _sites_csv(
        tmp_path / "sites.csv", [f"P0,existing,6,{lat + 0.0005},{lon + 0.0005}", f"C1,candidate,6,{lat + 0.01},{lon}"]
    )
    sites = read_sites(path, crs=UTM_33N, xy_crs=None)
    area, _ = read_layer(
        _geojson(tmp_path / "area.geojson", [(_polygon(_square(lon, lat)), {})]), crs=UTM_33N, what="area"
    )
    with pytest.raises(ConfigError, match=r"sites\.csv: line 3: site 'C1' lies 10\d\d m outside the area"):
        check_sites_inside(sites, area=area.geometry[0], path=path)


def test_noise_zones_need_both_levels_in_range(tmp_path: Path) -> None:
    ring = _polygon(_square(*PLZEN_LON_LAT))
    good, _ = read_layer(
        _geojson(tmp_path / "n.geojson", [(ring, {"day_db": 65, "night_db": 55})]), crs=UTM_33N, what="noise"
    )
    zones, day_db, night_db = noise_levels(good, day_db=60.0, night_db=50.0)
    assert [(d, n) for _, d, n in zones] == [(65.0, 55.0)] and (day_db, night_db) == (60.0, 50.0)
    missing, _ = read_layer(_geojson(tmp_path / "m.geojson", [(ring, {"day_db": 65})]), crs=UTM_33N, what="noise")
    with pytest.raises(ConfigError, match=r"m\.geojson: no field 'night_db'"):
        noise_levels(missing, day_db=60.0, night_db=50.0)
    loud, _ = read_layer(
        _geojson(tmp_path / "l.geojson", [(ring, {"day_db": 65, "night_db": 300})]), crs=UTM_33N, what="noise"
    )
    with pytest.raises(ConfigError, match=r"l\.geojson: feature 1: field night_db = 300"):
        noise_levels(loud, day_db=60.0, night_db=50.0)


def test_zone_names_default_and_must_be_unique(tmp_path: Path) -> None:
    ring = _polygon(_square(*PLZEN_LON_LAT))
    layer, _ = read_layer(_geojson(tmp_path / "z.geojson", [(ring, {"name": "market"}), (ring, {"name": None})]),
                          crs=UTM_33N, what="zones")  # fmt: skip
    assert zone_names(layer) == ["market", "zone 2"]
    twice, _ = read_layer(_geojson(tmp_path / "t.geojson", [(ring, {"name": "a"}), (ring, {"name": "a"})]),
                          crs=UTM_33N, what="zones")  # fmt: skip
    with pytest.raises(ConfigError, match=r"t\.geojson: feature 2: zone name 'a' repeats feature 1"):
        zone_names(twice)
