//! tracebus's PyO3 face: the `_core` extension module over the pure-Rust `tracebus-core`
//! crate. This file only registers classes and functions.
//!
//! The lock rule (see `rust/README.md`): never hold a Rust lock (`lock()`, `read()`,
//! `write()`, including a guard an `if let`/`match` scrutinee keeps alive) while Python can
//! run: calls, hooks, wakers, logging, or dropping a `Py<...>`. Take out, release, then
//! call or drop. Blocking waits release the GIL and are interruptible
//! (`args::detach_interruptible`); timeouts go through `args::timeout_secs`.

mod args;
mod batch;
mod bus;
mod channel;
mod codec;
mod correlation;
mod enums;
mod errors;
mod filter;
mod fork;
mod model;
mod store;
mod testing;

// Free-threaded CPython (issue 12, item 7): the module is declared `gil_used = true`, on
// purpose. The bus keeps its copy-on-write index, history and counters in GIL-reliant cells
// (`bus::GilCell`, `bus::GilCounter`): their `unsafe` (and the relaxed load + store of the
// counters) is sound only because every access holds the GIL (a `Python` token), and that
// holds on 3.13t/3.14t only while the GIL is enabled. With `gil_used = true`, importing
// `tracebus._core` on a free-threaded interpreter re-enables the GIL for the process (with
// a RuntimeWarning), unless the user forces `PYTHON_GIL=0` / `-X gil=0`, which voids this
// guarantee; so no data race is possible in the supported configurations. PyO3 0.28+
// defaults to `gil_used = false`, hence the explicit `true` here.
//
// Switching to `false` needs real synchronization: the index behind an atomically swapped
// `Arc` (e.g. `parking_lot::RwLock<Arc<Index>>` read-cloned per publish), the history behind
// a mutex, the counters as atomic read-modify-writes or per-thread shards. That was not
// measured against `tracebus bench` (a)-(e) in this change (no time left in issue 12's
// branch), so the proven-sound choice stays. `GIL_USED` mirrors the attribute (PyO3 needs
// a literal there) and a unit test checks that they agree and that the `unsafe` blocks in
// `bus/cells.rs` exist only while it is true.
pub const GIL_USED: bool = true;

#[pyo3::pymodule(gil_used = true)]
mod _core {
    use pyo3::prelude::*;

    #[pymodule_export]
    use crate::batch::{_stop_all_batch_processors, EventBatchProcessor};
    #[pymodule_export]
    use crate::bus::{_close_all_buses, EventBus, Subscription};
    #[pymodule_export]
    use crate::channel::{Channel, PriorityBufferStrategy, SimpleBufferStrategy, StateChangeEvent};
    #[pymodule_export]
    use crate::codec::{
        _correlation_key, _decode_event, _decode_rows, _encode_event, _encode_rows,
        _event_id_of_key, _event_key, _number_rows,
    };
    #[pymodule_export]
    use crate::correlation::{
        _correlation_var, new_correlation_id, new_event_id, CorrelationContext,
    };
    #[pymodule_export]
    use crate::enums::{_bind_enums, _parse_severity, register_event_type, registered_event_types};
    #[pymodule_export]
    use crate::filter::{
        any_filter, combine_filters, filter_by, filter_by_correlation, filter_by_severity,
        filter_by_source, filter_by_type, not_filter, Filter,
    };
    #[pymodule_export]
    use crate::fork::_after_fork_in_child;
    #[pymodule_export]
    use crate::model::update::{HealthStatusUpdate, ManagedServiceUpdate, ServiceStateSnapshot};
    #[pymodule_export]
    use crate::model::{
        DependencyEvent, Event, HealthEvent, ServiceStateEvent, SystemEvent, UserActionEvent,
    };
    #[pymodule_export]
    use crate::store::{StateStore, StateTransition};

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        let py = m.py();
        crate::correlation::set_event_header_reader(crate::model::event::with_header);
        crate::testing::register(py)?;
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        m.add(
            "TracebusError",
            py.get_type::<crate::errors::TracebusError>(),
        )?;
        m.add(
            "BusClosedError",
            py.get_type::<crate::errors::BusClosedError>(),
        )?;
        m.add(
            "ChannelClosed",
            py.get_type::<crate::errors::ChannelClosed>(),
        )?;
        m.add(
            "PublishTimeoutError",
            py.get_type::<crate::errors::PublishTimeoutError>(),
        )?;
        m.add(
            "PublishDeadlockError",
            py.get_type::<crate::errors::PublishDeadlockError>(),
        )?;
        m.add(
            "PublishDepthError",
            py.get_type::<crate::errors::PublishDepthError>(),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// The declared free-threading mode is explicit and agrees with the code relying on it.
    #[test]
    fn declared_gil_mode_matches_the_gil_reliant_cells() {
        let lib = include_str!("lib.rs");
        let attrs: Vec<&str> = lib
            .lines()
            .filter(|l| l.starts_with("#[pyo3::pymodule("))
            .collect();
        let declared = format!("#[pyo3::pymodule(gil_used = {})]", super::GIL_USED);
        assert_eq!(attrs, [declared.as_str()], "lib.rs must declare {declared}");
        // bus/cells.rs relies on the GIL: its `unsafe` is allowed only with gil_used = true.
        let cells = include_str!("bus/cells.rs");
        assert!(attrs[0].contains("gil_used = true") || !cells.contains("unsafe"));
    }
}
