"""Wire fuzzing against a real fusion node (``sed server`` as a process): crashes, hangs, rejects, memory.

    .venv/bin/python benchmarks/fuzz_wire.py --frames 100000       # the issue 11 run (~4 min, 2 cores)
    .venv/bin/python benchmarks/fuzz_wire.py --frames 500 --out /tmp/fuzz.json   # smoke (CI)

Starts ``python -m sed.cli server`` (the fusion node and the API in one process, as
deployed; ``--process fusion`` for the node alone) on a temporary SQLite store with fresh
CURVE keys, connects as the registered sensor ``pole-1`` and sends ``--frames`` frames from
``benchmarks/fuzz_frames.py`` (the generator the test suite's fuzzer uses; hypothesis with
a fixed seed, so a run is repeatable), spread over every mutation class it knows.

- **Crash**: the node process exits. **Hang**: a probe detection, sent after every
  ``--probe-every`` frames, is not acked within ``--probe-timeout-s`` (or a send blocks
  that long). After either, the last frames sent and the end of the node's log are kept
  in the report, the node is restarted and the run goes on, so one run counts them all.
- Replies are counted (acks, rejects) and attributed to the mutation class of the frame
  whose id they name (every frame carries a unique id; a bit flip can turn one frame's id
  into another's, so a handful are misattributed); every unmutated ("valid") durable
  message must have been acked by the end.
- ``/healthz`` must answer 200 at every probe (``sed server`` only): a worker that died
  or stalled turns it 503.
- The node's resident memory is read from ``/proc``: after start-up and the first probe,
  at every probe (peak) and at the end.

Writes JSON with provenance (git commit, machine, date, command) to ``--out`` (default
``benchmarks/results/fuzz_wire.json``) and prints a one-line summary; exits 1 on any
crash, hang, unacked valid message or unhealthy ``/healthz``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import tomli_w
import zmq
from fuzz_frames import MUTATIONS, Frame, frames
from fuzz_link import SensorLink, valid_detection
from hypothesis import HealthCheck, Phase, given, settings

from sed.bench import procstat
from sed.bench.report import provenance
from sed.keys import NetworkKeys

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SENSOR, OTHER_SENSOR = "pole-1", "pole-2"
#: Frames kept for a crash or hang report (the culprit is among the last few sent).
RECENT_FRAMES = 20
#: Lines of the node's log kept for a crash or hang report.
LOG_TAIL_LINES = 30
#: How long the node may take to start listening, s.
START_TIMEOUT_S = 60.0
#: A progress line goes to stderr after this many frames.
PROGRESS_EVERY_FRAMES = 10_000
#: How long one ``/healthz`` request may take, s.
HEALTH_TIMEOUT_S = 5.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss_mb(pid: int) -> float | None:
    try:
        return procstat.sample(pid).rss_kib / 1024
    except OSError:  # the node has exited
        return None


class Node:
    """``sed server`` (or ``sed fusion``) as a child process on fixed ports; restartable after a crash or hang."""

    def __init__(self, workdir: Path, keys: NetworkKeys, *, process: str) -> None:
        self.process_kind = process
        self.endpoint = f"tcp://127.0.0.1:{_free_port()}"
        self.api_url = f"http://127.0.0.1:{_free_port()}" if process == "server" else None
        self.db_path = workdir / "fusion.sqlite"
        self.log_path = workdir / "fusion.log"
        self.config_path = workdir / "server.toml"
        self.config_path.write_text(
            tomli_w.dumps(
                {
                    "fusion": {
                        "bind_endpoint": self.endpoint,
                        "secret_key_file": str(keys.fusion_secret_key_file),
                        "authorized_keys_dir": str(keys.authorized_keys_dir),
                        "association_wait_s": 0.2,
                    },
                    "store": {"url": f"sqlite:///{self.db_path}"},
                    **(
                        {"api": {"host": "127.0.0.1", "port": int(self.api_url.rsplit(":", 1)[1])}}
                        if self.api_url
                        else {}
                    ),
                }
            )
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        mark = self.log_path.stat().st_size if self.log_path.exists() else 0
        # The node gets exactly this config: no SED__* overrides from the caller's environment.
        env = {k: v for k, v in os.environ.items() if not k.startswith("SED__")} | {"PYTHONUNBUFFERED": "1"}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sed.cli", self.process_kind, "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=env,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while b"listening for sensors" not in self.log_path.read_bytes()[mark:] or self.health() == 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"fusion node did not start:\n{self.log_tail()}")
            time.sleep(0.05)

    def health(self) -> int | None:
        """HTTP status of ``/healthz`` (0: no answer; ``None``: no API in this process)."""
        if self.api_url is None:
            return None
        try:
            with urllib.request.urlopen(f"{self.api_url}/healthz", timeout=HEALTH_TIMEOUT_S) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def rss_mb(self) -> float | None:
        return None if self.process is None else _rss_mb(self.process.pid)

    def stop(self) -> int | None:
        """Stop (SIGTERM, then SIGKILL); the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        return self.process.returncode

    def log_tail(self) -> list[str]:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text.splitlines()[-LOG_TAIL_LINES:]

    def query(self, sql: str) -> list[tuple[Any, ...]] | None:
        """Rows from the node's store, read-only (``None`` if the table does not exist)."""
        connection = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5)
        try:
            return connection.execute(sql).fetchall()
        except sqlite3.OperationalError:
            return None
        finally:
            connection.close()


