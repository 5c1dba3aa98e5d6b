"""What every configuration model shares: strict sections, file-relative paths, positions, endpoints."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo

from sed.errors import ConfigError
from sed.wire import INT64_MAX, MAX_HORIZONTAL_M, MAX_VERTICAL_M, Position


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    if base is not None and not value.is_absolute():
        return (Path(base) / value).resolve()
    return value


#: A path; relative ones are resolved against the config file's folder.
ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]

#: UTC nanoseconds: non-negative and within a signed 64-bit database column.
UtcNs = Annotated[int, Field(ge=0, le=INT64_MAX)]
#: East or north of the site origin, m (the same bound the wire schema holds positions to).
HorizontalM = Annotated[float, Field(ge=-MAX_HORIZONTAL_M, le=MAX_HORIZONTAL_M)]
#: Height above the site origin, m.
VerticalM = Annotated[float, Field(ge=-MAX_VERTICAL_M, le=MAX_VERTICAL_M)]

_HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,252})")
#: Longest ``ipc://`` path a Unix socket address holds, bytes (sun_path, less the NUL).
_MAX_IPC_PATH_BYTES = 107
_ENDPOINT_FORMS = "tcp://host:port, ipc://path or inproc://name"


def _check_endpoint(value: str, *, bind: bool) -> str:
    """Parse a ZeroMQ endpoint the way libzmq will, so a typo fails at load time, not at start."""
    scheme, sep, address = value.partition("://")
    if not sep or not address:
        raise ValueError(f"not a ZeroMQ endpoint; expected {_ENDPOINT_FORMS}")
    if scheme == "inproc":
        return value
    if scheme == "ipc":
        if len(address.encode()) > _MAX_IPC_PATH_BYTES:
            raise ValueError(f"ipc path longer than {_MAX_IPC_PATH_BYTES} bytes")
        return value
    if scheme != "tcp":
        raise ValueError(f"transport {scheme!r}; expected {_ENDPOINT_FORMS}")
    host, colon, port = address.rpartition(":")
    if not colon or not host:
        raise ValueError("no port; expected tcp://host:port")
    number = int(port) if re.fullmatch(r"[0-9]{1,5}", port) else None
    free_port_ok = bind and (port == "*" or number == 0)  # bind to any free port
    if not free_port_ok and (number is None or not 1 <= number <= 65535):
        raise ValueError(f"port {port!r}; expected 1-65535" + (" (0 or '*': any free port)" if bind else ""))
    if host == "*" and bind:
        return value
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"host {host!r} is not an IPv6 address") from None
        return value
    if not _HOST_NAME.fullmatch(host):
        raise ValueError(
            f"host {host!r}; expected a host name, an IP address" + (", an interface or '*'" if bind else "")
        )
    return value


def _check_bind_endpoint(value: str) -> str:
    return _check_endpoint(value, bind=True)


def _check_connect_endpoint(value: str) -> str:
    return _check_endpoint(value, bind=False)


#: A ZeroMQ endpoint to bind: ``tcp://127.0.0.1:5750``, ``tcp://*:5750``, ``ipc:///run/sed.sock``, ...
BindEndpoint = Annotated[str, AfterValidator(_check_bind_endpoint)]
#: A ZeroMQ endpoint to connect to: ``tcp://fusion.city.example:5750``, ``ipc:///run/sed.sock``, ...
ConnectEndpoint = Annotated[str, AfterValidator(_check_connect_endpoint)]


class Section(BaseModel):
    """A config section: unknown keys are errors, values immutable once loaded, floats finite."""

    # allow_inf_nan=False: ``x_m = nan`` or ``inf`` in a TOML file is an error, never a value.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    def check(self, source: str) -> None:
        """Cross-field and file-system checks of a whole file; raise :class:`ConfigError`."""


def require_exists(source: str, key: str, path: Path) -> None:
    """Refuse a missing file at load time rather than at first use."""
    if not path.exists():
        raise ConfigError(f"{source}: {key} = '{path}'; no such file or directory")


def require_dir(source: str, key: str, path: Path) -> None:
    """Refuse a missing folder, or a file where a folder is expected."""
    require_exists(source, key, path)
    if not path.is_dir():
        raise ConfigError(f"{source}: {key} = '{path}'; not a folder")


class PositionConfig(Section):
    """A point in the site's local frame (east, north, up), metres."""

    x_m: HorizontalM = Field(description="East of the site origin, metres.")
    y_m: HorizontalM = Field(description="North of the site origin, metres.")
    z_m: VerticalM = Field(0.0, description="Height above the site origin, metres.")

    def to_wire(self) -> Position:
        return Position(x_m=self.x_m, y_m=self.y_m, z_m=self.z_m)


__all__ = [
    "BindEndpoint",
    "ConfigPath",
    "ConnectEndpoint",
    "HorizontalM",
    "PositionConfig",
    "Section",
    "UtcNs",
    "VerticalM",
    "require_dir",
    "require_exists",
]
