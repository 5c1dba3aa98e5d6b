"""Pole sensor cost: CPU per 16 kHz stream, detection latency, memory after an hour.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sensor.py [--hours 1] [--quick]

1. **CPU per stream** (in process, one thread): the sensor pipeline (front end, model,
   onset picker, evidence clips) over three minutes of real dev recordings, for 1, 4 and 8
   streams batched through one model call, against the same streams each in a pipeline
   of its own (the baseline: what one daemon per microphone would cost). Reported as the
   fraction of one core one stream needs (CPU seconds per second of audio per stream);
   with 1 stream both runs are the same code, so their ratio shows the measurement noise.
2. **Latency**: a real ``sed sensor`` process replays, in real time, a file holding dev
   gunshot recordings with noise between them; a CURVE receiver in this process (the
   fusion node's side of the link, over loopback) notes when each detection arrives.
   Latency = arrival at the receiver minus the true onset (the replay's exact clock:
   sample ``k`` is "heard" at ``start + k / rate``). Loopback adds well under a
   millisecond, so this is onset → message leaving the sensor. Compared with the
   structural worst case: the model's window plus one hop plus one block.
3. **Memory after an hour**: ``sed sensor`` streams an hour of audio (dev recordings of
   all classes looped with noise, written to a temporary FLAC) *as fast as possible*
   (``realtime = false``), detections acknowledged by the receiver. Resident memory is
   sampled from ``/proc`` every 0.5 s; reported at 25 % of the run (the baseline: start-up
   is over) and at the end, plus the peak. The process's CPU time over the hour of audio
   is the daemon's whole cost per stream (start-up, sender, outbox, heartbeats included).

Writes ``benchmarks/results/sensor.json`` (git commit, machine, date) and prints medians.
Needs ``../shared/data`` (dev recordings) and the shipped model (or ``--model``).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile
import tomli_w

from sed import wire
from sed.bench import procstat
from sed.bench.report import provenance
from sed.capture.clock import SampleClock
from sed.capture.pipeline import SensorPipeline, StreamInfo
from sed.capture.sources import Block
from sed.config import EvidenceSection
from sed.dsp.audio_io import read_audio
from sed.fusion.receiver import Receiver
from sed.keys import NetworkKeys
from sed.models import StreamingDetector, default_model_path
from sed.paths import shared_data_dir
from sed.units import NS_PER_S

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "sensor.json"
RATE_HZ = 16000
BLOCK_S = 0.1
NOISE_DBFS = -50.0


def _dev_clips(data: Path, labels: tuple[str, ...]) -> list[Path]:
    with (data / "events" / "manifest.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["split_hint"] == "dev" and r["label"] in labels]
    rows.sort(key=lambda r: r["path"])
    return [data / "events" / r["path"] for r in rows]


def _noise(rng: np.random.Generator, n: int) -> np.ndarray:
    return (rng.standard_normal(n) * 10 ** (NOISE_DBFS / 20)).astype(np.float32)


def _program(clips: list[Path], seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Clips with 1–3 s of noise between them, looped to ``seconds``, over a noise floor."""
    n_total = round(seconds * RATE_HZ)
    out = _noise(rng, n_total)
    position, index = RATE_HZ, 0
    while position < n_total:
        audio = read_audio(clips[index % len(clips)], sample_rate_hz=RATE_HZ)[: n_total - position]
        out[position : position + audio.size] += audio
        position += audio.size + round(rng.uniform(1.0, 3.0) * RATE_HZ)
        index += 1
    return out


# ---------------------------------------------------------------------------- 1. CPU per stream


