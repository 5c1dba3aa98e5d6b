"""``sedcity bench snr-curve``: the detector's P(detect | class, SNR), measured for coverage planning.

Every event clip of the manifest's ``dev`` split (never ``train``), trimmed to its active
part as in the bench mixtures (:func:`~sed.bench.mixtures.active_span`; a part longer than
3 s, a recording of several shots or a long scream, is cropped to its loudest 3 s), is
mixed into a stretch of real background audio (``dev`` negatives that are ambient: noise
recordings, engines, street music, speech) at each SNR step, and the mixture is streamed
through the shipped :class:`~sed.models.StreamingDetector` the way ``sedcity bench detect``
streams a file (:func:`~sed.bench.runner.run_streams`). The event starts 3 s into the
stretch plus a random fraction of the detector's hop, so its phase against the windows
varies as in a real stream. A step *detects* the clip when the detector emits an event of
the clip's class that overlaps the placed event, widened by a 0.5 s collar on both sides.

SNR is the planner's: ``L_event - L_noise``, ``L_event`` the event's mean-square level over
its loudest 1-second window (1-s Leq; a shorter event counts as silence for the rest of
the second), ``L_noise`` the background stretch's mean-square level (Leq). Backgrounds
are brought to -26 dBFS RMS (the level of the bench mixtures); a mixture whose peak would
clip is scaled down as a whole (SNR kept). One clip sees one background stretch and one
position, the same at every step, so the steps differ only in the event's gain. The same
stretch without the event gives the background-only rate: the floor of the curve.

Each clip is tried ``--repeats`` times (another background stretch and phase each time).
Per class and step: trials, detections, the exact (Clopper-Pearson) 95 % interval (counted
over clips, not trials, since the trials of one clip are not independent) and the
curve the planner reads: the measured fractions made non-decreasing by weighted isotonic
regression (pool-adjacent-violators). Writes ``--out`` (JSON, the format
:class:`~sed.models.detection_curve.DetectionCurve` reads) and a PNG beside it; copy the JSON
to ``sed/models/sed_detector.curve.json`` to ship it with the model::

    sedcity bench snr-curve ../shared/data/events/manifest.csv --out benchmarks/results/snr_curve.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from sed.bench.mixtures import MAX_EVENT_S, active_span, is_ambient  # noqa: E402
from sed.bench.report import provenance  # noqa: E402
from sed.bench.runner import Detection, SignalChunks, run_streams  # noqa: E402
from sed.bench.snr_curve_plot import curve_table, plot_curves  # noqa: E402
from sed.dsp.audio_io import read_audio  # noqa: E402
from sed.errors import AudioFormatError, ConfigError  # noqa: E402
from sed.models import StreamingDetector, default_model_path  # noqa: E402
from sed.models.detection_curve import CURVE_FORMAT, isotonic_non_decreasing, model_sha256  # noqa: E402
from sed.models.train.data import Clip, read_manifest  # noqa: E402
from sed.runtime import CONSOLE_SCRIPT, CommandParser, positive_int  # noqa: E402

SAMPLE_RATE_HZ = 16000
#: Held-out split the clips come from (the model is fitted on ``train``).
SPLIT = "dev"
DEFAULT_SNR_DB = tuple(float(s) for s in range(-20, 31, 5))
SMOKE_SNR_DB = (-10.0, 10.0, 30.0)
#: Background before the event (the detector's warm-up, and room for a false alarm to end), s.
PRE_S = 3.0
#: Background after the event (its last window completes inside the stretch), s.
POST_S = 2.0
#: A detection counts when it overlaps the event widened by this on both sides, s.
COLLAR_S = 0.5
#: Level the background stretches are brought to, dBFS RMS (the bench mixtures' level).
BACKGROUND_DBFS = -26.0
#: Background clips quieter than this are skipped (digital silence cannot carry an SNR), dBFS RMS.
MIN_BACKGROUND_DBFS = -70.0
#: Cross-fade between background pieces, samples (10 ms).
FADE_SAMPLES = 160
#: Pieces drawn at most for one background stretch.
MAX_BACKGROUND_DRAWS = 200
#: Longest event placed, samples (a longer trimmed clip is cropped to its loudest stretch this long).
MAX_EVENT_SAMPLES = int(MAX_EVENT_S * SAMPLE_RATE_HZ)
#: Length of the 1-s Leq window, samples.
LEQ_SAMPLES = SAMPLE_RATE_HZ
#: Mixtures are scaled down as a whole when their peak would pass this.
PEAK_LIMIT = 0.99


def event_leq_db(event: np.ndarray) -> float:
    """The event's 1-s Leq: mean square over its loudest 1-second window, dB re full scale.

    Parameters
    ----------
    event : np.ndarray [shape=(n_samples,)], 16 kHz
        A shorter event is zero-padded to one second (its energy spread over the second).
    """
    energy = np.concatenate(([0.0], np.cumsum(event.astype(np.float64) ** 2)))
    span = min(LEQ_SAMPLES, len(event))
    loudest = float(np.max(energy[span:] - energy[:-span])) if span else 0.0
    return 10 * np.log10(max(loudest / LEQ_SAMPLES, 1e-20))


def loudest_span(audio: np.ndarray, *, n_samples: int, offset: int = 0) -> tuple[int, int]:
    """``(start, stop)`` of the ``n_samples`` stretch of ``audio`` with the most energy, plus ``offset``."""
    energy = np.concatenate(([0.0], np.cumsum(audio.astype(np.float64) ** 2)))
    n = min(n_samples, len(audio))
    start = int(np.argmax(energy[n:] - energy[: len(energy) - n]))
    return offset + start, offset + start + n


def leq_db(audio: np.ndarray) -> float:
    """Mean-square level over the whole signal, dB re full scale."""
    return 10 * np.log10(max(float(np.mean(audio.astype(np.float64) ** 2)), 1e-20))


def mix_at_snr(
    background: np.ndarray, event: np.ndarray, *, start_sample: int, snr_db: float, event_leq: float
) -> np.ndarray:
    """``background`` with ``event`` added at ``start_sample`` so that 1-s Leq(event) - Leq(background) = ``snr_db``.

    Returns a new float32 array, scaled down as a whole if its peak would pass :data:`PEAK_LIMIT`
    (which keeps the SNR).
    """
    gain = 10 ** ((leq_db(background) + snr_db - event_leq) / 20)
    mix = background.astype(np.float32, copy=True)
    mix[start_sample : start_sample + len(event)] += gain * event
    peak = float(np.max(np.abs(mix)))
    if peak > PEAK_LIMIT:
        mix *= PEAK_LIMIT / peak
    return mix


def clopper_pearson(n_detected: np.ndarray, n_trials: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact two-sided 95 % binomial interval of ``n_detected / n_trials`` (elementwise)."""
    from scipy.stats import beta

    k, n = np.asarray(n_detected, float), np.asarray(n_trials, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(k > 0, beta.ppf(0.025, k, n - k + 1), 0.0)
        high = np.where(k < n, beta.ppf(0.975, k + 1, n - k), 1.0)
    return np.nan_to_num(low), np.nan_to_num(high, nan=1.0)


def detected(detections: list[Detection], *, label: str, start_s: float, stop_s: float) -> bool:
    """Any detection of ``label`` overlapping ``[start_s - COLLAR_S, stop_s + COLLAR_S)``."""
    return any(
        d.label == label and d.onset_s < stop_s + COLLAR_S and d.offset_s > start_s - COLLAR_S for d in detections
    )


def _read(
    manifest: Path, labels: tuple[str, ...], limit: int | None
) -> tuple[dict[str, list], list[np.ndarray], dict[str, int]]:
    """Trimmed event clips per label (at most ``limit`` each), the ambient background clips and,
    per label, how many clips were cropped to their loudest :data:`MAX_EVENT_S`."""
    clips: list[Clip] = read_manifest(manifest, split=SPLIT)
    events: dict[str, list[tuple[str, np.ndarray]]] = {label: [] for label in labels}
    backgrounds: list[np.ndarray] = []
    cropped = dict.fromkeys(labels, 0)
    wanted = [c for c in clips if c.label in labels or is_ambient(c)]
    for clip in tqdm(wanted, desc="reading clips", file=sys.stderr):
        if limit is not None and (
            len(events[clip.label]) >= limit if clip.label in labels else len(backgrounds) >= 10 * limit
        ):
            continue  # a quick run reads only what it uses
        try:
            audio = read_audio(manifest.parent / clip.path, sample_rate_hz=SAMPLE_RATE_HZ)
        except AudioFormatError as exc:
            print(f"skipped: {exc}", file=sys.stderr)
            continue
        if clip.label not in labels:
            if len(audio) and leq_db(audio) > MIN_BACKGROUND_DBFS:
                backgrounds.append(audio)
            continue
        start, stop = active_span(audio)
        if stop - start > MAX_EVENT_SAMPLES:
            cropped[clip.label] += 1
            start, stop = loudest_span(audio[start:stop], n_samples=MAX_EVENT_SAMPLES, offset=start)
        if stop > start:
            events[clip.label].append((clip.path, audio[start:stop]))
    if not backgrounds:
        raise ConfigError(f"{manifest}: no readable ambient negative clip in split {SPLIT!r} for backgrounds")
    if not any(events.values()):
        raise ConfigError(f"{manifest}: no readable event clip of {list(labels)} in split {SPLIT!r}")
    return events, backgrounds, cropped


def background_stretch(backgrounds: list[np.ndarray], n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """``n_samples`` of background at :data:`BACKGROUND_DBFS` RMS: pieces of random clips from random
    offsets, each at the same RMS, cross-faded over :data:`FADE_SAMPLES` (a hard join clicks, and a
    click can look like a shot). Near-silent pieces are drawn again.

    Raises
    ------
    ConfigError
        :data:`MAX_BACKGROUND_DRAWS` draws did not fill the stretch (clips too short or silent).
    """
    min_piece = 4 * FADE_SAMPLES  # the last piece too: the stretch is cut to length at the end
    out = np.zeros(n_samples + min_piece, np.float64)
    ramp = np.linspace(0.0, 1.0, FADE_SAMPLES)
    floor = 10 ** (MIN_BACKGROUND_DBFS / 20)
    end = 0
    for _ in range(MAX_BACKGROUND_DRAWS):
        if end >= n_samples:
            break
        begin = max(0, end - FADE_SAMPLES)  # overlaps the previous piece's faded tail
        want = max(n_samples - begin, min_piece)
        clip = backgrounds[int(rng.integers(len(backgrounds)))]
        offset = int(rng.integers(max(1, len(clip) - want + 1)))
        piece = clip[offset : offset + want].astype(np.float64)
        rms = float(np.sqrt(np.mean(piece**2))) if len(piece) else 0.0
        if len(piece) <= 2 * FADE_SAMPLES or rms < floor:
            continue
        piece /= rms
        if end:
            out[begin:end] *= ramp[::-1]
            piece[:FADE_SAMPLES] *= ramp
        out[begin : begin + len(piece)] += piece
        end = begin + len(piece)
    if end < n_samples:
        raise ConfigError(f"{MAX_BACKGROUND_DRAWS} background draws did not fill {n_samples} samples; clips too short")
    out = out[:n_samples]
    return (out * 10 ** (BACKGROUND_DBFS / 20) / np.sqrt(np.mean(out**2))).astype(np.float32)


def measure(
    detector: StreamingDetector,
    events: dict[str, list[tuple[str, np.ndarray]]],
    backgrounds: list[np.ndarray],
    *,
    snr_db: tuple[float, ...],
    chunk_samples: int,
    seed: int,
    repeats: int = 1,
) -> dict[str, Any]:
    """Per label: ``n_detected`` per SNR step and over the background alone.

    Each clip is tried ``repeats`` times, each time on another background stretch at another
    phase against the detector's windows (the same stretch and phase at every step).
    """
    rng = np.random.default_rng(seed)
    pre, post, hop = int(PRE_S * SAMPLE_RATE_HZ), int(POST_S * SAMPLE_RATE_HZ), detector.metadata.hop_samples
    out: dict[str, Any] = {}
    for label, clips in events.items():
        hits = np.zeros(len(snr_db), int)
        background_hits = 0
        trials = [event for _path, event in clips for _ in range(repeats)]
        for event in tqdm(trials, desc=label, file=sys.stderr):
            start = pre + int(rng.integers(hop))  # the event's phase against the windows varies by trial
            background = background_stretch(backgrounds, start + len(event) + post, rng)
            span = (start / SAMPLE_RATE_HZ, (start + len(event)) / SAMPLE_RATE_HZ)
            level = event_leq_db(event)
            for k, snr in enumerate((*snr_db, None)):
                mix = (
                    background
                    if snr is None
                    else mix_at_snr(background, event, start_sample=start, snr_db=snr, event_leq=level)
                )
                chunks = SignalChunks([mix], lead_samples=0, tail_samples=0, chunk_samples=chunk_samples)
                run, _ = run_streams(detector, None, chunks, origin_samples=0)
                hit = detected(run.detections, label=label, start_s=span[0], stop_s=span[1])
                if snr is None:
                    background_hits += hit
                else:
                    hits[k] += hit
        out[label] = {
            "n_clips": len(clips),
            "n_trials": len(trials),
            "n_detected": hits,
            "background_detected": background_hits,
        }
    return out


def curve_report(counts: dict[str, Any], *, snr_db: tuple[float, ...]) -> dict[str, Any]:
    """The JSON classes section: counts, measured fractions, intervals and the smoothed curve."""
    classes = {}
    for label, c in counts.items():
        n, n_clips = c["n_trials"], c["n_clips"]
        if n == 0:
            continue
        trials = np.full(len(snr_db), n)
        measured = c["n_detected"] / n
        # Trials of one clip are not independent: the interval counts clips, not trials.
        low, high = clopper_pearson(measured * n_clips, np.full(len(snr_db), n_clips))
        classes[label] = {
            "p_detect": [round(float(p), 4) for p in isotonic_non_decreasing(measured, weights=trials)],
            "p_detect_measured": [round(float(p), 4) for p in measured],
            "n_trials": trials.tolist(),
            "n_detected": c["n_detected"].tolist(),
            "ci95_low": [round(float(v), 4) for v in low],
            "ci95_high": [round(float(v), 4) for v in high],
            "n_clips": n_clips,
            "background_only": {"n_trials": n, "n_detected": int(c["background_detected"])},
        }
    return classes


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = CommandParser(prog=prog, description=__doc__)
    parser.add_argument("manifest", type=Path, help="clip manifest CSV with split_hint (its dev rows are used)")
    parser.add_argument("--out", type=Path, required=True, help="JSON to write (the PNG goes beside it)")
    parser.add_argument("--model", type=Path, default=None, help="ONNX model (default: the shipped one)")
    parser.add_argument(
        "--snr-db", type=float, nargs="+", default=None, help="SNR steps, dB (default -20 ... +30 every 5)"
    )
    parser.add_argument("--limit", type=positive_int, default=None, help="at most N event clips per class")
    parser.add_argument("--smoke", action="store_true", help="quick check: 3 clips per class at -10, +10, +30 dB")
    parser.add_argument("--chunk-s", type=float, default=1.0, help="push block length, s (default 1.0)")
    parser.add_argument(
        "--repeats", type=positive_int, default=4, help="trials per clip, each on other background (default 4)"
    )
    parser.add_argument("--seed", type=int, default=12, help="background and placement draws (default 12)")
    return parser


def main(argv: list[str], *, prog: str = f"{CONSOLE_SCRIPT} bench snr-curve") -> int:
    args = _parser(prog).parse_args(argv)
    started_s, started_cpu_s = time.monotonic(), time.process_time()
    snr_db = tuple(sorted(set(args.snr_db))) if args.snr_db else (SMOKE_SNR_DB if args.smoke else DEFAULT_SNR_DB)
    if len(snr_db) < 2 or not all(np.isfinite(snr_db)):
        raise ConfigError(f"--snr-db {list(snr_db)}; expected at least 2 distinct finite values")
    if not 1 / SAMPLE_RATE_HZ <= args.chunk_s <= 60:
        raise ConfigError(f"--chunk-s {args.chunk_s}; expected seconds from {1 / SAMPLE_RATE_HZ} to 60")
    if args.out.is_dir() or args.out.suffix != ".json":
        raise ConfigError(f"--out {args.out}: expected a .json file name")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model_path = args.model or default_model_path()
    detector = StreamingDetector.from_file(model_path)
    if detector.sample_rate_hz != SAMPLE_RATE_HZ:
        raise ConfigError(f"{model_path}: model rate {detector.sample_rate_hz} Hz; the bench mixes {SAMPLE_RATE_HZ} Hz")
    limit = args.limit or (3 if args.smoke else None)
    events, backgrounds, cropped = _read(args.manifest, detector.labels, limit)
    counts = measure(
        detector,
        events,
        backgrounds,
        snr_db=snr_db,
        chunk_samples=max(1, int(args.chunk_s * SAMPLE_RATE_HZ)),
        seed=args.seed,
        repeats=1 if args.smoke else args.repeats,
    )
    classes = curve_report(counts, snr_db=snr_db)
    report = {
        "format": CURVE_FORMAT,
        "model_version": detector.model_version,
        "model_sha256": model_sha256(model_path),
        **provenance(f"{prog} " + " ".join(argv)),
        "snr_definition": "1-s Leq of the event (loudest 1 s window, unweighted) minus Leq of the background, dB",
        "smoothing": "weighted isotonic regression (pool-adjacent-violators) of the measured fractions",
        "detected_when": f"an event of the clip's class overlaps the placed event widened by {COLLAR_S} s each side",
        "mixtures": {
            "split": SPLIT,
            "background_clips": len(backgrounds),
            "background_dbfs": BACKGROUND_DBFS,
            "pre_s": PRE_S,
            "post_s": POST_S,
            "chunk_s": args.chunk_s,
            "seed": args.seed,
            "repeats": 1 if args.smoke else args.repeats,
            "cropped_to_loudest_3_s": cropped,
            "clips": {label: [path for path, _ in clips] for label, clips in events.items()},
        },
        "snr_db": list(snr_db),
        "classes": classes,
        "run": {  # the whole command: reading, mixing and streaming (one thread)
            "wall_s": round(time.monotonic() - started_s, 1),
            "cpu_s": round(time.process_time() - started_cpu_s, 1),
        },
    }
    print(curve_table(classes, snr_db))
    png = args.out.with_suffix(".png")
    plot_curves(png, classes, snr_db, model_version=detector.model_version)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}, {png}")
    return 0


__all__ = [
    "background_stretch",
    "clopper_pearson",
    "detected",
    "event_leq_db",
    "leq_db",
    "loudest_span",
    "main",
    "measure",
    "mix_at_snr",
]
