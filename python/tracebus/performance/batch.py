"""``EventBatchProcessor`` (Rust: ``rust/batch.rs`` and ``rust/py_batch.rs``): queues events
and publishes them in batches from a Rust thread, one ``bus.publish_many(list)`` call and one
interpreter acquisition per batch."""

from __future__ import annotations

import atexit

from .. import _core
from .._core import EventBatchProcessor

__all__ = ["EventBatchProcessor"]

# Batches still queued at exit are published before the interpreter shuts down (a Rust
# thread cannot attach to a finalizing interpreter, so they would be lost).
atexit.register(_core._stop_all_batch_processors)
