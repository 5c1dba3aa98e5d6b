"""The systemd notification protocol (``sd_notify``), without libsystemd.

With ``Type=notify`` systemd considers the sensor started once it sends ``READY=1``; with
``WatchdogSec=`` it restarts the sensor when ``WATCHDOG=1`` stops arriving. The daemon
pings only after processing audio, so a stalled sound card or a hung model restarts the
service rather than leaving a deaf pole that still looks alive. Outside systemd
(``NOTIFY_SOCKET`` unset) every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("sed.sensor.systemd")


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``) to systemd; ``False`` when not run by systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("sd_notify to %s failed: %s", os.environ.get("NOTIFY_SOCKET"), exc)
        return False
    return True


class Watchdog:
    """Pings systemd's watchdog at half the interval it asked for (``WATCHDOG_USEC``)."""

    def __init__(self) -> None:
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID", "")
        enabled = usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid()))
        self.interval_ns = int(usec) * 1000 // 2 if enabled else 0
        self._next_ns = 0

    def ping(self) -> None:
        """Call whenever the service made progress; sends ``WATCHDOG=1`` when one is due."""
        if not self.interval_ns:
            return
        now = time.monotonic_ns()
        if now >= self._next_ns:
            notify("WATCHDOG=1")
            self._next_ns = now + self.interval_ns


__all__ = ["Watchdog", "notify"]
