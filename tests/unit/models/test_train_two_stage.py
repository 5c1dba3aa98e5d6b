"""``sedcity train`` (two-stage) on a small slice of the shared clips, with an operator corpus."""

from __future__ import annotations

import csv
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from sed.errors import ConfigError
from sed.models import StreamingDetector
from sed.models.train import main

pytestmark = [pytest.mark.data, pytest.mark.slow]


def _corpus(events: Path, folder: Path) -> Path:
    """A corpus as /api/export/corpus.zip lays it out: confirmed gunshots, false-alarm negatives."""
    rows = list(csv.DictReader((events / "manifest.csv").open()))
    picked = [r for r in rows if r["label"] == "gunshot" and r["split_hint"] == "dev"][:3]
    picked += [r for r in rows if r["label"] == "negative" and r["split_hint"] == "dev"][:3]
    out = []
    for i, row in enumerate(picked):
        path = f"clips/{row['label']}/pole-{i}__det{i}.flac"
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(events / row["path"], folder / path)
        out.append({"path": path, "label": row["label"], "subclass": "gunshot" if row["label"] == "negative" else ""})
    with (folder / "MANIFEST.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "subclass"])
        writer.writeheader()
        writer.writerows(out)
    return folder


def test_two_stage_training_with_an_operator_corpus_zip(data_dir: Path, tmp_path: Path) -> None:
    corpus = _corpus(data_dir / "events", tmp_path / "corpus")
    archive = tmp_path / "sed-corpus.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in corpus.rglob("*"):
            if path.is_file():
                zf.write(path, f"corpus/{path.relative_to(corpus)}")
    out, report = tmp_path / "model" / "detector.onnx", tmp_path / "report.json"
    argv = ["--max-clips", "4", "--families", "tuantje", "--steps", "15", "--no-yamnet-baseline"]
    argv += [
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out",
        str(out),
        "--report",
        str(report),
        "--extra",
        str(archive),
    ]
    assert main(argv, prog="sedcity train") == 0
    det = StreamingDetector.from_file(out)
    training = det.metadata.extra["training"]
    assert training["operator_clips"] == 6 and det.model_version == "sed-yamnet-head"
    assert det.metadata.verifier is not None and (out.parent / "yamnet.onnx").exists()
    assert isinstance(det.push(np.zeros((1, 32000), np.float32)), list)
    assert json.loads(report.read_text())["per_class"]["gunshot"]["threshold"] > 0


def test_operator_corpus_that_escapes_its_archive_is_refused(data_dir: Path, tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../MANIFEST.csv", "path,label\n")
    with pytest.raises(ConfigError, match="escapes"):
        main(["--extra", str(archive), "--max-clips", "1", "--cache-dir", str(tmp_path)], prog="sedcity train")
