"""``sed sensor`` as a process: several streams in one daemon, clean shutdown, systemd, bad config.

The model is the loudness detector of :mod:`tests.unit.capture.energy_model`, so the
test knows which sounds must be reported and when they began.
"""

from __future__ import annotations

import io
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.conftest import shot_burst
from tests.integration.sensor_support import FusionNode, sed_process, sensor_config, wait_for
from tests.unit.capture.energy_model import build_energy_model

pytestmark = pytest.mark.slow

START_NS = 1_800_000_000_000_000_000


@pytest.fixture
def fusion(tmp_path: Path, curve_keys: Callable[..., dict[str, Path]]) -> Iterator[tuple[FusionNode, dict[str, Path]]]:
    keys = curve_keys("pole-1")
    node = FusionNode(tmp_path, keys)
    node.start()
    yield node, keys
    node.stop()


def _recording(path: Path, rng: np.random.Generator, onsets_s: list[list[float]], duration_s: float) -> Path:
    """A multichannel 48 kHz WAV: noise, and shot-like bursts at ``onsets_s[channel]``."""
    rate = 48000
    audio = (rng.standard_normal((round(duration_s * rate), len(onsets_s))) * 1e-3).astype(np.float32)
    for channel, onsets in enumerate(onsets_s):
        for onset_s in onsets:
            burst = 0.5 * shot_burst(rng, sample_rate_hz=rate)
            start = round(onset_s * rate)
            audio[start : start + burst.size, channel] += burst
    soundfile.write(path, audio, rate, subtype="PCM_24")
    return path


def _run_to_end(config: Path, log: Path, timeout_s: float = 60) -> None:
    process = sed_process(["sensor", "--config", str(config)], log)
    assert process.wait(timeout=timeout_s) == 0, log.read_text()


def test_one_daemon_serves_two_channels_as_two_streams(fusion, tmp_path: Path, rng: np.random.Generator) -> None:
    node, keys = fusion
    wav = _recording(tmp_path / "array.wav", rng, [[1.5, 4.2], [2.7]], duration_s=6.0)
    config = sensor_config(
        tmp_path / "pole.toml",
        sensor_id="pole-1",
        keys=keys,
        endpoint=node.endpoint,
        capture={"source": "file", "file": str(wav), "realtime": False, "channels": [0, 1], "start_utc_ns": START_NS},
        model=build_energy_model(tmp_path / "energy.onnx"),
        evidence={"pre_s": 0.5, "post_s": 1.0},
    )
    _run_to_end(config, tmp_path / "sensor.log")
    rows = node.query("SELECT sensor_id, arrival_time_ns, clock_status FROM detections ORDER BY arrival_time_ns")
    assert [(sensor, status) for sensor, _, status in rows] == [
        ("pole-1.0", "synced"),
        ("pole-1.1", "synced"),
        ("pole-1.0", "synced"),
    ]
    for (_, arrival_ns, _), onset_s in zip(rows, [1.5, 2.7, 4.2], strict=True):
        assert abs(arrival_ns - (START_NS + onset_s * 1e9)) < 1e6  # picked to better than 1 ms
    clips = node.query("SELECT detection_id, data FROM clips")
    assert len(clips) == 3
    for _, data in clips:
        samples, rate = soundfile.read(io.BytesIO(data))
        assert rate == 16000 and samples.size == 24000
    heartbeats = dict(node.query("SELECT sensor_id, heartbeat FROM sensors"))
    assert set(heartbeats) == {"pole-1.0", "pole-1.1"}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_the_daemon_cleanly_and_flushes_what_is_pending(
    fusion, tmp_path: Path, rng: np.random.Generator, sig: signal.Signals
) -> None:
    node, keys = fusion
    wav = _recording(tmp_path / "one.wav", rng, [[1.0]], duration_s=30.0)
    config = sensor_config(
        tmp_path / "pole.toml",
        sensor_id="pole-1",
        keys=keys,
        endpoint=node.endpoint,
        capture={"source": "file", "file": str(wav), "realtime": True},
        model=build_energy_model(tmp_path / "energy.onnx"),
        evidence={"pre_s": 1.0, "post_s": 5.0},  # the clip waits for audio that will never come
    )
    log = tmp_path / "sensor.log"
    process = sed_process(["sensor", "--config", str(config)], log)
    wait_for(node.detection_ids, timeout_s=30, what="the detection")
    assert node.query("SELECT COUNT(*) FROM clips") == [(0,)]
    process.send_signal(sig)
    assert process.wait(timeout=10) == 0, log.read_text()
    (detection_id,) = node.detection_ids()
    ((clip_data,),) = node.query("SELECT data FROM clips WHERE detection_id = ?", detection_id)
    samples, _ = soundfile.read(io.BytesIO(clip_data))
    assert 1.0 * 16000 < samples.size < 5.0 * 16000  # sent with the audio that existed
    outbox = sqlite3.connect(tmp_path / "outbox-pole-1.sqlite")
    assert outbox.execute("SELECT COUNT(*) FROM outbox").fetchone() == (0,)
    assert f"signal {sig.name}: shutting down" in log.read_text()


def test_daemon_reports_ready_and_feeds_the_systemd_watchdog(
    tmp_path: Path, curve_keys: Callable[..., dict[str, Path]], rng: np.random.Generator
) -> None:
    keys = curve_keys("pole-1")
    wav = _recording(tmp_path / "short.wav", rng, [[]], duration_s=3.0)
    config = sensor_config(
        tmp_path / "pole.toml",
        sensor_id="pole-1",
        keys=keys,
        endpoint="tcp://127.0.0.1:9",  # nobody listens: the outbox keeps everything
        capture={"source": "file", "file": str(wav), "realtime": True},
        model=build_energy_model(tmp_path / "energy.onnx"),
    )
    address = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(address))
        server.settimeout(30)
        process = sed_process(
            ["sensor", "--config", str(config)],
            tmp_path / "sensor.log",
            env={"NOTIFY_SOCKET": str(address), "WATCHDOG_USEC": "400000"},
        )
        messages = []
        while not messages or messages[-1] != "STOPPING=1":
            messages.append(server.recv(100).decode())
    assert process.wait(timeout=10) == 0
    assert messages[0] == "READY=1"
    assert 4 <= messages.count("WATCHDOG=1") <= 20  # every 0.2 s of a 3 s stream
    assert messages[-1] == "STOPPING=1"


def test_bad_config_key_is_a_one_line_error(tmp_path: Path, curve_keys: Callable[..., dict[str, Path]]) -> None:
    keys = curve_keys("pole-1")
    config = sensor_config(
        tmp_path / "pole.toml",
        sensor_id="pole-1",
        keys=keys,
        endpoint="tcp://127.0.0.1:9",
        capture={"source": "microphone", "sample_rate": 48000},
    )
    result = subprocess.run(
        [sys.executable, "-m", "sed.cli", "sensor", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "capture.sample_rate: unknown key" in result.stderr
