"""The processes of an end-to-end fusion run (:mod:`sed.bench.fusion_e2e`): the node, its feed, the poles.

:class:`NodeProcess` is ``python -m sed fusion --config <workdir>/server.toml`` as a child
process (ready once both its ports listen; stopped by SIGTERM, then SIGKILL);
:class:`FeedListener` follows its incident feed (``api.incident_feed_endpoint``) in a thread;
:class:`SenderProcesses` runs the poles, ``python -m sed.bench.fusion_poles`` per share, each
over a socket pair. Each is a context manager that leaves nothing running behind it.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import tomli_w
import zmq

from sed import wire
from sed.bench import procstat
from sed.bench.fusion_poles import PoleSpec
from sed.errors import ConfigError
from sed.units import NS_PER_S

#: How long the node may take to listen, and the poles to complete their CURVE handshakes, s.
START_TIMEOUT_S = 60.0
#: How long the node (and a sender process) has to exit when told before it is killed, s.
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the node binds it a moment later; a clash fails its start loudly)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    """Whether a socket on this machine listens on TCP ``port`` (``/proc/net/tcp``: state 0A)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    return True
    return False


class NodeProcess:
    """``python -m sed fusion`` as a child process, its stderr in ``<workdir>/fusion.log``."""

    def __init__(self, process: subprocess.Popen[bytes], log_path: Path) -> None:
        self.process, self.log_path = process, log_path

    @classmethod
    @contextlib.contextmanager
    def start(cls, workdir: Path, config: dict[str, Any], *, ports: tuple[int, int]) -> Iterator[NodeProcess]:
        config_path, log_path = workdir / "server.toml", workdir / "fusion.log"
        config_path.write_text(tomli_w.dumps(config))
        with log_path.open("wb") as log_file:  # the child keeps its own descriptor
            process = subprocess.Popen(
                [sys.executable, "-m", "sed", "fusion", "--config", str(config_path), "--log-level", "WARNING"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
        node = cls(process, log_path)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not all(_listening(port) for port in ports):
                node.check_alive()
                if time.monotonic() > deadline:
                    raise ConfigError(
                        f"fusion node not listening on {ports} after {START_TIMEOUT_S:.0f} s{node.tail()}"
                    )
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=0.05)  # waits on its exit, the other way it can end
            yield node
        finally:
            node.stop()

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise ConfigError(f"fusion node exited with code {self.process.returncode}{self.tail()}")

    def tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return f"; {self.log_path}:\n" + "\n".join(text) if text else f" ({self.log_path} is empty)"

    def sample(self) -> procstat.ProcessSample:
        self.check_alive()
        return procstat.sample(self.process.pid)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT_S`; the exit code, None when it had to be killed."""
        if self.process.poll() is not None:
            return self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None


class FeedListener:
    """Subscribes to the node's incident feed in a thread; keeps (received wall ns, incident)."""

    def __init__(self, endpoint: str) -> None:
        self._socket = zmq.Context.instance().socket(zmq.SUB)
        self._socket.setsockopt(zmq.RCVHWM, 0)  # never drop on this side: the PUB's own drops are the node's
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SUBSCRIBE, b"")
        self._socket.connect(endpoint)
        self._updates: list[tuple[int, wire.Incident]] = []
        self._updated = threading.Event()
        self._stop = threading.Event()
        self.last_ns = time.time_ns()
        self.undecodable = 0
        self._thread = threading.Thread(target=self._run, name="fusion-e2e-feed", daemon=True)

    def __enter__(self) -> FeedListener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close(linger=0)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._socket.poll(50, zmq.POLLIN):
                continue
            data = self._socket.recv()
            received_ns = time.time_ns()
            try:
                message = wire.decode(data)
            except Exception:  # counted; a bad frame must not end the recording
                self.undecodable += 1
                continue
            if isinstance(message, wire.Incident):
                self._updates.append((received_ns, message))
                self.last_ns = received_ns
                self._updated.set()

    def wait_quiet(self, *, quiet_s: float, deadline_ns: int) -> None:
        """Return once no update came for ``quiet_s`` since the later of the last update and now
        (or at ``deadline_ns``, wall clock)."""
        quiet_ns = round(quiet_s * NS_PER_S)
        self.last_ns = max(self.last_ns, time.time_ns())  # the quiet counts from the last ack at the earliest
        while True:
            now_ns = time.time_ns()
            wait_ns = min(self.last_ns + quiet_ns, deadline_ns) - now_ns
            if wait_ns <= 0:
                return
            self._updated.clear()
            self._updated.wait(wait_ns / NS_PER_S)

    def take(self) -> list[tuple[int, wire.Incident]]:
        return list(self._updates)


class SenderProcesses:
    """The sender processes, each ``python -m sed.bench.fusion_poles`` over a socket pair."""

    def __init__(
        self,
        specs: list[list[PoleSpec]],
        *,
        workdir: Path,
        endpoint: str,
        server_public_key: bytes,
        heartbeat_interval_s: float | None,
    ) -> None:
        self._specs, self._workdir = specs, workdir
        self._common = {
            "endpoint": endpoint,
            "server_public_key": server_public_key,
            "heartbeat_interval_s": heartbeat_interval_s,
            "connect_timeout_s": START_TIMEOUT_S,
        }
        self._pipes: list[Connection] = []
        self._processes: list[subprocess.Popen[bytes]] = []
        self.stats: list[dict[str, Any]] = []

    def __enter__(self) -> SenderProcesses:
        try:
            for k, poles in enumerate(self._specs):
                spec = self._workdir / f"poles-{k}.pickle"
                spec.write_bytes(pickle.dumps({"poles": poles, **self._common}))
                ours, theirs = socket.socketpair()
                with theirs, (self._workdir / f"poles-{k}.log").open("wb") as log_file:
                    fd = theirs.fileno()
                    command = [sys.executable, "-m", "sed.bench.fusion_poles", "--fd", str(fd), "--spec", str(spec)]
                    self._processes.append(
                        subprocess.Popen(
                            command,
                            pass_fds=(fd,),
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=log_file,
                        )
                    )
                self._pipes.append(Connection(ours.detach()))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(OSError):
                pipe.send(("stop",))
        for process in self._processes:
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for pipe in self._pipes:
            pipe.close()

    def _receive(self, k: int, *, deadline: float, what: str, node: NodeProcess | None = None) -> tuple[Any, ...]:
        log_path = self._workdir / f"poles-{k}.log"
        while not self._pipes[k].poll(0.1):
            if node is not None:
                node.check_alive()
            if self._processes[k].poll() is not None:
                break  # its last words may still be in the pipe: read them, or say it is gone
            if time.monotonic() > deadline:
                raise ConfigError(f"sender process {k}: no {what} in time; {log_path}")
        try:
            message = self._pipes[k].recv()
        except EOFError:
            tail = log_path.read_text(errors="replace")[-2000:]
            code = self._processes[k].wait()
            raise ConfigError(f"sender process {k} exited (code {code}) before {what}; {log_path}:\n{tail}") from None
        if message[0] == "failed":
            raise ConfigError(f"sender process {k}: {message[1]}")
        return message

    def wait_ready(self, node: NodeProcess) -> None:
        """Every pole's CURVE handshake done (its first heartbeat went out)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        for k in range(len(self._pipes)):
            self._receive(k, deadline=deadline, what="ready (every pole connected)", node=node)

    def run(self, node: NodeProcess, *, offset_ns: int, deadline_ns: int) -> dict[str, tuple[int, int, int, str]]:
        """Start every process's replay; its results (wall ns) by detection id once all are done.

        Raises
        ------
        ConfigError
            The node or a sender process exited before the end (the node's log quoted).
        """
        for pipe in self._pipes:
            pipe.send(("go", offset_ns, deadline_ns))
        results: dict[str, tuple[int, int, int, str]] = {}
        # The processes stop themselves at deadline_ns; a little grace for sending the results back.
        wait_until = time.monotonic() + (deadline_ns - time.time_ns()) / NS_PER_S + STOP_TIMEOUT_S
        for k in range(len(self._pipes)):
            _, rows, stats = self._receive(k, deadline=wait_until, what="results", node=node)
            results.update((row[0], tuple(row[1:])) for row in rows)
            self.stats.append(stats)
        return results


__all__ = ["START_TIMEOUT_S", "STOP_TIMEOUT_S", "FeedListener", "NodeProcess", "SenderProcesses", "free_port"]
