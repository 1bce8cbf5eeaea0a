//! tracebus-core: the pure-Rust half of tracebus (no PyO3, no interpreter). It builds and
//! tests with `cargo test -p tracebus-core`; the PyO3 face (`rust/`, crate `tracebus`)
//! wraps these types for Python.
//!
//! - `model`: event kinds and ids, the routing header, service updates;
//! - `routing`: filter trees and the dispatch index;
//! - `delivery`: the subscription channel and the batcher;
//! - `state`: the state store;
//! - `metrics`: the latency histogram.

pub mod delivery;
pub mod metrics;
pub mod model;
pub mod routing;
pub mod state;
