//! Test hooks, kept off the public classes: the module `tracebus._core._testing`, with
//! functions that take the object they act on. It is registered in `sys.modules` only (not
//! as an attribute of `_core`), so `dir(_core)` and the stub show the public surface alone;
//! tests import it with `from tracebus._core import _testing`.

use crate::bus::EventBus;
use pyo3::prelude::*;

/// Makes the next `publish` on `bus` panic inside Rust (after it has taken its snapshot),
/// to test that a Rust panic becomes a Python exception and leaves the bus usable.
#[pyfunction]
fn inject_panic(bus: &Bound<'_, EventBus>) {
    bus.get().arm_panic();
}

/// Creates the module and puts it in `sys.modules` (called once by `_core`'s init).
pub fn register(py: Python<'_>) -> PyResult<()> {
    let m = PyModule::new(py, "tracebus._core._testing")?;
    m.add_function(wrap_pyfunction!(inject_panic, &m)?)?;
    py.import("sys")?
        .getattr("modules")?
        .set_item("tracebus._core._testing", m)?;
    Ok(())
}
