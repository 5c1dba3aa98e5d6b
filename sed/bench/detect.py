"""``sed bench detect``: score the streaming detector (and YAMNet) on clips or long recordings.

Two inputs:

- a clip manifest ``MANIFEST.csv`` (``path,label`` columns, paths relative to the file;
  ``--split dev`` keeps rows whose ``split_hint`` is ``dev``): each clip is streamed with
  0.5 s of silence before and 1.15 s after it; a clip *is detected as* a label when the
  detector emits at least one event of that label. Negative clips (any label that is not
  a model label) give the false alarms per hour of negative audio;
- a folder of long recordings with ``--annotations ANN.tsv`` (DCASE: ``file onset offset
  label``, tab-separated, seconds): event-based F1 and error rate with a 0.5 s onset
  collar (DCASE 2017 task 2), false alarms = unmatched detections per hour.

``--baseline yamnet`` streams the same 16 kHz samples through YAMNet in the same run and
tunes its threshold on the evaluated data itself (best F1; an optimistic baseline).
Files are read and scored block by block, so memory does not grow with their length.
Clips, and pieces of long recordings, are independent tasks: ``--workers N`` runs them on a
local Dask cluster of N processes (default: every core), ``--scheduler ADDRESS`` on an
existing cluster; the report is the same as with ``--workers 1`` (this process only).
CPU time is ``time.process_time`` (all threads of the process) around the streaming calls
only (front end + model + event logic for sed; YAMNet's interpreter for the baseline),
with onnxruntime, LiteRT and BLAS each limited to one thread.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path
from typing import Any

# One core for the cost comparison: keep BLAS (the front end's mel product) single-threaded.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from sed.bench import clips, long_form  # noqa: E402
from sed.bench.report import provenance  # noqa: E402
from sed.bench.runner import ScorerSpec  # noqa: E402
from sed.errors import ConfigError  # noqa: E402
from sed.models.yamnet_litert import SAMPLE_RATE_HZ  # noqa: E402
from sed.parallel import Engine, add_engine_arguments, single_threaded_blas  # noqa: E402
from sed.runtime import CONSOLE_SCRIPT, CommandParser, positive_int  # noqa: E402

#: Longest push block, s: the bench holds one block of the padded signal at a time.
MAX_CHUNK_S = 60.0


def _chunk_seconds(text: str) -> float:
    """``--chunk-s``: a finite number of seconds in (0, MAX_CHUNK_S]."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 1 / SAMPLE_RATE_HZ <= value <= MAX_CHUNK_S):
        raise argparse.ArgumentTypeError(f"{text!r}; expected seconds from {1 / SAMPLE_RATE_HZ} to {MAX_CHUNK_S}")
    return value


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = CommandParser(prog=prog, description=__doc__)
    parser.add_argument("input", type=Path, help="clip manifest CSV, or folder of recordings (with --annotations)")
    parser.add_argument("--split", default=None, help="keep manifest rows with this split_hint (e.g. dev)")
    parser.add_argument("--annotations", type=Path, default=None, help="DCASE TSV for a folder of recordings")
    parser.add_argument("--model", type=Path, default=None, help="ONNX model (default: the shipped one)")
    parser.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="LABEL=VALUE",
        help="override a class's 'on' threshold (repeatable)",
    )
    parser.add_argument("--baseline", choices=["yamnet"], default=None)
    parser.add_argument("--chunk-s", type=_chunk_seconds, default=1.0, help="push block length, s (default 1.0)")
    parser.add_argument("--limit", type=positive_int, default=None, help="score only the first N files (smoke runs)")
    parser.add_argument("--out", type=Path, default=None, help="JSON report (every file's detections and maxima)")
    parser.add_argument("--plots", type=Path, default=None, help="folder for PNG plots (default: beside --out)")
    add_engine_arguments(parser)
    return parser


def main(argv: list[str], *, prog: str = f"{CONSOLE_SCRIPT} bench detect") -> int:
    args = _parser(prog).parse_args(argv)
    overrides = {}
    for item in args.threshold:
        label, _, value = item.partition("=")
        try:
            overrides[label] = float(value)
        except ValueError:
            overrides[label] = math.nan
        if not 0 < overrides[label] <= 1:
            raise ConfigError(f"--threshold {item!r}; expected LABEL=VALUE with 0 < VALUE <= 1")
    # Before the run, which may take hours: an --out that cannot be written fails now.
    for option, folder in (("--out", args.out.parent if args.out else None), ("--plots", args.plots)):
        _require_folder(option, folder)
    if args.out is not None and args.out.is_dir():
        raise ConfigError(f"--out {args.out}: a folder; expected a JSON file name")
    spec = ScorerSpec(
        model_path=str(args.model.resolve()) if args.model else None,
        thresholds=tuple(sorted(overrides.items())),
        yamnet=args.baseline == "yamnet",
    )
    detector, _ = spec.build()  # a bad model or threshold fails here, before any worker starts
    if detector.sample_rate_hz != SAMPLE_RATE_HZ:
        raise ConfigError(f"model rate {detector.sample_rate_hz} Hz; the bench streams {SAMPLE_RATE_HZ} Hz audio")
    with single_threaded_blas(), Engine(workers=args.workers, scheduler=args.scheduler) as engine:
        report = _evaluate(args, spec, engine)
        run_by = engine.provenance()
    report = {**provenance(f"{prog} " + " ".join(argv)), "run_by": run_by, **report}
    print(report.pop("_text"))
    if args.out is not None:
        plots = args.plots or args.out.parent
        make_plots = clips.plots if report.get("mode") == "clips" else long_form.plots
        report["plots"] = make_plots(report, plots, args.out.stem)
        args.out.write_text(json.dumps(report, indent=1, default=_json_default))
        print(f"wrote {args.out}" + "".join(f", {p}" for p in report["plots"]))
    return 0


def _require_folder(option: str, folder: Path | None) -> None:
    """Create ``folder`` (with its parents) or say in one line why it cannot be."""
    if folder is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{option}: cannot create folder '{folder}' ({exc.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"{option}: folder '{folder}' is not writable by this user")


def _evaluate(args: argparse.Namespace, spec: ScorerSpec, engine: Engine) -> dict[str, Any]:
    if args.annotations is not None:
        return long_form.evaluate(args.input, args.annotations, spec, engine, chunk_s=args.chunk_s, limit=args.limit)
    if args.input.is_dir():
        raise ConfigError(f"{args.input}: a folder needs --annotations ANN.tsv")
    return clips.evaluate_clips(args.input, args.split, spec, engine, chunk_s=args.chunk_s, limit=args.limit)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(type(value).__name__)


__all__ = ["main"]
