"""What a benchmark reads of another process from ``/proc`` (Linux): memory and CPU time."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProcessSample:
    """One reading of a live process.

    ``rss_kib`` is its resident memory now, ``peak_rss_kib`` the most it has held since it
    was exec'd (VmHWM; unlike a child's ``ru_maxrss`` it restarts at exec), both KiB;
    ``cpu_s`` its user + system CPU time so far, s.
    """

    rss_kib: int
    peak_rss_kib: int
    cpu_s: float


def sample(pid: int) -> ProcessSample:
    """Read ``/proc/PID/status`` and ``/proc/PID/stat``.

    Raises
    ------
    OSError
        When the process is gone (or ``/proc`` is not there).
    """
    status = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            status[key] = int(value.split()[0])
    # Fields after the parenthesised command name: state is the first, utime the 12th, stime the 13th.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return ProcessSample(
        rss_kib=status["VmRSS"],
        peak_rss_kib=status["VmHWM"],
        cpu_s=(int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"),
    )


__all__ = ["ProcessSample", "sample"]
