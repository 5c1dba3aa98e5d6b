"""A worker that dies takes the real process down, non-zero, within seconds (so systemd restarts it).

``sed server`` (fusion thread + API workers), ``sed api`` and ``sed fusion`` each run as a
subprocess on a temporary config; a fault is injected into one worker's loop
(:mod:`tests.integration.fault_support`) once ``/healthz`` has said all is well.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import tomli_w

from sed.keys import NetworkKeys
from tests.integration.sensor_support import ROOT, free_port, wait_for

pytestmark = pytest.mark.slow

STARTUP_TIMEOUT_S = 30.0
#: The process must be gone this long after the fault (TURN_S to notice + a clean stop).
EXIT_WITHIN_S = 10.0


def _config(tmp_path: Path) -> Path:
    keys = NetworkKeys.create(tmp_path, ["pole-1"])
    config = {
        "fusion": {
            "bind_endpoint": "tcp://127.0.0.1:0",
            "secret_key_file": str(keys.fusion_secret_key_file),
            "authorized_keys_dir": str(keys.authorized_keys_dir),
        },
        "api": {"host": "127.0.0.1", "port": 0, "incident_feed_endpoint": f"tcp://127.0.0.1:{free_port()}"},
        "store": {"url": f"sqlite:///{tmp_path / 'sed.sqlite'}"},
    }
    path = tmp_path / "server.toml"
    path.write_text(tomli_w.dumps(config))
    return path


def _start(tmp_path: Path, worker: str, command: str) -> tuple[subprocess.Popen, Path, Path]:
    trigger, log = tmp_path / "fault", tmp_path / f"{command}.log"
    sed_args = [command, "--config", str(_config(tmp_path))]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SED__")}  # exactly the config written
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.fault_support", worker, str(trigger), "--", *sed_args],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )
    return process, trigger, log


def _output(log: Path) -> str:
    return log.read_text() if log.exists() else ""


def _health(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _api_url(process: subprocess.Popen, log: Path) -> str:
    def started() -> str | None:
        assert process.poll() is None, f"exited {process.returncode}: {_output(log)}"
        match = re.search(r"API (?:on|listening on) (http://\S+)", _output(log))
        return match[1] if match else None

    return wait_for(started, timeout_s=STARTUP_TIMEOUT_S, what="the API to listen")


def _assert_exits_nonzero_after_the_fault(process: subprocess.Popen, trigger: Path, log: Path, worker: str) -> None:
    trigger.touch()
    faulted = time.monotonic()
    try:
        code = process.wait(timeout=EXIT_WITHIN_S)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"still running {EXIT_WITHIN_S} s after the fault: {_output(log)}") from None
    assert code == 1, _output(log)
    assert time.monotonic() - faulted < EXIT_WITHIN_S
    assert re.search(rf"worker {worker} died|fusion node failed", _output(log)), _output(log)


@pytest.mark.parametrize("worker", ["fusion", "association", "webhooks"])
def test_sed_server_exits_non_zero_when_a_worker_dies(tmp_path: Path, worker: str) -> None:
    process, trigger, log = _start(tmp_path, worker, "server")
    try:
        url = _api_url(process, log)
        status, body = _health(url)
        assert status == 200 and body["status"] == "ok", body
        assert {w["name"] for w in body["workers"]} == {
            "fusion",
            "association",
            "live-feed",
            "webhooks",
            "retention",
            "http",
        }
        assert body["key_files_ok"] is True
        _assert_exits_nonzero_after_the_fault(process, trigger, log, worker)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_sed_api_exits_non_zero_when_its_feed_subscriber_dies(tmp_path: Path) -> None:
    process, trigger, log = _start(tmp_path, "feed-subscriber", "api")
    try:
        url = _api_url(process, log)
        status, body = _health(url)
        assert status == 200 and "feed-subscriber" in {w["name"] for w in body["workers"]}, body
        _assert_exits_nonzero_after_the_fault(process, trigger, log, "feed-subscriber")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("worker", ["receiver", "association"])
def test_sed_fusion_exits_non_zero_when_its_loop_or_association_worker_fails(tmp_path: Path, worker: str) -> None:
    process, trigger, log = _start(tmp_path, worker, "fusion")
    try:
        wait_for(
            lambda: "listening for sensors on" in _output(log) or process.poll() is not None,
            timeout_s=STARTUP_TIMEOUT_S,
            what="the fusion node to listen",
        )
        assert process.poll() is None, _output(log)
        _assert_exits_nonzero_after_the_fault(process, trigger, log, "fusion")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