def _pipeline_cpu_s(model: Path, audio: np.ndarray) -> float:
    """CPU seconds to run one pipeline over ``audio`` (n_streams, n)."""
    detector = StreamingDetector.from_file(model, n_streams=audio.shape[0], n_threads=1)
    detector.push(np.zeros((audio.shape[0], 2 * RATE_HZ), np.float32))  # first-run costs of the session
    detector.reset()
    pipeline = SensorPipeline(
        streams=[StreamInfo(sensor_id=f"s.{i}", position=wire.Position(x_m=0, y_m=0)) for i in range(audio.shape[0])],
        detector=detector,
        clock=SampleClock(sample_rate_hz=RATE_HZ),
        evidence=EvidenceSection(),
        submit=lambda message: None,
    )
    step = round(BLOCK_S * RATE_HZ)
    start = time.process_time()
    for first in range(0, audio.shape[1], step):
        pipeline.process(Block(samples=np.ascontiguousarray(audio[:, first : first + step]), first_sample=first))
    pipeline.finish()
    return time.process_time() - start


def cpu_per_stream(model: Path, program: np.ndarray, *, stream_counts: tuple[int, ...], repeats: int) -> dict:
    seconds = program.size / RATE_HZ
    results = {}
    for n in stream_counts:
        audio = np.stack([np.roll(program, k * 7 * RATE_HZ) for k in range(n)])  # different content per stream
        batched, separate = [], []
        for _ in range(repeats):  # interleaved, so that other load on the machine hits both alike
            batched.append(_pipeline_cpu_s(model, audio))
            separate.append(sum(_pipeline_cpu_s(model, audio[k : k + 1]) for k in range(n)))
        results[str(n)] = {
            "core_fraction_per_stream_batched": statistics.median(batched) / seconds / n,
            "core_fraction_per_stream_separate": statistics.median(separate) / seconds / n,
            "separate_over_batched": statistics.median(separate) / statistics.median(batched),
        }
        print(
            f"  {n} stream(s): {results[str(n)]['core_fraction_per_stream_batched'] * 100:.2f} % of a core per stream "
            f"batched, {results[str(n)]['core_fraction_per_stream_separate'] * 100:.2f} % separately "
            f"(x{results[str(n)]['separate_over_batched']:.2f})"
        )
    return {"audio_s": seconds, "block_s": BLOCK_S, "repeats": repeats, "streams": results}


# ---------------------------------------------------------------------------- 2 + 3. the daemon


