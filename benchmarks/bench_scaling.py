"""Throughput of ``sedcity bench detect`` with 1 and 2 workers, and memory on a 10-hour file.

Two corpora, each scored by the shipped command (a subprocess, as a user runs it) with
``--workers 1`` (every task in the one process) and ``--workers 2`` (a local Dask cluster):

- the dev split of ``../shared/data/events`` with the YAMNet baseline (clips as tasks);
- a 10-hour 16 kHz long-form recording (pieces of it as tasks): DCASE-style mixtures of dev
  clips over real ambient backgrounds (:mod:`sed.bench.mixtures`), repeated to 10 hours,
  written once under the cache folder.

Reported, as medians of ``--repeats`` runs (1 and 2 workers alternating; the machine is
shared): wall seconds from command start to report written (cluster start-up included),
the seconds spent running tasks (``run_by.tasks_s``), audio hours per wall hour, the
2-worker / 1-worker ratios, the highest resident memory of
any one process doing the work (workers, or the one process), and whether the two reports
found the same things (detections and figures; timings excluded). JSON with provenance and
a PNG under ``benchmarks/results/``.

    python benchmarks/bench_scaling.py            # ~8 minutes here (3 runs of each)
    python benchmarks/bench_scaling.py --smoke    # seconds: 12 clips, 6 minutes of long form
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import soundfile as sf

from sed.bench.mixtures import generate
from sed.bench.report import provenance
from sed.models.train.data import read_manifest
from sed.paths import shared_data_dir

RESULTS = Path(__file__).resolve().parent / "results"
#: Report fields that describe the run rather than what it found.
RUN_FIELDS = {"speed", "run_by", "date_utc", "command", "plots", "git_commit", "machine", "files"}


def _sedcity() -> list[str]:
    return [sys.executable, "-m", "sed"]


class PeakMemory:
    """Highest RSS of any one process in a process tree, sampled every 0.2 s."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.peak_mib = 0.0
        self.n_processes = 1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                return
            self.n_processes = max(self.n_processes, len(procs))
            for proc in procs:
                try:
                    self.peak_mib = max(self.peak_mib, proc.memory_info().rss / 2**20)
                except psutil.Error:
                    continue
            self._stop.wait(0.2)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_mib


def run_detect(args: list[str], workers: int, out: Path) -> dict[str, Any]:
    """One ``sedcity bench detect`` run: wall seconds, peak memory per process, its report."""
    command = [*_sedcity(), "bench", "detect", *args, "--workers", str(workers), "--out", str(out)]
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    memory = PeakMemory(proc.pid)
    stdout, stderr = proc.communicate()
    wall_s = time.perf_counter() - started
    peak = memory.stop()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{stderr[-2000:]}")
    report = json.loads(out.read_text())
    return {"workers": workers, "wall_s": wall_s, "peak_rss_mib_per_process": peak, "report": report, "text": stdout}


def findings(report: dict[str, Any]) -> str:
    """What a report found, as canonical text (NaN compares equal as text)."""
    found = {k: v for k, v in report.items() if k not in RUN_FIELDS}
    found["files"] = [{k: v for k, v in f.items() if k != "pieces"} for f in report["files"]]
    return json.dumps(found, sort_keys=True)


