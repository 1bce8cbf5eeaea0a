"""A throw-away ``redis-server`` for tests: a free loopback port, a temporary directory, no
persistence unless asked (``aof=True``: ``appendonly yes``, ``appendfsync always``).

>>> with RedisServer() as server:
...     bridge = RedisStreamBridge(bus, server.url)
...     server.restart(kill=True)        # same port and directory (AOF replayed if on)
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from types import TracebackType

import pytest

__all__ = ["RedisServer", "redis_server_binary", "require_redis_server"]


def redis_server_binary() -> str | None:
    """The ``redis-server`` executable, or None if it is not installed."""
    return shutil.which("redis-server")


def require_redis_server() -> None:
    """Fails the calling test if ``redis-server`` is not installed (CI installs it), or
    skips it if ``TRACEBUS_NO_REDIS=1``."""
    if redis_server_binary() is None:
        if os.environ.get("TRACEBUS_NO_REDIS") == "1":
            pytest.skip("redis-server not installed and TRACEBUS_NO_REDIS=1")
        pytest.fail(
            "redis-server is not installed: apt-get install redis-server "
            "(bash .ci/run does it), or set TRACEBUS_NO_REDIS=1 to skip the Redis tests"
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ping(port: int, timeout: float = 0.5) -> bool:
    """Whether a server on ``port`` answers PING (raw RESP, no client library needed)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A ``redis-server`` on ``127.0.0.1:<free port>`` with its files in a temporary
    directory; started by the constructor, stopped (and the directory removed) by ``stop``
    or the context manager. ``restart`` keeps the port and the directory."""

    def __init__(self, *, aof: bool = False, start_timeout: float = 10.0) -> None:
        binary = redis_server_binary()
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed (Debian: apt-get install redis-server)"
            )
        self.binary = binary
        self.aof = aof
        self.start_timeout = start_timeout
        self.dir = tempfile.mkdtemp(prefix="tracebus-redis-")
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        try:
            for _ in range(5):  # another process may grab the free port first
                self.port = _free_port()
                if self._start():
                    break
            else:
                raise RuntimeError(f"redis-server did not start; see {self.log_path}")
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> str:
        """The server's log file."""
        return os.path.join(self.dir, "redis.log")

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def _start(self) -> bool:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            self.dir,
            "--logfile",
            self.log_path,
            "--daemonize",
            "no",
            "--save",
            "",
            "--protected-mode",
            "yes",
        ]
        if self.aof:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                return False  # e.g. the port was taken
            if _ping(self.port):
                return True
            time.sleep(0.01)
        self._kill()
        return False

    def _kill(self, sig: int = signal.SIGKILL) -> None:
        p = self.proc
        if p is None:
            return
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        self.proc = None

    def restart(self, *, kill: bool = False, down_for: float = 0.0) -> None:
        """Stops the server — SIGTERM (Redis shuts down cleanly, writing its AOF) or, with
        ``kill``, SIGKILL (only what was already written survives) — and starts it again on
        the same port and directory after ``down_for`` seconds."""
        self._kill(signal.SIGKILL if kill else signal.SIGTERM)
        if down_for:
            time.sleep(down_for)
        if not self._start():
            raise RuntimeError(f"redis-server did not restart on port {self.port}")

    def stop(self) -> None:
        """Stops the server (SIGKILL: nothing is kept) and removes its directory.
        Idempotent."""
        self._kill(signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
