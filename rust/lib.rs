//! tracebus's native core. Pure-Rust modules build and test without Python;
//! the `python` feature adds the PyO3 face (`py_*` modules) and the `_core` module.

pub mod channel;
pub mod ids;
pub mod kinds;
