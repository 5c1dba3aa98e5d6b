"""``sed demo``: a simulated city block, end to end, from one command.

Starts the fusion node and the API (embedded SQLite in a temporary folder), runs one
``sed sensor`` process per pole streaming its share of a scripted scene in real time over
CURVE-secured ZeroMQ, watches the API as an operator's screen would, and prints what was
scripted beside what the operations centre saw. The last line is one JSON object::

    {"scripted": 4, "alerted": 4, "classes_correct": 4, "median_error_m": 0.04, "max_latency_s": 1.1}

Latency runs from the sound reaching the first pole (the scripted clip's first sample at
-20 dB of its peak) until the incident is on the operator's screen, i.e. readable from the
API — whatever its stage: the provisional incident that later merged into the located one
counts.

``--serve`` keeps the operations centre up after the scenario (Ctrl-C ends it) and prints an
admin login (user ``admin`` and a password made for this run) for the dashboard and the API.
It also writes ``server.toml`` into the working folder (kept: printed at the start), the
configuration the demo's server ran with, to pass to ``sed users --config`` (more users,
tokens) or to ``sed server --config`` (the same operations centre again, its incidents kept).
"""

from __future__ import annotations

import argparse
import json
import math
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import tomli_w

from sed import wire
from sed.api.auth import hash_password, issue_token
from sed.capture.scene import TruthEvent, ground_truth, pick_sound
from sed.config import SceneConfig, SceneSection, ServerConfig, load_config, parse_config
from sed.dsp.onset import find_onsets
from sed.errors import ConfigError
from sed.keys import NetworkKeys
from sed.runtime import CONSOLE_SCRIPT, CommandParser, stop_on_signals
from sed.server import Server
from sed.store import Role

#: The operator account the demo signs in as (its password is random per run).
DEMO_USER = "demo"
#: The admin account ``--serve`` creates for the person trying the dashboard (random password).
DEMO_ADMIN = "admin"
#: Time allowed for the sensor processes to start and load their model before the scene starts, s.
STARTUP_MARGIN_S = 4.0
#: Range of ``--duration``, s: the scripted events need a few seconds each; an hour is plenty.
MIN_DURATION_S, MAX_DURATION_S = 8.0, 3600.0
#: How often the demo polls the API, s.
POLL_INTERVAL_S = 0.05
#: The API leaves merged incidents out unless asked: the demo watches every stage.
ALL_STAGES = "&".join(f"stage={stage}" for stage in wire.IncidentStage)
#: An incident matches a scripted event if its origin lies from this long before the event's first
#: sound until this long after its clip ends, s.
MATCH_MARGIN_S = 0.5

#: Poles of the default block: corners and mid-edges of a 220 m x 170 m block, 6 m high.
DEFAULT_SENSORS = [
    ("pole-01", 0.0, 0.0),
    ("pole-02", 110.0, -8.0),
    ("pole-03", 220.0, 0.0),
    ("pole-04", 225.0, 170.0),
    ("pole-05", 105.0, 178.0),
    ("pole-06", -5.0, 165.0),
]
#: (label, fraction of the scene duration, x_m, y_m, peak level at 10 m in dBFS). Not to scale
#: (a real gunshot is some 30 dB louder than a scream): every scripted sound is set to reach at
#: least two poles clearly above the shipped detector's thresholds, so the demo shows the whole
#: chain; how level and distance affect detection is measured in benchmarks/city.py.
DEFAULT_EVENTS = [
    ("gunshot", 0.08, 60.0, 50.0, 0.0),
    ("scream", 0.35, 170.0, 120.0, -3.0),
    ("glass_break", 0.60, 100.0, 95.0, -10.0),
    ("gunshot", 0.82, 185.0, 40.0, 0.0),
]


def default_scene(*, duration_s: float = 30.0, seed: int = 7) -> dict:
    """The scripted scenario: a gunshot, a scream, a glass break and a second gunshot."""
    return {
        "scene": {
            "duration_s": duration_s,
            "temperature_c": 12.0,
            "noise_dbfs": -60.0,
            "seed": seed,
            "sensors": [{"id": i, "x_m": x, "y_m": y, "z_m": 6.0} for i, x, y in DEFAULT_SENSORS],
            "events": [
                {"label": label, "time_s": round(f * duration_s, 3), "x_m": x, "y_m": y, "level_db": level}
                for label, f, x, y, level in DEFAULT_EVENTS
            ],
            "reflectors": [{"axis": "y", "at_m": 200.0, "gain": 0.4}],
        }
    }


