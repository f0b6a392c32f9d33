"""Stopping a long computation cleanly on SIGTERM or SIGINT.

SLURM sends SIGTERM when a job reaches its time limit (and SIGKILL some seconds later); Snakemake
passes Ctrl-C on as SIGINT. Left to their default behaviour these kill a run in the middle of a
step, and everything since its last checkpoint is lost. While :func:`stop_requests` is active, the
first such signal only records itself; the computation checks the request at its next safe point
(the training loop: between two steps), saves what it can, and raises :class:`Stopped`, whose exit
status is the shell's for a process killed by that signal (143 for SIGTERM, 130 for SIGINT). A
second signal gets the behaviour that was installed before (SIGTERM: the process dies; SIGINT:
``KeyboardInterrupt``), so an impatient second Ctrl-C still interrupts at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(SystemExit):
    """A run stopped on a signal at a safe point. ``code``, the process's exit status when it is not
    caught, is ``128 + signum``; ``str()`` is the message that says where it stopped and what was
    saved. A ``SystemExit`` so that no ``except Exception`` on the way up swallows it."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum
        self.code = 128 + signum

    def __str__(self) -> str:
        return str(self.args[0])


class StopRequest:
    """The first stop signal received while :func:`stop_requests` is active, if any."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __bool__(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return "no signal" if self.signum is None else signal.Signals(self.signum).name

    def stopped(self, message: str) -> Stopped:
        """The exception to raise for this request (a request must have been received)."""
        if self.signum is None:
            raise RuntimeError("no stop signal was received")
        return Stopped(message, self.signum)


@contextlib.contextmanager
def stop_requests() -> Iterator[StopRequest]:
    """Record SIGTERM and SIGINT in the yielded request instead of acting on them; restore the
    previous handlers on exit. Outside the main thread, where Python cannot install signal
    handlers, the request is never set and the signals keep their behaviour."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}

    def restore() -> None:
        for s, handler in previous.items():
            # None: a handler installed outside Python, which cannot be reinstalled from here
            signal.signal(s, signal.SIG_DFL if handler is None else handler)

    def record(signum, frame) -> None:
        request.signum = signum
        restore()

    for s in SIGNALS:
        signal.signal(s, record)
    try:
        yield request
    finally:
        restore()
