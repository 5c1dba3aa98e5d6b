"""Alert latency to a live client, and GET /api/incidents throughput under concurrent clients.

    .venv/bin/python benchmarks/api_latency.py [--incidents 200] [--smoke]

Runs ``sed server`` (fusion node + API, SQLite) as a subprocess. Simulated poles
(:mod:`sed.api.simulate`, real CURVE senders) emit one sound every ``--interval-s``, each pole
sending its detection after the sound's travel time plus a detection latency like a real
sensor's (:data:`DETECTION_LATENCY_S`), so a sound's detections trickle in; a
Server-Sent-Events client (``GET /api/live``) and, as the baseline, a client polling
``GET /api/incidents`` once a second (what a dashboard without push does) note when each
incident reaches them. Latency runs from the moment the *last contributing detection*
reached the fusion node (its ``received_at_ns``, stamped by the server on the same clock)
to the moment the client holds the incident. It includes whatever association wait the
fusion node still needs (``fusion.association_wait_s`` after a group's first detection, cut
short once more sensors than a fix needs have reported; a late detection that fits a located
shot joins it at once), so the run also splits it into the fusion stage (last detection
received -> incident formed or updated) and the push stage (committed, read back, pushed).

Then N threads with keep-alive connections each request ``GET /api/incidents?limit=100``
for a fixed time, for N = 1 (the baseline) and more. Writes
``benchmarks/results/api_latency.json`` (git commit, machine, date) and prints medians.
The machine has 2 cores shared with other work: server and clients compete for them.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import tomli_w

from sed import wire
from sed.api.auth import hash_password, issue_token
from sed.api.simulate import SimulatedSensors
from sed.bench.report import provenance
from sed.keys import NetworkKeys
from sed.store import Role, Store

RESULTS = Path(__file__).parent / "results" / "api_latency.json"
#: A compact block: the largest transit across it (~0.5 s) is shorter than the interval between sounds.
POLES = {
    "pole-1": (0.0, 0.0, 6.0),
    "pole-2": (120.0, 0.0, 6.0),
    "pole-3": (120.0, 100.0, 6.0),
    "pole-4": (0.0, 100.0, 6.0),
}
#: Sound onset -> detection leaving the pole, s: the range ``benchmarks/sensor.py`` measures for the
#: real daemon (0.83-0.92 s), widened. A sound's detections reach the node spread by this and by
#: the sound's travel time, as from real poles.
DETECTION_LATENCY_S = (0.8, 1.1)
POLL_INTERVAL_S = 1.0
THROUGHPUT_CLIENTS = (1, 4, 16)


class SseFollower(threading.Thread):
    """Notes when each incident id first arrives on the live stream (receive clock, UTC ns)."""

    def __init__(self, host: str, port: int, token: str) -> None:
        super().__init__(daemon=True)
        self.seen_ns: dict[str, int] = {}
        self.created_ns: dict[str, int] = {}  # when the fusion node formed the incident (just before commit)
        self.connection = http.client.HTTPConnection(host, port, timeout=60)
        self.connection.request("GET", "/api/live", headers={"Authorization": f"Bearer {token}"})
        self.response = self.connection.getresponse()
        assert self.response.status == 200, self.response.status

    def run(self) -> None:
        kind = None
        try:
            for raw in self.response:
                line = raw.decode().rstrip("\n")
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:") and kind == "incident":
                    now = time.time_ns()
                    incident = json.loads(line[5:])["incident"]
                    self.seen_ns.setdefault(incident["incident_id"], now)
                    self.created_ns.setdefault(incident["incident_id"], incident["created_at_ns"])
                elif not line:
                    kind = None
        except (OSError, ValueError, http.client.HTTPException):
            return  # closed at the end of the run


class Poller(threading.Thread):
    """The baseline: a dashboard that reloads the incident list once a second."""

    def __init__(self, host: str, port: int, token: str) -> None:
        super().__init__(daemon=True)
        self.seen_ns: dict[str, int] = {}
        self.stop = threading.Event()
        self.connection = http.client.HTTPConnection(host, port, timeout=30)
        self.headers = {"Authorization": f"Bearer {token}"}

    def run(self) -> None:
        while not self.stop.wait(POLL_INTERVAL_S):
            self.connection.request("GET", "/api/incidents?limit=50", headers=self.headers)
            body = self.connection.getresponse().read()
            now = time.time_ns()
            for incident in json.loads(body):
                self.seen_ns.setdefault(incident["incident_id"], now)


def _start_server(workdir: Path, keys: NetworkKeys, *, association_wait_s: float) -> tuple[subprocess.Popen, str, str]:
    config = {
        "site": {"temperature_c": 15.0},
        "fusion": {
            "bind_endpoint": "tcp://127.0.0.1:0",
            "secret_key_file": str(keys.fusion_secret_key_file),
            "authorized_keys_dir": str(keys.authorized_keys_dir),
            "association_wait_s": association_wait_s,
            "incident_merge_s": 0.0,  # every sound its own incident
        },
        "api": {"host": "127.0.0.1", "port": 0},
        "store": {"url": f"sqlite:///{workdir / 'sed.sqlite'}"},
    }
    path = workdir / "server.toml"
    path.write_text(tomli_w.dumps(config))
    process = subprocess.Popen(
        [sys.executable, "-m", "sed.cli", "server", "--config", str(path), "--log-level", "WARNING"],
        stdout=subprocess.PIPE,
        stderr=(workdir / "server.log").open("w"),
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    line = process.stdout.readline()  # "fusion node on tcp://…; API on http://…"
    if "API on" not in line:
        process.kill()
        raise RuntimeError(f"server did not start: {line!r}; see {workdir / 'server.log'}")
    fusion = line.split("fusion node on ")[1].split(";")[0]
    api = line.split("API on ")[1].strip()
    return process, fusion, api


def _latency_run(workdir: Path, n_incidents: int, interval_s: float, association_wait_s: float) -> dict:
    keys = NetworkKeys.create(workdir, list(POLES))
    store = Store(f"sqlite:///{workdir / 'sed.sqlite'}")
    store.accounts.add_user("bench", password_hash=hash_password("benchmark only"), role=Role.OPERATOR, now_ns=0)
    token, _ = issue_token(store, "bench", label="bench", now_ns=time.time_ns(), ttl_s=3600)
    store.close()
    process, fusion, api = _start_server(workdir, keys, association_wait_s=association_wait_s)
    host, port = api.removeprefix("http://").rsplit(":", 1)
    sensors = SimulatedSensors(fusion, keys, POLES, workdir)
    try:
        follower, poller = SseFollower(host, int(port), token), Poller(host, int(port), token)
        follower.start()
        poller.start()
        time.sleep(2.0)  # senders connected, first heartbeats in
        for send_ns, label, source, emission_ns, sensor_id in _schedule(sensors, n_incidents, interval_s):
            time.sleep(max(0.0, (send_ns - time.time_ns()) / 1e9))
            sensors.emit(label, source, emission_ns=emission_ns, with_clips=False, sensor_ids=(sensor_id,))
        time.sleep(association_wait_s + 3.0)
        poller.stop.set()
        poller.join()
        received = _last_detection_received_ns(host, int(port), token)
    finally:
        sensors.close()
        process.terminate()
        process.wait(timeout=20)
    follower.connection.close()

    def delays_s(seen: dict[str, int]) -> list[float]:
        return [(seen[i] - received[i]) / 1e9 for i in received if i in seen]

    push, poll = delays_s(follower.seen_ns), delays_s(poller.seen_ns)
    fusion = [(follower.created_ns[i] - received[i]) / 1e9 for i in received if i in follower.created_ns]
    after_commit = [(follower.seen_ns[i] - follower.created_ns[i]) / 1e9 for i in follower.seen_ns]
    return {
        "n_incidents_expected": n_incidents,
        "n_incidents_stored": len(received),
        "n_pushed": len(push),
        "association_wait_s": association_wait_s,
        "push_s": _summary(push),
        "stage_fusion_s": _summary(fusion),
        "stage_commit_to_client_s": _summary(after_commit),
        "poll_baseline_s": _summary(poll),
    }


def _schedule(
    sensors: SimulatedSensors, n_sounds: int, interval_s: float
) -> list[tuple[int, wire.Label, tuple[float, float, float], int, str]]:
    """When each pole sends its detection of each sound, in time order: a sound every
    ``interval_s``, heard by every pole after its travel time plus a detection latency drawn
    from :data:`DETECTION_LATENCY_S`. Rows: (send time, label, source, emission time, pole)."""
    rng = np.random.default_rng(1)
    labels = list(wire.Label)
    start_ns = time.time_ns()
    rows = []
    for n in range(n_sounds):
        source = (float(rng.uniform(10, 110)), float(rng.uniform(10, 90)), 1.5)
        emission_ns = start_ns + round(n * interval_s * 1e9)
        for sensor_id, arrival_ns in sensors.arrivals_ns(source, emission_ns).items():
            latency_ns = round(rng.uniform(*DETECTION_LATENCY_S) * 1e9)
            rows.append((arrival_ns + latency_ns, labels[n % len(labels)], source, emission_ns, sensor_id))
    return sorted(rows, key=lambda row: row[0])


def _last_detection_received_ns(host: str, port: int, token: str) -> dict[str, int]:
    connection = http.client.HTTPConnection(host, port, timeout=30)
    headers = {"Authorization": f"Bearer {token}"}
    connection.request("GET", "/api/incidents?limit=1000", headers=headers)
    received = {}
    for incident in json.loads(connection.getresponse().read()):
        connection.request("GET", f"/api/incidents/{incident['incident_id']}", headers=headers)
        detail = json.loads(connection.getresponse().read())
        received[incident["incident_id"]] = max(d["received_at_ns"] for d in detail["detections"])
    return received


def _throughput_run(workdir: Path, duration_s: float) -> dict:
    keys = NetworkKeys.create(workdir / "tp", [])
    store = Store(f"sqlite:///{workdir / 'sed.sqlite'}")  # the latency run's database: ~200 incidents
    token, _ = issue_token(store, "bench", label="bench", now_ns=time.time_ns(), ttl_s=3600)
    store.close()
    process, _, api = _start_server(workdir, keys, association_wait_s=1.5)
    host, port = api.removeprefix("http://").rsplit(":", 1)
    results = {}
    try:
        for n_clients in THROUGHPUT_CLIENTS:
            results[str(n_clients)] = _hammer(host, int(port), token, n_clients, duration_s)
    finally:
        process.terminate()
        process.wait(timeout=20)
    return results


def _hammer(host: str, port: int, token: str, n_clients: int, duration_s: float) -> dict:
    latencies: list[list[float]] = [[] for _ in range(n_clients)]
    errors = [0] * n_clients
    start = threading.Barrier(n_clients + 1)
    deadline = [0.0]

    def client(k: int) -> None:
        connection = http.client.HTTPConnection(host, port, timeout=30)
        headers = {"Authorization": f"Bearer {token}"}
        start.wait()
        while time.perf_counter() < deadline[0]:
            t0 = time.perf_counter()
            connection.request("GET", "/api/incidents?limit=100", headers=headers)
            response = connection.getresponse()
            body = response.read()
            if response.status != 200 or not body.startswith(b"["):
                errors[k] += 1
            latencies[k].append(time.perf_counter() - t0)
        connection.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(n_clients)]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + duration_s
    t_start = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - t_start
    flat = [x for per in latencies for x in per]
    return {
        "clients": n_clients,
        "requests": len(flat),
        "errors": sum(errors),
        "requests_per_s": round(len(flat) / elapsed, 1),
        "latency_ms": {k: round(v * 1000, 2) for k, v in _summary(flat).items() if k != "n"},
    }


def _summary(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    array = np.asarray(values)
    return {
        "n": len(values),
        "median": round(float(np.median(array)), 4),
        "p99": round(float(np.percentile(array, 99)), 4),
        "min": round(float(array.min()), 4),
        "max": round(float(array.max()), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--incidents", type=int, default=200)
    parser.add_argument("--interval-s", type=float, default=0.6, help="time between simulated sounds, s")
    parser.add_argument("--association-wait-s", type=float, default=1.5, help="fusion.association_wait_s (default 1.5)")
    parser.add_argument("--throughput-s", type=float, default=5.0, help="duration of each throughput step, s")
    parser.add_argument("--smoke", action="store_true", help="10 incidents, 1 s steps: checks the benchmark runs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.smoke:
        args.incidents, args.throughput_s = 10, 1.0
    with tempfile.TemporaryDirectory() as tmp:
        latency = _latency_run(Path(tmp), args.incidents, args.interval_s, args.association_wait_s)
        throughput = _throughput_run(Path(tmp), args.throughput_s)
    push, poll = latency["push_s"], latency["poll_baseline_s"]
    report = {
        **provenance("python benchmarks/api_latency.py " + " ".join(sys.argv[1:])),
        "benchmark": "api_latency",
        "alert_latency": latency,
        "poll_over_push_median_ratio": round(poll["median"] / push["median"], 3)
        if push.get("n") and poll.get("n")
        else None,
        "throughput_get_incidents": throughput,
        "throughput_ratio_vs_1_client": {
            k: round(v["requests_per_s"] / throughput["1"]["requests_per_s"], 2) for k, v in throughput.items()
        },
    }
    if not args.smoke or args.out != RESULTS:  # a smoke run never overwrites the committed result
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"alert latency, last detection at the fusion node -> live client, {push.get('n', 0)} of "
        f"{latency['n_incidents_expected']} incidents: median {push.get('median')} s, p99 {push.get('p99')} s "
        f"(fusion stage, association wait up to {latency['association_wait_s']} s: median "
        f"{latency['stage_fusion_s'].get('median')} s; incident formed -> client: median "
        f"{latency['stage_commit_to_client_s'].get('median')} s, "
        f"p99 {latency['stage_commit_to_client_s'].get('p99')} s)"
    )
    print(
        f"baseline, polling every {POLL_INTERVAL_S:.0f} s: median {poll.get('median')} s, p99 {poll.get('p99')} s; "
        f"poll/push median ratio {report['poll_over_push_median_ratio']}"
    )
    for k, v in throughput.items():
        print(
            f"GET /api/incidents?limit=100, {k:>2} clients: {v['requests_per_s']} req/s "
            f"(x{report['throughput_ratio_vs_1_client'][k]} vs 1 client), median {v['latency_ms'].get('median')} ms, "
            f"p99 {v['latency_ms'].get('p99')} ms, errors {v['errors']}"
        )
    if not args.smoke:
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
