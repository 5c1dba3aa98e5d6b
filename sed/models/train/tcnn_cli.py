"""``sedcity train --tcnn``: the single-stage log-mel network (``sed-tcnn-v8``, shipped until v9).

Fits on the manifest's ``train`` split only; the ``dev`` split picks the epoch and the
per-class thresholds. Needs the ``train`` extra (``pip install torch==2.13.0``)::

    sedcity train --tcnn --out /tmp/tcnn.onnx
    sedcity train --tcnn --epochs 2 --steps 5 --out /tmp/smoke.onnx
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from pathlib import Path

from sed.errors import ConfigError, SedError
from sed.paths import shared_data_dir


def _parser(prog: str) -> argparse.ArgumentParser:
    from sed.models.detector import default_model_path
    from sed.runtime import CommandParser

    parser = CommandParser(prog=prog, description=__doc__)
    parser.add_argument(
        "--data", type=Path, default=None, help="events folder with manifest.csv (default: ../shared/data/events)"
    )
    parser.add_argument("--tcnn", action="store_true", help="train the single-stage log-mel network (this command)")
    parser.add_argument("--out", type=Path, default=default_model_path(), help="ONNX file to write")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sed",
        help="decoded-clip cache (outside the repository)",
    )
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps per epoch")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: shared machine)")
    parser.add_argument(
        "--max-clips", type=int, default=None, help="use at most this many clips per split (smoke runs)"
    )
    parser.add_argument("--no-teacher", action="store_true", help="do not use YAMNet to locate events in long clips")
    parser.add_argument(
        "--version", default=None, help="model version string (default: the shipped version for default settings)"
    )
    return parser


def main(argv: list[str], *, prog: str = "sedcity train --tcnn") -> int:
    args = _parser(prog).parse_args(argv)
    try:
        import torch
    except ImportError as exc:
        raise SedError("sed train needs torch: pip install 'sed[train]' (torch==2.13.0)") from exc
    from sed.models.train.data import load_clips, read_manifest
    from sed.models.train.loop import SHIPPED_VERSION, TrainConfig, save, train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    root = args.data or (shared_data_dir() / "events" if shared_data_dir() is not None else None)
    if root is None:
        raise ConfigError("no data: pass --data DIR or set SED_SHARED_DATA (../shared/data absent)")
    overrides = {
        name: value
        for name, value in (
            ("epochs", args.epochs),
            ("steps_per_epoch", args.steps),
            ("batch_size", args.batch_size),
            ("seed", args.seed),
        )
        if value is not None
    }
    config = dataclasses.replace(TrainConfig(), **overrides)
    clips = read_manifest(root / "manifest.csv")
    splits = {name: [c for c in clips if c.split == name] for name in ("train", "dev")}
    if args.max_clips is not None:
        splits = {name: _spread(rows, args.max_clips) for name, rows in splits.items()}
    rate = config.frontend.sample_rate_hz
    train_data = load_clips(root, splits["train"], sample_rate_hz=rate, cache_dir=args.cache_dir)
    dev_data = load_clips(root, splits["dev"], sample_rate_hz=rate, cache_dir=args.cache_dir)
    version = args.version or (SHIPPED_VERSION if config == TrainConfig() else f"sed-tcnn-seed{config.seed}")
    teacher = None
    if not args.no_teacher:
        from sed.models.train.teacher import teacher_peaks

        key = args.cache_dir / f"teacher_{len(train_data)}_{int(train_data.offsets[-1])}.npz"
        teacher = teacher_peaks(train_data, cache=key)
    result = train(train_data, dev_data, config, version=version, teacher=teacher)
    save(result, args.out)
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB); thresholds "
        + ", ".join(f"{k} on={v.on:.3f}" for k, v in result.metadata.thresholds.items())
    )
    return 0


def _spread(rows: list, limit: int) -> list:
    """At most ``limit`` rows, taken evenly per label so every label stays present."""
    by_label: dict[str, list] = {}
    for row in rows:
        by_label.setdefault(row.label, []).append(row)
    per_label = max(1, limit // max(1, len(by_label)))
    return [row for group in by_label.values() for row in group[:: max(1, len(group) // per_label)][:per_label]]


__all__ = ["main"]
