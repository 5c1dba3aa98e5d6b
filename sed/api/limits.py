"""What one client may cost the server: request-body size and failed logins.

:class:`BodyLimitMiddleware` refuses a body larger than ``api.max_body_bytes`` (or
``api.max_anonymous_body_bytes`` for a request that carries no token, and always for the
login) with a 413 *while it streams*: a declared ``Content-Length`` above the limit is
refused before a byte is read, and a chunked body is cut off at the first chunk past it,
so a 32 MB login never reaches memory.

:class:`LoginThrottle` counts failed logins per username and per client address in a
sliding window; past ``api.login_max_failures`` the login answers 429 with
``Retry-After`` before any password is checked (argon2 costs the server, on purpose).
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sed.config import ApiSection

#: Paths that need no token, so their body limit is the anonymous one.
ANONYMOUS_PATHS = frozenset({"/api/auth/login"})
#: Keys (usernames plus addresses) the throttle remembers; the stalest are forgotten first.
MAX_THROTTLE_KEYS = 10_000


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once the body passes the limit; FastAPI passes an
    ``HTTPException`` from body reading through unchanged, so the client gets the 413."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(413, f"request body larger than {limit_bytes} bytes")


class BodyLimitMiddleware:
    """Refuse request bodies above the configured size (413), counting as they stream in."""

    def __init__(self, app: ASGIApp, *, api: ApiSection) -> None:
        self.app = app
        self.max_body_bytes = api.max_body_bytes
        self.max_anonymous_body_bytes = api.max_anonymous_body_bytes

    def limit_bytes(self, scope: Scope, headers: Headers) -> int:
        """The limit for this request: small without a token, or on an anonymous route."""
        if scope.get("path") in ANONYMOUS_PATHS or "authorization" not in headers:
            return self.max_anonymous_body_bytes
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        limit = self.limit_bytes(scope, headers)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(limit)(scope, receive, send)
            return
        received_bytes = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received_bytes
            message = await receive()
            if message["type"] == "http.request":
                received_bytes += len(message.get("body", b""))
                if received_bytes > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            # Raised where no exception handler ran (e.g. a route that reads the stream itself)
            if started:
                raise
            await _too_large(limit)(scope, receive, send)


def _too_large(limit_bytes: int) -> JSONResponse:
    # Connection: close, because the rest of the body is never read
    return JSONResponse(
        {"detail": f"request body larger than {limit_bytes} bytes"}, status_code=413, headers={"Connection": "close"}
    )


class LoginThrottle:
    """Failed logins per key (``user:NAME``, ``addr:IP``) in a sliding window, bounded in memory.

    Parameters
    ----------
    max_failures : int
        Failures a key may collect within the window; one more login is refused.
    window_s : float
        Length of the sliding window, s.
    clock : callable, optional
        Monotonic seconds (tests pass a fake one).
    """

    def __init__(
        self,
        *,
        max_failures: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_THROTTLE_KEYS,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.clock = clock
        self.max_keys = max_keys
        # key -> failure times, oldest first; the dict's order is least recently failed first
        self._failures: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()
        self._lock = threading.Lock()  # routes run in a thread pool

    @staticmethod
    def keys(*, username: str, remote_addr: str | None) -> list[str]:
        return [f"user:{username.lower()}", f"addr:{remote_addr or '-'}"]

    def retry_after_s(self, keys: list[str]) -> float | None:
        """Seconds until a login under these keys is allowed again; ``None``: allowed now."""
        now = self.clock()
        waits = []
        with self._lock:
            for key in keys:
                times = self._recent(key, now)
                if times is not None and len(times) >= self.max_failures:
                    # the oldest failure that still counts must leave the window first
                    waits.append(times[0] + self.window_s - now)  # deque holds max_failures at most
        return max(waits) if waits else None

    def failed(self, keys: list[str]) -> None:
        """Record one failed login under every key."""
        now = self.clock()
        with self._lock:
            for key in keys:
                times = self._recent(key, now)
                if times is None:
                    times = self._failures[key] = collections.deque(maxlen=self.max_failures)
                times.append(now)
                self._failures.move_to_end(key)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)

    def succeeded(self, *, username: str) -> None:
        """A correct password clears the user's failures (never the address's: an attacker
        holding one account must not reset the count of the accounts they guess at)."""
        with self._lock:
            self._failures.pop(f"user:{username.lower()}", None)

    def _recent(self, key: str, now: float) -> collections.deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times


def retry_after_header(seconds: float) -> dict[str, str]:
    """``Retry-After`` in whole seconds, rounded up (at least 1)."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


__all__ = ["ANONYMOUS_PATHS", "BodyLimitMiddleware", "BodyTooLarge", "LoginThrottle", "retry_after_header"]
