"""The PyO3 face's rooms (rust/*.rs, rust/*/) depend on each other one way only.

Reads every `crate::...` path in the face's Rust files (`use` lines and inline paths) and
fails on a cycle among files, or on a room that uses a room above it in `LAYERS` (the
order written in rust/README.md). `lib.rs` (registration only) may use every room. The
pure crate (rust/core) cannot use the face at all: it does not depend on it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

RUST = Path(__file__).resolve().parent.parent / "rust"

# Lowest first; a room may use rooms of its own layer (without a cycle) or below.
LAYERS: list[set[str]] = [
    {"args"},
    {"errors", "fork"},
    {"enums"},
    {"correlation"},
    {"model"},
    {"filter", "channel"},
    {"store", "bus"},
    {"codec", "batch"},
    {"testing"},
]

_PATH = re.compile(r"\b(crate|super)((?:::\w+)+)")


def _face_files() -> list[Path]:
    if not RUST.is_dir():
        pytest.skip("no rust/ folder next to tests/ (installed-package run)")
    return sorted(p for p in RUST.rglob("*.rs") if "core" not in p.relative_to(RUST).parts)


def _module_of(path: Path) -> list[str]:
    """rust/bus/mod.rs -> ["bus"]; rust/model/event.rs -> ["model", "event"]."""
    parts = list(path.relative_to(RUST).with_suffix("").parts)
    if parts[-1] in ("mod", "lib"):
        parts.pop()
    return parts


def _resolve(segments: list[str]) -> Path | None:
    for n in range(len(segments), 0, -1):
        base = RUST.joinpath(*segments[:n])
        for cand in (base.with_suffix(".rs"), base / "mod.rs"):
            if cand.is_file():
                return cand
    return None


def _strip_comments(text: str) -> str:
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def _edges() -> dict[Path, set[Path]]:
    edges: dict[Path, set[Path]] = {}
    for f in _face_files():
        here = _module_of(f)
        deps: set[Path] = set()
        for m in _PATH.finditer(_strip_comments(f.read_text())):
            segs = m.group(2).split("::")[1:]
            if m.group(1) == "super":
                # `super::` from a file: its parent module (rust/bus/publish.rs -> bus).
                segs = here[:-1] + segs
            target = _resolve(segs)
            if target is not None and target != f:
                deps.add(target)
        edges[f] = deps
    return edges


def _room(path: Path) -> str:
    return _module_of(path)[0] if _module_of(path) else "lib"


def _layer(room: str) -> int:
    for i, rooms in enumerate(LAYERS):
        if room in rooms:
            return i
    raise AssertionError(f"room {room!r} is not in LAYERS (add it, and to rust/README.md)")


def test_no_cycle_among_face_files() -> None:
    edges = _edges()
    state: dict[Path, int] = {}
    stack: list[Path] = []

    def visit(f: Path) -> None:
        state[f] = 1
        stack.append(f)
        for d in sorted(edges.get(f, ())):
            if state.get(d) == 1:
                cycle = [*stack[stack.index(d) :], d]
                raise AssertionError(
                    "dependency cycle: " + " -> ".join(str(p.relative_to(RUST)) for p in cycle)
                )
            if d not in state:
                visit(d)
        stack.pop()
        state[f] = 2

    for f in sorted(edges):
        if f not in state:
            visit(f)


def test_rooms_use_only_rooms_below() -> None:
    wrong = []
    for f, deps in _edges().items():
        room = _room(f)
        if room == "lib":
            continue
        for d in deps:
            other = _room(d)
            if other != room and _layer(other) > _layer(room):
                wrong.append(f"{f.relative_to(RUST)} uses {d.relative_to(RUST)}")
    assert not wrong, "rooms using rooms above them:\n" + "\n".join(sorted(wrong))


def test_core_does_not_know_pyo3() -> None:
    core = RUST / "core"
    if not core.is_dir():
        pytest.skip("no rust/core")
    hits = [
        str(p.relative_to(RUST))
        for p in core.rglob("*.rs")
        if re.search(r"\bpyo3\b", _strip_comments(p.read_text()))
    ]
    assert not hits, f"the pure crate mentions pyo3: {hits}"
    assert "pyo3" not in (core / "Cargo.toml").read_text()
