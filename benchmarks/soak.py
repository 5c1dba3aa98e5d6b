"""Soak: 50 poles talk to a real ``sed server`` for an hour; nothing may be lost, memory must stay flat.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/soak.py [--duration-s 3600] [--poles 50]
        [--events-per-min 4] [--store-url postgresql+psycopg://…] [--out PATH]

Starts ``python -m sed server`` as a subprocess (fusion node + API on 127.0.0.1, a SQLite
store in a temporary folder unless ``--store-url`` names another database) and a city of
simulated poles on a 250 m grid around the site origin (:class:`sed.api.simulate.SimulatedSensors`:
one real CURVE :class:`~sed.capture.sender.Sender` and durable
:class:`~sed.capture.outbox.Outbox` per pole, a real sensor's heartbeat interval, resend
back-off and evidence-clip length). Sounds happen at random (Poisson, ``--events-per-min``
city-wide) anywhere in the grid; every pole within :data:`HEARING_RADIUS_M` reports one, a
fraction (:data:`LONE_FRACTION`) is heard by its nearest pole only. Each pole sends its
detection and clip after the sound's travel time plus a detection latency like the real
sensor's, so a sound's reports trickle in as from real poles.

Every ``--sample-interval-s`` the server process's resident memory and CPU time are read from
``/proc``, with the depth of every outbox and ``/healthz``. After ``--duration-s`` the poles
stop making sounds, the outboxes drain, and the store is read back:

- **nothing lost**: every detection and clip sent is acknowledged and stored (the store's
  detection count grew by the number sent; each clip and each detection's incident are
  looked up by id), every detection belongs to an incident (an alert was raised), every
  outbox is empty and the server stayed up;
- **memory**: RSS after warm-up (the first ``--warmup-fraction`` of the run; the baseline,
  measured in the same run) against RSS at the end, as a ratio and in %, and a fitted slope;
- **send -> ack**: from the pole handing a message to its outbox to the ack removing it, p50/p99;
- **server CPU**, as a fraction of one core, after warm-up.

Writes JSON (provenance, figures, the samples) to ``benchmarks/results/soak.json`` for the
full run (1 h, 50 poles; ``soak_<poles>poles_<duration>s.json`` for shorter ones, or
``--out``), a PNG of RSS and CPU over time beside it, and prints a one-line summary. Exits 1
if anything was lost. Everything listens on 127.0.0.1 only, and the run stops by itself.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import http.client
import itertools
import json
import math
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import tomli_w

from sed import wire
from sed.api.simulate import SimulatedSensors
from sed.bench import procstat
from sed.bench.report import provenance
from sed.capture.outbox import Outbox
from sed.config import EvidenceSection, FusionSection, TransportSection
from sed.keys import NetworkKeys
from sed.store import Store

RESULTS_DIR = Path(__file__).parent / "results"
FULL_RUN = {"duration_s": 3600.0, "poles": 50}
#: Pole grid spacing and mounting height, m (Plzeň's pilot heard a shot from a pole ~250 m away).
POLE_SPACING_M, POLE_HEIGHT_M = 250.0, 6.0
#: Poles closer than this to a sound report it, m.
HEARING_RADIUS_M = 400.0
#: Share of sounds only the nearest pole hears (a quiet glass break under one pole).
LONE_FRACTION = 0.2
#: Sound onset -> detection leaving the pole, s: the range ``benchmarks/sensor.py`` measures for
#: the real daemon (0.83-0.92 s), widened, as in ``benchmarks/api_latency.py``.
DETECTION_LATENCY_S = (0.8, 1.1)
#: Site origin (Plzeň), so the run also exercises the geodetic conversion.
SITE = {"origin_lat_deg": 49.7475, "origin_lon_deg": 13.3776, "temperature_c": 15.0, "name": "soak"}
#: What the real sensor does by default: heartbeats, evidence clip, resend back-off.
HEARTBEAT_INTERVAL_S = TransportSection.model_fields["heartbeat_interval_s"].default
RESEND_INITIAL_S = TransportSection.model_fields["resend_initial_s"].default
RESEND_MAX_S = TransportSection.model_fields["resend_max_s"].default
CLIP = EvidenceSection()
#: How long the outboxes may take to drain after the last sound, s.
DRAIN_TIMEOUT_S = 120.0
SERVER_START_TIMEOUT_S = 60.0
MIB = 1024 * 1024
#: Issue 11's bar for the hour-long run: RSS at the end within this of RSS after warm-up, %.
RSS_GROWTH_LIMIT_PCT = 5.0


class _AckTimedOutbox(Outbox):
    """A real outbox that also notes when each message was handed to it and first acknowledged."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, resend_initial_s=RESEND_INITIAL_S, resend_max_s=RESEND_MAX_S)
        self.put_ns: dict[str, int] = {}
        self.acked_ns: dict[str, int] = {}
        self.payload_bytes: dict[str, int] = {}

    def put(self, message_id: str, payload: bytes) -> None:
        # Stamped before the durable write: the pole's view, hand-off to ack, fsync included.
        self.put_ns.setdefault(message_id, time.time_ns())
        self.payload_bytes[message_id] = len(payload)
        super().put(message_id, payload)

    def remove(self, message_ids: list[str]) -> int:
        now_ns = time.time_ns()
        for message_id in message_ids:
            self.acked_ns.setdefault(message_id, now_ns)
        return super().remove(message_ids)


