"""``sedcity train``: fit the two-stage detector (wake gate + head on YAMNet) and export it.

Thresholds are chosen on sources the model has not heard: every source family is held out
in turn, a gate and head are fitted on the ``train`` split of the others and the held-out
clips are streamed through the detector (:mod:`sed.bench.cross_source`); the per-class
threshold of best family-weighted F1 on those held-out scores is what ships. The shipped
gate and head are then fitted on the ``train`` split of every family (the ``dev`` split is
never fitted, so ``sedcity bench detect … --split dev`` stays a held-out check). Needs the
``train`` extra (``pip install torch==2.13.0``)::

    sedcity train                                   # reproduces sed/models/sed_detector.onnx
    sedcity train --extra sed-corpus.zip            # add an operator corpus (/api/export/corpus.zip)
    sedcity train --families tuantje --max-clips 30 --out /tmp/smoke.onnx    # smoke run
    sedcity train --tcnn --help                     # the older single-stage log-mel network

An operator corpus (the zip, or the folder it unzips to, with ``MANIFEST.csv``) adds its
clips to every fit: confirmed incidents as their class, reviewed false alarms as negatives
(hard negatives from the city's own streets). Its clips are never held out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from sed.errors import ConfigError, SedError
from sed.parallel import Engine, add_engine_arguments
from sed.paths import shared_data_dir

#: Version string of the shipped model.
SHIPPED_VERSION = "sed-yamnet-head-v9"


def _parser(prog: str) -> argparse.ArgumentParser:
    from sed.models.detector import default_model_path
    from sed.runtime import CommandParser

    parser = CommandParser(prog=prog, description=__doc__)
    parser.add_argument("--tcnn", action="store_true", help="train the older single-stage network instead")
    parser.add_argument(
        "--data", type=Path, default=None, help="events folder with manifest.csv (default: ../shared/data/events)"
    )
    parser.add_argument("--extra", type=Path, default=None, help="operator corpus: sed-corpus.zip or its folder")
    parser.add_argument("--out", type=Path, default=default_model_path(), help="ONNX file to write")
    parser.add_argument("--report", type=Path, default=None, help="also write the cross-source figures as JSON")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sed",
        help="decoded clips and window features (outside the repository)",
    )
    parser.add_argument("--steps", type=int, default=None, help="head optimiser steps (default 400)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: shared machine)")
    parser.add_argument("--families", default=None, help="hold out only these source families (comma-separated)")
    parser.add_argument(
        "--max-clips", type=int, default=None, help="use at most this many clips per family, label and split (smoke)"
    )
    parser.add_argument("--no-yamnet-baseline", action="store_true", help="skip YAMNet on the held-out clips")
    parser.add_argument("--version", default=None, help="model version (default: the shipped version)")
    add_engine_arguments(parser)
    return parser


def main(argv: list[str], *, prog: str = "sedcity train") -> int:
    if "--tcnn" in argv:
        from sed.models.train.tcnn_cli import main as tcnn_main

        return tcnn_main(argv, prog=f"{prog} --tcnn")
    args = _parser(prog).parse_args(argv)
    try:
        import torch
    except ImportError as exc:
        raise SedError("sedcity train needs torch: pip install 'sed[train]' (torch==2.13.0)") from exc
    from sed.bench.cross_source import choose_thresholds, report_text, run_folds, subset, summarise
    from sed.models.train.data import load_clips, read_manifest
    from sed.models.train.features import window_features
    from sed.models.train.head import HeadConfig, export, fit

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    root = args.data or (shared_data_dir() / "events" if shared_data_dir() is not None else None)
    if root is None:
        raise ConfigError("no data: pass --data DIR or set SED_SHARED_DATA (../shared/data absent)")
    overrides = {k: v for k, v in (("steps", args.steps), ("seed", args.seed)) if v is not None}
    config = dataclasses.replace(HeadConfig(), **overrides)
    clips = read_manifest(root / "manifest.csv")
    if args.max_clips is not None:
        clips = subset(clips, args.max_clips)
    data = load_clips(root, clips, sample_rate_hz=16000, cache_dir=args.cache_dir)
    features = window_features(data, cache=args.cache_dir)
    extra_index = np.zeros(0, np.int64)
    with tempfile.TemporaryDirectory(prefix="sed-corpus-") as tmp:
        if args.extra is not None:
            extra_clips, extra_root = _operator_corpus(args.extra, Path(tmp))
            extra_data = load_clips(extra_root, extra_clips, sample_rate_hz=16000, cache_dir=None)
            extra_features = window_features(extra_data, cache=None)
            extra_index = np.arange(len(clips), len(clips) + len(extra_clips))
            extra_features.clip_index = extra_features.clip_index + len(clips)
            features = features.concat(extra_features)
            clips = clips + extra_clips
        only = [f.strip() for f in args.families.split(",")] if args.families else None
        with Engine(workers=args.workers, scheduler=args.scheduler) as engine:
            outcomes = run_folds(
                root,
                clips,
                features,
                config,
                extra_train=extra_index,
                only=only,
                with_yamnet=not args.no_yamnet_baseline,
                engine=engine,
            )
    thresholds = choose_thresholds(outcomes)
    summary = summarise(outcomes, thresholds)
    train_index = np.union1d(np.flatnonzero([c.split == "train" for c in clips]), extra_index)
    fitted = fit(features, clips, train_index, config)
    version = args.version or (SHIPPED_VERSION if config == HeadConfig() and args.extra is None else "sed-yamnet-head")
    extra = {
        "training": {
            "config": dataclasses.asdict(config),
            "clips": len(train_index),
            "operator_clips": len(extra_index),
            "data": str(root),
        },
        "cross_source": {
            label: {"recall": e["recall_mean_over_families"], "f1_family_weighted": e["f1_family_weighted"]}
            for label, e in summary["per_class"].items()
        },
        "cross_source_false_alarms_per_h": summary["false_alarms_per_h"],
    }
    export(fitted, args.out, version=version, thresholds=thresholds, extra=extra)
    if args.report is not None:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(summary, indent=1, default=str))
    print(report_text(summary))
    print(f"wrote {args.out} ({version}); thresholds " + ", ".join(f"{k} on={v.on:.3f}" for k, v in thresholds.items()))
    return 0


def _operator_corpus(path: Path, workdir: Path) -> tuple[list, Path]:
    """Clips of an exported corpus (zip or folder), as training clips of family ``operator``."""
    from sed.models.train.data import read_manifest

    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.startswith("/") or ".." in Path(name).parts:
                    raise ConfigError(f"{path}: member {name!r} escapes the archive; not a sed corpus")
            archive.extractall(workdir)
        manifests = sorted(workdir.rglob("MANIFEST.csv"))
        if not manifests:
            raise ConfigError(f"{path}: no MANIFEST.csv inside; expected a /api/export/corpus.zip archive")
        manifest = manifests[0]
    elif path.is_dir():
        manifest = path / "MANIFEST.csv"
    else:
        raise ConfigError(f"{path}: not found, or neither a zip archive nor a folder")
    clips = read_manifest(manifest)
    if not clips:
        raise ConfigError(f"{manifest}: no clips")
    missing = [c.path for c in clips if not (manifest.parent / c.path).is_file()]
    if missing:
        raise ConfigError(f"{manifest}: {len(missing)} listed clip(s) missing, first {missing[0]!r}")
    return [dataclasses.replace(c, source="operator", split="train") for c in clips], manifest.parent


__all__ = ["SHIPPED_VERSION", "main"]
