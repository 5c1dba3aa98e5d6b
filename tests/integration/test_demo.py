"""``sedcity demo`` end to end in a shortened form: real sensor processes, ZeroMQ, fusion, API."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _run_demo(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[dict, str]:
    result = subprocess.run(
        [sys.executable, "-m", "sed", "demo", "--workdir", str(tmp_path / "demo"), *args],
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stdout


@pytest.mark.data
def test_short_demo_alerts_every_scripted_event_with_the_right_class_and_place(tmp_path: Path) -> None:
    summary, report = _run_demo(tmp_path, "--duration", "16")
    assert summary["scripted"] == 4
    assert summary["alerted"] == 4, report
    assert summary["classes_correct"] == 4, report
    assert summary["median_error_m"] is not None and summary["median_error_m"] < 10.0, report
    assert summary["max_latency_s"] is not None and summary["max_latency_s"] < 10.0, report


def test_demo_runs_on_labelled_synthetic_sounds_without_shared_data(tmp_path: Path) -> None:
    summary, report = _run_demo(tmp_path, "--duration", "12", env={"SED_SHARED_DATA": str(tmp_path / "absent")})
    assert summary["scripted"] == 4
    assert "sound: synthetic gunshot" in report
    assert set(summary) == {"scripted", "alerted", "classes_correct", "median_error_m", "max_latency_s"}


def test_demo_serve_prints_an_admin_login_and_a_config_the_other_commands_take(tmp_path: Path) -> None:
    env = {**os.environ, "SED_SHARED_DATA": str(tmp_path / "absent"), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "sed", "demo", "--duration", "10", "--serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 180
        assert process.stdout is not None
        while time.monotonic() < deadline and not any(line.startswith("Ctrl-C") for line in lines):
            line = process.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        text = "".join(lines)
        url = re.search(r"dashboard and API at (\S+)/", text)
        admin = re.search(r"sign in as admin:\s+(\S+) / (\S+)", text)
        config = re.search(r"server config:\s+(\S+)", text)
        assert url and admin and config, text
        body = json.dumps({"username": admin.group(1), "password": admin.group(2)}).encode()
        request = urllib.request.Request(
            f"{url.group(1)}/api/auth/login", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["token"]
        users = subprocess.run(
            [sys.executable, "-m", "sed", "users", "list", "--config", config.group(1)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert users.returncode == 0, users.stderr
        assert re.search(r"^admin\s+admin", users.stdout, re.MULTILINE), users.stdout
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)  # read on: a full pipe would block the demo's shutdown logging
    assert process.returncode == 0
    workdir = Path(config.group(1)).parent
    assert (workdir / "server.toml").is_file()  # the working folder is kept for the user
    shutil.rmtree(workdir)
