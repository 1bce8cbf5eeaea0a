"""Issue 12, item 7: the module's free-threading declaration is explicit.

``tracebus._core`` declares ``gil_used = true`` (see ``rust/lib.rs``): on a free-threaded
interpreter importing it re-enables the GIL. Nothing of this is observable on a GIL build
(no free-threaded interpreter can be installed here), so the declaration itself is checked
by the Rust unit test ``declared_gil_mode_matches_the_gil_reliant_cells``
(``cargo test -p tracebus``), and by the source check below.
"""

from __future__ import annotations

import pathlib
import sys
import sysconfig

import pytest

import tracebus._core  # noqa: F401  (imported for its effect on the GIL)

LIB = pathlib.Path(__file__).resolve().parent.parent / "rust" / "lib.rs"


def test_lib_rs_declares_gil_used_true() -> None:
    if not LIB.exists():
        pytest.skip("the Rust sources are not next to the tests")
    text = LIB.read_text(encoding="utf-8")
    assert text.count("#[pyo3::pymodule(gil_used = true)]") == 1
    assert "pub const GIL_USED: bool = true;" in text


@pytest.mark.skipif(
    not sysconfig.get_config_var("Py_GIL_DISABLED"), reason="needs a free-threaded CPython"
)
def test_importing_the_module_keeps_the_gil_enabled_on_free_threaded_builds() -> None:
    assert sys._is_gil_enabled()  # type: ignore[attr-defined]
