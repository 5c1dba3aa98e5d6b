"""Real processes for the sensor tests: a fusion node, sensors, and a load-generating sensor.

``python -m tests.integration.sensor_support send …`` is a sensor without audio: it puts
``--count`` detections through the real :class:`~sed.capture.outbox.Outbox` and
:class:`~sed.capture.sender.Sender` at ``--rate`` per second, then waits until the fusion
node has acknowledged all of them, and prints its counters as JSON (exit 0), or gives up
after ``--wait-s`` with the outbox not empty (exit 1).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import tomli_w

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sed_process(args: list[str], log_path: Path, *, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``sed <args>`` as a child process, its output in ``log_path``.

    ``SED__*`` overrides of the test's own environment are not passed on: each process
    gets exactly the config file the test wrote.
    """
    clean = {k: v for k, v in {**os.environ, **(env or {})}.items() if not k.startswith("SED__")}
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "sed.cli", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**clean, "PYTHONUNBUFFERED": "1"},
        )


def wait_for(condition: Callable[[], T], *, timeout_s: float, interval_s: float = 0.05, what: str = "condition") -> T:
    """Poll ``condition()`` until it returns something truthy; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


class FusionNode:
    """``sed fusion`` on a fixed port with a SQLite store; can be killed and restarted.

    ``fusion``: more ``[fusion]`` keys for its config.
    """

    def __init__(
        self, workdir: Path, keys: dict[str, Path], *, port: int | None = None, fusion: dict | None = None
    ) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        self.db_path = workdir / "fusion.sqlite"
        self.log_path = workdir / "fusion.log"
        self.config_path = workdir / "server.toml"
        self.config_path.write_text(
            tomli_w.dumps(
                {
                    "fusion": {
                        "bind_endpoint": self.endpoint,
                        "secret_key_file": str(keys["fusion"]),
                        "authorized_keys_dir": str(keys["authorized_keys_dir"]),
                    }
                    | (fusion or {}),
                    "store": {"url": f"sqlite:///{self.db_path}"},
                }
            )
        )
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        mark = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.process = sed_process(["fusion", "--config", str(self.config_path)], self.log_path)
        wait_for(
            lambda: b"listening for sensors" in self.log_path.read_bytes()[mark:] or self.process.poll() is not None,
            timeout_s=30,
            what="the fusion node to listen",
        )
        assert self.process.poll() is None, self.log()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.process is not None
        self.process.send_signal(sig)
        self.process.wait(timeout=15)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill(signal.SIGTERM)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def query(self, sql: str, *args: object) -> list[tuple]:
        """Read the store (read-only; empty before the node created its tables)."""
        if not self.db_path.exists():
            return []
        connection = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5)
        try:
            return connection.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise
        finally:
            connection.close()

    def detection_ids(self) -> list[str]:
        return [row[0] for row in self.query("SELECT detection_id FROM detections")]


def sensor_config(
    path: Path,
    *,
    sensor_id: str,
    keys: dict[str, Path],
    endpoint: str,
    capture: dict,
    model: Path | None = None,
    **sections: dict,
) -> Path:
    """Write a ``sed sensor`` TOML; ``sections`` add or replace whole sections (``evidence={...}``)."""
    raw: dict = {
        "sensor": {"id": sensor_id, "position": {"x_m": 0.0, "y_m": 0.0, "z_m": 4.0}},
        "capture": capture,
        "transport": {
            "fusion_endpoint": endpoint,
            "secret_key_file": str(keys[sensor_id]),
            "server_public_key_file": str(keys["fusion_public"]),
            "outbox_path": str(path.parent / f"outbox-{sensor_id}.sqlite"),
            "heartbeat_interval_s": 0.5,
            "resend_initial_s": 0.2,
        },
    }
    if model is not None:
        raw["detector"] = {"model": str(model)}
    for name, section in sections.items():
        raw[name] = {**raw.get(name, {}), **section}
    path.write_text(tomli_w.dumps(raw))
    return path


def start_load_sensor(
    workdir: Path, keys: dict[str, Path], sensor_id: str, endpoint: str, *, count: int, rate: float, wait_s: float
) -> subprocess.Popen:
    """The load-generating sensor process (see the module docstring)."""
    args = [
        "send",
        "--endpoint", endpoint,
        "--secret-key", str(keys[sensor_id]),
        "--server-key", str(keys["fusion_public"]),
        "--outbox", str(workdir / f"outbox-{sensor_id}.sqlite"),
        "--sensor-id", sensor_id,
        "--count", str(count),
        "--rate", str(rate),
        "--wait-s", str(wait_s),
    ]  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.sensor_support", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def _send(args: argparse.Namespace) -> int:
    from sed import wire
    from sed.capture.outbox import Outbox
    from sed.capture.sender import Sender

    outbox = Outbox(args.outbox, resend_initial_s=0.2, resend_max_s=30.0)
    sender = Sender(
        endpoint=args.endpoint,
        secret_key_file=args.secret_key,
        server_public_key_file=args.server_key,
        outbox=outbox,
        heartbeat=lambda: wire.Heartbeat(
            sensor_id=args.sensor_id, sent_at_ns=time.time_ns(), clock_status=wire.ClockStatus.SYNCED
        ),
        heartbeat_interval_s=0.5,
    )
    sender.start()
    start_ns = time.time_ns()
    for n in range(args.count):
        due_ns = start_ns + round(n / args.rate * 1e9)
        time.sleep(max(0.0, (due_ns - time.time_ns()) / 1e9))
        sender.submit(
            wire.Detection(
                detection_id=f"{args.sensor_id}:{n:06d}",
                sensor_id=args.sensor_id,
                label=wire.Label.GUNSHOT,
                score=0.9,
                arrival_time_ns=start_ns + n * 1_000_000,
                arrival_uncertainty_ns=100_000,
                duration_ms=50.0,
                peak_dbfs=-6.0,
                position=wire.Position(x_m=0.0, y_m=0.0),
                clock_status=wire.ClockStatus.SYNCED,
            )
        )
    submitted_s = (time.time_ns() - start_ns) / 1e9
    deadline = time.monotonic() + args.wait_s
    while outbox.depth() and time.monotonic() < deadline:
        time.sleep(0.05)
    depth = outbox.depth()
    sender.stop(flush_timeout_s=0.5)
    stats = sender.stats
    print(json.dumps({"submitted_s": submitted_s, "depth": depth, "sent": stats.sent, "acked": stats.acked}))
    outbox.close()
    return 0 if depth == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="sensor_support")
    sub = parser.add_subparsers(dest="command", required=True)
    send = sub.add_parser("send", help="a sensor that sends COUNT synthetic detections")
    send.add_argument("--endpoint", required=True)
    send.add_argument("--secret-key", type=Path, required=True)
    send.add_argument("--server-key", type=Path, required=True)
    send.add_argument("--outbox", type=Path, required=True)
    send.add_argument("--sensor-id", required=True)
    send.add_argument("--count", type=int, required=True)
    send.add_argument("--rate", type=float, default=500.0, help="detections per second")
    send.add_argument("--wait-s", type=float, default=30.0, help="give up waiting for acks after this long")
    return _send(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
