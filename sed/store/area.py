"""An area of the site: the filter of incident lists and webhook rules."""

from __future__ import annotations

import dataclasses

from sed import wire


@dataclasses.dataclass(frozen=True, kw_only=True)
class Area:
    """An axis-aligned box in the site frame, metres; a missing bound is open."""

    x_min_m: float | None = None
    x_max_m: float | None = None
    y_min_m: float | None = None
    y_max_m: float | None = None

    def contains(self, position: wire.Position | None) -> bool:
        """Whether a point lies inside; an unlocated incident is inside only an unbounded area."""
        if self.is_unbounded():
            return True
        if position is None:
            return False
        return (
            (self.x_min_m is None or position.x_m >= self.x_min_m)
            and (self.x_max_m is None or position.x_m <= self.x_max_m)
            and (self.y_min_m is None or position.y_m >= self.y_min_m)
            and (self.y_max_m is None or position.y_m <= self.y_max_m)
        )

    def is_unbounded(self) -> bool:
        return all(v is None for v in (self.x_min_m, self.x_max_m, self.y_min_m, self.y_max_m))


__all__ = ["Area"]
