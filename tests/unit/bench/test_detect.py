from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sed.bench.detect import main
from sed.bench.long_form import read_annotations
from sed.bench.mixtures import active_span, generate
from sed.errors import ConfigError
from sed.models.train.data import read_manifest


def _write_corpus(folder: Path, rng: np.random.Generator) -> Path:
    rows = []
    for i, label in enumerate(["gunshot", "scream", "glass_break", "negative", "negative", "gunshot"]):
        path = f"{label}/src__clip{i}.flac"
        (folder / label).mkdir(exist_ok=True)
        n = int(rng.uniform(0.5, 2.0) * 16000)
        audio = rng.standard_normal(n) * np.exp(-np.arange(n) / 4000.0) * 0.5
        sf.write(folder / path, audio.astype(np.float32), [16000, 44100, 22050][i % 3], subtype="PCM_16")
        rows.append({"path": path, "label": label, "split_hint": "dev", "subclass": f"sub{i % 2}"})
    rows.append({"path": "negative/broken.flac", "label": "negative", "split_hint": "dev", "subclass": "sub0"})
    (folder / "negative" / "broken.flac").write_bytes(b"fLaC-not-really")
    rows.append({"path": "gunshot/other.flac", "label": "gunshot", "split_hint": "train", "subclass": "x"})
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def test_clip_bench_scores_every_readable_clip_and_reports_the_broken_one(
    tmp_path: Path, rng: np.random.Generator, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _write_corpus(tmp_path, rng)
    out = tmp_path / "report" / "detect.json"
    assert main([str(manifest), "--split", "dev", "--out", str(out), "--threshold", "gunshot=0.05"]) == 0
    report = json.loads(out.read_text())
    assert report["n_files"] == 6  # the train row is filtered out, the broken file skipped
    assert [s["path"] for s in report["skipped"]] == ["negative/broken.flac"]
    assert "broken.flac" in capsys.readouterr().err
    assert report["model"]["thresholds"]["gunshot"]["on"] == 0.05
    for entry in report["files"]:
        assert set(entry["sed"]["max_scores"]) == {"gunshot", "scream", "glass_break"}
        for det in entry["sed"]["detections"]:
            assert det["offset_s"] > det["onset_s"] and 0 <= det["score"] <= 1
    per = report["per_class"]["gunshot"]["sed"]
    assert per["n_positive"] == 2 and 0.0 <= per["f1"] <= 1.0
    n_negative_detections = sum(len(f["sed"]["detections"]) for f in report["files"] if f["label"] == "negative")
    assert sum(report["false_alarm_sources"]["sed"].values()) == n_negative_detections
    assert report["speed"]["sed_realtime_factor"] > 1
    assert report["git_commit"] and report["machine"]["cores"] and report["date_utc"]
    for png in report["plots"]:
        assert Path(png).stat().st_size > 1000


def test_folder_without_annotations_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--annotations"):
        main([str(tmp_path)])


def test_mixtures_round_trip_through_the_long_form_bench(tmp_path: Path, rng: np.random.Generator) -> None:
    manifest = _write_corpus(tmp_path, rng)
    clips = [c for c in read_manifest(manifest, split="dev") if "broken" not in c.path]
    mix_dir = tmp_path / "mix"
    tsv = generate(
        clips, tmp_path, mix_dir, n_mixtures=3, length_s=8.0, max_events=2, ebr_db=(0.0,), seed=1, backgrounds="all"
    )
    truth = read_annotations(tsv)
    assert sorted(truth) == ["mix_0000.wav", "mix_0001.wav", "mix_0002.wav"]
    for name, events in truth.items():
        assert sf.info(mix_dir / name).duration == pytest.approx(8.0)
        for event in events:
            assert 0 <= event.onset_s < event.offset_s <= 8.0
    out = tmp_path / "long.json"
    assert main([str(mix_dir), "--annotations", str(tsv), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["mode"] == "recordings" and report["n_files"] == 3
    n_ref = sum(len(v) for v in truth.values())
    assert sum(report["per_class"][k]["sed"]["n_ref"] for k in report["per_class"]) == n_ref


def test_active_span_trims_silence_around_an_event() -> None:
    audio = np.zeros(16000, np.float32)
    audio[6400:8000] = 0.5
    start, stop = active_span(audio)
    assert (start, stop) == (6400, 8000)


@pytest.mark.yamnet
def test_yamnet_baseline_runs_on_the_same_input(tmp_path: Path, rng: np.random.Generator) -> None:
    pytest.importorskip("ai_edge_litert")
    manifest = _write_corpus(tmp_path, rng)
    out = tmp_path / "y.json"
    assert main([str(manifest), "--split", "dev", "--baseline", "yamnet", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    for label in ("gunshot", "scream", "glass_break"):
        y = report["per_class"][label]["yamnet"]
        assert 0.0 <= y["best_f1"] <= 1.0 and y["group"]
    assert report["speed"]["cost_ratio_yamnet_over_sed"] > 0
    assert all("yamnet" in f for f in report["files"])


def test_ambient_backgrounds_exclude_sound_events() -> None:
    from sed.bench.mixtures import is_ambient
    from sed.models.train.data import Clip

    def clip(subclass: str) -> Clip:
        return Clip(path="x", label="negative", split="dev", subclass=subclass, source="s", group="g")

    assert is_ambient(clip("noise: Traffic")) and is_ambient(clip("engine_idling")) and is_ambient(clip("speech"))
    assert not any(is_ambient(clip(s)) for s in ("fireworks", "explosion", "siren", "glass_clink", "door_wood_knock"))


def _long_recording(path: Path, *, sample_rate_hz: int, channels: int, duration_s: float) -> None:
    """Quiet noise with a synthetic gunshot, scream and glass break every 10 s, written in pieces."""
    from sed.capture.scene import synthetic_sound

    rng = np.random.default_rng(5)
    sounds = [synthetic_sound(label, sample_rate_hz=sample_rate_hz, seed=1) for label in LABELS]
    with sf.SoundFile(path, "w", samplerate=sample_rate_hz, channels=channels, subtype="PCM_16") as handle:
        for k in range(int(duration_s // 10)):
            piece = rng.standard_normal((10 * sample_rate_hz, channels)).astype(np.float32) * 0.003
            sound = sounds[k % len(sounds)]
            start = sample_rate_hz * 2
            piece[start : start + len(sound)] += 0.5 * sound[:, None] / np.abs(sound).max()
            handle.write(np.clip(piece, -1, 1))


LABELS = ("gunshot", "scream", "glass_break")


@pytest.mark.parametrize(("sample_rate_hz", "channels"), [(16000, 1), (44100, 2)])
def test_a_file_streamed_in_blocks_is_scored_exactly_as_the_whole_file(
    tmp_path: Path, sample_rate_hz: int, channels: int
) -> None:
    from sed.bench.runner import SignalChunks, chunks_of, run_streams
    from sed.dsp.audio_io import read_audio, stream_audio
    from sed.models import StreamingDetector

    path = tmp_path / "long.wav"
    _long_recording(path, sample_rate_hz=sample_rate_hz, channels=channels, duration_s=60.0)
    detector = StreamingDetector.from_file(None)
    chunk, tail = 16000, detector.metadata.window_samples
    # The whole-file path as it was: read everything, pad, cut into pushes.
    audio = read_audio(path, sample_rate_hz=16000)
    whole = np.concatenate([audio, np.zeros(tail, np.float32)])
    before, _ = run_streams(detector, None, chunks_of(whole, chunk_samples=chunk), origin_samples=0)
    # Block by block, with file blocks that share no boundary with the pushes.
    blocks = stream_audio(path, sample_rate_hz=16000, block_frames=12_345)
    signal = SignalChunks(blocks, lead_samples=0, tail_samples=tail, chunk_samples=chunk)
    after, _ = run_streams(detector, None, signal, origin_samples=0)
    assert signal.n_signal_samples == len(audio)
    assert len(before.detections) >= 2  # the comparison means something: events were found
    assert after.detections == before.detections
    assert after.max_scores == before.max_scores


def test_streamed_blocks_join_to_the_whole_file_for_multichannel_high_rate_audio(tmp_path: Path) -> None:
    from sed.dsp.audio_io import read_audio, stream_audio

    path = tmp_path / "six.wav"
    _long_recording(path, sample_rate_hz=96000, channels=6, duration_s=20.0)
    blocks = list(stream_audio(path, sample_rate_hz=16000, block_frames=50_000))
    assert len(blocks) > 30
    np.testing.assert_array_equal(np.concatenate(blocks), read_audio(path, sample_rate_hz=16000))


def test_streaming_a_long_file_holds_one_block_in_memory(tmp_path: Path) -> None:
    import tracemalloc

    from sed.dsp.audio_io import stream_audio

    path = tmp_path / "long.wav"
    _long_recording(path, sample_rate_hz=48000, channels=2, duration_s=120.0)  # 46 MB as float32
    tracemalloc.start()
    try:
        n_samples = sum(len(block) for block in stream_audio(path, sample_rate_hz=16000))
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n_samples == 120 * 16000
    assert peak_bytes < 8 * 2**20, f"peak {peak_bytes / 2**20:.1f} MiB while streaming"


def test_signal_chunks_pad_and_recut_any_blocks_into_equal_pushes() -> None:
    from sed.bench.runner import SignalChunks

    blocks = [np.arange(n, dtype=np.float32) + 100 for n in (7, 0, 1, 30, 5)]
    chunks = list(SignalChunks(iter(blocks), lead_samples=4, tail_samples=6, chunk_samples=10))
    assert [len(c) for c in chunks] == [10, 10, 10, 10, 10, 3]
    np.testing.assert_array_equal(
        np.concatenate(chunks), np.concatenate([np.zeros(4), *blocks, np.zeros(6)]).astype(np.float32)
    )


def test_a_file_bad_part_way_is_skipped_with_its_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sed.dsp.audio_io import stream_audio
    from sed.errors import AudioFormatError

    audio = np.zeros(48000, np.float32)
    audio[40000] = np.nan
    sf.write(tmp_path / "nan.wav", audio, 16000, subtype="FLOAT")
    with pytest.raises(AudioFormatError, match=r"nan\.wav: holds NaN"):
        list(stream_audio(tmp_path / "nan.wav", sample_rate_hz=16000, block_frames=16000))
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioFormatError, match=r"empty\.wav: holds no samples"):
        list(stream_audio(tmp_path / "empty.wav", sample_rate_hz=16000))
    sf.write(tmp_path / "ok.wav", np.zeros(32000, np.float32), 16000)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\nnan.wav,gunshot\nok.wav,negative\n")
    out = tmp_path / "r.json"
    assert main([str(manifest), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["n_files"] == 1 and [s["path"] for s in report["skipped"]] == ["nan.wav"]
    assert "holds NaN" in report["skipped"][0]["error"]
