"""Private helpers shared by the event store's ``attach`` and the Redis bridge: argument
checks, and ``Drain``, a thread that empties a bus channel in batches."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from ._core import Channel, ChannelClosed, Event


def check_int(name: str, value: object, minimum: int = 0) -> int:
    """``value`` if it is an int (not a bool) of at least ``minimum``; else TypeError or
    ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def check_timeout(name: str, value: object) -> float | None:
    """A timeout argument in seconds: None, or a value too large for a wait
    (``sys.maxsize``, ``1e20``, ``inf``), means no limit (None); NaN and negatives raise
    ValueError, other types TypeError, naming ``name``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or None, got {type(value).__name__}")
    t = float(value)
    if math.isnan(t) or t < 0:
        raise ValueError(f"{name} must be a non-negative number of seconds or None, got {t}")
    return None if t > threading.TIMEOUT_MAX / 2 else t


def time_left(deadline: float | None) -> float | None:
    """Seconds until ``deadline`` (a ``time.monotonic()`` value; None: no limit), at least 0."""
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def work_part(timeout: float) -> float:
    """The part of a stop's or close's ``timeout`` for finishing the work; the rest (half
    of it, at most 1 s) is for giving up and counting what is left."""
    return timeout - min(timeout / 2, 1.0)


class Drain:
    """A daemon thread (``start()``) that takes events from ``channel``, up to
    ``batch_size`` at a time, and calls ``handle(batch)`` with each batch; it ends once the
    channel is closed and empty. ``flush`` waits until every event the channel handed out
    was handled.

    ``abandon``: if given and ``stop``'s timeout passes, ``give_up`` is set (``handle`` may
    watch it to stop retrying) and, after the batch in hand, ``abandon(rest)`` is called
    with what is still buffered instead of handling it."""

    def __init__(
        self,
        channel: Channel,
        batch_size: int,
        handle: Callable[[list[Event]], None],
        *,
        name: str,
        abandon: Callable[[list[Event]], None] | None = None,
    ) -> None:
        self.channel = channel
        self.batch_size = batch_size
        self.handle = handle
        self.abandon = abandon
        self.give_up = threading.Event()
        self.done = 0  # events taken from the channel and handled (or abandoned)
        self._cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Drain:
        """Starts the thread; returns the drain."""
        self.thread.start()
        return self

    def _finished(self, n: int) -> None:
        with self._cond:
            self.done += n
            self._cond.notify_all()

    def _run(self) -> None:
        ch = self.channel
        try:
            while True:
                try:
                    first = ch.recv()
                except ChannelClosed:
                    break
                batch = [first, *ch.drain(self.batch_size - 1)]
                try:
                    self.handle(batch)
                finally:
                    self._finished(len(batch))
                if self.give_up.is_set() and self.abandon is not None:
                    rest = ch.drain()
                    self.abandon(rest)
                    self._finished(len(rest))
        finally:
            with self._cond:
                self._cond.notify_all()

    def flush(self, timeout: float | None) -> bool:
        """Waits up to ``timeout`` seconds (None: no limit) until nothing is buffered and
        every event taken from the channel was handled; True if so, False at the timeout
        or if the thread ended first."""
        timeout = check_timeout("timeout", timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                s = self.channel.stats()
                # The channel's ``delivered`` counts the events the thread took (as it
                # takes them); ``done`` those it finished with.
                if s["buffered"] == 0 and self.done >= s["delivered"]:
                    return True
                if not self.thread.is_alive():
                    return False
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(0.005 if left is None else min(0.005, left))

    def stop(self, timeout: float | None) -> None:
        """Closes the channel and waits for the thread to handle what is buffered; returns
        within ``timeout`` seconds (None: no limit). With ``abandon``, the last part of the
        timeout (half of it, at most 1 s) is for giving up: ``give_up`` is set and the
        thread abandons the rest (if it is still busy when ``stop`` returns, it does so
        right after). Does not wait when called from the thread itself."""
        timeout = check_timeout("timeout", timeout)
        self.channel.close()
        if threading.current_thread() is self.thread:
            return
        if timeout is None or self.abandon is None:
            self.thread.join(timeout)
            return
        deadline = time.monotonic() + timeout
        self.thread.join(work_part(timeout))
        if self.thread.is_alive():
            self.give_up.set()
            self.thread.join(time_left(deadline))
