"""The dedupe window: recently received event ids and the node each came from."""

from __future__ import annotations


class _Window:
    """The ids of recently received events, with the node each came from: drops duplicates
    and answers ``origin``. Two generations of ``size`` ids each (the older one is dropped
    when the newer fills up), so at least the last ``size`` ids are remembered, at the cost
    of two dict look-ups per event. Written by the reader thread only."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.new: dict[str, str] = {}
        self.old: dict[str, str] = {}

    def get(self, event_id: str) -> str | None:
        """The origin of ``event_id`` if it is remembered."""
        return self.new.get(event_id) or self.old.get(event_id)

    def add(self, event_id: str, origin: str) -> bool:
        """Records ``event_id``; False if it is already remembered (a duplicate)."""
        new = self.new
        if event_id in new or event_id in self.old:
            return False
        new[event_id] = origin
        if len(new) >= self.size:
            self.old, self.new = new, {}
        return True