@dataclasses.dataclass(frozen=True)
class PoleReport:
    """One pole's detection of one sound, due to leave the pole at ``send_ns``."""

    send_ns: int
    sound: int
    label: wire.Label
    source_m: tuple[float, float, float]
    emission_ns: int
    sensor_id: str
    score: float


def pole_grid(n_poles: int) -> dict[str, tuple[float, float, float]]:
    """``n_poles`` poles on a grid twice as wide as deep, :data:`POLE_SPACING_M` apart, centred on the origin."""
    n_cols = math.ceil(math.sqrt(2 * n_poles))
    n_rows = math.ceil(n_poles / n_cols)
    cells = list(itertools.product(range(n_rows), range(n_cols)))[:n_poles]
    return {
        f"pole-{k + 1:02d}": (
            (col - (n_cols - 1) / 2) * POLE_SPACING_M,
            (row - (n_rows - 1) / 2) * POLE_SPACING_M,
            POLE_HEIGHT_M,
        )
        for k, (row, col) in enumerate(cells)
    }


def schedule(
    sensors: SimulatedSensors, *, start_ns: int, duration_s: float, events_per_min: float, seed: int
) -> list[PoleReport]:
    """Every pole report of every sound, in sending order; only sounds whose last report leaves
    the pole before ``duration_s`` are kept."""
    rng = np.random.default_rng(seed)
    positions = sensors.positions_m
    xs, ys = [p[0] for p in positions.values()], [p[1] for p in positions.values()]
    end_ns = start_ns + round(duration_s * 1e9)
    reports: list[PoleReport] = []
    t_s = rng.exponential(60.0 / events_per_min)
    for sound in itertools.count():
        emission_ns = start_ns + round(t_s * 1e9)
        t_s += rng.exponential(60.0 / events_per_min)
        source = (float(rng.uniform(min(xs), max(xs))), float(rng.uniform(min(ys), max(ys))), 1.5)
        label = wire.Label(rng.choice(list(wire.Label)))
        by_distance = sorted(positions, key=lambda sensor_id: math.dist(positions[sensor_id], source))
        heard = [s for s in by_distance if math.dist(positions[s], source) <= HEARING_RADIUS_M] or by_distance[:1]
        if rng.random() < LONE_FRACTION:
            heard = by_distance[:1]
        arrivals_ns = sensors.arrivals_ns(source, emission_ns)
        rows = [
            PoleReport(
                send_ns=arrivals_ns[s] + round(rng.uniform(*DETECTION_LATENCY_S) * 1e9),
                sound=sound,
                label=label,
                source_m=source,
                emission_ns=emission_ns,
                sensor_id=s,
                score=round(float(rng.uniform(0.55, 0.99)), 3),
            )
            for s in heard
        ]
        if max(r.send_ns for r in rows) >= end_ns:
            break
        reports.extend(rows)
    return sorted(reports, key=lambda r: r.send_ns)


