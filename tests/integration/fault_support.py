"""A real ``sed`` process with a fault that a test can inject into one worker's loop.

``python -m tests.integration.fault_support WORKER TRIGGER -- server --config server.toml``
runs ``sed server`` (or any command) unchanged, except that once the file ``TRIGGER``
exists, the next turn of worker ``WORKER``'s loop raises: its
:meth:`~sed.supervise.Liveness.beat` for ``fusion``, ``live-feed``, ``webhooks`` …, or the
fusion node's receive poll for ``receiver`` (``sed fusion`` runs its loop in the main thread).
"""

from __future__ import annotations

import sys
from pathlib import Path

from sed import cli
from sed.fusion.receiver import Receiver
from sed.supervise import Liveness


class InjectedFaultError(RuntimeError):
    """What the injected fault raises (so the log shows it was the test's)."""


def inject(worker: str, trigger: Path) -> None:
    if worker == "receiver":
        poll = Receiver.poll

        def faulty_poll(self: Receiver, timeout_ms: int, **kwargs: int | None) -> list:
            if trigger.exists():
                raise InjectedFaultError("injected fault in the fusion node's receive loop")
            return poll(self, timeout_ms, **kwargs)

        Receiver.poll = faulty_poll  # type: ignore[method-assign]
        return
    beat = Liveness.beat

    def faulty_beat(self: Liveness) -> None:
        if self.name == worker and trigger.exists():
            raise InjectedFaultError(f"injected fault in worker {worker}")
        beat(self)

    Liveness.beat = faulty_beat  # type: ignore[method-assign]


if __name__ == "__main__":
    worker, trigger, separator, *command = sys.argv[1:]
    assert separator == "--", "usage: fault_support WORKER TRIGGER -- COMMAND …"
    inject(worker, Path(trigger))
    sys.exit(cli.main(command))
