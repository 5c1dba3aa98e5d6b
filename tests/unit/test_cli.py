"""The ``sedcity`` console script: its name, one line per input problem, help text, next steps."""

from __future__ import annotations

import csv
import importlib.metadata
import io
import socket
import subprocess
import sys
import types
from pathlib import Path

import pytest

from sed import cli
from sed.keys import NetworkKeys
from sed.runtime import CONSOLE_SCRIPT, plain_help
from sed.store import Store
from tests.conftest import server_toml


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A folder of bad inputs: each file is wrong in one way."""
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "not_utf8.csv").write_bytes(b"path,label\n\xff\xfe.wav,gunshot\n")
    with (tmp_path / "all_unreadable.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerows([["path", "label"], ["missing.wav", "gunshot"], ["junk.wav", "scream"]])
    (tmp_path / "junk.wav").write_bytes(b"RIFF....WAVEjunk")
    (tmp_path / "bad.toml").write_text("[fusion\n")
    (tmp_path / "folder").mkdir()
    return tmp_path


def _server_toml(tmp_path: Path, **sections: dict) -> Path:
    return server_toml(tmp_path, NetworkKeys.create(tmp_path, ["pole-1"]), **sections)


def _fails_in_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], *, names: str) -> str:
    """Run ``argv``; it must exit 2 with one error line naming ``names`` and no traceback."""
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    # Progress bars and "skipped: …" notes may precede it; the verdict is one line of its own.
    verdict = [line for line in err.splitlines() if line.startswith(CONSOLE_SCRIPT)]
    assert len(verdict) == 1, err
    assert names in verdict[0], verdict[0]
    return verdict[0]


BAD_BENCH_INPUTS = [
    (["{d}/absent.csv"], "absent.csv"),
    (["{d}/folder"], "--annotations"),
    (["{d}/not_utf8.csv"], "not UTF-8"),
    (["{d}/all_unreadable.csv"], "none of its 2 audio files"),
    (["{d}/all_unreadable.csv", "--chunk-s", "nan"], "'nan'"),
    (["{d}/all_unreadable.csv", "--chunk-s", "-1"], "'-1'"),
    (["{d}/all_unreadable.csv", "--chunk-s", "inf"], "'inf'"),
    (["{d}/all_unreadable.csv", "--limit", "0"], "--limit"),
    (["{d}/all_unreadable.csv", "--out", "{d}/a_file/report.json"], "a_file"),
    (["{d}/all_unreadable.csv", "--out", "{d}/folder"], "--out"),
    (["{d}/all_unreadable.csv", "--threshold", "gunshot=nan"], "gunshot=nan"),
    (["{d}/all_unreadable.csv", "--threshold", "thunder=0.5"], "thunder"),
    (["{d}/all_unreadable.csv", "--model", "{d}/a_file"], "a_file"),
    (["{d}/folder", "--annotations", "{d}/not_utf8.csv"], "not UTF-8"),
    (["{d}/folder", "--annotations", "{d}/absent.tsv"], "absent.tsv"),
    (["{d}/a_file", "--annotations", "{d}/not_utf8.csv"], "a_file"),
]


@pytest.mark.parametrize(("args", "names"), BAD_BENCH_INPUTS)
def test_bench_detect_bad_inputs_end_in_one_line(
    files: Path, capsys: pytest.CaptureFixture[str], args: list[str], names: str
) -> None:
    _fails_in_one_line(capsys, ["bench", "detect", *(a.format(d=files) for a in args)], names=names)


BAD_COMMAND_INPUTS = [
    (["validate-config"], "paths"),
    (["server", "--config", "{d}/absent.toml"], "absent.toml"),
    (["server", "--config", "{d}/folder"], "folder"),
    (["server", "--config", "{d}/bad.toml"], "not valid TOML"),
    (["server", "--config", "{d}/bad.toml", "--log-level", "LOUD"], "LOUD"),
    (["fusion", "--config", "{d}/not_utf8.csv"], "not_utf8.csv"),
    (["api", "--config", "{d}/a_file"], "a_file"),
    (["sensor", "--config", "{d}/absent.toml"], "absent.toml"),
    (["users", "list", "--config", "{d}/bad.toml"], "bad.toml"),
    (["users", "list", "--store-url", "sqlite:///{d}/absent/sed.sqlite"], "absent"),
    (["users", "list", "--store-url", "mysql://x/y"], "store.url"),
    (["users", "list"], "--store-url"),
    (["users", "token", "ada", "--ttl-days", "nan", "--store-url", "sqlite://"], "'nan'"),
    (["users", "token", "ada", "--label", "a\nb", "--store-url", "sqlite://"], "--label"),
    (["keys", "generate", "../escape"], "../escape"),
    (["keys", "register", "{d}/a_file", "--authorized-keys-dir", "{d}/folder"], "a_file"),
    (["demo", "--duration", "nan"], "'nan'"),
    (["demo", "--scene", "{d}/bad.toml"], "bad.toml"),
    (["demo", "--workdir", "{d}/a_file/demo"], "a_file"),
    (["no-such-command"], "no-such-command"),
    (["bench", "no-such-bench"], "no-such-bench"),
]


@pytest.mark.parametrize(("args", "names"), BAD_COMMAND_INPUTS)
def test_bad_inputs_to_every_command_end_in_one_line(
    files: Path, capsys: pytest.CaptureFixture[str], args: list[str], names: str
) -> None:
    _fails_in_one_line(capsys, [a.format(d=files) for a in args], names=names)


@pytest.mark.parametrize("command", ["server", "fusion", "api"])
def test_a_port_in_use_at_start_is_one_line(
    tmp_path: Path, listening_port: int, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    config = _server_toml(tmp_path, fusion={"bind_endpoint": f"tcp://127.0.0.1:{listening_port}"})
    if command == "api":
        config = _server_toml(tmp_path / "api", api={"port": listening_port})
    key = "api.port" if command == "api" else "fusion.bind_endpoint"
    line = _fails_in_one_line(capsys, [command, "--config", str(config)], names=key)
    assert str(listening_port) in line


def test_an_unreachable_database_at_start_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("psycopg")
    with socket.socket() as sock:  # bound, never listening: connections are refused at once
        sock.bind(("127.0.0.1", 0))
        url = f"postgresql+psycopg://sed:a-real-password@127.0.0.1:{sock.getsockname()[1]}/sed"
        config = _server_toml(tmp_path, store={"url": url})
        line = _fails_in_one_line(capsys, ["server", "--config", str(config)], names="store.url")
    assert "unreachable" in line and "a-real-password" not in line


def test_an_os_error_while_a_command_runs_is_one_line_and_a_bug_keeps_its_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module = types.ModuleType("sed_test_failing_command")

    def failing(argv: list[str], *, prog: str) -> int:
        if argv == ["disk"]:
            raise OSError(28, "No space left on device")
        raise KeyError("a bug")

    module.main = failing  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(cli.COMMANDS, "failing", (module.__name__, "raises"))
    line = _fails_in_one_line(capsys, ["failing", "disk"], names="No space left on device")
    assert line.startswith(f"{CONSOLE_SCRIPT} failing: cannot run")
    with pytest.raises(KeyError):
        cli.main(["failing", "other"])


@pytest.mark.parametrize("command", ["sensor", "fusion", "api", "server", "keys", "users", "validate-config", "demo"])
def test_help_shows_plain_text_under_the_console_script_name(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: {CONSOLE_SCRIPT} {command}")
    for markup in ("``", ":mod:", ":class:", ":func:", "`sed ", " sed sensor", " sed server"):
        assert markup not in out, f"{command} --help shows {markup!r}"


def test_plain_help_turns_sphinx_markup_into_text() -> None:
    text = "Run by ``sed fusion``: see :class:`~sed.models.StreamingDetector` and :mod:`sed.capture`."
    assert plain_help(text) == "Run by sedcity fusion: see StreamingDetector and sed.capture."


def test_the_console_script_is_sedcity_and_python_dash_m_sed_runs_it() -> None:
    scripts = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="console_scripts")}
    assert scripts.get("sedcity") == "sed.cli:main"
    assert "sed" not in scripts  # would shadow GNU sed on the PATH
    result = subprocess.run([sys.executable, "-m", "sed", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith(f"{CONSOLE_SCRIPT} ")


def test_keys_generate_fusion_names_the_fusion_nodes_next_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["keys", "generate", "fusion", "--dir", str(tmp_path)]) == 0
    fusion = capsys.readouterr().out
    assert "register" not in fusion
    assert "fusion.secret_key_file" in fusion and "server_public_key_file" in fusion
    assert cli.main(["keys", "generate", "pole-3", "--dir", str(tmp_path)]) == 0
    sensor = capsys.readouterr().out
    assert f"{CONSOLE_SCRIPT} keys register pole-3.key" in sensor and "transport.secret_key_file" in sensor


def test_users_needs_only_the_store_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "sed.sqlite"
    config = tmp_path / "server.toml"
    # [fusion] names key files that do not exist: the users command does not care.
    config.write_text(f'[fusion]\nsecret_key_file = "absent.key_secret"\n[store]\nurl = "sqlite:///{database}"\n')
    monkeypatch.setattr("sys.stdin", io.StringIO("a sturdy passphrase\n"))
    assert cli.main(["users", "add", "ada", "--role", "admin", "--password-stdin", "--config", str(config)]) == 0
    assert cli.main(["users", "list", "--store-url", f"sqlite:///{database}"]) == 0
    assert "ada" in capsys.readouterr().out
    store = Store(f"sqlite:///{database}")
    try:
        user = store.accounts.get_user("ada")
        assert user is not None and str(user.role) == "admin"
    finally:
        store.close()
