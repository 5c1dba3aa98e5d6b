"""Sensor config streams, heartbeats per stream, and the systemd notifications."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from sed import wire
from sed.capture import systemd
from sed.capture.clock import SampleClock
from sed.capture.daemon import _Health, stream_infos
from sed.capture.outbox import Outbox
from sed.capture.pipeline import SensorPipeline
from sed.capture.sources import Block
from sed.config import SensorConfig, load_config, parse_config
from sed.errors import ConfigError
from sed.models import StreamingDetector
from tests.unit.capture.energy_model import build_energy_model


@pytest.fixture
def sensor_raw(tmp_path: Path, curve_keys: Callable[..., dict[str, Path]]) -> dict:
    keys = curve_keys("pole-7")
    return {
        "sensor": {"id": "pole-7", "position": {"x_m": 1.0, "y_m": 2.0}},
        "capture": {"source": "microphone"},
        "transport": {"secret_key_file": str(keys["pole-7"]), "server_public_key_file": str(keys["fusion_public"])},
    }


def _config(raw: dict, **capture: object) -> SensorConfig:
    return parse_config({**raw, "capture": {**raw["capture"], **capture}}, SensorConfig)


def test_one_channel_reports_as_the_sensor_several_as_its_sub_ids(sensor_raw: dict) -> None:
    assert [s.sensor_id for s in stream_infos(_config(sensor_raw))] == ["pole-7"]
    infos = stream_infos(_config(sensor_raw, channels=[0, 2]))
    assert [s.sensor_id for s in infos] == ["pole-7.0", "pole-7.2"]
    assert {s.position for s in infos} == {wire.Position(x_m=1.0, y_m=2.0, z_m=0.0)}


def test_explicit_streams_carry_their_own_positions(sensor_raw: dict) -> None:
    sensor_raw["sensor"]["streams"] = [
        {"id": "pole-7.north", "position": {"x_m": 1.0, "y_m": 2.1}},
        {"id": "pole-7.south"},
    ]
    infos = stream_infos(_config(sensor_raw, channels=[1, 0]))
    assert [(s.sensor_id, s.position.y_m) for s in infos] == [("pole-7.north", 2.1), ("pole-7.south", 2.0)]


@pytest.mark.parametrize(
    ("streams", "channels", "message"),
    [
        ([{"id": "pole-8.a"}], [0], r"sensor.streams.0.id = 'pole-8.a'; expected 'pole-7' or 'pole-7.<suffix>'"),
        ([{"id": "pole-7.a"}, {"id": "pole-7.b"}], [0], r"sensor.streams has 2 entries; capture.channels = \[0\]"),
        ([{"id": "pole-7.a"}, {"id": "pole-7.a"}], [0, 1], r"duplicate id"),
        ([], [1, 1], r"capture.channels = \[1, 1\]; a channel is listed twice"),
    ],
)
def test_inconsistent_streams_are_refused_naming_the_key(
    sensor_raw: dict, streams: list, channels: list, message: str
) -> None:
    sensor_raw["sensor"]["streams"] = streams
    with pytest.raises(ConfigError, match=message):
        _config(sensor_raw, channels=channels)


def test_heartbeat_per_stream_with_levels_clock_and_outbox(sensor_raw: dict, tmp_path: Path) -> None:
    config = _config(sensor_raw, channels=[0, 1])
    outbox = Outbox(tmp_path / "outbox.sqlite")
    outbox.put("pending", b"x")
    pipeline = SensorPipeline(
        streams=stream_infos(config),
        detector=StreamingDetector.from_file(build_energy_model(tmp_path / "energy.onnx"), n_streams=2),
        clock=SampleClock(sample_rate_hz=16000, anchor_ns=1),
        evidence=config.evidence,
        submit=lambda message: None,
    )
    audio = np.zeros((2, 1600), np.float32)
    audio[1] = 0.01
    pipeline.process(Block(samples=audio, first_sample=0))
    first, second = _Health(config, pipeline, outbox).heartbeats()
    assert (first.sensor_id, second.sensor_id) == ("pole-7.0", "pole-7.1")
    assert first.input_rms_dbfs == -200.0 and second.input_rms_dbfs == pytest.approx(-40.0, abs=0.01)
    assert first.outbox_depth == second.outbox_depth == 1
    assert first.clock_status is wire.ClockStatus.SYNCED
    assert first.model_version == "energy-test-1"
    assert wire.decode(wire.encode(second)) == second


def test_systemd_gets_notifications_and_watchdog_pings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    address = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(address))
        server.settimeout(2.0)
        monkeypatch.setenv("NOTIFY_SOCKET", str(address))
        monkeypatch.setenv("WATCHDOG_USEC", "2000000")
        assert systemd.notify("READY=1")
        watchdog = systemd.Watchdog()
        assert watchdog.interval_ns == 1_000_000_000
        watchdog.ping()
        watchdog.ping()  # not due yet: one ping per half interval
        systemd.notify("STOPPING=1")
        received = [server.recv(100) for _ in range(3)]
    assert received == [b"READY=1", b"WATCHDOG=1", b"STOPPING=1"]


def test_outside_systemd_notifications_are_no_ops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert systemd.notify("READY=1") is False
    assert systemd.Watchdog().interval_ns == 0


def test_example_pole_config_in_deploy_is_valid(
    curve_keys: Callable[..., dict[str, Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = curve_keys("pole-017")
    monkeypatch.setenv("SED__TRANSPORT__SECRET_KEY_FILE", str(keys["pole-017"]))
    monkeypatch.setenv("SED__TRANSPORT__SERVER_PUBLIC_KEY_FILE", str(keys["fusion_public"]))
    config = load_config(Path(__file__).resolve().parents[3] / "deploy" / "pole.toml", SensorConfig)
    assert config.sensor.id == "pole-017"
    assert config.capture.source == "microphone" and config.capture.sample_rate_hz == 48000
    assert config.evidence.enabled and (config.evidence.pre_s, config.evidence.post_s) == (1.0, 2.0)