def start_server(workdir: Path, keys: NetworkKeys, store_url: str) -> tuple[subprocess.Popen, str, str]:
    """``python -m sed server`` on loopback ports; returns the process, fusion endpoint and API URL."""
    config = {
        "site": SITE,
        "fusion": {
            "bind_endpoint": "tcp://127.0.0.1:0",
            "secret_key_file": str(keys.fusion_secret_key_file),
            "authorized_keys_dir": str(keys.authorized_keys_dir),
        },
        "api": {"host": "127.0.0.1", "port": 0},
        "store": {"url": store_url},
    }
    path = workdir / "server.toml"
    path.write_text(tomli_w.dumps(config))
    log_path = workdir / "server.log"
    with log_path.open("w") as log_file:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "sed", "server", "--config", str(path), "--log-level", "WARNING"],
            stdout=subprocess.PIPE,
            stderr=log_file,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
    ready, _, _ = select.select([process.stdout], [], [], SERVER_START_TIMEOUT_S)
    line = process.stdout.readline() if ready else ""
    if "API on" not in line:  # "fusion node on tcp://…; API on http://…"
        process.kill()
        process.wait()
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
        raise RuntimeError(f"server did not start within {SERVER_START_TIMEOUT_S:.0f} s: {line!r}; its log:\n{tail}")
    return process, line.split("fusion node on ")[1].split(";")[0], line.split("API on ")[1].strip()


class Sampler(threading.Thread):
    """Every ``interval_s``: the server's RSS and CPU time, all outboxes' depth, ``/healthz``."""

    def __init__(self, pid: int, api_url: str, outboxes: list[Outbox], *, interval_s: float, t0_ns: int) -> None:
        super().__init__(name="soak-sampler", daemon=True)
        self.pid, self.outboxes, self.interval_s, self.t0_ns = pid, outboxes, interval_s, t0_ns
        self.host, port = api_url.removeprefix("http://").rsplit(":", 1)
        self.port = int(port)
        self.samples: list[dict[str, float | int | None]] = []
        self.stop = threading.Event()

    def sample(self) -> dict[str, float | int | None]:
        now = procstat.sample(self.pid)
        rss_bytes, cpu_s = now.rss_kib * 1024, now.cpu_s
        row = {
            "t_s": round((time.time_ns() - self.t0_ns) / 1e9, 3),
            "rss_mib": round(rss_bytes / MIB, 2),
            "cpu_s": round(cpu_s, 2),
            "outbox_depth": sum(outbox.depth() for outbox in self.outboxes),
            "healthz": self._healthz(),
        }
        self.samples.append(row)
        return row

    def _healthz(self) -> int | None:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=5)
        try:
            connection.request("GET", "/healthz")
            return connection.getresponse().status
        except (OSError, http.client.HTTPException):
            return None  # no answer: counted as unhealthy
        finally:
            connection.close()

    def run(self) -> None:
        while not self.stop.wait(self.interval_s):
            with contextlib.suppress(OSError, StopIteration):  # the server exited: the run notices
                self.sample()


def _percentiles_ms(values_ns: list[int]) -> dict[str, float | int | None]:
    if not values_ns:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    array = np.asarray(values_ns) / 1e6
    return {
        "n": len(values_ns),
        "p50": round(float(np.percentile(array, 50)), 2),
        "p99": round(float(np.percentile(array, 99)), 2),
        "max": round(float(array.max()), 2),
    }


