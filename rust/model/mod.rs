//! The Python classes of the data model: service updates and snapshots (`update`), the
//! `Event` base class (`event`), the built-in event kinds (`status`: service state and
//! health; `operations`: dependency, user action, system), and the constructor schema
//! every kind declares (`schema`, behind pickling and the native codec).

/// `#[pymethods] impl $ty { .. }` with the getters every correlated record shares, read
/// from `self.$rec` (a `Header`, `UpdateData` or `HealthData`: same field names):
/// `event_id`, `correlation_id`, `caused_by`, `parent_id` and the timestamp under the name
/// `$ts`. `{ $extra }` are more generated getters (see `service_pymethods!`), then the
/// class's own methods.
macro_rules! correlated_pymethods {
    ($ty:ident, $rec:ident, $ts:ident, { $($extra:tt)* }, { $($body:tt)* }) => {
        #[pyo3::pymethods]
        impl $ty {
            /// Unique id of this record: `evt_` + 16 hex.
            #[getter]
            fn event_id(&self) -> String {
                tracebus_core::model::ids::format_event_id(self.$rec.event_id)
            }
            /// Correlation id shared by the whole operation.
            #[getter]
            fn correlation_id(&self) -> &str {
                &self.$rec.correlation_id
            }
            /// What caused it.
            #[getter]
            fn caused_by(&self) -> &str {
                &self.$rec.caused_by
            }
            /// Event id of the direct parent, if any.
            #[getter]
            fn parent_id(&self) -> Option<&str> {
                self.$rec.parent_id.as_deref()
            }
            /// Seconds since the epoch.
            #[getter]
            fn $ts(&self) -> f64 {
                self.$rec.timestamp
            }
            $($extra)*
            $($body)*
        }
    };
}

/// `correlated_pymethods!` plus the service getters `ManagedServiceUpdate` and
/// `ServiceStateSnapshot` share (both over `self.data: Arc<UpdateData>`).
macro_rules! service_pymethods {
    ($ty:ident, $ts:ident, { $($body:tt)* }) => {
        correlated_pymethods!($ty, data, $ts, {
            /// Service type (a `ServiceType` member, or the custom name).
            #[getter]
            fn source_type(&self, py: Python<'_>) -> Py<PyAny> {
                crate::enums::service_type_obj(py, &self.data.source_type)
            }
            /// The reported state.
            #[getter]
            fn state(&self, py: Python<'_>) -> Py<PyAny> {
                crate::enums::state_obj(py, self.data.state)
            }
            /// Whether the service is ready.
            #[getter]
            fn is_ready(&self) -> bool {
                self.data.is_ready
            }
            /// Error text, if any.
            #[getter]
            fn error_detail(&self) -> Option<&str> {
                self.data.error_detail.as_deref()
            }
            /// Local proxy port (0 = none).
            #[getter]
            fn proxy_port(&self) -> u16 {
                self.data.proxy_port
            }
            /// Process id (0 = none).
            #[getter]
            fn pid(&self) -> u32 {
                self.data.pid
            }
        }, { $($body)* });
    };
}

pub mod event;
pub mod operations;
pub mod schema;
pub mod status;
pub mod update;

pub use event::Event;
pub use operations::{DependencyEvent, SystemEvent, UserActionEvent};
pub use status::{HealthEvent, ServiceStateEvent};
