"""Reading config files: TOML → environment overrides → validation → consistency checks."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from sed.config.base import Section
from sed.config.scene import SceneConfig
from sed.config.sensor import SensorConfig
from sed.config.server import ServerConfig
from sed.errors import ConfigError

ENV_PREFIX = "SED__"

T = TypeVar("T", bound="Section")

_KINDS: dict[str, type[Section]] = {"sensor": SensorConfig, "scene": SceneConfig}


def load_config(path: str | Path, kind: type[T] | None = None) -> T:
    """Read, override from the environment, and validate one TOML config file.

    Parameters
    ----------
    path : str or Path
        The TOML file.
    kind : type, optional
        :class:`SensorConfig`, :class:`ServerConfig` or :class:`SceneConfig`; guessed
        from the top-level section when omitted.

    Raises
    ------
    ConfigError
        Naming the file, the key path, the value and what was expected.
    """
    path = Path(path)
    raw = read_toml(path)
    model = kind or _guess_kind(raw)
    return parse_config(_apply_env_overrides(raw, os.environ), model, source=str(path), base_dir=path.parent)


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a mapping; a missing, unreadable or malformed file is one :class:`ConfigError`."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: unreadable: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def parse_config(raw: dict[str, Any], kind: type[T], *, source: str = "<config>", base_dir: Path | None = None) -> T:
    """Validate an already-parsed mapping; see :func:`load_config`."""
    try:
        config = kind.model_validate(raw, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None
    config.check(source)
    return config


def _guess_kind(raw: dict[str, Any]) -> type[Section]:
    for key, kind in _KINDS.items():
        if key in raw:
            return kind
    return ServerConfig


def _apply_env_overrides(raw: dict[str, Any], environ: os._Environ[str] | dict[str, str]) -> dict[str, Any]:
    result = dict(raw)
    for name, text in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__") if k]
        if not keys:
            continue
        node = result
        for key in keys[:-1]:
            child = node.get(key)
            node[key] = dict(child) if isinstance(child, dict) else {}
            node = node[key]
        node[keys[-1]] = _parse_env_value(text)
    return result


def _parse_env_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


#: Keys whose values are never echoed in error messages (they may hold credentials).
_SECRET_KEY_PARTS = ("url", "password", "secret", "token")


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        if error["type"] == "missing":
            lines.append(f"{source}: {key}: required key missing")
        elif error["type"] == "extra_forbidden":
            lines.append(f"{source}: {key}: unknown key")
        else:
            secret = any(part in key.lower() for part in _SECRET_KEY_PARTS)
            value = "<hidden>" if secret else _shorten(repr(error.get("input")))
            # "Value error, " is pydantic's prefix for our validators' messages: noise in a config error.
            lines.append(f"{source}: {key} = {value}; {error['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


#: Longest value quoted in an error message, characters (a pasted blob must not flood the terminal).
MAX_QUOTED_CHARS = 200


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_QUOTED_CHARS else f"{text[: MAX_QUOTED_CHARS - 1]}…"


__all__ = ["ENV_PREFIX", "load_config", "parse_config", "read_toml"]
