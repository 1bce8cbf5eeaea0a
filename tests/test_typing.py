"""The typed API, checked by mypy --strict: ``tests/typing_cases/*.py`` mark each
``reveal_type`` with the type mypy must reveal (``# R: <type>``) and each line mypy must
reject with its error code (``# E: <code>``); an error on any other line fails too."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

CASES = Path(__file__).parent / "typing_cases"
MARK = re.compile(r"#\s*([RE]):\s*(.+?)\s*$")
OUT = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<kind>error|note): (?P<msg>.*)$")


def expectations(path: Path) -> dict[int, tuple[str, str]]:
    out: dict[int, tuple[str, str]] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        m = MARK.search(line)
        if m:
            out[n] = (m.group(1), m.group(2))
    return out


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", sorted(p.name for p in CASES.glob("*.py")))
def test_mypy_accepts_and_rejects_what_it_should(case: str) -> None:
    path = CASES / case
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--show-error-codes",
            "--no-error-summary",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    revealed: dict[int, str] = {}
    errors: dict[int, list[str]] = {}
    for line in proc.stdout.splitlines():
        m = OUT.match(line)
        if m is None:
            continue
        n, msg = int(m.group("line")), m.group("msg")
        if m.group("kind") == "note":
            r = re.match(r'Revealed type is "(.*)"$', msg)
            if r:
                revealed[n] = r.group(1)
        else:
            code = re.search(r"\[([a-z-]+)\]$", msg)
            errors.setdefault(n, []).append(code.group(1) if code else msg)
    expected = expectations(path)
    assert expected, "no expectations in the case file"
    problems = []
    for n, (kind, want) in expected.items():
        if kind == "R" and revealed.get(n) != want:
            problems.append(f"line {n}: revealed {revealed.get(n)!r}, expected {want!r}")
        if kind == "E" and want not in errors.get(n, []):
            problems.append(f"line {n}: expected error [{want}], got {errors.get(n)}")
    for n, codes in errors.items():
        if expected.get(n, ("", ""))[0] != "E":
            problems.append(f"line {n}: unexpected error(s) {codes}")
    assert not problems, "\n".join(problems) + "\n\nmypy output:\n" + proc.stdout + proc.stderr
