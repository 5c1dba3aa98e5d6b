"""Front-end speed: sed's streaming log-mel against librosa on the same audio, one thread.

    python benchmarks/bench_frontend.py            # 60 s of audio, 7 repeats, medians
    python benchmarks/bench_frontend.py --smoke    # a few seconds (CI)

Writes ``benchmarks/results/frontend.json`` (git commit, machine, date) and prints the
ratio of CPU time per audio second, librosa / sed, measured in the same run.
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
from sed.dsp.frontend import StreamingLogMel, log_mel  # noqa: E402
from sed.models import StreamingDetector  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _cpu_per_audio_s(run, audio_s: float, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.process_time()
        run()
        times.append(time.process_time() - started)
    return statistics.median(times) / audio_s


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--smoke", action="store_true", help="3 s of audio, 3 repeats, no JSON")
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.repeats = 3.0, 3
    import librosa

    detector = StreamingDetector.from_file()
    params = detector.metadata.frontend
    rate = params.sample_rate_hz
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal((1, int(args.seconds * rate))) * 0.1).astype(np.float32)

    def librosa_run() -> None:
        mel = librosa.feature.melspectrogram(
            y=audio[0],
            sr=rate,
            n_fft=params.n_fft,
            hop_length=params.hop_length_samples,
            win_length=params.win_length_samples,
            center=False,
            n_mels=params.n_mels,
            fmin=params.fmin_hz,
            fmax=params.fmax_hz,
        )
        librosa.power_to_db(mel, amin=params.log_floor, top_db=None)

    def streamed(block: int):
        def run() -> None:
            stream = StreamingLogMel(params, n_streams=1)
            for start in range(0, audio.shape[1], block):
                stream.push(audio[:, start : start + block])

        return run

    def pipeline(block: int):
        def run() -> None:
            detector.reset()
            for start in range(0, audio.shape[1], block):
                detector.push(audio[:, start : start + block])

        return run

    librosa_run()  # warm caches (filter bank, FFT plans)
    rows = {
        "librosa (offline)": _cpu_per_audio_s(librosa_run, args.seconds, args.repeats),
        "sed log_mel (offline)": _cpu_per_audio_s(lambda: log_mel(audio, params), args.seconds, args.repeats),
        "sed streaming, 1 s blocks": _cpu_per_audio_s(streamed(rate), args.seconds, args.repeats),
        "sed streaming, 100 ms blocks": _cpu_per_audio_s(streamed(rate // 10), args.seconds, args.repeats),
        "sed full pipeline, 1 s blocks": _cpu_per_audio_s(pipeline(rate), args.seconds, args.repeats),
        "sed full pipeline, 100 ms blocks": _cpu_per_audio_s(pipeline(rate // 10), args.seconds, args.repeats),
    }
    base = rows["librosa (offline)"]
    print(f"{'front end':<34} {'CPU ms / audio s':>17} {'x real time':>12} {'librosa / this':>15}")
    for name, cost in rows.items():
        print(f"{name:<34} {1e3 * cost:17.3f} {1 / cost:12.0f} {base / cost:15.2f}")
    if not args.smoke:
        RESULTS.mkdir(parents=True, exist_ok=True)
        report = {
            **provenance("python benchmarks/bench_frontend.py " + " ".join(argv)),
            "audio_s": args.seconds,
            "repeats": args.repeats,
            "frontend": json.loads(detector.metadata.to_json())["frontend"],
            "cpu_ms_per_audio_s_median": {k: 1e3 * v for k, v in rows.items()},
            "ratio_librosa_over": {k: base / v for k, v in rows.items()},
        }
        (RESULTS / "frontend.json").write_text(json.dumps(report, indent=1))
        print(f"wrote {RESULTS / 'frontend.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
