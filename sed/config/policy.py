"""The fusion node's false-alarm policy: ``[fusion.policy]`` and one table per class.

Every class has its own table with every key defaulted, so a file names only what it
changes::

    [fusion.policy]
    enabled = true

    [fusion.policy.scream]
    confirm_score = 0.95        # screams one pole hears alone are alerts only above this
    sensor_max_per_hour = 6     # a pole outside a bar that keeps hearing them is flagged noisy

A class the wire schema does not know (``[fusion.policy.fireworks]``) or a misspelt key
is an error naming it. What the keys do is in :mod:`sed.fusion.policy`.
"""

from __future__ import annotations

from pydantic import Field

from sed.config.base import Section
from sed.wire import Label

#: Default of ``min_sensors``: a sound two poles heard is corroborated.
DEFAULT_MIN_SENSORS = 2
#: Default of ``confirm_score``: a single pole must be this sure for an alert.
DEFAULT_CONFIRM_SCORE = 0.9
#: Defaults of ``storm_incidents`` and ``storm_window_s``: more than 10 incidents of one class
#: starting within 5 minutes across the site is fireworks or a storm, not 10 shootings.
DEFAULT_STORM_INCIDENTS = 10
DEFAULT_STORM_WINDOW_S = 300.0
#: Default of ``sensor_max_per_hour``: a pole that hears a class more often than this is noisy.
DEFAULT_SENSOR_MAX_PER_HOUR = 20


class ClassPolicy(Section):
    """The policy for one class (``[fusion.policy.gunshot]``, ``…scream``, ``…glass_break``)."""

    min_sensors: int = Field(
        DEFAULT_MIN_SENSORS,
        ge=1,
        le=64,
        description="Sensors that must hear an incident for it to be corroborated (1: every incident is).",
    )
    confirm_score: float = Field(
        DEFAULT_CONFIRM_SCORE,
        ge=0,
        le=1,
        description="An uncorroborated incident whose best detection scores below this is 'unconfirmed', not "
        "an alert (0: every incident of a sensor that is not noisy is an alert).",
    )
    storm_incidents: int = Field(
        DEFAULT_STORM_INCIDENTS,
        ge=1,
        le=1_000_000,
        description="More incidents of the class than this starting within storm_window_s across the site is a "
        "storm: new ones are 'suppressed' until at most half as many started within the window.",
    )
    storm_window_s: float = Field(
        DEFAULT_STORM_WINDOW_S, gt=0, le=86_400, description="Sliding window of the storm count, s."
    )
    sensor_max_per_hour: int = Field(
        DEFAULT_SENSOR_MAX_PER_HOUR,
        ge=1,
        le=1_000_000,
        description="A sensor with more detections of the class than this within the last hour is flagged "
        "'noisy' (its uncorroborated incidents are not alerts) until it has fewer than half as many.",
    )


class PolicySection(Section):
    """``[fusion.policy]``: which incidents alert operators, per class."""

    enabled: bool = Field(True, description="False: every incident is an alert (no policy).")
    gunshot: ClassPolicy = ClassPolicy()
    scream: ClassPolicy = ClassPolicy()
    glass_break: ClassPolicy = ClassPolicy()

    def of(self, label: Label | str) -> ClassPolicy:
        """The table of one class."""
        policy = getattr(self, str(Label(label)))
        assert isinstance(policy, ClassPolicy)
        return policy


__all__ = ["ClassPolicy", "PolicySection"]
