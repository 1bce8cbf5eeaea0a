//! tracebus's PyO3 face: the `_core` extension module over the pure-Rust `tracebus-core`
//! crate. This file only registers classes and functions.

mod args;
mod batch;
mod bus;
mod channel;
mod codec;
mod correlation;
mod enums;
mod errors;
mod filter;
mod model;
mod store;
mod testing;

// The bus keeps GIL-reliant cells (`bus::GilCell`, `bus::GilCounter`): the module must run
// with the GIL, also on free-threaded CPython.
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
    use crate::enums::{_bind_enums, register_event_type, registered_event_types};
    #[pymodule_export]
    use crate::filter::{
        any_filter, combine_filters, filter_by, filter_by_correlation, filter_by_severity,
        filter_by_source, filter_by_type, not_filter, Filter,
    };
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