def _sound_onsets_s(scene: SceneSection, truth: list[TruthEvent]) -> list[list[float]]:
    """Per event: when its sounds start inside the played clip, s (sorted; at least one).

    A clip may hold several sounds (a burst of shots); each impulsive onset is an emission.
    """
    sr = scene.sample_rate_hz
    result = []
    for index, (event, known) in enumerate(zip(scene.events, truth, strict=True)):
        sound = pick_sound(event, index, seed=scene.seed, sample_rate_hz=sr)
        onsets = sorted(p.sample_index / sr for p in find_onsets(sound, sample_rate_hz=sr))
        result.append(onsets or [known.onset_s])
    return result


class _Setup:
    """Everything the demo writes into its working folder: scene, keys, configs."""

    def __init__(self, workdir: Path, scene_raw: dict, *, model: Path | None = None) -> None:
        self.workdir = workdir
        self.model = model
        self.scene_path = workdir / "scene.toml"
        self.scene_path.write_text(tomli_w.dumps(scene_raw))
        self.scene = load_config(self.scene_path, SceneConfig).scene
        self.keys = NetworkKeys.create(workdir, [sensor.id for sensor in self.scene.sensors])
        self.server_raw: dict = {
            "site": {"temperature_c": self.scene.temperature_c},
            "fusion": {
                "bind_endpoint": "tcp://127.0.0.1:0",
                "secret_key_file": str(self.keys.fusion_secret_key_file.resolve()),
                "authorized_keys_dir": str(self.keys.authorized_keys_dir.resolve()),
            },
            "api": {"host": "127.0.0.1", "port": 0},
            "store": {"url": f"sqlite:///{(workdir / 'sed.sqlite').resolve()}"},
        }
        self.server = parse_config(self.server_raw, ServerConfig)

    def write_server_config(self, *, fusion_endpoint: str, api_port: int) -> Path:
        """``server.toml`` as the demo's server ran (its ports fixed), for ``sed users``/``sed server``."""
        raw = {**self.server_raw}
        raw["fusion"] = {**raw["fusion"], "bind_endpoint": fusion_endpoint}
        raw["api"] = {**raw["api"], "port": api_port}
        path = self.workdir / "server.toml"
        path.write_text(tomli_w.dumps(raw))
        return path

    def sensor_config(self, sensor_id: str, *, endpoint: str, start_utc_ns: int) -> Path:
        sensor = next(s for s in self.scene.sensors if s.id == sensor_id)
        raw = {
            "sensor": {"id": sensor.id, "position": {"x_m": sensor.x_m, "y_m": sensor.y_m, "z_m": sensor.z_m}},
            "capture": {"source": "scene", "scene": str(self.scene_path), "start_utc_ns": start_utc_ns},
            "transport": {
                "fusion_endpoint": endpoint,
                "secret_key_file": str(self.keys.sensor_secret_key_files[sensor.id]),
                "server_public_key_file": str(self.keys.fusion_public_key_file),
                "outbox_path": str(self.workdir / f"outbox-{sensor.id}.sqlite"),
                "heartbeat_interval_s": 2.0,
            },
        }
        if self.model is not None:
            raw["detector"] = {"model": str(self.model.resolve())}
        path = self.workdir / f"{sensor.id}.toml"
        path.write_text(tomli_w.dumps(raw))
        return path


def _get_json(url: str, token: str) -> list[dict]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def _match(truth: TruthEvent, emissions_ns: list[int], clip_end_ns: int, incidents: list[dict]) -> dict | None:
    lo, hi = emissions_ns[0] - int(MATCH_MARGIN_S * 1e9), clip_end_ns + int(MATCH_MARGIN_S * 1e9)
    candidates = [i for i in incidents if lo <= i["origin_time_ns"] <= hi]
    if not candidates:
        return None
    # Prefer the right class, then the one closest to one of the event's sounds (as an operator would).
    return min(
        candidates,
        key=lambda i: (i["label"] != truth.label, min(abs(i["origin_time_ns"] - e) for e in emissions_ns)),
    )


