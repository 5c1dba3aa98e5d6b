"""One exception family for everything sed raises on bad input.

Every message says what went wrong, where (file, key, field or sensor id) and what was
received versus expected, e.g.::

    AudioFormatError: data/glass_03.wav: 2 channels at 44100 Hz; sensor expects mono 16000 Hz
"""

from __future__ import annotations


class SedError(Exception):
    """Base class of all errors sed raises on purpose."""


class ConfigError(SedError):
    """A configuration file or value is missing, malformed or inconsistent."""


class AudioFormatError(SedError):
    """Audio is unreadable or has the wrong shape, dtype, rate or values."""


class WireError(SedError):
    """A message on the wire is oversized, malformed or of another schema version."""


class ModelError(SedError):
    """A model file is missing, unreadable or inconsistent with its metadata."""


class GeometryError(SedError):
    """Sensor geometry or arrivals cannot determine a position."""


__all__ = ["AudioFormatError", "ConfigError", "GeometryError", "ModelError", "SedError", "WireError"]
