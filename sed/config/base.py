"""What every configuration model shares: strict sections, file-relative paths, positions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo

from sed.errors import ConfigError
from sed.wire import Position


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    if base is not None and not value.is_absolute():
        return (Path(base) / value).resolve()
    return value


#: A path; relative ones are resolved against the config file's folder.
ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]


class Section(BaseModel):
    """A config section: unknown keys are errors, values immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def check(self, source: str) -> None:
        """Cross-field and file-system checks of a whole file; raise :class:`ConfigError`."""


def require_exists(source: str, key: str, path: Path) -> None:
    """Refuse a missing file at load time rather than at first use."""
    if not path.exists():
        raise ConfigError(f"{source}: {key} = '{path}'; no such file or directory")


class PositionConfig(Section):
    """A point in the site's local frame (east, north, up), metres."""

    x_m: float = Field(description="East of the site origin, metres.")
    y_m: float = Field(description="North of the site origin, metres.")
    z_m: float = Field(0.0, description="Height above the site origin, metres.")

    def to_wire(self) -> Position:
        return Position(x_m=self.x_m, y_m=self.y_m, z_m=self.z_m)


__all__ = ["ConfigPath", "PositionConfig", "Section", "require_exists"]
