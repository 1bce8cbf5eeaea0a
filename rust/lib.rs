//! tracebus's native core. Pure-Rust modules build and test without Python (`cargo test`);
//! the `python` feature adds the PyO3 face (`py_*` modules) and the `_core` module.

pub mod channel;
pub mod event;
pub mod filter;
pub mod ids;
pub mod index;
pub mod kinds;
pub mod metrics;
pub mod store;
pub mod update;
