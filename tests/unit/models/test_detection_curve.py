"""The stored P(detect | class, SNR): reading, checking, interpolating; the shipped curve matches the shipped model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sed.errors import ModelError
from sed.models.detection_curve import (
    CURVE_FORMAT,
    DetectionCurve,
    default_curve_path,
    isotonic_non_decreasing,
    model_sha256,
)
from sed.models.detector import default_model_path


def _doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "format": CURVE_FORMAT,
        "model_version": "test-v1",
        "model_sha256": "ab" * 32,
        "snr_db": [-10.0, 0.0, 10.0],
        "classes": {"gunshot": {"p_detect": [0.0, 0.5, 0.9]}, "scream": {"p_detect": [0.1, 0.1, 0.7]}},
    }
    doc.update(changes)
    return doc


def _write(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / "curve.json"
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return path


def test_probability_interpolates_between_steps_and_clamps_beyond_them(tmp_path: Path) -> None:
    curve = DetectionCurve.from_file(_write(tmp_path, _doc()))
    p = curve.probability(label="gunshot", snr_db=np.array([[-40.0, -10.0, -5.0], [5.0, 10.0, 99.0]]))
    np.testing.assert_allclose(p, [[0.0, 0.0, 0.25], [0.7, 0.9, 0.9]])
    assert curve.probability(label="scream", snr_db=np.array(-np.inf)) == pytest.approx(0.1)
    assert curve.labels == ("gunshot", "scream")
    assert curve.model_version == "test-v1"


def test_unknown_class_names_the_class_and_those_known(tmp_path: Path) -> None:
    curve = DetectionCurve.from_file(_write(tmp_path, _doc()))
    with pytest.raises(ModelError, match=r"no class 'siren'; has \['gunshot', 'scream'\]"):
        curve.probability(label="siren", snr_db=np.zeros(2))


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (_doc(format="other/2"), r"field format = 'other/2'; expected 'sed-detection-curve/1'"),
        (_doc(model_version=""), r"field model_version = ''"),
        ({k: v for k, v in _doc().items() if k != "model_sha256"}, r"field model_sha256 = None"),
        (_doc(snr_db=[0.0, "5"]), r"field snr_db = \[0.0, '5'\]; expected a list of finite numbers"),
        (_doc(snr_db=[0.0, 0.0, 5.0]), r"field snr_db = \[0.0, 0.0, 5.0\]; expected at least 2 strictly ascending"),
        (_doc(classes={}), r"field classes = \{\}"),
        (_doc(classes={"gunshot": [0.1]}), r"field classes.gunshot.p_detect = None"),
        (_doc(classes={"gunshot": {"p_detect": [0.1, 0.2]}}), r"classes.gunshot.p_detect has 2 values; expected 3"),
        (_doc(classes={"gunshot": {"p_detect": [0.1, 0.2, 1.2]}}), r"expected probabilities in \[0, 1\]"),
        (_doc(classes={"gunshot": {"p_detect": [0.1, 0.3, 0.2]}}), r"p_detect = \[0.1, 0.3, 0.2\]; expected non-decr"),
        ([1, 2], r"top level is list; expected an object"),
    ],
)
def test_a_bad_field_is_one_model_error_naming_file_and_field(tmp_path: Path, doc: Any, message: str) -> None:
    path = _write(tmp_path, doc)
    with pytest.raises(ModelError, match=message) as caught:
        DetectionCurve.from_file(path)
    assert str(caught.value).startswith(str(path))


def test_non_finite_values_are_refused(tmp_path: Path) -> None:
    text = json.dumps(_doc()).replace("0.9]", "NaN]")  # Python's json reads NaN; the curve must not
    with pytest.raises(ModelError, match=r"classes.gunshot.p_detect = \[0.0, 0.5, nan\]; expected a list of finite"):
        DetectionCurve.from_file(_write(tmp_path, text))


def test_missing_and_non_json_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"nothing.json: detection curve not found \(make one: sedcity bench snr"):
        DetectionCurve.from_file(tmp_path / "nothing.json")
    with pytest.raises(ModelError, match=r"curve.json: not JSON \(line 1"):
        DetectionCurve.from_file(_write(tmp_path, "{oops"))


def test_a_curve_of_another_model_is_refused(tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"not the measured model")
    path = _write(tmp_path, _doc())
    with pytest.raises(ModelError, match=r"model_sha256 abababababab… \(model_version 'test-v1'\) is not that of"):
        DetectionCurve.from_file(path, model_path=model)
    matching = _write(tmp_path, _doc(model_sha256=model_sha256(model)))
    assert DetectionCurve.from_file(matching, model_path=model).model_version == "test-v1"
    with pytest.raises(ModelError, match=r"model .*absent.onnx to check the curve against not found"):
        DetectionCurve.from_file(matching, model_path=tmp_path / "absent.onnx")


def test_the_shipped_curve_reads_and_belongs_to_the_shipped_model() -> None:
    curve = DetectionCurve.from_file()  # checks the SHA-256 of sed_detector.onnx
    assert default_curve_path().parent == default_model_path().parent
    assert set(curve.labels) == {"gunshot", "scream", "glass_break"}
    assert curve.snr_db[0] <= -15 and curve.snr_db[-1] >= 25
    for label in curve.labels:
        p = curve.probability(label=label, snr_db=curve.snr_db)
        assert p[-1] > p[0], f"{label}: a louder event must be heard more often"


def test_isotonic_fit_pools_violators_by_weight() -> None:
    np.testing.assert_allclose(isotonic_non_decreasing(np.array([0.1, 0.4, 0.9]), weights=np.ones(3)), [0.1, 0.4, 0.9])
    # 0.6 (weight 1) then 0.3 (weight 2) pool to their weighted mean 0.4
    fit = isotonic_non_decreasing(np.array([0.0, 0.6, 0.3, 0.8]), weights=np.array([1.0, 1.0, 2.0, 1.0]))
    np.testing.assert_allclose(fit, [0.0, 0.4, 0.4, 0.8])
    # a violation that reaches back pools three steps
    fit = isotonic_non_decreasing(np.array([0.5, 0.6, 0.1]), weights=np.ones(3))
    np.testing.assert_allclose(fit, [0.4, 0.4, 0.4])
    assert np.all(np.diff(fit) >= 0)
