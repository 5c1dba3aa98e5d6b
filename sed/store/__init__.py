"""Storage shared by the fusion node (writes) and the API (reads)."""

from sed.store.store import SensorRecord, Store, StoredDetection

__all__ = ["SensorRecord", "Store", "StoredDetection"]
