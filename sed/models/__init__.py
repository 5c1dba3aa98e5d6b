"""The event classifier: a streaming detector over a shipped ONNX model.

Public API::

    from sed.models import StreamingDetector, DetectorEvent, default_model_path
    det = StreamingDetector.from_file()          # the shipped model
    events = det.push(block)                     # float32 (n_streams, n_samples) at det.sample_rate_hz
    finished = det.pop_finished()                # the same events with offsets, once they end

Training lives in :mod:`sed.models.train` (``sed train``; needs the ``train`` extra).
"""

from sed.models.detector import DetectorEvent, StreamingDetector, default_model_path
from sed.models.metadata import ClassThresholds, ModelMetadata

__all__ = ["ClassThresholds", "DetectorEvent", "ModelMetadata", "StreamingDetector", "default_model_path"]
