"""The ``tracebus`` command line: ``main`` (argument parsing and the commands), ``demo``
(the simulated environment), ``live`` (the rich live view), ``watch`` (following a database
or a Redis stream), ``summary`` (the demo's closing report and ``tracebus trace``)."""

from .main import main

__all__ = ["main"]
