"""Fixtures of the Redis tests: one ``redis-server`` per module, a stream name per test and
a client of the module's server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from redis_support import RedisServer, require_redis_server


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    """One redis-server (no persistence) for the module; tests use their own streams."""
    require_redis_server()
    with RedisServer() as s:
        yield s


@pytest.fixture
def stream(request: pytest.FixtureRequest) -> str:
    """A stream name of the test's own."""
    return f"test:{request.node.name}:{time.monotonic_ns()}"


@pytest.fixture
def client(server: RedisServer) -> Iterator[redis.Redis]:
    """A redis-py client of the module's server."""
    c = redis.Redis.from_url(server.url, decode_responses=True)
    yield c
    c.close()
