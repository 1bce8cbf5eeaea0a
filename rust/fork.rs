//! `os.fork()`: the child is a copy of the process without its threads. Objects whose work
//! runs on a background thread (a bus's thread-mode subscriptions, a started
//! `EventBatchProcessor`) would wait for ever in the child; instead they raise a clear
//! `TracebusError` on first use there. `tracebus` registers `_after_fork_in_child` with
//! `os.register_at_fork`; it bumps the fork generation, which each such object compares
//! with the one it was started in (one relaxed atomic load: nothing on the hot path).

use crate::errors::TracebusError;
use pyo3::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// How many forks lie between the first process and this one.
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

/// Called in a forked child (`os.register_at_fork(after_in_child=...)`, by `tracebus`).
/// Also gives the child's id generator a new salt (else parent and child would make the
/// same event ids).
#[pyfunction]
pub fn _after_fork_in_child() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
    tracebus_core::model::ids::reseed_after_fork();
}

/// The error of an object used in a forked child whose thread stayed in the parent.
pub fn forked_error(what: &str) -> PyErr {
    TracebusError::new_err(format!(
        "{what} was started before os.fork(): its background thread does not exist in this \
         child process; create a new one in the child (or fork before starting it)"
    ))
}
