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