def run_demo(
    *, scene_raw: dict, workdir: Path, model: Path | None = None, serve: bool = False, log=print
) -> dict[str, float | int | None]:
    """Run the scenario end to end; returns the summary that ``sed demo`` prints as JSON."""
    setup = _Setup(workdir, scene_raw, model=model)
    scene = setup.scene
    server = Server(setup.server)
    stop = threading.Event()
    if serve:  # Ctrl-C or SIGTERM ends --serve cleanly (also when the shell started us with SIGINT ignored)
        stop_on_signals(stop)
    server.start()
    try:
        log(f"fusion node on {server.fusion_endpoint}, API on {server.api_url}")
        # The API needs a signed-in user: the demo is an operator with a one-off password.
        password = secrets.token_urlsafe(12)
        server.store.accounts.add_user(DEMO_USER, password_hash=hash_password(password), role=Role.OPERATOR, now_ns=0)
        token, _ = issue_token(server.store, DEMO_USER, label="demo", now_ns=time.time_ns(), ttl_s=None)
        if serve:
            admin_password = secrets.token_urlsafe(12)
            server.store.accounts.add_user(
                DEMO_ADMIN, password_hash=hash_password(admin_password), role=Role.ADMIN, now_ns=time.time_ns()
            )
            config_path = setup.write_server_config(
                fusion_endpoint=server.fusion_endpoint, api_port=urllib.parse.urlsplit(server.api_url).port or 0
            )
        start_ns = time.time_ns() + int(STARTUP_MARGIN_S * 1e9)
        processes = []
        for sensor in scene.sensors:
            config = setup.sensor_config(sensor.id, endpoint=server.fusion_endpoint, start_utc_ns=start_ns)
            log_file = (workdir / f"{sensor.id}.log").open("w")
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "sed", "sensor", "--config", str(config)],
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                )
            )
        log(f"{len(processes)} sensor processes streaming a {scene.duration_s:.0f} s scene in real time …")
        truth = ground_truth(scene)
        onsets = _sound_onsets_s(scene, truth)
        first_seen_ns: dict[str, int] = {}
        merged_into: dict[str, str] = {}
        stages_seen: set[tuple[str, str]] = set()
        incidents: list[dict] = []
        settle_s = 2 * setup.server.fusion.association_wait_s + 3.0
        deadline_ns = start_ns + int((scene.duration_s + settle_s) * 1e9)
        try:
            while time.time_ns() < deadline_ns:
                every = _get_json(f"{server.api_url}/api/incidents?limit=1000&{ALL_STAGES}", token)
                now = time.time_ns()
                for incident in every:
                    seen = (incident["incident_id"], incident["stage"])
                    if seen[0] not in first_seen_ns:
                        first_seen_ns[seen[0]] = now
                    if incident["merged_into"]:
                        merged_into[seen[0]] = incident["merged_into"]
                    if seen not in stages_seen:
                        stages_seen.add(seen)
                        where = incident["position"]
                        log(
                            f"  +{(now - start_ns) / 1e9:5.1f} s  incident {seen[0][:8]} {incident['label']:<11} "
                            f"{incident['stage']:<11} "
                            + (f"at ({where['x_m']:6.1f}, {where['y_m']:6.1f}) m" if where else "not located")
                            + f", {len(incident['sensor_ids'])} sensors"
                        )
                incidents = [i for i in every if i["stage"] != "merged"]
                time.sleep(POLL_INTERVAL_S)
            for process in processes:
                process.wait(timeout=30)
            failed = [p.args[-1] for p in processes if p.returncode != 0]
            if failed:
                log(f"sensor processes failed: {failed} (logs in {workdir})")
            sensors = _get_json(f"{server.api_url}/api/sensors", token)
        finally:
            for process in processes:
                if process.poll() is None:
                    process.terminate()
        on_screen_ns = _on_screen_ns(first_seen_ns, merged_into)
        summary, rows = _evaluate(truth, onsets, start_ns, incidents, on_screen_ns)
        _print_report(rows, sensors, log)
        if serve:
            log(
                f"\ndashboard and API at {server.api_url}/\n"
                f"  sign in as admin:    {DEMO_ADMIN} / {admin_password}\n"
                f"  or as operator:      {DEMO_USER} / {password}\n"
                f"  server config:       {config_path}\n"
                f"    more users:        {CONSOLE_SCRIPT} users add NAME --config {config_path}\n"
                f"    run it again:      {CONSOLE_SCRIPT} server --config {config_path}\n"
                "Ctrl-C to stop"
            )
            stop.wait()
    finally:  # also on Ctrl-C during the scenario (exit 130)
        server.stop()
    return summary


def _on_screen_ns(first_seen_ns: dict[str, int], merged_into: dict[str, str]) -> dict[str, int]:
    """When each incident was first on screen: itself, or any incident that later merged into it."""
    on_screen = dict(first_seen_ns)
    for incident_id, seen_ns in first_seen_ns.items():
        target, hops = merged_into.get(incident_id), 0
        while target is not None and hops < len(merged_into):
            on_screen[target] = min(on_screen.get(target, seen_ns), seen_ns)
            target, hops = merged_into.get(target), hops + 1
    return on_screen


