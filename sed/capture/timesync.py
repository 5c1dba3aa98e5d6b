"""Is the system clock disciplined? Asked of the kernel, which every time daemon informs.

GPS (gpsd + chrony), PTP (ptp4l + phc2sys), chrony and ntpd all steer the kernel clock
through ``adjtimex(2)``, and all of them clear the kernel's ``STA_UNSYNC`` status flag
while they hold the clock in sync (the kernel sets it again, and ``adjtimex`` returns
``TIME_ERROR``, when no daemon has vouched for the clock for a while). Reading that flag
needs no privileges, no daemon-specific client and no systemd, so the same check works on
a pole, in a container and in CI (where it usually, and truthfully, says "unsynchronised").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import sys

#: ``adjtimex`` status bit: clock not synchronised.
STA_UNSYNC = 0x0040
#: ``adjtimex`` return value: clock not synchronised.
TIME_ERROR = 5


class _Timex(ctypes.Structure):
    """``struct timex`` of ``<sys/timex.h>`` (Linux, any word size)."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    ]


@dataclasses.dataclass(frozen=True, kw_only=True)
class KernelClockState:
    """What ``adjtimex`` (read-only, ``modes = 0``) says about the system clock.

    Attributes
    ----------
    synced : bool
        ``STA_UNSYNC`` clear and the call did not return ``TIME_ERROR``.
    max_error_us : int
        The kernel's bound on the clock error, microseconds (16 s when unsynchronised).
    estimated_error_us : int
        The time daemon's estimate of the error, microseconds.
    """

    synced: bool
    max_error_us: int
    estimated_error_us: int


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name, use_errno=True) if name else None


_LIBC = _libc()


def kernel_clock_state() -> KernelClockState | None:
    """The kernel's view of the system clock; ``None`` where ``adjtimex`` is unavailable."""
    if _LIBC is None:
        return None
    timex = _Timex()  # modes = 0: read only
    state = _LIBC.adjtimex(ctypes.byref(timex))
    if state < 0:
        return None
    return KernelClockState(
        synced=state != TIME_ERROR and not timex.status & STA_UNSYNC,
        max_error_us=int(timex.maxerror),
        estimated_error_us=int(timex.esterror),
    )


def kernel_clock_synced() -> bool:
    """``True`` when the kernel reports a disciplined clock (``False`` if it cannot tell)."""
    state = kernel_clock_state()
    return state is not None and state.synced


__all__ = ["KernelClockState", "kernel_clock_state", "kernel_clock_synced"]