def long_form_corpus(root: Path, folder: Path, *, hours: float, seed: int = 7) -> tuple[Path, Path]:
    """A ``hours``-long 16 kHz WAV and its DCASE annotations: one-minute mixtures of dev clips, repeated."""
    name = f"long_{hours:g}h.wav"
    wav, tsv = folder / name, folder / f"long_{hours:g}h.tsv"
    if wav.is_file() and tsv.is_file():
        return folder, tsv
    folder.mkdir(parents=True, exist_ok=True)
    clips = read_manifest(root / "manifest.csv", split="dev")
    with tempfile.TemporaryDirectory() as tmp:
        mix_tsv = generate(
            clips, root, Path(tmp), n_mixtures=12, length_s=60.0, max_events=4, ebr_db=(-6.0, 0.0, 6.0), seed=seed
        )
        rows: dict[str, list[str]] = {}
        for line in mix_tsv.read_text().splitlines():
            parts = line.split("\t")
            rows.setdefault(parts[0], []).extend(["\t".join(parts[1:])] if len(parts) == 4 else [])
        mixtures = sorted(rows)
        n_total = int(hours * 3600 / 60)
        out_rows = []
        with sf.SoundFile(wav, "w", samplerate=16000, channels=1, subtype="PCM_16") as handle:
            for k in range(n_total):
                mix = mixtures[k % len(mixtures)]
                audio, rate = sf.read(Path(tmp) / mix, dtype="float32")
                assert rate == 16000
                handle.write(audio)
                for row in rows[mix]:
                    onset, offset, label = row.split("\t")
                    out_rows.append(f"{name}\t{60 * k + float(onset):.3f}\t{60 * k + float(offset):.3f}\t{label}")
    tsv.write_text("\n".join(out_rows or [name]) + "\n")
    return folder, tsv


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    names = list(results)
    x = np.arange(len(names))
    for k, workers in enumerate((1, 2)):
        values = [results[n]["runs"][k]["audio_h_per_wall_h"] for n in names]
        ax.bar(x + (k - 0.5) * 0.4, values, 0.4, label=f"{workers} worker{'s' if workers > 1 else ''}")
    for i, n in enumerate(names):
        ax.annotate(f"{results[n]['speedup']:.2f}x", (x[i], max(r["audio_h_per_wall_h"] for r in results[n]["runs"])))
    ax.set_xticks(x)
    ax.set_xticklabels(names)
    ax.set_ylabel("audio hours per wall-clock hour")
    ax.set_title("sedcity bench detect: 1 vs 2 workers (2-core machine)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="events folder (default ../shared/data/events)")
    parser.add_argument("--hours", type=float, default=10.0, help="length of the long-form recording, h")
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sed"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "bench_scaling.json")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each configuration (medians reported)")
    parser.add_argument("--smoke", action="store_true", help="12 dev clips and 0.1 h of long form, one run each")
    args = parser.parse_args(argv)
    root = args.data or (shared_data_dir() / "events" if shared_data_dir() is not None else None)
    if root is None or not (root / "manifest.csv").is_file():
        print("no data: pass --data DIR or set SED_SHARED_DATA (../shared/data absent)", file=sys.stderr)
        return 2
    hours = 0.1 if args.smoke else args.hours
    print(f"long-form corpus: {hours:g} h (written once under {args.cache_dir})", file=sys.stderr)
    folder, tsv = long_form_corpus(root, args.cache_dir / "long_form", hours=hours)
    corpora = {
        "dev clips + YAMNet": (
            [
                str(root / "manifest.csv"),
                "--split",
                "dev",
                "--baseline",
                "yamnet",
                *(["--limit", "12"] if args.smoke else []),
            ],
            None,
        ),
        f"{hours:g} h recording": ([str(folder), "--annotations", str(tsv)], hours),
    }
    repeats = 1 if args.smoke else args.repeats
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (detect_args, corpus_hours) in corpora.items():
            runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
            found: dict[int, str] = {}
            # alternate 1 and 2 workers so that the machine's slow spells hit both alike
            for repeat in range(repeats):
                for workers in (1, 2):
                    print(f"{name}: {workers} worker(s), run {repeat + 1}/{repeats} …", file=sys.stderr)
                    run = run_detect(detect_args, workers, Path(tmp) / f"{len(results)}_{workers}_{repeat}.json")
                    report = run.pop("report")
                    run.pop("text")
                    audio_h = corpus_hours if corpus_hours is not None else report["speed"]["audio_s"] / 3600
                    run.update(audio_h=audio_h, run_by=report["run_by"])
                    if found.setdefault(workers, findings(report)) != findings(report):
                        raise SystemExit(f"{name}: two runs with {workers} worker(s) found different things")
                    runs[workers].append(run)
            summary = {}
            for workers, these in runs.items():
                wall_s = float(np.median([r["wall_s"] for r in these]))
                tasks_s = float(np.median([r["run_by"]["tasks_s"] for r in these]))
                summary[workers] = {
                    "workers": workers,
                    "wall_s_median": wall_s,
                    "tasks_s_median": tasks_s,
                    "startup_s_median": float(np.median([r["run_by"]["startup_s"] for r in these])),
                    "audio_h_per_wall_h": these[0]["audio_h"] * 3600 / wall_s,
                    "peak_rss_mib_per_process": max(r["peak_rss_mib_per_process"] for r in these),
                    "runs": these,
                }
            results[name] = {
                "runs": [summary[1], summary[2]],
                "speedup": summary[1]["wall_s_median"] / summary[2]["wall_s_median"],
                "speedup_tasks": summary[1]["tasks_s_median"] / summary[2]["tasks_s_median"],
                "identical_reports": found[1] == found[2],
            }
    report_doc = {
        **provenance("python benchmarks/bench_scaling.py " + " ".join(argv if argv is not None else sys.argv[1:])),
        "corpora": results,
        "targets": {
            "speedup_2_workers_at_least": 1.7,
            "peak_rss_mib_per_worker_10h_at_most": 300,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report_doc, indent=1))
    plot(results, args.out.with_suffix(".png"))
    for name, r in results.items():
        one, two = r["runs"]
        print(
            f"{name}: median wall 1 worker {one['wall_s_median']:.1f} s, 2 workers {two['wall_s_median']:.1f} s "
            f"-> {r['speedup']:.2f}x (baseline: 1 worker, same run; the tasks alone {r['speedup_tasks']:.2f}x, "
            f"cluster start {two['startup_s_median']:.1f} s); peak RSS per process "
            f"{one['peak_rss_mib_per_process']:.0f} / {two['peak_rss_mib_per_process']:.0f} MiB; "
            f"identical reports: {r['identical_reports']}"
        )
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0 if all(r["identical_reports"] for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
