"""Configuration files: validation, error messages, environment overrides, path resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from sed.config import SceneConfig, SensorConfig, ServerConfig, load_config
from sed.errors import ConfigError

SENSOR_TOML = """
[sensor]
id = "pole-017"
position = {{ x_m = 12.5, y_m = -3.0, z_m = 6.0 }}

[capture]
source = "scene"
scene = "scene.toml"
{extra_capture}

[transport]
fusion_endpoint = "tcp://127.0.0.1:5750"
secret_key_file = "keys/pole-017.key_secret"
server_public_key_file = "keys/fusion.key"
"""

SCENE_TOML = """
[scene]
duration_s = 10
[[scene.sensors]]
id = "pole-017"
x_m = 0
y_m = 0
[[scene.events]]
label = "gunshot"
time_s = 2
x_m = 50
y_m = 20
"""


@pytest.fixture
def sensor_dir(tmp_path: Path) -> Path:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "pole-017.key_secret").write_text("x")
    (tmp_path / "keys" / "fusion.key").write_text("x")
    (tmp_path / "scene.toml").write_text(SCENE_TOML)
    return tmp_path


def _write(directory: Path, text: str, name: str = "pole.toml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


def test_valid_sensor_file_loads_with_paths_resolved_next_to_it(sensor_dir: Path) -> None:
    config = load_config(_write(sensor_dir, SENSOR_TOML.format(extra_capture="")))
    assert isinstance(config, SensorConfig)
    assert config.transport.secret_key_file == (sensor_dir / "keys" / "pole-017.key_secret").resolve()
    assert config.capture.scene == (sensor_dir / "scene.toml").resolve()
    assert config.sensor.position.to_wire().z_m == 6.0


def test_unknown_key_is_rejected_with_file_and_key_path(sensor_dir: Path) -> None:
    path = _write(sensor_dir, SENSOR_TOML.format(extra_capture="sampel_rate_hz = 16000"))
    with pytest.raises(ConfigError, match=r"pole\.toml: capture\.sampel_rate_hz: unknown key"):
        load_config(path)


def test_bad_value_names_key_value_and_expectation(sensor_dir: Path) -> None:
    path = _write(sensor_dir, SENSOR_TOML.format(extra_capture="sample_rate_hz = 44000"))
    with pytest.raises(ConfigError, match=r"capture\.sample_rate_hz = 44000; expected one of"):
        load_config(path)
    path = _write(sensor_dir, SENSOR_TOML.format(extra_capture="block_ms = 5"))
    with pytest.raises(ConfigError, match=r"capture\.block_ms = 5; Input should be greater than or equal to 10"):
        load_config(path)


def test_missing_key_file_is_refused_at_load_time(sensor_dir: Path) -> None:
    (sensor_dir / "keys" / "fusion.key").unlink()
    with pytest.raises(ConfigError, match=r"transport\.server_public_key_file = .*fusion\.key'; no such file"):
        load_config(_write(sensor_dir, SENSOR_TOML.format(extra_capture="")))


def test_missing_section_and_bad_toml_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"transport: required key missing"):
        load_config(_write(tmp_path, '[sensor]\nid="a"\nposition={x_m=0,y_m=0}\n[capture]\nsource="file"\n'))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(_write(tmp_path, "[sensor\n"))
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.toml")


def test_environment_overrides_file_values(sensor_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SED__CAPTURE__BLOCK_MS", "40")
    monkeypatch.setenv("SED__SENSOR__ID", "pole-099")
    config = load_config(_write(sensor_dir, SENSOR_TOML.format(extra_capture="")), SensorConfig)
    assert config.capture.block_ms == 40.0
    assert config.sensor.id == "pole-099"


def test_server_config_needs_fusion_keys(tmp_path: Path) -> None:
    (tmp_path / "authorized").mkdir()
    (tmp_path / "fusion.key_secret").write_text("x")
    text = '[fusion]\nsecret_key_file = "fusion.key_secret"\nauthorized_keys_dir = "authorized"\n'
    config = load_config(_write(tmp_path, text, "server.toml"))
    assert isinstance(config, ServerConfig)
    assert config.fusion.min_sensors == 3
    (tmp_path / "authorized").rmdir()
    with pytest.raises(ConfigError, match=r"fusion\.authorized_keys_dir"):
        load_config(_write(tmp_path, text, "server.toml"))


def test_scene_checks_events_against_duration_and_duplicate_sensors(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, SCENE_TOML, "scene.toml"))
    assert isinstance(config, SceneConfig)
    late = SCENE_TOML.replace("time_s = 2", "time_s = 12")
    with pytest.raises(ConfigError, match=r"scene\.events\.0\.time_s = 12.0; must be before scene\.duration_s"):
        load_config(_write(tmp_path, late, "scene.toml"))
    twice = SCENE_TOML + '[[scene.sensors]]\nid = "pole-017"\nx_m = 1\ny_m = 1\n'
    with pytest.raises(ConfigError, match=r"duplicate id\(s\) \['pole-017'\]"):
        load_config(_write(tmp_path, twice, "scene.toml"))


def test_values_of_secret_keys_are_not_echoed(tmp_path: Path) -> None:
    (tmp_path / "authorized").mkdir()
    (tmp_path / "fusion.key_secret").write_text("x")
    text = '[fusion]\nsecret_key_file = "fusion.key_secret"\nauthorized_keys_dir = "authorized"\n[store]\nurl = 42\n'
    with pytest.raises(ConfigError, match=r"store\.url = <hidden>") as caught:
        load_config(_write(tmp_path, text, "server.toml"))
    assert "42" not in str(caught.value)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "+nan"])
def test_non_finite_position_is_refused_naming_file_key_and_value(sensor_dir: Path, value: str) -> None:
    text = SENSOR_TOML.format(extra_capture="").replace("x_m = 12.5", f"x_m = {value}")
    with pytest.raises(ConfigError, match=r"pole\.toml: sensor\.position\.x_m = [-+]?(nan|inf); .*finite number"):
        load_config(_write(sensor_dir, text))


def test_non_finite_value_from_the_environment_is_refused(sensor_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SED__CLOCK__INPUT_LATENCY_MS", "nan")
    with pytest.raises(ConfigError, match=r"clock\.input_latency_ms = nan"):
        load_config(_write(sensor_dir, SENSOR_TOML.format(extra_capture="")))


@pytest.mark.parametrize(("key", "value"), [("x_m", "2e7"), ("y_m", "-1e8"), ("z_m", "20000.0")])
def test_implausible_sensor_position_is_refused(sensor_dir: Path, key: str, value: str) -> None:
    position = {"x_m": "1.0", "y_m": "1.0", "z_m": "1.0", key: value}
    inline = ", ".join(f"{k} = {v}" for k, v in position.items())
    text = SENSOR_TOML.format(extra_capture="").replace("x_m = 12.5, y_m = -3.0, z_m = 6.0", inline)
    with pytest.raises(ConfigError, match=rf"sensor\.position\.{key} = {float(value)!r}; Input should be"):
        load_config(_write(sensor_dir, text))


def test_start_time_beyond_int64_is_refused(sensor_dir: Path) -> None:
    path = _write(sensor_dir, SENSOR_TOML.format(extra_capture=f"start_utc_ns = {2**63}"))
    with pytest.raises(ConfigError, match=rf"capture\.start_utc_ns = {2**63}; .*less than or equal to {2**63 - 1}"):
        load_config(path)
    config = load_config(_write(sensor_dir, SENSOR_TOML.format(extra_capture=f"start_utc_ns = {2**63 - 1}")))
    assert config.capture.start_utc_ns == 2**63 - 1


def test_scene_rejects_non_finite_or_implausible_values(tmp_path: Path) -> None:
    for old, new, key in (
        ("x_m = 50", "x_m = nan", r"scene\.events\.0\.x_m = nan"),
        ("x_m = 0", "x_m = 1e9", r"scene\.sensors\.0\.x_m = 1000000000\.0"),
        ("duration_s = 10", f"duration_s = 10\nseed = {2**64}", r"scene\.seed = "),
    ):
        with pytest.raises(ConfigError, match=key):
            load_config(_write(tmp_path, SCENE_TOML.replace(old, new, 1), "scene.toml"))


def test_thresholds_must_be_scores(sensor_dir: Path) -> None:
    text = SENSOR_TOML.format(extra_capture="") + "[detector]\nthresholds = { gunshot = nan }\n"
    with pytest.raises(ConfigError, match=r"detector\.thresholds\.gunshot = nan"):
        load_config(_write(sensor_dir, text))


@pytest.mark.parametrize(
    ("endpoint", "complaint"),
    [
        ("localhost:5750", "not a ZeroMQ endpoint"),
        ("tcp://fusion.example", "no port"),
        ("tcp://fusion.example:99999", "port '99999'"),
        ("tcp://fusion.example:0", "port '0'"),
        ("tcp://*:5750", r"host '\*'"),
        ("tcp://:5750", "no port|host"),
        ("tcp://fus ion:5750", "host 'fus ion'"),
        ("tcp://[::zz]:5750", "not an IPv6 address"),
        ("udp://fusion.example:5750", "transport 'udp'"),
        ("tcp://fusion.example:5٧50", "port"),
    ],
)
def test_unparsable_connect_endpoint_is_refused_naming_the_key(sensor_dir: Path, endpoint: str, complaint: str) -> None:
    text = SENSOR_TOML.format(extra_capture="").replace("tcp://127.0.0.1:5750", endpoint)
    with pytest.raises(ConfigError, match=rf"pole\.toml: transport\.fusion_endpoint = .*({complaint})") as caught:
        load_config(_write(sensor_dir, text))
    assert "Value error" not in str(caught.value)  # pydantic's prefix, noise in a config error


def test_a_huge_bad_value_is_quoted_shortened(sensor_dir: Path) -> None:
    text = SENSOR_TOML.format(extra_capture="").replace("tcp://127.0.0.1:5750", "x" * 100_000)
    with pytest.raises(ConfigError, match=r"transport\.fusion_endpoint = 'x+…; not a ZeroMQ endpoint") as caught:
        load_config(_write(sensor_dir, text))
    assert len(str(caught.value)) < 500


@pytest.mark.parametrize(
    "endpoint", ["tcp://fusion.city.example:5750", "tcp://10.0.0.2:5750", "tcp://[::1]:5750", "ipc:///run/sed.sock"]
)
def test_valid_connect_endpoints_load(sensor_dir: Path, endpoint: str) -> None:
    text = SENSOR_TOML.format(extra_capture="").replace("tcp://127.0.0.1:5750", endpoint)
    assert load_config(_write(sensor_dir, text)).transport.fusion_endpoint == endpoint


def _server_dir(tmp_path: Path) -> Path:
    (tmp_path / "authorized").mkdir()
    (tmp_path / "fusion.key_secret").write_text("x")
    return tmp_path


SERVER_TOML = '[fusion]\nsecret_key_file = "fusion.key_secret"\nauthorized_keys_dir = "authorized"\n'


@pytest.mark.parametrize(
    ("endpoint", "ok"),
    [
        ("tcp://*:5750", True),
        ("tcp://127.0.0.1:0", True),
        ("tcp://eth0:*", True),
        ("tcp://*", False),
        ("inproc://", False),
        ("tcp://*:65536", False),
    ],
)
def test_bind_endpoint_is_parsed(tmp_path: Path, endpoint: str, ok: bool) -> None:
    path = _write(_server_dir(tmp_path), SERVER_TOML + f'bind_endpoint = "{endpoint}"\n', "server.toml")
    if ok:
        assert load_config(path).fusion.bind_endpoint == endpoint
    else:
        with pytest.raises(ConfigError, match=r"server\.toml: fusion\.bind_endpoint = "):
            load_config(path)


def test_authorized_keys_dir_must_be_a_folder(tmp_path: Path) -> None:
    _server_dir(tmp_path)
    (tmp_path / "keys.txt").write_text("x")
    text = SERVER_TOML.replace('"authorized"', '"keys.txt"')
    with pytest.raises(ConfigError, match=r"fusion\.authorized_keys_dir = '.*keys\.txt'; not a folder"):
        load_config(_write(tmp_path, text, "server.toml"))


def test_sqlite_store_in_a_missing_folder_is_refused(tmp_path: Path) -> None:
    _server_dir(tmp_path)
    missing = tmp_path / "no" / "such" / "sed.sqlite"
    text = SERVER_TOML + f'[store]\nurl = "sqlite:///{missing}"\n'
    with pytest.raises(ConfigError, match=rf"store\.url = .*; folder '{tmp_path / 'no' / 'such'}' does not exist"):
        load_config(_write(tmp_path, text, "server.toml"))
    existing = SERVER_TOML + f'[store]\nurl = "sqlite:///{tmp_path / "sed.sqlite"}"\n'
    assert load_config(_write(tmp_path, existing, "server.toml")).store.url.endswith("sed.sqlite")
    in_memory = SERVER_TOML + '[store]\nurl = "sqlite://"\n'
    assert load_config(_write(tmp_path, in_memory, "server.toml")).store.url == "sqlite://"


def test_site_radius_and_stream_bound_have_safe_defaults_and_bounds(tmp_path: Path) -> None:
    config = load_config(_write(_server_dir(tmp_path), SERVER_TOML, "server.toml"))
    assert (config.site.radius_m, config.fusion.max_streams_per_sensor) == (20_000.0, 64)
    for section, key, value in (
        ("site", "radius_m", "0"),
        ("site", "radius_m", "inf"),
        ("fusion", "max_streams_per_sensor", "0"),
    ):
        text = SERVER_TOML + f"{key} = {value}\n" if section == "fusion" else f"[site]\n{key} = {value}\n" + SERVER_TOML
        with pytest.raises(ConfigError, match=rf"{section}\.{key} = "):
            load_config(_write(tmp_path, text, "server.toml"))
