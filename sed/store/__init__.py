"""Storage shared by the fusion node (writes) and the API (reads, reviews, accounts, webhooks)."""

from sed.store.accounts import AuditEntry, ConflictError, Role, User
from sed.store.area import Area
from sed.store.evidence import ReviewedClip, StoredClip
from sed.store.store import STATUS_AFTER, Review, ReviewAction, SensorRecord, Store, StoredDetection
from sed.store.webhooks import Delivery, DeliveryStatus, Rule

__all__ = [
    "STATUS_AFTER",
    "Area",
    "AuditEntry",
    "ConflictError",
    "Delivery",
    "DeliveryStatus",
    "Review",
    "ReviewAction",
    "ReviewedClip",
    "Role",
    "Rule",
    "SensorRecord",
    "Store",
    "StoredClip",
    "StoredDetection",
    "User",
]
