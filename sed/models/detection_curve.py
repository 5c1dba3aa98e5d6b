"""The shipped detector's measured P(detect | class, SNR), stored beside the model.

``sedcity bench snr-curve`` streams held-out event clips mixed into real background audio at
stepped signal-to-noise ratios through :class:`~sed.models.StreamingDetector` and writes the
fraction detected per class and step (with counts and confidence intervals) as JSON; the copy
shipped as ``sed_detector.curve.json`` is what the coverage planner uses, so a plan always
rests on the shipped model's own figures.

SNR is ``L_event - L_noise`` (dB): ``L_event`` the event's mean-square level over its loudest
1-second window (1-s Leq, unweighted), ``L_noise`` the background's mean-square level (Leq).

Public API::

    curve = DetectionCurve.from_file()                      # the shipped curve, checked against the shipped model
    p = curve.probability(label="gunshot", snr_db=np.array([-3.0, 12.0]))
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from sed.errors import ModelError
from sed.models.detector import default_model_path

#: ``format`` of the JSON file; a reader refuses any other.
CURVE_FORMAT = "sed-detection-curve/1"


def default_curve_path() -> Path:
    """The curve measured on the shipped model, beside it in the package."""
    return Path(__file__).resolve().parent / "sed_detector.curve.json"


def model_sha256(path: Path) -> str:
    """Hex SHA-256 of a model file: what ties a curve to the exact model it was measured on."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def isotonic_non_decreasing(values: np.ndarray, *, weights: np.ndarray) -> np.ndarray:
    """Weighted least-squares non-decreasing fit (pool-adjacent-violators).

    Parameters
    ----------
    values : np.ndarray [shape=(n,)]
        Measured fractions in step order.
    weights : np.ndarray [shape=(n,)], > 0
        Trials behind each value (a step measured on more trials pulls harder).

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float64]
        The closest non-decreasing sequence; equal to ``values`` when they already are.
    """
    blocks: list[list[float]] = []  # [weighted mean, weight, n_steps]
    for value, weight in zip(np.asarray(values, float), np.asarray(weights, float), strict=True):
        blocks.append([value, weight, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            (m1, w1, n1), (m2, w2, n2) = blocks[-2], blocks.pop()
            blocks[-1] = [(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, n1 + n2]
    return np.concatenate([np.full(int(n), m) for m, _, n in blocks]) if blocks else np.zeros(0)


@dataclasses.dataclass(frozen=True)
class DetectionCurve:
    """P(detect | class, SNR) of one model.

    Attributes
    ----------
    model_version : str
        The model's metadata version the curve was measured on.
    snr_db : np.ndarray [shape=(n_steps,), dtype=float64], dB
        Strictly ascending SNR steps.
    p_detect : dict label -> np.ndarray [shape=(n_steps,), dtype=float64]
        Probability of detection in [0, 1] at each step, non-decreasing (isotonic smoothing).
    """

    model_version: str
    snr_db: np.ndarray
    p_detect: dict[str, np.ndarray]

    @classmethod
    def from_file(cls, path: Path | None = None, *, model_path: Path | None = None) -> DetectionCurve:
        """Read and check a curve file.

        Parameters
        ----------
        path : Path or None
            A curve JSON; ``None``: the shipped one (:func:`default_curve_path`).
        model_path : Path or None
            The ONNX model the curve must have been measured on (its SHA-256 must match the
            file's ``model_sha256``). Default: the shipped model when ``path`` is ``None``,
            no check otherwise.

        Raises
        ------
        ModelError
            The file is missing, not JSON, of another format, lacks a field, holds a
            non-finite, out-of-range or decreasing value, or was measured on another model;
            the message names the file and the field.
        """
        if path is None:
            path = default_curve_path()
            model_path = model_path or default_model_path()
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelError(f"{path}: detection curve not found (make one: sedcity bench snr-curve)") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelError(f"{path}: unreadable detection curve ({exc})") from None
        except json.JSONDecodeError as exc:
            raise ModelError(f"{path}: not JSON (line {exc.lineno}: {exc.msg})") from None
        curve = _parse(doc, where=str(path))
        if model_path is not None:
            if not model_path.is_file():
                raise ModelError(f"{path}: model {model_path} to check the curve against not found")
            expected = model_sha256(model_path)
            if doc["model_sha256"] != expected:
                raise ModelError(
                    f"{path}: model_sha256 {doc['model_sha256'][:12]}… (model_version {curve.model_version!r}) is not "
                    f"that of {model_path} ({expected[:12]}…); measure the curve again: sedcity bench snr-curve"
                )
        return curve

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.p_detect)

    def probability(self, *, label: str, snr_db: np.ndarray) -> np.ndarray:
        """P(detect) at any SNR: linear between steps, the end values beyond them.

        Parameters
        ----------
        label : str
            One of :attr:`labels`.
        snr_db : np.ndarray [shape=(...)], dB
            ``-inf`` (no event energy) gives the lowest step's value; NaN gives NaN.

        Returns
        -------
        np.ndarray [shape=snr_db.shape, dtype=float64] in [0, 1]

        Raises
        ------
        ModelError
            ``label`` is not in the curve.
        """
        if label not in self.p_detect:
            raise ModelError(f"detection curve of {self.model_version!r}: no class {label!r}; has {list(self.labels)}")
        snr = np.asarray(snr_db, dtype=np.float64)
        return np.interp(snr, self.snr_db, self.p_detect[label])


def _parse(doc: Any, *, where: str) -> DetectionCurve:
    """The curve in ``doc``, every field checked (one :class:`ModelError` naming it)."""
    if not isinstance(doc, dict):
        raise ModelError(f"{where}: top level is {type(doc).__name__}; expected an object")
    if doc.get("format") != CURVE_FORMAT:
        raise ModelError(f"{where}: field format = {doc.get('format')!r}; expected {CURVE_FORMAT!r}")
    for key in ("model_version", "model_sha256"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise ModelError(f"{where}: field {key} = {doc.get(key)!r}; expected a non-empty string")
    snr = _numbers(doc.get("snr_db"), where=where, field="snr_db")
    if len(snr) < 2 or not np.all(np.diff(snr) > 0):
        raise ModelError(f"{where}: field snr_db = {snr.tolist()}; expected at least 2 strictly ascending values")
    classes = doc.get("classes")
    if not isinstance(classes, dict) or not classes:
        raise ModelError(f"{where}: field classes = {classes!r:.80}; expected an object of label -> curve")
    p_detect: dict[str, np.ndarray] = {}
    for label, entry in classes.items():
        field = f"classes.{label}.p_detect"
        p = _numbers(entry.get("p_detect") if isinstance(entry, dict) else None, where=where, field=field)
        if len(p) != len(snr):
            raise ModelError(f"{where}: field {field} has {len(p)} values; expected {len(snr)} (one per snr_db)")
        if np.any((p < 0) | (p > 1)):
            raise ModelError(f"{where}: field {field} = {p.tolist()}; expected probabilities in [0, 1]")
        if np.any(np.diff(p) < 0):
            raise ModelError(f"{where}: field {field} = {p.tolist()}; expected non-decreasing with SNR")
        p_detect[label] = p
    return DetectionCurve(model_version=doc["model_version"], snr_db=snr, p_detect=p_detect)


def _numbers(value: Any, *, where: str, field: str) -> np.ndarray:
    """A JSON list of finite numbers as float64, else :class:`ModelError` naming ``field``."""
    ok = isinstance(value, list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value
    )
    if not ok:
        raise ModelError(f"{where}: field {field} = {value!r:.80}; expected a list of finite numbers")
    return np.asarray(value, dtype=np.float64)


__all__ = ["CURVE_FORMAT", "DetectionCurve", "default_curve_path", "isotonic_non_decreasing", "model_sha256"]
