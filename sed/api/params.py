"""Bounded types for every value a client sends: query, path and body fields.

One place decides what the API accepts, so no route can hand the store an integer its
BIGINT columns cannot hold (SQLite raises ``OverflowError`` at 2**63), a NUL byte
PostgreSQL refuses in text, or a NaN the JSON encoder refuses on the way out. Each alias
is an ``Annotated`` type: use it as is in a pydantic model, or add ``Query(...)`` /
``Path(...)`` next to it in a route signature::

    since_ns: Annotated[TimeNs | None, Query(description="UTC ns")] = None

A value outside these bounds is a 422 naming the parameter, never a 500.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, Field

from sed.wire import INT64_MAX  # the largest value of a BIGINT column, as on the wire

#: Largest value of a signed 32-bit column (PostgreSQL INTEGER / SERIAL: the row ids).
INT32_MAX = 2**31 - 1
#: Deepest page a list may start at, rows; deeper paging is a query no operator needs.
MAX_OFFSET = 1_000_000
#: Largest coordinate in the site frame, m (far beyond any city; keeps arithmetic finite).
MAX_SITE_M = 1e7
#: Longest id of a stored record (the widest id column), characters.
MAX_ID_CHARS = 96
#: Whitespace that multi-line text (a review note) may hold.
_TEXT_WHITESPACE = frozenset("\t\n\r")


#: Unicode categories refused in text: C0/C1 controls and the line / paragraph separators
#: (as ``sed.wire`` refuses them: a forged line in a log or a CSV must not be possible).
_CONTROL_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})


def _control_characters(value: str, *, allowed: frozenset[str]) -> list[str]:
    """Code points of the control characters in ``value``, as ``U+XXXX``."""
    return [f"U+{ord(c):04X}" for c in value if c not in allowed and unicodedata.category(c) in _CONTROL_CATEGORIES]


def _refuse_nul(value: str) -> str:
    # PostgreSQL text cannot hold U+0000; a lookup by such an id would be a server error
    if "\x00" in value:
        raise ValueError(f"holds a NUL byte (U+0000) at character {value.index(chr(0))}; text may not contain NUL")
    return value


def _refuse_control(value: str) -> str:
    found = _control_characters(value, allowed=frozenset())
    if found:
        raise ValueError(f"holds control characters {', '.join(sorted(set(found)))}; expected printable text")
    return value


def _refuse_control_but_lines(value: str) -> str:
    found = _control_characters(value, allowed=_TEXT_WHITESPACE)
    if found:
        raise ValueError(
            f"holds control characters {', '.join(sorted(set(found)))}; only tab and line breaks are allowed"
        )
    return value


#: A time stamp, UTC ns (or any count the store keeps as BIGINT).
TimeNs = Annotated[int, Field(ge=0, le=INT64_MAX)]
#: A row id the store assigned (rules, reviews): PostgreSQL keeps them as 32-bit INTEGER.
RowId = Annotated[int, Field(ge=1, le=INT32_MAX)]
#: Rows to skip in a paged list.
Offset = Annotated[int, Field(ge=0, le=MAX_OFFSET)]
#: A coordinate in the site frame, m: finite and within ``MAX_SITE_M`` of the origin.
SiteMetres = Annotated[float, Field(ge=-MAX_SITE_M, le=MAX_SITE_M, allow_inf_nan=False)]
#: The id of a stored record (incident, detection, sensor) to look up. Only NUL is refused:
#: ids stored before the wire schema bounded them may hold any other character, and must
#: stay reachable.
StoredId = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS), AfterValidator(_refuse_nul)]
#: A short one-line name or filter (username, rule name, audit action): no control characters.
Name = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_refuse_control)]
#: One line of free text (a sensor's description): no control characters.
Line = Annotated[str, Field(max_length=200), AfterValidator(_refuse_control)]
#: Free text over several lines (a review note): tab and line breaks only.
Text = Annotated[str, Field(max_length=2000), AfterValidator(_refuse_control_but_lines)]
#: A password or secret: any character but NUL, bounded (argon2 hashes whatever it gets).
Secret = Annotated[str, Field(min_length=1, max_length=1024), AfterValidator(_refuse_nul)]


#: Fields whose value a 422 never repeats back (the client's own, but logs and proxies keep answers).
SECRET_FIELDS = frozenset({"password", "secret", "token"})
#: Longest received value a 422 repeats, characters.
MAX_ECHO_CHARS = 80


def invalid(*loc: str | int, msg: str, kind: str = "value_error") -> RequestValidationError:
    """A 422 for a check pydantic cannot make (password strength, a note a review needs),
    in the same shape as every other 422: ``{"detail": [{"type", "loc", "msg"}]}``."""
    return RequestValidationError([{"type": kind, "loc": loc, "msg": msg}])


def _echo(received: object) -> str | int | float | None:
    """A received value as a 422 may repeat it: short strings, integers, finite numbers."""
    if isinstance(received, str):
        return received if len(received) <= MAX_ECHO_CHARS else received[:MAX_ECHO_CHARS] + "…"
    if isinstance(received, bool | int) or (isinstance(received, float) and math.isfinite(received)):
        return received  # NaN and infinity have no JSON spelling
    return None  # objects and lists: they may hold a secret field next to the bad one


def public_validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Validation errors fit to send back: each names the field (``loc``) and what was
    expected (``msg``); the received value (``input``) is kept only when it is a short
    scalar of a field that holds no secret."""
    public = []
    for error in errors:
        loc = [part if isinstance(part, int | str) else str(part) for part in error.get("loc", ())]
        entry: dict[str, Any] = {"type": error.get("type"), "loc": loc, "msg": error.get("msg")}
        received = error.get("input")
        secret = any(isinstance(part, str) and part.lower() in SECRET_FIELDS for part in loc)
        if not secret and (echo := _echo(received)) is not None:
            entry["input"] = echo
        public.append(entry)
    return public


__all__ = [
    "INT32_MAX",
    "INT64_MAX",
    "MAX_ID_CHARS",
    "MAX_OFFSET",
    "MAX_SITE_M",
    "SECRET_FIELDS",
    "Line",
    "Name",
    "Offset",
    "RowId",
    "Secret",
    "SiteMetres",
    "StoredId",
    "Text",
    "TimeNs",
    "invalid",
    "public_validation_errors",
]
