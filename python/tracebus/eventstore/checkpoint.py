"""Background WAL checkpoints, so that appends never wait for one."""

from __future__ import annotations

import logging
import sqlite3
import threading

_log = logging.getLogger("tracebus.eventstore")

_CHECKPOINT_BYTES = 16 << 20  # WAL size that triggers a background checkpoint


class _Checkpointer:
    """Checkpoints the WAL from a thread with its own connection once about
    ``_CHECKPOINT_BYTES`` were committed since the last checkpoint, so appends never wait
    for one. (PASSIVE: it never blocks writers or readers; what it cannot copy now is copied
    next time. The WAL file keeps its size after a checkpoint and is reused from the start,
    hence a count of committed bytes rather than the file size.)"""

    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self.checkpoints = 0
        self._pending = 0  # estimated WAL bytes committed since the last checkpoint
        self._wake = threading.Event()
        self._stopping = False
        self.thread = threading.Thread(
            target=self._run, name="tracebus-eventstore-checkpoint", daemon=True
        )
        self.thread.start()

    def poke(self, nbytes: int) -> None:
        """Called after each commit with the (estimated) bytes it wrote."""
        self._pending += nbytes
        if self._pending >= _CHECKPOINT_BYTES:
            self._wake.set()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        except sqlite3.Error:
            return
        try:
            while not self._stopping:
                self._wake.wait(1.0)
                self._wake.clear()
                if self._pending < _CHECKPOINT_BYTES or self._stopping:
                    continue
                self._pending = 0
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    self.checkpoints += 1
                except sqlite3.Error as e:
                    _log.warning("event store %s: checkpoint failed: %s", self.path, e)
        finally:
            conn.close()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self.thread.join(30)