def memory_and_cpu(samples: list[dict], *, duration_s: float, warmup_s: float, interval_s: float) -> dict:
    """RSS after warm-up (median over the next window) vs at the end (median over the last window),
    a least-squares slope after warm-up, and the server's CPU after warm-up.

    The window is 5 % of the run or three samples, whichever is longer: a median over it
    ignores one sample caught in the middle of a burst of clips.
    """
    window_s = max(0.05 * duration_s, 3 * interval_s)
    during = [s for s in samples if 0.0 <= s["t_s"] <= duration_s]
    after = [s for s in during if s["t_s"] >= warmup_s]
    base = [s["rss_mib"] for s in after if s["t_s"] < warmup_s + window_s]
    end = [s["rss_mib"] for s in during if s["t_s"] >= duration_s - window_s]
    if not base or not end or len(after) < 2:
        return {"error": f"too few samples ({len(samples)}) for warm-up {warmup_s} s and window {window_s} s"}
    base_mib, end_mib = float(np.median(base)), float(np.median(end))
    t_h = np.array([s["t_s"] for s in after]) / 3600.0
    slope = float(np.polyfit(t_h, [s["rss_mib"] for s in after], 1)[0])
    cpu_fraction = (after[-1]["cpu_s"] - after[0]["cpu_s"]) / max(after[-1]["t_s"] - after[0]["t_s"], 1e-9)
    return {
        "warmup_s": warmup_s,
        "window_s": window_s,
        "rss_before_poles_mib": samples[0]["rss_mib"],
        "rss_after_warmup_mib": round(base_mib, 2),
        "rss_end_mib": round(end_mib, 2),
        "rss_peak_mib": max(s["rss_mib"] for s in samples),
        "rss_end_over_warmup": round(end_mib / base_mib, 4),
        "rss_growth_pct": round(100.0 * (end_mib - base_mib) / base_mib, 2),
        "rss_growth_within_limit": 100.0 * (end_mib - base_mib) / base_mib < RSS_GROWTH_LIMIT_PCT,
        "rss_slope_mib_per_h": round(slope, 2),
        "server_cpu_fraction_of_core": round(cpu_fraction, 4),
    }


def read_back(store_url: str, sent_ids: list[str], *, since_ns: int) -> dict:
    """What the store holds of the detections sent (by id), their clips, and the incidents they raised."""
    store = Store(store_url)
    try:
        sent = set(sent_ids)
        in_incidents: set[str] = set()
        incidents = 0
        for offset in itertools.count(step=500):
            page = store.list_incidents(since_ns=since_ns, limit=500, offset=offset)
            for incident in page:
                mine = sent.intersection(incident.detection_ids)
                in_incidents |= mine
                incidents += bool(mine)
            if len(page) < 500:
                break
        return {
            "stored_detections_total": store.count_detections(),
            "quarantined_total": store.quarantine.count(),
            "detections_with_clip": sum(
                len(store.evidence.with_clips(sent_ids[k : k + 500])) for k in range(0, len(sent_ids), 500)
            ),
            "detections_in_incidents": len(in_incidents),
            "incidents": incidents,
            "poles_seen": {s.sensor_id: s.last_seen_ns for s in store.list_sensors()},
        }
    finally:
        store.close()


