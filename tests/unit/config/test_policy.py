"""``[fusion.policy]``: per-class tables with defaults, strict keys, ranges, the example config."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from sed import wire
from sed.config import PolicySection, ServerConfig, load_config
from sed.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
FUSION = '[fusion]\nsecret_key_file = "fusion.key_secret"\nauthorized_keys_dir = "authorized"\n'


def _load(tmp_path: Path, text: str) -> ServerConfig:
    (tmp_path / "authorized").mkdir(exist_ok=True)
    (tmp_path / "fusion.key_secret").write_text("x")
    path = tmp_path / "server.toml"
    path.write_text(FUSION + text)
    config = load_config(path)
    assert isinstance(config, ServerConfig)
    return config


def test_without_a_policy_section_every_class_has_the_defaults(tmp_path: Path) -> None:
    policy = _load(tmp_path, "").fusion.policy
    assert policy.enabled
    for label in wire.Label:
        table = policy.of(label)
        assert (table.min_sensors, table.confirm_score) == (2, 0.9)
        assert (table.storm_incidents, table.storm_window_s, table.sensor_max_per_hour) == (10, 300.0, 20)


def test_a_class_table_changes_only_the_keys_it_names(tmp_path: Path) -> None:
    text = "[fusion.policy.scream]\nconfirm_score = 0.95\nsensor_max_per_hour = 6\n"
    policy = _load(tmp_path, text).fusion.policy
    assert (policy.scream.confirm_score, policy.scream.sensor_max_per_hour, policy.scream.min_sensors) == (0.95, 6, 2)
    assert policy.gunshot == PolicySection().gunshot


def test_every_wire_class_has_a_table() -> None:
    assert set(PolicySection.model_fields) - {"enabled"} == {str(label) for label in wire.Label}


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("[fusion.policy.fireworks]\nconfirm_score = 0.5\n", "fusion.policy.fireworks: unknown key"),
        ("[fusion.policy.gunshot]\nconfirm = 0.5\n", "fusion.policy.gunshot.confirm: unknown key"),
        ("[fusion.policy]\nstorm_incidents = 5\n", "fusion.policy.storm_incidents: unknown key"),
        ("[fusion.policy.gunshot]\nconfirm_score = 1.5\n", "fusion.policy.gunshot.confirm_score = 1.5; "),
        ("[fusion.policy.scream]\nmin_sensors = 0\n", "fusion.policy.scream.min_sensors = 0; "),
        ("[fusion.policy.glass_break]\nstorm_window_s = 0\n", "fusion.policy.glass_break.storm_window_s = 0; "),
        ("[fusion.policy.gunshot]\nstorm_window_s = inf\n", "fusion.policy.gunshot.storm_window_s = inf; "),
        ("[fusion.policy.gunshot]\nsensor_max_per_hour = 0\n", "fusion.policy.gunshot.sensor_max_per_hour = 0; "),
        ("[fusion.policy.gunshot]\nstorm_incidents = 0\n", "fusion.policy.gunshot.storm_incidents = 0; "),
    ],
)
def test_bad_policy_keys_and_values_are_refused_naming_the_key(tmp_path: Path, text: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(complaint)):
        _load(tmp_path, text)


def test_an_environment_variable_overrides_one_class_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SED__FUSION__POLICY__GLASS_BREAK__MIN_SENSORS", "1")
    assert _load(tmp_path, "").fusion.policy.glass_break.min_sensors == 1


def test_the_example_server_config_lists_valid_policy_tables() -> None:
    raw = tomllib.loads((ROOT / "deploy" / "server.toml").read_text())
    policy = PolicySection.model_validate(raw["fusion"]["policy"])
    assert {"gunshot", "scream", "glass_break"} <= set(raw["fusion"]["policy"])
    assert policy.enabled
