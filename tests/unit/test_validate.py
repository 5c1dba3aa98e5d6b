"""``sedcity validate-config``: the file, and what starting ``sedcity server``/``sensor`` with it needs."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from sed.config import ServerConfig, load_config
from sed.keys import NetworkKeys
from sed.validate import environment_problems, main, store_problem
from tests.conftest import server_toml


@pytest.fixture
def network(tmp_path: Path) -> NetworkKeys:
    return NetworkKeys.create(tmp_path, ["pole-1", "pole-2"])


def _sensor_file(tmp_path: Path, network: NetworkKeys, *, position: str = "x_m = 1.0, y_m = 2.0", **extra: str) -> Path:
    path = tmp_path / "pole.toml"
    path.write_text(
        f"""
[sensor]
id = "pole-1"
position = {{ {position} }}
[capture]
source = "microphone"
{extra.get("capture", "")}
[transport]
secret_key_file = "{network.sensor_secret_key_files["pole-1"]}"
server_public_key_file = "{network.fusion_public_key_file}"
outbox_path = "{extra.get("outbox", tmp_path / "outbox.sqlite")}"
"""
    )
    return path


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    status = main(list(args), prog="sedcity validate-config")
    return status, capsys.readouterr().out.splitlines()


def test_a_complete_server_and_sensor_pass(tmp_path: Path, network: NetworkKeys, capsys) -> None:
    server, sensor = server_toml(tmp_path, network), _sensor_file(tmp_path, network)
    status, lines = _run(capsys, str(server), str(sensor))
    assert status == 0, lines
    assert lines == [f"{server}: ok (ServerConfig)", f"{sensor}: ok (SensorConfig)"]


def test_a_junk_key_in_the_authorized_keys_folder_is_named(tmp_path: Path, network: NetworkKeys, capsys) -> None:
    (network.authorized_keys_dir / "pole-9.key").write_text("not a certificate")
    status, lines = _run(capsys, str(server_toml(tmp_path, network)))
    assert status == 1
    assert len(lines) == 1 and "fusion.authorized_keys_dir" in lines[0] and "pole-9.key" in lines[0]


def test_a_junk_secret_key_is_named_with_its_key(tmp_path: Path, network: NetworkKeys, capsys) -> None:
    network.fusion_secret_key_file.write_text("garbage")
    status, lines = _run(capsys, str(server_toml(tmp_path, network)))
    assert status == 1 and len(lines) == 1
    assert "fusion.secret_key_file" in lines[0] and str(network.fusion_secret_key_file) in lines[0]


def test_authorized_keys_dir_pointing_at_a_file_is_refused(tmp_path: Path, network: NetworkKeys, capsys) -> None:
    server = server_toml(tmp_path, network, fusion={"authorized_keys_dir": str(network.fusion_public_key_file)})
    status, lines = _run(capsys, str(server))
    assert status == 1 and any("fusion.authorized_keys_dir" in line for line in lines)


def test_ports_in_use_are_named_by_key_and_value(
    tmp_path: Path, network: NetworkKeys, listening_port: int, capsys
) -> None:
    endpoint = f"tcp://127.0.0.1:{listening_port}"
    server = server_toml(tmp_path, network, fusion={"bind_endpoint": endpoint}, api={"port": listening_port})
    status, lines = _run(capsys, str(server))
    assert status == 1
    assert any("fusion.bind_endpoint" in line and endpoint in line and "in use" in line for line in lines), lines
    assert any("api.port" in line and str(listening_port) in line for line in lines), lines


def test_a_separate_api_does_not_need_the_fusion_nodes_endpoint(
    tmp_path: Path, network: NetworkKeys, listening_port: int
) -> None:
    server = server_toml(tmp_path, network, fusion={"bind_endpoint": f"tcp://127.0.0.1:{listening_port}"})
    config = load_config(server, ServerConfig)
    assert environment_problems(config, source="s.toml", role="api") == []
    assert [p for p in environment_problems(config, source="s.toml", role="fusion") if "bind_endpoint" in p]


def test_an_unresolvable_bind_host_is_named(tmp_path: Path, network: NetworkKeys, capsys) -> None:
    server = server_toml(tmp_path, network, fusion={"bind_endpoint": "tcp://no-such-host.invalid:5750"})
    status, lines = _run(capsys, str(server))
    assert status == 1 and any("fusion.bind_endpoint" in line and "no-such-host" in line for line in lines)


def test_a_sqlite_database_in_a_missing_folder_is_refused(tmp_path: Path, network: NetworkKeys, capsys) -> None:
    server = server_toml(tmp_path, network, store={"url": f"sqlite:///{tmp_path / 'absent' / 'sed.sqlite'}"})
    status, lines = _run(capsys, str(server))
    assert status == 1 and any("store.url" in line and "absent" in line for line in lines), lines


def test_an_unreachable_postgresql_is_reported_unless_offline(tmp_path: Path, network: NetworkKeys, capsys) -> None:
    pytest.importorskip("psycopg")
    with socket.socket() as sock:  # a port nobody listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        url = f"postgresql+psycopg://sed:a-real-password@127.0.0.1:{sock.getsockname()[1]}/sed"
        server = server_toml(tmp_path, network, store={"url": url})
        status, lines = _run(capsys, str(server))
        assert status == 1 and len(lines) == 1
        assert "store.url" in lines[0] and "unreachable" in lines[0]
        assert "a-real-password" not in lines[0]  # the password never reaches a terminal or a log
        status, lines = _run(capsys, "--offline", str(server))
    assert status == 0, lines


def test_store_problem_accepts_a_writable_sqlite_folder(tmp_path: Path) -> None:
    assert store_problem("x", f"sqlite:///{tmp_path / 'ok.sqlite'}") is None
    assert store_problem("x", "sqlite://") is None  # in memory


def test_sensor_outbox_folder_and_keys_are_checked(tmp_path: Path, network: NetworkKeys, capsys) -> None:
    network.sensor_secret_key_files["pole-1"].write_text("garbage")
    sensor = _sensor_file(tmp_path, network, outbox=str(tmp_path / "absent" / "outbox.sqlite"))
    status, lines = _run(capsys, str(sensor))
    assert status == 1 and len(lines) == 2, lines
    assert any("transport.secret_key_file" in line for line in lines)
    assert any("transport.outbox_path" in line and "absent" in line for line in lines)


def test_a_sensor_file_source_must_be_readable_audio(tmp_path: Path, network: NetworkKeys, capsys) -> None:
    (tmp_path / "replay.wav").write_bytes(b"RIFF-but-not-really")
    sensor = _sensor_file(tmp_path, network, capture='file = "replay.wav"').read_text()
    path = tmp_path / "pole.toml"
    path.write_text(sensor.replace('source = "microphone"', 'source = "file"'))
    status, lines = _run(capsys, str(path))
    assert status == 1 and any("capture.file" in line and "replay.wav" in line for line in lines), lines


@pytest.mark.parametrize(
    ("position", "capture"),
    [
        ("x_m = nan, y_m = 2.0", ""),  # a NaN position once killed the fusion thread
        ("x_m = 1.0, y_m = 2.0", f"start_utc_ns = {2**63}"),  # beyond int64: SQLite overflow
    ],
)
def test_values_the_server_cannot_store_are_refused(
    tmp_path: Path, network: NetworkKeys, capsys, position: str, capture: str
) -> None:
    status, lines = _run(capsys, str(_sensor_file(tmp_path, network, position=position, capture=capture)))
    assert status == 1 and lines and "ok (" not in lines[-1], lines


def test_a_bind_endpoint_that_is_not_an_address_is_refused(tmp_path: Path, network: NetworkKeys, capsys) -> None:
    server = server_toml(tmp_path, network, fusion={"bind_endpoint": "localhost-5750"})
    status, lines = _run(capsys, str(server))
    assert status == 1 and any("fusion.bind_endpoint" in line and "localhost-5750" in line for line in lines), lines
