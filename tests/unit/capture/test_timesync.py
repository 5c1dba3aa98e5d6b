"""The kernel's view of the system clock, read with adjtimex(2)."""

from __future__ import annotations

import sys

import pytest

from sed.capture.timesync import kernel_clock_state, kernel_clock_synced


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="adjtimex is Linux only")
def test_kernel_state_is_readable_without_privileges_and_consistent() -> None:
    state = kernel_clock_state()
    assert state is not None
    assert state.max_error_us >= 0 and state.estimated_error_us >= 0
    # The kernel caps its error bound at 16 s and marks the clock unsynchronised when it gets there.
    if state.max_error_us >= 16_000_000:
        assert not state.synced
    assert kernel_clock_synced() is state.synced
