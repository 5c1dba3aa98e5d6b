"""sed: open, real-time acoustic event detection and localisation for cities."""

__version__ = "0.1.0"
