//! tracebus's native core. Pure-Rust modules build and test without Python (`cargo test`);
//! the `python` feature adds the PyO3 face (`py_*` modules) and the `_core` module, which
//! only registers classes and functions.

pub mod batch;
pub mod channel;
pub mod event;
pub mod filter;
pub mod ids;
pub mod index;
pub mod kinds;
pub mod metrics;
pub mod store;
pub mod update;

#[cfg(feature = "python")]
mod py_batch;
#[cfg(feature = "python")]
mod py_bus;
#[cfg(feature = "python")]
mod py_channel;
#[cfg(feature = "python")]
mod py_codec;
#[cfg(feature = "python")]
mod py_correlation;
#[cfg(feature = "python")]
mod py_errors;
#[cfg(feature = "python")]
mod py_event;
#[cfg(feature = "python")]
mod py_filter;
#[cfg(feature = "python")]
mod py_kinds;
#[cfg(feature = "python")]
mod py_store;
#[cfg(feature = "python")]
mod py_update;

#[cfg(feature = "python")]
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
