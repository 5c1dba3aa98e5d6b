"""Annotated long mixtures from clip folders (like the DCASE 2017 task 2 rare-event generator).

Each mixture is ``--length-s`` seconds of background made of negative clips of the chosen
split laid end to end (short cross-fades) — ``--backgrounds ambient`` (default, like DCASE's
everyday scenes): noise recordings, engines, street music, speech; ``all``: every negative,
including the hard ones (fireworks, explosions, sirens, knocks, glass clinks) — with
0…``--max-events`` event clips of that split placed at random times at an
event-to-background ratio drawn from ``--ebr-db``
(DCASE 2017 used −6, 0, +6 dB). An event clip is first trimmed to its active part (20 ms
frames within 25 dB of its loudest frame), and the annotation is that part's placement.
Written as 16-bit 16 kHz WAVs plus a DCASE TSV (``file onset offset label``), outside the
repository::

    python -m sed.bench.mixtures ../shared/data/events/manifest.csv --split dev --out /tmp/mix_dev
    sedcity bench detect /tmp/mix_dev --annotations /tmp/mix_dev/annotations.tsv --baseline yamnet
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from sed.dsp.audio_io import read_audio
from sed.errors import AudioFormatError
from sed.models.train.data import Clip, read_manifest

SAMPLE_RATE_HZ = 16000
EVENT_LABELS = ("gunshot", "scream", "glass_break")
_FRAME = 320
_FADE = 160
#: Longest trimmed event placed, s (longer clips are weakly labelled recordings, not one event).
MAX_EVENT_S = 3.0


def active_span(audio: np.ndarray, *, range_db: float = 25.0) -> tuple[int, int]:
    """First and one-past-last sample of the 20 ms frames within ``range_db`` of the loudest."""
    n = max(1, -(-len(audio) // _FRAME))
    frames = np.pad(audio, (0, n * _FRAME - len(audio))).reshape(n, _FRAME)
    energy_db = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    active = np.nonzero(energy_db >= energy_db.max() - range_db)[0]
    return int(active[0] * _FRAME), int(min(len(audio), (active[-1] + 1) * _FRAME))


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if len(x) else 0.0


def _background(waves: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n, np.float32)
    pos = 0
    ramp = np.linspace(0.0, 1.0, _FADE, dtype=np.float32)
    while pos < n:
        wave = waves[int(rng.integers(len(waves)))]
        wave = wave / max(_rms(wave), 1e-4) * 0.05  # backgrounds at a common level (-26 dBFS RMS)
        piece = wave[: n - pos].copy()
        if len(piece) > 2 * _FADE:
            piece[:_FADE] *= ramp
            piece[-_FADE:] *= ramp[::-1]
        out[pos : pos + len(piece)] += piece
        pos += max(1, len(piece) - _FADE)
    return out


def is_ambient(clip: Clip) -> bool:
    """Background-like negatives: steady noise, engines, street music, speech (not sound events)."""
    sub = clip.subclass.lower()
    return sub.startswith(("noise:", "background segment", "speech")) or sub in {"engine_idling", "street_music"}


def generate(
    clips: list[Clip],
    root: Path,
    out_dir: Path,
    *,
    n_mixtures: int,
    length_s: float,
    max_events: int,
    ebr_db: tuple[float, ...],
    seed: int,
    backgrounds: str = "ambient",
) -> Path:
    """Write the mixtures and ``annotations.tsv`` into ``out_dir``; return the TSV path."""
    rng = np.random.default_rng(seed)
    waves: dict[str, list[tuple[Clip, np.ndarray]]] = {}
    for clip in tqdm(clips, desc="reading clips", file=sys.stderr):
        try:
            audio = read_audio(root / clip.path, sample_rate_hz=SAMPLE_RATE_HZ)
        except AudioFormatError as exc:
            print(f"skipped: {exc}", file=sys.stderr)
            continue
        key = clip.label if clip.label in EVENT_LABELS else "negative"
        if key == "negative" and backgrounds == "ambient" and not is_ambient(clip):
            continue
        if key != "negative":
            start, stop = active_span(audio)
            if stop - start > MAX_EVENT_S * SAMPLE_RATE_HZ:
                continue
            audio = audio[start:stop]
        waves.setdefault(key, []).append((clip, audio))
    if "negative" not in waves:
        raise AudioFormatError(f"{root}: no readable negative clip for backgrounds")
    out_dir.mkdir(parents=True, exist_ok=True)
    n = int(length_s * SAMPLE_RATE_HZ)
    rows = []
    labels = [k for k in EVENT_LABELS if k in waves]
    for m in range(n_mixtures):
        name = f"mix_{m:04d}.wav"
        mix = _background([w for _, w in waves["negative"]], n, rng)
        n_events = int(rng.integers(0, max_events + 1))
        slots = (
            np.sort(
                rng.choice(
                    np.arange(1, max(2, int(length_s) - 1)), size=min(n_events, int(length_s) - 2), replace=False
                )
            )
            if n_events
            else []
        )
        last_end = 0
        any_event = False
        for slot in slots:
            label = labels[int(rng.integers(len(labels)))]
            clip, event = waves[label][int(rng.integers(len(waves[label])))]
            start = max(int((slot + rng.uniform(-0.4, 0.4)) * SAMPLE_RATE_HZ), last_end + SAMPLE_RATE_HZ)
            if start + len(event) > n:
                continue
            ebr = float(rng.choice(ebr_db))
            bg = _rms(mix[start : start + len(event)])
            gain = bg * 10 ** (ebr / 20) / max(_rms(event), 1e-6)
            mix[start : start + len(event)] += event * gain
            last_end = start + len(event)
            rows.append(f"{name}\t{start / SAMPLE_RATE_HZ:.3f}\t{last_end / SAMPLE_RATE_HZ:.3f}\t{label}")
            any_event = True
        if not any_event:
            rows.append(name)
        peak = float(np.max(np.abs(mix)))
        if peak > 0.99:
            mix *= 0.99 / peak
        sf.write(out_dir / name, mix, SAMPLE_RATE_HZ, subtype="PCM_16")
    tsv = out_dir / "annotations.tsv"
    tsv.write_text("\n".join(rows) + "\n")
    return tsv


def main(argv: list[str], *, prog: str = "python -m sed.bench.mixtures") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--split", default="dev")
    parser.add_argument("--out", type=Path, required=True, help="output folder (outside the repository)")
    parser.add_argument("--n-mixtures", type=int, default=120)
    parser.add_argument("--length-s", type=float, default=30.0)
    parser.add_argument("--max-events", type=int, default=2)
    parser.add_argument("--ebr-db", type=float, nargs="+", default=[-6.0, 0.0, 6.0])
    parser.add_argument("--seed", type=int, default=2017)
    parser.add_argument(
        "--backgrounds",
        choices=["ambient", "all"],
        default="ambient",
        help="negative clips used as background (default: ambient ones only)",
    )
    args = parser.parse_args(argv)
    clips = read_manifest(args.manifest, split=args.split)
    tsv = generate(
        clips,
        args.manifest.parent,
        args.out,
        n_mixtures=args.n_mixtures,
        length_s=args.length_s,
        max_events=args.max_events,
        ebr_db=tuple(args.ebr_db),
        seed=args.seed,
        backgrounds=args.backgrounds,
    )
    print(f"wrote {args.n_mixtures} mixtures and {tsv}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


__all__ = ["active_span", "generate", "is_ambient", "main"]
