"""Stopping on SIGINT or SIGTERM (Ctrl-C, ``systemctl stop``) without losing what landed.

The first signal asks the run to stop: no new write is started; the writes in flight
finish (or, after :data:`GRACE` seconds, are abandoned), what landed is committed to the
state, and the run ends with :class:`Interrupted` (exit status 130 for SIGINT, 143 for
SIGTERM). When nothing is being written the run stops at once. A second signal stops at
once too. Whatever is cut short is safe: a write in flight was noted as pending before it
started, and the next run recognises it (see ``plan.effective_entries``).
"""

from __future__ import annotations

import _thread  # not threading: a run that needs no threads does not import it
import contextlib
import os
import signal
from collections.abc import Iterator
from types import FrameType

from pimsync.errors import PimsyncError

#: seconds the writes in flight get to finish after the first signal
GRACE = 5.0


class Interrupted(BaseException):  # noqa: N818 - like KeyboardInterrupt, not an error
    """The run was asked to stop by a signal. A BaseException, so that it passes the
    ``except PimsyncError`` of code that goes on with the next collection."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


class NotStarted(PimsyncError):
    """A write that was not started because the run is stopping."""


_lock = _thread.allocate_lock()
_requested: int | None = None  # the signal that asked to stop
_in_flight = 0  # writes started and not finished
_busy = 0  # sections that should finish before the run stops (a batch and its commit)


def requested() -> bool:
    """Has a signal asked the run to stop?"""
    return _requested is not None


def check() -> None:
    """Raise :class:`Interrupted` if a signal asked the run to stop."""
    if _requested is not None:
        raise Interrupted(_requested)


@contextlib.contextmanager
def writing() -> Iterator[None]:
    """Around one write (any thread): counted as in flight; refused once stopping."""
    global _in_flight
    with _lock:
        if _requested is not None:
            raise NotStarted("not started: pimsync is stopping")
        _in_flight += 1
    try:
        yield
    finally:
        with _lock:
            _in_flight -= 1


@contextlib.contextmanager
def finishing() -> Iterator[None]:
    """A section (main thread) that a first signal lets finish: a batch of writes and the
    commit of what landed. The run stops right after it (see :func:`check`)."""
    global _busy
    _busy += 1
    try:
        yield
    finally:
        _busy -= 1


def _say(text: str) -> None:
    with contextlib.suppress(OSError):
        os.write(2, f"pimsync: {text}\n".encode())


def _on_signal(signum: int, frame: FrameType | None) -> None:
    global _requested
    if _requested is not None:  # a second signal: at once
        raise Interrupted(signum)
    _requested = signum
    if _busy == 0 and _in_flight == 0:
        raise Interrupted(signum)
    n = _in_flight
    _say(
        f"stopping: {n} write{'s' * (n != 1)} in flight; recording what landed "
        f"(at most {GRACE:g} s; again to stop at once)"
    )
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, GRACE)


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    if _requested is not None:
        _say("the writes in flight did not finish in time: abandoned (the next run checks them)")
        raise Interrupted(_requested)


@contextlib.contextmanager
def handling() -> Iterator[None]:
    """Install the handlers for SIGINT and SIGTERM (main thread only) while the block
    runs; restore the previous ones afterwards."""
    global _requested, _in_flight, _busy
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    _requested, _in_flight, _busy = None, 0, 0
    try:
        for s in old:
            signal.signal(s, _on_signal)
    except ValueError:  # not the main thread: signals are not ours to handle
        yield
        return
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for s, handler in old.items():
            signal.signal(s, handler)
        _requested = None
