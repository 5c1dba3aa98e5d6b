"""Where sed finds the shared development data and the packaged model."""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable that points at the shared data folder (holding events/, pittsburgh/).
DATA_ENV = "SED_SHARED_DATA"
#: Environment variable that points at the folder holding yamnet_waveform.tflite.
YAMNET_ENV = "SED_YAMNET_DIR"

_PROJECT_ROOT = Path(__file__).resolve().parent.parent


def shared_data_dir() -> Path | None:
    """The shared recordings folder, or ``None`` when absent.

    ``$SED_SHARED_DATA`` decides when set (an absent folder there means "no data", which
    is how tests exercise the synthetic fallbacks); otherwise ``../shared/data`` beside the
    working directory, then beside the source checkout.
    """
    return _first_existing(DATA_ENV, "data")


def yamnet_dir() -> Path | None:
    """The folder with YAMNet's TFLite files, or ``None`` when absent."""
    return _first_existing(YAMNET_ENV, "models/yamnet")


def _first_existing(env: str, relative: str) -> Path | None:
    if os.environ.get(env):
        candidates = [Path(os.environ[env])]
    else:
        candidates = [Path.cwd().parent / "shared" / relative, _PROJECT_ROOT.parent / "shared" / relative]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    return None


__all__ = ["DATA_ENV", "YAMNET_ENV", "shared_data_dir", "yamnet_dir"]
