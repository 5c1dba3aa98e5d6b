"""Shared fixtures: synthetic audio with known ground truth, keys, and the shared-data gate."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import tomli_w

from sed.keys import NetworkKeys
from sed.paths import shared_data_dir, yamnet_dir
from sed.units import speed_of_sound_m_per_s

SAMPLE_RATE_HZ = 16000


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip data/yamnet tests with a clear reason when the shared folders are absent."""
    data, yamnet = shared_data_dir(), yamnet_dir()
    for item in items:
        if "data" in item.keywords and data is None:
            item.add_marker(pytest.mark.skip(reason="../shared/data not found (set SED_SHARED_DATA)"))
        if "yamnet" in item.keywords and yamnet is None:
            item.add_marker(pytest.mark.skip(reason="../shared/models/yamnet not found (set SED_YAMNET_DIR)"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261121)


@pytest.fixture
def data_dir() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip("../shared/data not found (set SED_SHARED_DATA)")
    return path


def tone(freq_hz: float, duration_s: float, sample_rate_hz: int = SAMPLE_RATE_HZ, amplitude: float = 0.5) -> np.ndarray:
    """A sine, float32."""
    t = np.arange(round(duration_s * sample_rate_hz)) / sample_rate_hz
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def impulse(at_s: float, duration_s: float, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """A unit impulse at ``at_s`` in silence, float32."""
    out = np.zeros(round(duration_s * sample_rate_hz), dtype=np.float32)
    out[round(at_s * sample_rate_hz)] = 1.0
    return out


def shot_burst(rng: np.random.Generator, sample_rate_hz: int = SAMPLE_RATE_HZ, decay_s: float = 0.03) -> np.ndarray:
    """A decaying noise burst with a steep onset at sample 0 that sounds like a shot, peak 1."""
    t = np.arange(round(0.3 * sample_rate_hz)) / sample_rate_hz
    burst = rng.standard_normal(t.size) * np.exp(-t / decay_s)
    return (burst / np.abs(burst).max()).astype(np.float32)


def scene_arrivals_ns(
    source_xy_m: tuple[float, float],
    sensors_xy_m: list[tuple[float, float]],
    *,
    emission_ns: int = 1_700_000_000_000_000_000,
    temperature_c: float = 15.0,
    z_m: float = 0.0,
) -> list[int]:
    """Exact arrival times (UTC ns) of a sound emitted at ``source_xy_m`` at each sensor (same height)."""
    c = speed_of_sound_m_per_s(temperature_c)
    return [
        emission_ns + round(np.hypot(sx - source_xy_m[0], sy - source_xy_m[1]) / c * 1e9) for sx, sy in sensors_xy_m
    ]


@pytest.fixture
def curve_keys(tmp_path: Path) -> Callable[..., dict[str, Path]]:
    """Make a fusion key pair and sensor key pairs; register the sensors (not the 'unregistered' ones).

    Returns paths by name: "fusion" (secret), "fusion_public", "authorized_keys_dir", and each sensor's secret.
    """

    def make(*sensor_ids: str, unregistered: tuple[str, ...] = ()) -> dict[str, Path]:
        keys = NetworkKeys.create(tmp_path, sensor_ids, unregistered=unregistered)
        return {
            "fusion": keys.fusion_secret_key_file,
            "fusion_public": keys.fusion_public_key_file,
            "authorized_keys_dir": keys.authorized_keys_dir,
            **keys.sensor_secret_key_files,
        }

    return make


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that another process (this test) is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def server_toml(tmp_path: Path, network: NetworkKeys, **sections: dict) -> Path:
    """``tmp_path/server.toml`` for ``network`` on free loopback ports and SQLite, ``sections`` merged in."""
    raw: dict[str, dict] = {
        "fusion": {
            "bind_endpoint": "tcp://127.0.0.1:0",
            "secret_key_file": str(network.fusion_secret_key_file),
            "authorized_keys_dir": str(network.authorized_keys_dir),
        },
        "api": {"host": "127.0.0.1", "port": 0},
        "store": {"url": f"sqlite:///{tmp_path / 'sed.sqlite'}"},
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    path = tmp_path / "server.toml"
    path.write_text(tomli_w.dumps(raw))
    return path
