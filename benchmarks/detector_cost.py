"""CPU per audio second: the shipped two-stage detector against YAMNet always on, same run.

    python benchmarks/detector_cost.py            # dev-split street clips (~6 min of audio), 3 repeats
    python benchmarks/detector_cost.py --smoke    # 20 s (CI)

Real street audio (the UrbanSound8K negatives of the ``dev`` split, which the shipped model
was not fitted on) is streamed in sensor-sized blocks through (a) the shipped detector —
front end, gate on every window, YAMNet (onnxruntime) and head on the windows the gate
wakes, event logic — and (b) YAMNet alone on every window (LiteRT, XNNPACK, 0.48 s hop),
each on one thread. Prints and writes (``benchmarks/results/detector_cost.json``) the
median CPU per audio second of each, their ratio, and the gate's wake rate.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from sed.bench.report import provenance  # noqa: E402
from sed.dsp.audio_io import read_audio  # noqa: E402
from sed.models import StreamingDetector, default_model_path  # noqa: E402
from sed.models.train.data import read_manifest  # noqa: E402
from sed.models.yamnet import default_yamnet_path  # noqa: E402
from sed.models.yamnet_litert import YamnetScorer  # noqa: E402
from sed.paths import shared_data_dir  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
RATE_HZ = 16000


def street_audio(root: Path, *, max_s: float | None) -> np.ndarray:
    """Dev-split UrbanSound8K negatives, one after another, at 16 kHz."""
    clips = [
        c
        for c in read_manifest(root / "manifest.csv", split="dev")
        if c.label == "negative" and c.source in ("us8kac", "us8k")
    ]
    parts, total = [], 0
    for clip in clips:
        wave = read_audio(root / clip.path, sample_rate_hz=RATE_HZ)
        parts.append(wave)
        total += len(wave)
        if max_s is not None and total >= max_s * RATE_HZ:
            break
    audio = np.concatenate(parts).astype(np.float32)
    return audio[: int(max_s * RATE_HZ)] if max_s else audio


def _cpu(run, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.process_time()
        run()
        times.append(time.process_time() - started)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=default_model_path())
    parser.add_argument("--block-s", type=float, default=0.1, help="push size, s (the sensor's default is 0.1)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-s", type=float, default=None, help="use at most this much audio")
    parser.add_argument("--out", type=Path, default=RESULTS / "detector_cost.json")
    parser.add_argument("--smoke", action="store_true", help="20 s of audio, one repeat")
    args = parser.parse_args(argv)
    if args.smoke:
        args.max_s, args.repeats = args.max_s or 20.0, 1
    data = shared_data_dir()
    if data is None:
        print("no data: set SED_SHARED_DATA (../shared/data absent)", file=sys.stderr)
        return 2
    audio = street_audio(data / "events", max_s=args.max_s)
    audio_s = len(audio) / RATE_HZ
    block = max(1, int(args.block_s * RATE_HZ))
    detector = StreamingDetector.from_file(args.model, n_threads=1)
    yamnet = YamnetScorer(n_threads=1)
    events = []

    def run_sed() -> None:
        detector.reset()
        events.clear()
        for start in range(0, len(audio), block):
            events.extend(detector.push(audio[None, start : start + block]))

    def run_yamnet() -> None:
        yamnet.reset()
        for start in range(0, len(audio), block):
            yamnet.push(audio[None, start : start + block])

    sed_s = _cpu(run_sed, args.repeats)
    yamnet_s = _cpu(run_yamnet, args.repeats)
    n_windows, n_woken = detector.wake_counts
    sed_ms = 1000 * statistics.median(sed_s) / audio_s
    yamnet_ms = 1000 * statistics.median(yamnet_s) / audio_s
    sizes = {p.name: p.stat().st_size for p in (args.model, default_yamnet_path()) if p.is_file()}
    report = {
        **provenance("python benchmarks/detector_cost.py " + " ".join(argv if argv is not None else sys.argv[1:])),
        "model": {"path": str(args.model), "version": detector.model_version, "bytes": sizes},
        "audio": {"what": "UrbanSound8K negatives, dev split, concatenated", "seconds": audio_s},
        "block_s": args.block_s,
        "repeats": args.repeats,
        "cpu_ms_per_audio_s": {"sed": sed_ms, "yamnet_always_on": yamnet_ms},
        "cpu_s_runs": {"sed": sed_s, "yamnet_always_on": yamnet_s},
        "yamnet_over_sed": yamnet_ms / sed_ms,
        "wake_rate": n_woken / max(n_windows, 1),
        "windows": {"gated": n_windows, "woken": n_woken},
        "events_on_street_audio": len(events),
        "false_alarms_per_h": len(events) / (audio_s / 3600),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(
        f"{audio_s:.0f} s of street audio, blocks of {args.block_s} s, one thread, median of {args.repeats}:\n"
        f"  sed (gate + YAMNet on {report['wake_rate']:.1%} of windows + head): {sed_ms:.3f} ms CPU per audio s\n"
        f"  YAMNet always on (LiteRT):                 {yamnet_ms:.3f} ms CPU per audio s\n"
        f"  YAMNet / sed = {report['yamnet_over_sed']:.2f}x; model files {sum(sizes.values()) / 1e6:.1f} MB\n"
        f"wrote {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