def _percentile_ms(values_s: list[float], q: float) -> float | None:
    if not values_s:
        return None
    ordered = sorted(values_s)
    return round(1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 3)


def run(n_frames: int, *, probe_every: int, probe_timeout_s: float, process: str, workdir: Path) -> dict[str, Any]:
    keys = NetworkKeys.create(workdir, [SENSOR, OTHER_SENSOR], unregistered=["rogue"])
    node = Node(workdir, keys, process=process)
    node.start()
    link = SensorLink(
        endpoint=node.endpoint,
        secret_key_file=keys.sensor_secret_key_files[SENSOR],
        server_public_key_file=keys.fusion_public_key_file,
        send_timeout_s=probe_timeout_s,
    )
    per_mutation: collections.Counter[str] = collections.Counter()
    recent: collections.deque[Frame] = collections.deque(maxlen=RECENT_FRAMES)
    class_of_id: dict[str, str] = {}  # message id -> mutation class of the frame that carried it
    latencies_s: list[float] = []
    failures: list[dict[str, Any]] = []
    health_codes: collections.Counter[str] = collections.Counter()
    rss_series: list[tuple[int, float]] = []  # (frames sent, node RSS MB) at each progress line
    peak_rss_mb = 0.0

    def probe() -> None:
        nonlocal peak_rss_mb
        detection = valid_detection(SENSOR, f"{SENSOR}:probe:{uuid.uuid4().hex[:12]}")
        try:
            latency_s = link.probe(detection, timeout_s=probe_timeout_s)
        except zmq.Again:
            latency_s = None
        if not node.alive():
            fail("crash")
        elif latency_s is None:
            fail("hang")
        else:
            latencies_s.append(latency_s)
            peak_rss_mb = max(peak_rss_mb, node.rss_mb() or 0.0)
            code = node.health()
            if code is not None:
                health_codes[str(code)] += 1

    def fail(kind: str) -> None:
        exit_code = node.stop()
        failures.append(
            {
                "kind": kind,
                "after_frames": sum(per_mutation.values()),
                "exit_code": exit_code,
                "last_frames": [frame.describe() for frame in recent],
                "log_tail": node.log_tail(),
            }
        )
        print(f"{kind} after {sum(per_mutation.values())} frames; restarting the node", file=sys.stderr)
        node.start()

    probe()
    rss_after_start_mb = node.rss_mb()
    start = time.perf_counter()

    @settings(
        max_examples=n_frames,
        derandomize=True,  # the same frames on every run
        database=None,
        phases=[Phase.explicit, Phase.generate],  # never shrink: the node is not rebuilt per frame
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(frame=frames(SENSOR, (OTHER_SENSOR,)))
    def storm(frame: Frame) -> None:
        try:
            link.send(frame.parts)
        except zmq.Again:  # the node stopped reading for probe_timeout_s
            recent.append(frame)
            per_mutation[frame.mutation] += 1
            fail("hang" if node.alive() else "crash")
            return
        recent.append(frame)
        per_mutation[frame.mutation] += 1
        if frame.message_id is not None:
            class_of_id[frame.message_id] = frame.mutation
        n_sent = sum(per_mutation.values())
        if n_sent % probe_every == 0:
            probe()
        if n_sent % PROGRESS_EVERY_FRAMES == 0:
            rate = n_sent / (time.perf_counter() - start)
            rss_series.append((n_sent, round(node.rss_mb() or 0.0, 1)))
            print(f"{n_sent} frames ({rate:.0f}/s), {len(failures)} crashes or hangs", file=sys.stderr, flush=True)

    storm()
    probe()
    duration_s = time.perf_counter() - start
    link.drain(100)
    per_class = {m: {"sent": per_mutation[m], "acked": 0, "rejected": 0} for m in MUTATIONS}
    for message_id, mutation in class_of_id.items():
        per_class[mutation]["acked"] += message_id in link.acked_ids
        per_class[mutation]["rejected"] += message_id in link.rejected
    valid_ids = [i for i, m in class_of_id.items() if m == "valid"]
    unacked = [i for i in valid_ids if i not in link.acked_ids]
    rss_end_mb = node.rss_mb()
    link.close()
    exit_code = node.stop()
    n_sent = sum(per_mutation.values())
    return {
        "frames": {
            "requested": n_frames,
            "sent": n_sent,
            # acked / rejected: frames whose message id an Ack / a Reject named
            "per_mutation": per_class,
            "frames_per_s": round(n_sent / duration_s, 1),
        },
        "replies": {
            "acks": link.stats.acks,
            "rejects": link.stats.rejects,
            "undecodable": link.stats.undecodable_replies,
        },
        "valid_durable_messages": {"sent": len(valid_ids), "unacked": len(unacked), "unacked_ids": unacked[:20]},
        "crashes": sum(f["kind"] == "crash" for f in failures),
        "hangs": sum(f["kind"] == "hang" for f in failures),
        "failures": failures,
        "probes": {
            "every_frames": probe_every,
            "timeout_s": probe_timeout_s,
            "n_acked": len(latencies_s),
            "latency_ms": {
                "p50": None if not latencies_s else round(1000 * statistics.median(latencies_s), 3),
                "p99": _percentile_ms(latencies_s, 0.99),
                "max": _percentile_ms(latencies_s, 1.0),
            },
        },
        "node_rss_mb": {
            "after_start": rss_after_start_mb and round(rss_after_start_mb, 1),
            "peak": round(peak_rss_mb, 1),
            "end": rss_end_mb and round(rss_end_mb, 1),
            "by_frames_sent": rss_series,
        },
        "healthz_status_at_probes": dict(health_codes),
        "process": f"sed {process}",
        "node_exit_code_on_sigterm": exit_code,
        "store": {
            "detections": (node.query("SELECT count(*) FROM detections") or [[None]])[0][0],
            # the quarantine table keeps only its newest entries (sed.store.quarantine.MAX_ROWS)
            "quarantine_by_reason": dict(node.query("SELECT reason, count(*) FROM quarantine GROUP BY reason") or []),
        },
        "duration_s": round(duration_s, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=100_000, help="fuzzed frames to send (default 100000)")
    parser.add_argument("--probe-every", type=int, default=500, help="frames between probes (default 500)")
    parser.add_argument("--probe-timeout-s", type=float, default=10.0, help="a probe unacked this long is a hang")
    parser.add_argument("--out", type=Path, default=RESULTS / "fuzz_wire.json", help="JSON report")
    parser.add_argument(
        "--process",
        choices=["server", "fusion"],
        default="server",
        help="'sed server' (fusion node + API; /healthz read at every probe) or 'sed fusion' alone",
    )
    args = parser.parse_args(argv)
    if args.frames < 1 or args.probe_every < 1 or not 0 < args.probe_timeout_s <= 600:
        parser.error("--frames and --probe-every must be >= 1, --probe-timeout-s in (0, 600]")
    command = "python benchmarks/fuzz_wire.py " + " ".join(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="sed-fuzz-") as tmp:
        result = run(
            args.frames,
            probe_every=args.probe_every,
            probe_timeout_s=args.probe_timeout_s,
            process=args.process,
            workdir=Path(tmp),
        )
    report = {**provenance(command.strip()), **result}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    frames_ = report["frames"]
    rss = report["node_rss_mb"]
    print(
        f"fuzz_wire: {frames_['sent']} frames ({frames_['frames_per_s']}/s) in {len(MUTATIONS)} classes: "
        f"{report['crashes']} crashes, {report['hangs']} hangs, {report['replies']['rejects']} rejects, "
        f"{report['replies']['acks']} acks, {report['valid_durable_messages']['unacked']} valid unacked; "
        f"/healthz {report['healthz_status_at_probes'] or 'n/a'}; "
        f"node RSS {rss['after_start']} -> {rss['end']} MB (peak {rss['peak']}); "
        f"probe p99 {report['probes']['latency_ms']['p99']} ms -> {args.out}"
    )
    unhealthy = sum(n for code, n in report["healthz_status_at_probes"].items() if code != "200")
    failed = report["crashes"] or report["hangs"] or report["valid_durable_messages"]["unacked"] or unhealthy
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