def _evaluate(
    truth: list[TruthEvent],
    onsets: list[list[float]],
    start_ns: int,
    incidents: list[dict],
    first_seen_ns: dict[str, int],
) -> tuple[dict[str, float | int | None], list[dict]]:
    rows, errors, latencies = [], [], []
    for event, onsets_s in zip(truth, onsets, strict=True):
        emissions_ns = [start_ns + int((event.emission_time_s + o) * 1e9) for o in onsets_s]
        clip_end_ns = start_ns + int((event.emission_time_s + event.duration_s) * 1e9)
        incident = _match(event, emissions_ns, clip_end_ns, incidents)
        row = {"event": event, "incident": incident, "error_m": None, "latency_s": None}
        if incident is not None:
            # Latency from the emission of the sound that raised the incident: the last sound that
            # started before the incident's origin (a located origin is that emission, to a ms).
            tolerance_ns = 50_000_000
            emitted = [e for e in emissions_ns if e <= incident["origin_time_ns"] + tolerance_ns] or emissions_ns[:1]
            to_first_pole_ns = int((min(event.arrival_time_s.values()) - event.emission_time_s) * 1e9)
            row["latency_s"] = (first_seen_ns[incident["incident_id"]] - emitted[-1] - to_first_pole_ns) / 1e9
            latencies.append(row["latency_s"])
            if incident["position"] is not None:
                p = incident["position"]
                row["error_m"] = float(np.hypot(p["x_m"] - event.position_m[0], p["y_m"] - event.position_m[1]))
                errors.append(row["error_m"])
        rows.append(row)
    summary = {
        "scripted": len(truth),
        "alerted": sum(r["incident"] is not None for r in rows),
        "classes_correct": sum(r["incident"] is not None and r["incident"]["label"] == r["event"].label for r in rows),
        "median_error_m": round(statistics.median(errors), 2) if errors else None,
        "max_latency_s": round(max(latencies), 2) if latencies else None,
    }
    return summary, rows


def _print_report(rows: list[dict], sensors: list[dict], log) -> None:
    log("\nscripted event                          what the operations centre saw")
    for row in rows:
        event: TruthEvent = row["event"]
        incident = row["incident"]
        x_m, y_m, _ = event.position_m
        head = f"{event.emission_time_s:5.1f} s {event.label:<11} at ({x_m:5.0f}, {y_m:5.0f})"
        if incident is None:
            log(f"{head}   MISSED")
        else:
            error = (
                "not located"
                if row["error_m"] is None
                else f"error {row['error_m']:5.1f} m ±{incident['uncertainty_m']:.1f}"
            )
            log(
                f"{head}   {incident['label']:<11} {error}, {len(incident['sensor_ids'])} sensors, "
                f"alert after {row['latency_s']:.1f} s"
            )
        log(f"{'':9}sound: {event.sound}")
    online = sum(s["status"] == "online" for s in sensors)
    log(f"\nsensors reporting: {len(sensors)} ({online} online at the end)")


def _duration_s(text: str) -> float:
    """``--duration``: finite seconds, long enough for the scripted events."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and MIN_DURATION_S <= value <= MAX_DURATION_S):
        raise argparse.ArgumentTypeError(f"{text!r}; expected seconds from {MIN_DURATION_S} to {MAX_DURATION_S}")
    return value


def _read_scene(path: Path) -> dict:
    """A scene TOML as a mapping, its clip paths made absolute (the scene is copied).

    Validated first, so a problem names the user's file rather than the demo's copy.
    """
    load_config(path, SceneConfig)
    scene_raw = tomllib.loads(path.read_text(encoding="utf-8"))
    for event in scene_raw["scene"].get("events", []):
        clip = event.get("clip", "auto")
        if clip not in ("auto", "synthetic"):  # keep clip paths valid once the scene is copied
            event["clip"] = str((path.parent / clip).resolve())
    return scene_raw


def main(argv: list[str], *, prog: str) -> int:
    parser = CommandParser(prog=prog, description=__doc__)
    parser.add_argument(
        "--duration", type=_duration_s, default=30.0, help="length of the default scenario, s (default 30)"
    )
    parser.add_argument("--scene", type=Path, help="run this scene TOML instead of the default scenario")
    parser.add_argument("--seed", type=int, default=7, help="picks the clips and the noise (default 7)")
    parser.add_argument("--model", type=Path, help="ONNX detector for the sensors (default: the shipped model)")
    parser.add_argument("--workdir", type=Path, help="keep configs, keys, logs and the database here")
    parser.add_argument(
        "--serve",
        action="store_true",
        help="keep the API up after the scenario (Ctrl-C ends); prints an admin login and writes\n"
        "WORKDIR/server.toml for 'users' and 'server' (the working folder is then kept)",
    )
    args = parser.parse_args(argv)
    if args.scene is not None:
        scene_raw = _read_scene(args.scene)
    else:
        scene_raw = default_scene(duration_s=args.duration, seed=args.seed)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="sed-demo-"))
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--workdir {workdir}: cannot create the folder ({exc.strerror})") from None
    if args.serve:
        print(f"working folder: {workdir} (kept)", flush=True)
    try:
        summary = run_demo(scene_raw=scene_raw, workdir=workdir, model=args.model, serve=args.serve)
    finally:
        # --serve hands out a config that points into the folder: keep it for the user.
        if args.workdir is None and not args.serve:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(summary), flush=True)
    return 0


__all__ = ["default_scene", "run_demo"]