def plot(path: Path, samples: list[dict], *, warmup_s: float, rss_after_warmup_mib: float | None, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t_min = np.array([s["t_s"] for s in samples]) / 60.0
    cpu = np.array([s["cpu_s"] for s in samples])
    cpu_pct = 100.0 * np.diff(cpu) / np.maximum(np.diff(t_min) * 60.0, 1e-9)
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    top.plot(t_min, [s["rss_mib"] for s in samples], lw=1.2)
    top.axvline(warmup_s / 60.0, color="grey", ls="--", lw=1, label="end of warm-up")
    if rss_after_warmup_mib is not None:
        top.axhline(
            rss_after_warmup_mib * (1 + RSS_GROWTH_LIMIT_PCT / 100),
            color="tab:red",
            ls=":",
            lw=1,
            label=f"after warm-up +{RSS_GROWTH_LIMIT_PCT:g} %",
        )
    top.set_ylabel("server RSS, MiB")
    top.legend(loc="lower right")
    top.set_title(title)
    bottom.plot(t_min[1:], cpu_pct, lw=1.0, color="tab:orange")
    bottom.set_ylabel("server CPU, % of a core")
    bottom.set_xlabel("time since the poles started, min")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def drive(
    sensors: SimulatedSensors, reports: list[PoleReport], server: subprocess.Popen, *, end_ns: int
) -> tuple[list[PoleReport], list[str]]:
    """Send each report when it is due, until ``end_ns`` or until the server exits; returns the
    reports sent and their detection ids."""
    sent: list[PoleReport] = []
    sent_ids: list[str] = []
    for report in [*reports, None]:
        due_ns = end_ns if report is None else report.send_ns
        while (wait_s := (due_ns - time.time_ns()) / 1e9) > 0 and server.poll() is None:
            time.sleep(min(wait_s, 1.0))
        if server.poll() is not None or report is None:
            break
        (detection,) = sensors.emit(
            report.label,
            report.source_m,
            emission_ns=report.emission_ns,
            score=report.score,
            sensor_ids=(report.sensor_id,),
        )
        sent.append(report)
        sent_ids.append(detection.detection_id)
    return sent, sent_ids


def delivery(
    sent_ids: list[str], outboxes: list[_AckTimedOutbox], stored: dict, *, before: dict[str, int], server_alive: bool
) -> tuple[dict, list[str], dict]:
    """Counts of what was sent, acked, stored and alerted; what went wrong (empty: nothing lost);
    send -> ack percentiles of detections and clips.

    "Acked" is "removed from the outbox": a :class:`~sed.wire.Reject` removes a message too,
    which the stored and quarantined counts then show.
    """
    put_ns = {k: v for o in outboxes for k, v in o.put_ns.items()}
    acked_ns = {k: v for o in outboxes for k, v in o.acked_ns.items()}
    clip_ids = set(put_ns) - set(sent_ids)  # a pole's outbox holds its detections and their clips
    n_sent = len(sent_ids)
    counts = {
        "detections_sent": n_sent,
        "detections_acked": sum(d in acked_ns for d in sent_ids),
        "detections_stored": stored["stored_detections_total"] - before["detections"],
        "clips_sent": len(clip_ids),
        "clips_acked": sum(c in acked_ns for c in clip_ids),
        "clips_stored": stored["detections_with_clip"],
        "detections_in_incidents": stored["detections_in_incidents"],
        "quarantined": stored["quarantined_total"] - before["quarantined"],
        "outbox_depth_end": sum(o.depth() for o in outboxes),
        "server_alive_at_end": server_alive,
    }
    problems = [
        f"{counts[key]} of {n_sent} {key.replace('_', ' ')}"
        for key in ("detections_acked", "detections_stored", "clips_sent", "clips_acked", "clips_stored")
        if counts[key] != n_sent
    ]
    if not n_sent:
        problems.append("no sound fitted in the run: nothing was tested (raise --duration-s or --events-per-min)")
    if counts["detections_in_incidents"] != n_sent:
        problems.append(f"{n_sent - counts['detections_in_incidents']} detections raised no incident")
    if counts["quarantined"]:
        problems.append(f"{counts['quarantined']} messages quarantined by the server")
    if counts["outbox_depth_end"]:
        problems.append(f"{counts['outbox_depth_end']} messages still in the outboxes")
    if not server_alive:
        problems.append("the server exited during the run")
    latency = {
        "detection": _percentiles_ms([acked_ns[d] - put_ns[d] for d in sent_ids if d in acked_ns]),
        "clip": _percentiles_ms([acked_ns[c] - put_ns[c] for c in clip_ids if c in acked_ns]),
    }
    return counts, problems, latency


def run(args: argparse.Namespace, workdir: Path) -> dict:
    """The whole soak in ``workdir``: server, poles, traffic, drain, read-back; the report's figures."""
    positions = pole_grid(args.poles)
    keys = NetworkKeys.create(workdir, list(positions))
    store_url = args.store_url or f"sqlite:///{workdir / 'soak.sqlite'}"
    store = Store(store_url)  # brings the schema up; the counts tell a reused database's old rows apart
    before = {"detections": store.count_detections(), "quarantined": store.quarantine.count()}
    store.close()
    process, fusion_endpoint, api_url = start_server(workdir, keys, store_url)
    outboxes: list[_AckTimedOutbox] = []

    def make_outbox(path: Path) -> Outbox:
        outboxes.append(_AckTimedOutbox(path))
        return outboxes[-1]

    sensors = None
    t0_ns, t0_cpu_s = time.time_ns(), time.process_time()
    sampler = Sampler(process.pid, api_url, outboxes, interval_s=args.sample_interval_s, t0_ns=t0_ns)
    try:
        sampler.sample()  # the server alone: before any pole
        sensors = SimulatedSensors(
            fusion_endpoint,
            keys,
            positions,
            workdir,
            temperature_c=SITE["temperature_c"],
            heartbeat_interval_s=HEARTBEAT_INTERVAL_S,
            clip_pre_s=CLIP.pre_s,
            clip_post_s=CLIP.post_s,
            make_outbox=make_outbox,
        )
        sampler.start()
        reports = schedule(
            sensors, start_ns=t0_ns, duration_s=args.duration_s, events_per_min=args.events_per_min, seed=args.seed
        )
        sent, sent_ids = drive(sensors, reports, process, end_ns=t0_ns + round(args.duration_s * 1e9))
        drain_deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while sum(o.depth() for o in outboxes) and time.monotonic() < drain_deadline:
            time.sleep(0.2)
        # Lone detections wait for the widest pole pair's travel time before they become incidents.
        widest_s = max(math.dist(a, b) for a in positions.values() for b in positions.values()) / sensors.speed_m_per_s
        settle_s = widest_s + FusionSection.model_fields["association_wait_s"].default + 3.0
        time.sleep(max(0.0, ((sent[-1].send_ns if sent else t0_ns) - time.time_ns()) / 1e9 + settle_s))
        sampler.stop.set()
        sampler.join()
        server_alive = process.poll() is None
        if server_alive:
            sampler.sample()
        read_ns = time.time_ns()
        stored = read_back(store_url, sent_ids, since_ns=t0_ns - 60 * 10**9)
        counts, problems, send_to_ack = delivery(sent_ids, outboxes, stored, before=before, server_alive=server_alive)
        # The poles share the machine's cores with the server: their cost is part of the picture.
        poles_cpu_fraction = (time.process_time() - t0_cpu_s) / ((time.time_ns() - t0_ns) / 1e9)
    finally:
        sampler.stop.set()
        if sensors is not None:
            sensors.close()
        process.terminate()
        try:
            exit_code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            exit_code = process.wait()
    log_lines = (workdir / "server.log").read_text(errors="replace").splitlines()
    detection_ids = set(sent_ids)
    clip_bytes = [n for o in outboxes for k, n in o.payload_bytes.items() if k not in detection_ids]
    poles_per_sound = collections.Counter(r.sound for r in sent)
    heard_since_ns = read_ns - round(3 * HEARTBEAT_INTERVAL_S * 1e9)
    return {
        "poles": args.poles,
        "duration_s": args.duration_s,
        "store": store_url.split(":", 1)[0].split("+")[0],
        "load": {
            "events_per_min": args.events_per_min,
            "sounds": len(poles_per_sound),
            "lone_sounds": sum(n == 1 for n in poles_per_sound.values()),
            "poles_per_sound_mean": round(len(sent) / max(len(poles_per_sound), 1), 2),
            "heartbeat_interval_s": HEARTBEAT_INTERVAL_S,
            "clip_s": CLIP.pre_s + CLIP.post_s,
            "clip_bytes_mean": round(float(np.mean(clip_bytes))) if clip_bytes else None,
        },
        "nothing_lost": not problems,
        "problems": problems,
        "counts": counts,
        "incidents": stored["incidents"],
        "poles_heard_from_at_end": sum(stored["poles_seen"].get(s, 0) >= heard_since_ns for s in positions),
        "send_to_ack_ms": send_to_ack,
        "memory_cpu": memory_and_cpu(
            sampler.samples,
            duration_s=args.duration_s,
            warmup_s=args.warmup_fraction * args.duration_s,
            interval_s=args.sample_interval_s,
        ),
        "healthz_not_ok": sum(s["healthz"] != 200 for s in sampler.samples),
        "simulated_poles_cpu_fraction_of_core": round(poles_cpu_fraction, 4),
        "server_exit_code": exit_code,
        "server_log": {
            "error_lines": sum("ERROR" in line or "Traceback" in line for line in log_lines),
            "warning_lines": sum("WARNING" in line for line in log_lines),
            "first_lines": log_lines[:5],
        },
        "samples": sampler.samples,
    }


def _default_out(duration_s: float, poles: int) -> Path:
    if {"duration_s": duration_s, "poles": poles} == FULL_RUN:
        return RESULTS_DIR / "soak.json"
    return RESULTS_DIR / f"soak_{poles}poles_{duration_s:g}s.json"


def summary(report: dict) -> str:
    counts, memory, ack = report["counts"], report["memory_cpu"], report["send_to_ack_ms"]["detection"]
    verdict = "nothing lost" if report["nothing_lost"] else "FAILED: " + ", ".join(report["problems"])
    rss = (
        f"server RSS {memory['rss_after_warmup_mib']} MiB after warm-up -> {memory['rss_end_mib']} MiB at the end "
        f"(x{memory['rss_end_over_warmup']}, {memory['rss_growth_pct']:+} %, {memory['rss_slope_mib_per_h']:+} MiB/h), "
        f"server CPU {100 * memory['server_cpu_fraction_of_core']:.1f} % of a core"
        if "error" not in memory
        else f"memory: {memory['error']}"
    )
    return (
        f"soak {report['duration_s']:g} s, {report['poles']} poles, {report['store']}: {verdict} "
        f"({counts['detections_stored']}/{counts['detections_sent']} detections, {counts['clips_stored']}/"
        f"{counts['clips_sent']} clips stored, {counts['detections_in_incidents']} in {report['incidents']} incidents "
        f"from {report['load']['sounds']} sounds, outboxes {counts['outbox_depth_end']}); {rss}; "
        f"send->ack p50 {ack['p50']} ms, p99 {ack['p99']} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--duration-s", type=float, default=FULL_RUN["duration_s"], help="traffic time, s")
    parser.add_argument("--poles", type=int, default=FULL_RUN["poles"])
    parser.add_argument("--events-per-min", type=float, default=4.0, help="sounds per minute, city-wide")
    parser.add_argument("--sample-interval-s", type=float, default=5.0, help="RSS/CPU sampling period, s")
    parser.add_argument("--warmup-fraction", type=float, default=0.1, help="share of the run that is warm-up")
    parser.add_argument(
        "--store-url",
        help="the server's database (default: SQLite in a temporary folder); nothing else may write to it meanwhile",
    )
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", type=Path, help="JSON report (the PNG goes beside it)")
    args = parser.parse_args(argv)
    problems = [
        f"--{name.replace('_', '-')} {value!r}: expected {expected}"
        for name, value, ok, expected in (
            ("duration_s", args.duration_s, 5.0 <= args.duration_s <= 86400.0, "5 to 86400 s"),
            ("poles", args.poles, 1 <= args.poles <= 500, "1 to 500"),
            ("events_per_min", args.events_per_min, 0.0 < args.events_per_min <= 600.0, "> 0 and <= 600"),
            ("sample_interval_s", args.sample_interval_s, 0.1 <= args.sample_interval_s <= 60.0, "0.1 to 60 s"),
            ("warmup_fraction", args.warmup_fraction, 0.0 <= args.warmup_fraction < 0.9, "0 to 0.9"),
        )
        if not ok  # also false for nan
    ]
    if problems:
        parser.error("; ".join(problems))
    out = args.out or _default_out(args.duration_s, args.poles)
    with tempfile.TemporaryDirectory(prefix="sed-soak-") as tmp:
        report = {
            **provenance("python benchmarks/soak.py " + " ".join(sys.argv[1:] if argv is None else argv)),
            "benchmark": "soak",
            **run(args, Path(tmp)),
        }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    title = f"sed server, {args.poles} poles, {args.events_per_min:g} sounds/min, {report['store']}"
    plot(
        out.with_suffix(".png"),
        report["samples"],
        warmup_s=args.warmup_fraction * args.duration_s,
        rss_after_warmup_mib=report["memory_cpu"].get("rss_after_warmup_mib"),
        title=title,
    )
    print(summary(report))
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return 0 if report["nothing_lost"] else 1


if __name__ == "__main__":
    sys.exit(main())