class _Fusion(threading.Thread):
    """The fusion node's side of the link: receive, note arrival times, acknowledge."""

    def __init__(self, keys: dict[str, Path]) -> None:
        super().__init__(daemon=True)
        self.receiver = Receiver(
            bind_endpoint="tcp://127.0.0.1:0", secret_key_file=keys["fusion"], authorized_keys_dir=keys["authorized"]
        )
        self.detections: list[tuple[int, wire.Detection]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for envelope in self.receiver.poll(20):
                now = time.time_ns()
                if isinstance(envelope.message, wire.Detection):
                    self.detections.append((now, envelope.message))
                message_id = wire.message_id(envelope.message)
                self.receiver.ack(envelope.routing_id, [message_id] if message_id else [])
        self.receiver.close()


def _keys(workdir: Path) -> dict[str, Path]:
    keys = NetworkKeys.create(workdir, ["bench-1"])
    return {
        "fusion": keys.fusion_secret_key_file,
        "fusion_public": keys.fusion_public_key_file,
        "sensor": keys.sensor_secret_key_files["bench-1"],
        "authorized": keys.authorized_keys_dir,
    }


def _sensor(workdir: Path, keys: dict[str, Path], endpoint: str, model: Path, capture: dict) -> subprocess.Popen:
    config = workdir / "pole.toml"
    config.write_text(
        tomli_w.dumps(
            {
                "sensor": {"id": "bench-1", "position": {"x_m": 0.0, "y_m": 0.0}},
                "capture": capture,
                "detector": {"model": str(model)},
                "transport": {
                    "fusion_endpoint": endpoint,
                    "secret_key_file": str(keys["sensor"]),
                    "server_public_key_file": str(keys["fusion_public"]),
                    "outbox_path": str(workdir / "outbox.sqlite"),
                    "heartbeat_interval_s": 5.0,
                },
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SED__")} | {"OMP_NUM_THREADS": "1"}
    log = (workdir / "sensor.log").open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "sed.cli", "sensor", "--config", str(config)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )


def _offline_onsets_s(model: Path, audio: np.ndarray) -> list[float]:
    """Gunshot onsets the same pipeline finds in ``audio`` replayed offline (the truth for latency)."""
    sent: list = []
    pipeline = SensorPipeline(
        streams=[StreamInfo(sensor_id="offline", position=wire.Position(x_m=0, y_m=0))],
        detector=StreamingDetector.from_file(model),
        clock=SampleClock(sample_rate_hz=RATE_HZ),
        evidence=EvidenceSection(enabled=False),
        submit=sent.append,
    )
    step = round(BLOCK_S * RATE_HZ)
    for first in range(0, audio.size, step):
        pipeline.process(Block(samples=audio[None, first : first + step], first_sample=first))
    pipeline.finish()
    return [d.arrival_time_ns / NS_PER_S for d in sent if isinstance(d, wire.Detection)]


def latency(model: Path, clips: list[Path], workdir: Path, rng: np.random.Generator) -> dict:
    """Real-time replay of gunshots spaced 6 s apart through a ``sed sensor`` process."""
    parts = [_noise(rng, 2 * RATE_HZ)]
    for clip in clips:
        audio = read_audio(clip, sample_rate_hz=RATE_HZ)[: 4 * RATE_HZ]
        parts += [audio + _noise(rng, audio.size), _noise(rng, 6 * RATE_HZ - audio.size)]
    audio = np.concatenate(parts)
    onsets_s = _offline_onsets_s(model, audio)
    path = workdir / "latency.flac"
    soundfile.write(path, audio, RATE_HZ, subtype="PCM_16")
    keys = _keys(workdir)
    fusion = _Fusion(keys)
    fusion.start()
    start_ns = time.time_ns() + 4 * NS_PER_S  # model load and connection before the first sample is "heard"
    capture = {"source": "file", "file": str(path), "realtime": True, "start_utc_ns": start_ns, "block_ms": 100.0}
    process = _sensor(workdir, keys, fusion.receiver.endpoint, model, capture)
    process.wait(timeout=audio.size / RATE_HZ + 60)
    time.sleep(1.0)
    fusion.stop.set()
    fusion.join()
    latencies = []
    for received_ns, detection in fusion.detections:
        onset_s = (detection.arrival_time_ns - start_ns) / NS_PER_S
        if any(abs(onset_s - truth) < 0.05 for truth in onsets_s):
            latencies.append((received_ns - (start_ns + round(onset_s * NS_PER_S))) / NS_PER_S)
    meta = StreamingDetector.from_file(model).metadata
    # Worst case by construction: the sound starts just after a window began; the first window
    # holding it starts up to one hop later and must be complete, and then a block must end.
    bound_s = (meta.window_samples + meta.hop_samples) / RATE_HZ + BLOCK_S
    result = {
        "events": len(onsets_s),
        "received": len(latencies),
        "latency_s": sorted(latencies),
        "median_s": statistics.median(latencies) if latencies else None,
        "max_s": max(latencies) if latencies else None,
        "window_s": meta.window_samples / RATE_HZ,
        "structural_bound_s": bound_s,
        "median_over_bound": statistics.median(latencies) / bound_s if latencies else None,
    }
    print(
        f"  {len(latencies)}/{len(onsets_s)} gunshots: median {result['median_s']:.3f} s, max {result['max_s']:.3f} s "
        f"after the onset (window + hop + block = {bound_s:.3f} s)"
    )
    return result


def memory_after(model: Path, clips: list[Path], hours: float, workdir: Path, rng: np.random.Generator) -> dict:
    """``sed sensor`` over ``hours`` of audio as fast as possible; RSS over time and total CPU."""
    path = workdir / "long.flac"
    material = _program(clips, 600.0, rng)  # ten minutes of recordings, written end to end with fresh noise
    with soundfile.SoundFile(path, "w", RATE_HZ, 1, subtype="PCM_16", format="FLAC") as out:
        for _ in range(max(1, round(hours * 6))):
            out.write(material + _noise(rng, material.size))
    audio_s = soundfile.info(str(path)).duration
    keys = _keys(workdir)
    fusion = _Fusion(keys)
    fusion.start()
    capture = {"source": "file", "file": str(path), "realtime": False, "start_utc_ns": time.time_ns()}
    started = time.monotonic()
    process = _sensor(workdir, keys, fusion.receiver.endpoint, model, capture)
    samples: list[tuple[float, int]] = []
    peak_kib = 0
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        with contextlib.suppress(OSError, KeyError):  # exited between wait4 and the read
            now = procstat.sample(process.pid)
            rss_kib, peak_kib = now.rss_kib, now.peak_rss_kib
            samples.append((time.monotonic() - started, rss_kib))
        time.sleep(0.5)
    process.returncode = os.waitstatus_to_exitcode(status)
    wall_s = time.monotonic() - started
    cpu_s = usage.ru_utime + usage.ru_stime
    time.sleep(0.5)
    fusion.stop.set()
    fusion.join()
    at = {f: next(rss for t, rss in samples if t >= f * samples[-1][0]) / 1024 for f in (0.1, 0.25, 0.5, 1.0)}
    result = {
        "audio_s": audio_s,
        "wall_s": wall_s,
        "returncode": process.returncode,
        "realtime_factor": audio_s / wall_s,
        "daemon_cpu_s": cpu_s,
        "daemon_core_fraction_per_stream": cpu_s / audio_s,
        "detections_acked": len(fusion.detections),
        "rss_sample_interval_s": 0.5,
        "rss_mib_at_10pct": at[0.1],
        "rss_mib_at_25pct": at[0.25],
        "rss_mib_at_50pct": at[0.5],
        "rss_mib_at_end": at[1.0],
        "peak_rss_mib": peak_kib / 1024,
        "end_over_25pct": at[1.0] / at[0.25],
    }
    print(
        f"  {audio_s / 3600:.2f} h of audio in {wall_s:.0f} s ({result['realtime_factor']:.0f}x real time), "
        f"daemon CPU {result['daemon_core_fraction_per_stream'] * 100:.2f} % of a core; RSS "
        f"{at[0.25]:.0f} MiB at 25 %, {at[1.0]:.0f} MiB at the end (x{result['end_over_25pct']:.3f}), "
        f"peak {result['peak_rss_mib']:.0f} MiB; {result['detections_acked']} detections acked"
    )
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=default_model_path())
    parser.add_argument("--hours", type=float, default=1.0, help="audio streamed for the memory test")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 min x 2, 3 gunshots, 10 min streamed")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON report path")
    args = parser.parse_args(argv)
    data = shared_data_dir()
    if data is None:
        print("../shared/data not found (set SED_SHARED_DATA)", file=sys.stderr)
        return 2
    if args.quick:
        args.hours = min(args.hours, 1 / 6)
    rng = np.random.default_rng(20261121)
    all_dev = _dev_clips(data, ("gunshot", "scream", "glass_break", "negative"))
    gunshots = [c for c in _dev_clips(data, ("gunshot",)) if "shotspotter" in c.name][: 3 if args.quick else 8]
    report = provenance("python benchmarks/sensor.py " + " ".join(argv))
    report["model"] = {"path": str(args.model), "version": StreamingDetector.from_file(args.model).model_version}
    print("CPU per 16 kHz stream (one thread):")
    program = _program(all_dev[::3], 60.0 if args.quick else 180.0, rng)
    report["cpu"] = cpu_per_stream(args.model, program, stream_counts=(1, 4, 8), repeats=2 if args.quick else 5)
    with tempfile.TemporaryDirectory(prefix="sed-bench-sensor-") as tmp:
        print("Latency, onset → message leaving the sensor (real time, real daemon):")
        (Path(tmp) / "latency").mkdir()
        report["latency"] = latency(args.model, gunshots, Path(tmp) / "latency", rng)
        print(f"Memory while streaming {args.hours:g} h from a file as fast as possible:")
        (Path(tmp) / "memory").mkdir()
        report["memory"] = memory_after(args.model, all_dev, args.hours, Path(tmp) / "memory", rng)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
