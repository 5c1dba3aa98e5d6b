"""Corpus runs on a real two-worker local Dask cluster equal the run in one process.

Clips, pieces of long recordings and a killed worker: the reports' detections and figures
must be the same as ``--workers 1`` (timings aside).
"""

from __future__ import annotations

import csv
import json
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("distributed")

from sed.bench import long_form
from sed.bench.clips import ClipTask, score_clip
from sed.bench.detect import main
from sed.bench.runner import ScorerSpec
from sed.capture.scene import synthetic_sound
from sed.parallel import Engine

LABELS = ("gunshot", "scream", "glass_break")
#: Report fields that are timings or say how the run was made, not what it found.
RUN_FIELDS = {"speed", "run_by", "date_utc", "command", "plots", "git_commit", "machine"}


def _sound(label: str, sample_rate_hz: int, seed: int) -> np.ndarray:
    s = synthetic_sound(label, sample_rate_hz=sample_rate_hz, seed=seed)
    return 0.5 * s / np.abs(s).max()


def _corpus(folder: Path, n_clips: int) -> Path:
    rng = np.random.default_rng(11)
    rows = []
    for i in range(n_clips):
        label = (*LABELS, "negative")[i % 4]
        rate = (16000, 44100, 22050)[i % 3]
        noise = rng.standard_normal(int(rate * rng.uniform(1.0, 3.0))).astype(np.float32) * 0.01
        if label != "negative":
            sound = _sound(label, rate, seed=i)[: len(noise) // 2]
            noise[len(noise) // 4 : len(noise) // 4 + len(sound)] += sound
        (folder / label).mkdir(exist_ok=True)
        sf.write(folder / label / f"src{i % 3}__c{i}.flac", noise, rate, subtype="PCM_16")
        rows.append({"path": f"{label}/src{i % 3}__c{i}.flac", "label": label, "split_hint": "dev", "subclass": "s"})
    (folder / "negative" / "broken.flac").write_bytes(b"not audio")
    rows.insert(3, {"path": "negative/broken.flac", "label": "negative", "split_hint": "dev", "subclass": "s"})
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def _findings(report: dict[str, Any]) -> dict[str, Any]:
    found = {k: v for k, v in report.items() if k not in RUN_FIELDS}
    assert found["files"], "the comparison means something: files were scored"
    return found


def test_two_workers_give_the_report_of_one_process_and_name_the_unreadable_file(tmp_path: Path) -> None:
    manifest = _corpus(tmp_path, 12)
    reports = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}.json"
        low = [f"--threshold={label}=0.05" for label in LABELS]  # more detections to compare
        assert main([str(manifest), "--split", "dev", "--workers", workers, *low, "--out", str(out)]) == 0
        reports.append(json.loads(out.read_text()))
    one, two = reports
    assert one["run_by"]["engine"] == "sequential" and one["run_by"]["workers"] == 1 and one["run_by"]["tasks_s"] > 0
    assert two["run_by"]["engine"] == "dask-local" and two["run_by"]["workers"] == 2
    assert two["run_by"]["versions"]["distributed"]
    assert [s["path"] for s in two["skipped"]] == ["negative/broken.flac"]
    assert sum(len(f["sed"]["detections"]) for f in one["files"]) >= 3
    assert _findings(two) == _findings(one)


def _long_recording(path: Path, *, sample_rate_hz: int, channels: int, duration_s: float) -> str:
    """Quiet noise with a gunshot, scream or glass break every 7 s (so events straddle piece
    boundaries); returns their DCASE annotations."""
    rng = np.random.default_rng(3)
    sounds = [_sound(label, sample_rate_hz, seed=1) for label in LABELS]
    rows = []
    with sf.SoundFile(path, "w", samplerate=sample_rate_hz, channels=channels, subtype="PCM_16") as handle:
        for k in range(int(duration_s // 7)):
            piece = rng.standard_normal((7 * sample_rate_hz, channels)).astype(np.float32) * 0.003
            sound = sounds[k % 3]
            start = int(sample_rate_hz * (1 + (k % 5)))
            stop = min(len(piece), start + len(sound))
            piece[start:stop] += sound[: stop - start, None]
            handle.write(np.clip(piece, -1, 1))
            onset_s = 7 * k + start / sample_rate_hz
            rows.append(f"{path.name}\t{onset_s:.4f}\t{7 * k + stop / sample_rate_hz:.4f}\t{LABELS[k % 3]}\n")
    return "".join(rows)


@pytest.mark.parametrize(("sample_rate_hz", "channels"), [(16000, 1), (44100, 2)])
def test_a_long_recording_in_pieces_on_two_workers_scores_as_one_run(
    tmp_path: Path, sample_rate_hz: int, channels: int
) -> None:
    folder = tmp_path / "rec"
    folder.mkdir()
    annotations = _long_recording(folder / "long.wav", sample_rate_hz=sample_rate_hz, channels=channels, duration_s=336)
    (folder / "ann.tsv").write_text(annotations)
    spec = ScorerSpec(yamnet=True) if _has_litert() else ScorerSpec()
    kwargs = {"chunk_s": 1.0, "limit": None}
    with Engine(workers=1) as engine:
        whole = long_form.evaluate(folder, folder / "ann.tsv", spec, engine, piece_s=3600, **kwargs)
    with Engine(workers=2) as engine:
        pieces = long_form.evaluate(folder, folder / "ann.tsv", spec, engine, piece_s=48, **kwargs)
    assert whole["files"][0]["pieces"] == 1
    # a file at another rate is one task (a resampler started part-way rounds differently)
    assert (pieces["files"][0]["pieces"] >= 4) if sample_rate_hz == 16000 else (pieces["files"][0]["pieces"] == 1)
    detections = whole["files"][0]["sed"]["detections"]
    assert len(detections) >= 20  # events on both sides of every boundary
    for report in (whole, pieces):
        report["files"][0].pop("pieces")
        report.pop("speed"), report.pop("_text")
    assert whole["overall"]["f1"] > 0.2
    assert json.dumps(pieces, sort_keys=True) == json.dumps(whole, sort_keys=True)  # NaN compares equal as text


def _has_litert() -> bool:
    try:
        import ai_edge_litert  # noqa: F401
    except ImportError:
        return False
    return True


def test_a_worker_killed_mid_run_has_its_tasks_retried_with_the_same_results(tmp_path: Path) -> None:
    manifest = _corpus(tmp_path, 40)
    root = manifest.parent
    with manifest.open() as handle:
        tasks = [ClipTask(str(root / row["path"]), 8000, 15600, 16000) for row in csv.DictReader(handle)]
    spec = ScorerSpec()
    with Engine(workers=1) as engine:
        expected = engine.map(score_clip, tasks, desc="sequential", shared={"spec": spec})
    with Engine(workers=2) as engine:
        victims = engine.worker_pids()
        killed: list[int] = []

        def kill_once(n_done: int) -> None:
            if n_done == 3 and not killed:
                os.kill(victims[0], signal.SIGKILL)
                killed.append(victims[0])

        got = engine.map(score_clip, tasks, desc="two workers", shared={"spec": spec}, on_done=kill_once)
        assert killed and victims[0] not in engine.worker_pids()  # the nanny started a new process
    for a, b in zip(expected, got, strict=True):
        assert a.error == b.error and a.n_signal_samples == b.n_signal_samples
        if a.run is not None:
            assert a.run.detections == b.run.detections and a.run.max_scores == b.run.max_scores


def test_cross_source_folds_on_two_workers_equal_the_folds_in_one_process(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from sed.bench.cross_source import run_folds
    from sed.models.train.data import Clip, load_clips
    from sed.models.train.features import window_features
    from sed.models.train.head import HeadConfig

    rng = np.random.default_rng(8)
    clips = []
    for family in ("alpha", "beta", "gamma"):
        for k, label in enumerate((*LABELS, "negative")):
            for split in ("train", "dev"):
                audio = rng.standard_normal(int(16000 * rng.uniform(1.0, 2.5))).astype(np.float32) * 0.01
                if label != "negative":
                    sound = _sound(label, 16000, seed=k)[: len(audio) // 2]
                    audio[len(audio) // 4 : len(audio) // 4 + len(sound)] += sound
                path = f"{family}__{label}_{split}.wav"
                sf.write(tmp_path / path, audio, 16000, subtype="PCM_16")
                clips.append(Clip(path=path, label=label, split=split, subclass="s", source=family, group=family))
    features = window_features(load_clips(tmp_path, clips, sample_rate_hz=16000, cache_dir=None), cache=None)
    config = HeadConfig(steps=15)
    with Engine(workers=1) as engine:
        one = run_folds(tmp_path, clips, features, config, with_yamnet=False, engine=engine)
    with Engine(workers=2) as engine:
        two = run_folds(tmp_path, clips, features, config, with_yamnet=False, engine=engine)
    assert [o.index for o in one] == [o.index for o in two] and len(one) == 24
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a.scores, b.scores)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_existing_cluster_started_with_dasks_own_commands_gives_the_same_report(tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys
    import time

    dask = shutil.which("dask", path=str(Path(sys.executable).parent))
    assert dask, "the 'dask' command comes with the bench extra"
    address = f"tcp://127.0.0.1:{_free_port()}"
    scheduler = subprocess.Popen(
        [dask, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1], "--no-dashboard"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers = subprocess.Popen(
        [dask, "worker", address, "--nworkers", "2", "--nthreads", "1", "--no-dashboard"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        from distributed import Client

        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        manifest = _corpus(tmp_path, 8)
        reports = []
        for engine in (["--workers", "1"], ["--scheduler", address]):
            out = tmp_path / f"{engine[0][2:]}.json"
            assert main([str(manifest), "--split", "dev", *engine, "--out", str(out)]) == 0
            reports.append(json.loads(out.read_text()))
        assert reports[1]["run_by"]["engine"] == "dask" and reports[1]["run_by"]["scheduler"] == address
        assert _findings(reports[1]) == _findings(reports[0])
    finally:
        for proc in (workers, scheduler):
            proc.terminate()
        deadline = time.monotonic() + 20
        for proc in (workers, scheduler):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()


def test_a_scheduler_that_does_not_answer_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from sed import parallel
    from sed.errors import ConfigError

    monkeypatch.setattr(parallel, "CONNECT_TIMEOUT_S", 1.0)
    address = f"tcp://127.0.0.1:{_free_port()}"
    with (
        pytest.raises(ConfigError, match=f"--scheduler {address}: no Dask scheduler answers"),
        Engine(scheduler=address),
    ):
        pass


def _worker_environment(_: int) -> tuple[str | None, str | None]:
    return os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("OMP_NUM_THREADS")


def test_local_workers_keep_the_thread_limits_but_not_dasks_malloc_trim() -> None:
    with Engine(workers=2) as engine:
        assert engine.map(_worker_environment, [0, 1], desc="env") == [(None, "1"), (None, "1")]
