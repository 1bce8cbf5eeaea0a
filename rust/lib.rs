//! tracebus's PyO3 face: the `_core` extension module over the pure-Rust `tracebus-core`
//! crate. This file only registers classes and functions.

mod py_batch;
mod py_bus;
mod py_channel;
mod py_codec;
mod py_correlation;
mod py_errors;
mod py_event;
mod py_filter;
mod py_kinds;
mod py_store;
mod py_update;

#[pyo3::pymodule]
mod _core {
    use pyo3::prelude::*;

    #[pymodule_export]
    use crate::py_batch::{_stop_all_batch_processors, EventBatchProcessor};
    #[pymodule_export]
    use crate::py_bus::{EventBus, Subscription};
    #[pymodule_export]
    use crate::py_channel::{
        Channel, PriorityBufferStrategy, SimpleBufferStrategy, StateChangeEvent,
    };
    #[pymodule_export]
    use crate::py_codec::{
        _correlation_key, _decode_event, _decode_rows, _encode_event, _encode_rows,
        _event_id_of_key, _event_key, _number_rows,
    };
    #[pymodule_export]
    use crate::py_correlation::{
        _correlation_var, new_correlation_id, new_event_id, CorrelationContext,
    };
    #[pymodule_export]
    use crate::py_event::{
        DependencyEvent, Event, HealthEvent, ServiceStateEvent, SystemEvent, UserActionEvent,
    };
    #[pymodule_export]
    use crate::py_filter::{
        any_filter, combine_filters, filter_by, filter_by_correlation, filter_by_severity,
        filter_by_source, filter_by_type, not_filter, Filter,
    };
    #[pymodule_export]
    use crate::py_kinds::{_bind_enums, register_event_type, registered_event_types};
    #[pymodule_export]
    use crate::py_store::{StateStore, StateTransition};
    #[pymodule_export]
    use crate::py_update::{HealthStatusUpdate, ManagedServiceUpdate, ServiceStateSnapshot};

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        let py = m.py();
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        m.add(
            "TracebusError",
            py.get_type::<crate::py_errors::TracebusError>(),
        )?;
        m.add(
            "BusClosedError",
            py.get_type::<crate::py_errors::BusClosedError>(),
        )?;
        m.add(
            "ChannelClosed",
            py.get_type::<crate::py_errors::ChannelClosed>(),
        )?;
        m.add(
            "PublishTimeoutError",
            py.get_type::<crate::py_errors::PublishTimeoutError>(),
        )?;
        m.add(
            "PublishDepthError",
            py.get_type::<crate::py_errors::PublishDepthError>(),
        )?;
        Ok(())
    }
}
