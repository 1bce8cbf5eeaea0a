"""Typed shapes of the metrics and stats dicts (``TypedDict``): a mistyped key is a type error.

>>> m: BusMetrics = bus.get_metrics()
>>> m["p99_latency_ms"]          # float
>>> m["p99_latency"]             # mypy: TypedDict "BusMetrics" has no key "p99_latency"
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

__all__ = [
    "BatchStats",
    "BusMetrics",
    "ChannelStats",
    "OptimizedBusMetrics",
    "StoreMetrics",
    "SubscriptionStats",
]


class BusMetrics(TypedDict):
    """``EventBus.get_metrics()``: counters since creation, handler latency, memory."""

    events_published: int
    events_delivered: int
    events_dropped: int
    events_evicted: int
    handler_errors: int
    active_subscriptions: int
    events_buffered: int
    events_by_type: dict[str, int]
    latency_samples: int
    average_latency_ms: float
    p50_latency_ms: float
    p99_latency_ms: float
    max_latency_ms: float
    history_events: int
    memory_bytes: int


class OptimizedBusMetrics(BusMetrics):
    """``OptimizedEventBus.get_metrics()``: ``BusMetrics`` plus the batch queue's length."""

    batch_queued: int


class StoreMetrics(TypedDict):
    """``StateStore.get_metrics()``: counters, counts by type and state, memory."""

    total_services: int
    state_changes: int
    operations: int
    subscription_events: int
    subscription_drops: int
    active_subscriptions: int
    services_by_type: dict[str, int]
    services_by_state: dict[str, int]
    memory_bytes: int


class ChannelStats(TypedDict):
    """``Channel.stats()``: the buffer's counters."""

    sent: int
    delivered: int
    dropped: int
    evicted: int
    blocked: int
    overflowed: int
    buffered: int
    capacity: int
    closed: bool


class SubscriptionStats(TypedDict):
    """``Subscription.stats()``: handler counters, plus the buffer's for thread and async
    subscriptions (absent for sync ones)."""

    handler_returned: int
    errors: int
    sent: NotRequired[int]
    delivered: NotRequired[int]
    dropped: NotRequired[int]
    evicted: NotRequired[int]
    blocked: NotRequired[int]
    overflowed: NotRequired[int]
    buffered: NotRequired[int]
    capacity: NotRequired[int]
    closed: NotRequired[bool]


class BatchStats(TypedDict):
    """``EventBatchProcessor.stats()``."""

    queued: int
    enqueued: int
    flushed: int
    published: int
    failed: int
    failed_batches: int
    lost_at_shutdown: int
    batches: int
    max_batch: int
    direct: int
    waits: int
    overflowed: int
    starts: int
    running: bool
