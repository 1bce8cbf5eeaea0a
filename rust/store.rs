//! The Python face of the state store.

use crate::args::{extract_text, type_err, value_err, LABEL_MAX};
use crate::channel::{extract_capacity, extract_strategy, Channel};
use crate::enums::{extract_service_type, extract_state, service_type_obj, state_obj};
use crate::errors::BusClosedError;
use crate::model::status::service_event_from_update;
use crate::model::update::{extract_update, snapshot_obj, ServiceStateSnapshot};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::sync::Arc;
use std::time::Duration;
use tracebus_core::delivery::channel::{BufferAction, SelfBlock};
use tracebus_core::state::store::{Pending, StateStore as Core};

/// The old and new state of one atomic transition.
#[pyclass(frozen, module = "tracebus", name = "StateTransition")]
pub struct StateTransition {
    t: tracebus_core::state::store::Transition,
}

#[pymethods]
impl StateTransition {
    /// False when an `if_newer` update was not stored (the snapshot was newer).
    #[getter]
    fn stored(&self) -> bool {
        self.t.stored
    }
    /// True when the service is new or its state differs.
    #[getter]
    fn changed(&self) -> bool {
        self.t.changed
    }
    /// True when the snapshot changed in what subscribers see (state, readiness, error, port,
    /// pid, type) or the service is new: store subscribers were notified.
    #[getter]
    fn updated(&self) -> bool {
        self.t.updated
    }
    /// State before (`UNKNOWN` for a new service).
    #[getter]
    fn old_state(&self, py: Python<'_>) -> Py<PyAny> {
        state_obj(py, self.t.old_state)
    }
    /// State after.
    #[getter]
    fn new_state(&self, py: Python<'_>) -> Py<PyAny> {
        state_obj(py, self.t.new_state)
    }
    fn __repr__(&self) -> String {
        format!(
            "StateTransition(stored={}, changed={}, updated={}, old_state={:?}, new_state={:?})",
            if self.t.stored { "True" } else { "False" },
            if self.t.changed { "True" } else { "False" },
            if self.t.updated { "True" } else { "False" },
            self.t.old_state.as_str(),
            self.t.new_state.as_str()
        )
    }
}

/// The centralized, thread-safe source of truth for service states, with change
/// subscriptions, queries and metrics.
#[pyclass(frozen, subclass, module = "tracebus", name = "StateStore")]
pub struct StateStore {
    pub core: Arc<Core>,
}

/// Longest wait without checking for signals (Ctrl-C).
const SLICE: Duration = Duration::from_millis(100);

/// Releases a label's report turn when the report ends, however it ends.
struct ReportTurn<'a> {
    core: &'a Core,
    label: &'a str,
}

impl Drop for ReportTurn<'_> {
    fn drop(&mut self) {
        self.core.end_report(self.label);
    }
}

impl StateStore {
    /// Sends owed notifications; waits only if it must, with the GIL released, in slices
    /// that check for signals. Interrupted, what is still owed is counted as dropped.
    pub fn notify(&self, py: Python<'_>, mut p: Pending) -> PyResult<()> {
        if self.core.notify(&mut p, false) {
            return Ok(());
        }
        let core = self.core.clone();
        py.detach(move || loop {
            if core.notify_for(&mut p, SLICE) {
                return Ok(());
            }
            if let Err(e) = Python::attach(|py| py.check_signals()) {
                core.abandon(p);
                return Err(e);
            }
        })
    }

    pub fn transition_core(
        &self,
        py: Python<'_>,
        update: &Bound<'_, PyAny>,
        if_newer: bool,
    ) -> PyResult<tracebus_core::state::store::Transition> {
        let u = extract_update(update)?;
        let (t, p) = self.core.apply_if(u.data.clone(), if_newer);
        self.notify(py, p)?;
        Ok(t)
    }
}

#[pymethods]
impl StateStore {
    #[new]
    #[pyo3(signature = (subscription_buffer=None))]
    fn py_new(subscription_buffer: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let n = extract_capacity("subscription_buffer", subscription_buffer, 100)?;
        Ok(StateStore {
            core: Arc::new(Core::new(n)),
        })
    }

    /// Stores the update as its label's snapshot. Returns True when the label is new or its
    /// state changed (the snapshot is stored either way). With `if_newer`, the update is
    /// stored only if the label is unknown or the update is newer than its snapshot by
    /// (timestamp, event id), decided atomically (last writer wins); else nothing changes.
    #[pyo3(signature = (update, *, if_newer=false))]
    fn set_service_state(
        &self,
        py: Python<'_>,
        update: &Bound<'_, PyAny>,
        if_newer: bool,
    ) -> PyResult<bool> {
        Ok(self.transition_core(py, update, if_newer)?.changed)
    }

    /// Like `set_service_state`, returning the old and new state of the same atomic
    /// transition (and, with `if_newer`, whether the update was stored).
    #[pyo3(signature = (update, *, if_newer=false))]
    fn transition(
        &self,
        py: Python<'_>,
        update: &Bound<'_, PyAny>,
        if_newer: bool,
    ) -> PyResult<StateTransition> {
        Ok(StateTransition {
            t: self.transition_core(py, update, if_newer)?,
        })
    }

    /// Applies `update` like `transition` and, when store subscribers were notified
    /// (`updated`), publishes its `ServiceStateEvent` on `bus`, in the store's order for
    /// the label: until the publish returns no other thread applies a report to that label,
    /// so each event's `old_state` is the previous event's `new_state`. A closed bus raises
    /// `BusClosedError` before the store is touched. Returns the `StateTransition`.
    fn transition_and_publish(
        &self,
        py: Python<'_>,
        update: &Bound<'_, PyAny>,
        bus: &Bound<'_, PyAny>,
    ) -> PyResult<StateTransition> {
        let data = extract_update(update)?.data.clone();
        let closed = bus
            .getattr(intern!(py, "closed"))
            .map_err(|_| type_err("bus", "an EventBus", bus))?;
        if closed.is_truthy()? {
            return Err(BusClosedError::new_err(
                "the event bus is closed; the update was not applied",
            ));
        }
        let (t, p) = loop {
            if let Some(r) = self.core.apply_reporting(data.clone()) {
                break r;
            }
            let core = self.core.clone();
            let label = data.label.clone();
            py.detach(move || core.wait_report_turn(&label, SLICE));
            py.check_signals()?;
        };
        let _turn = ReportTurn {
            core: &self.core,
            label: &data.label,
        };
        self.notify(py, p)?;
        if t.updated {
            let ev = service_event_from_update(py, &data, t.old_state)?;
            bus.call_method1(intern!(py, "publish"), (ev,))?;
        }
        Ok(StateTransition { t })
    }

    /// The snapshot of `label`, or None.
    fn get_service_state(
        &self,
        py: Python<'_>,
        label: &Bound<'_, PyAny>,
    ) -> PyResult<Option<Py<ServiceStateSnapshot>>> {
        let label = extract_text("label", label, LABEL_MAX)?;
        self.core
            .get(&label)
            .map(|d| snapshot_obj(py, d))
            .transpose()
    }

    /// Every snapshot, keyed by label.
    fn get_all_service_states<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for s in self.core.all() {
            d.set_item(&*s.label.clone(), snapshot_obj(py, s)?)?;
        }
        Ok(d)
    }

    /// Snapshots of services of `service_type`, sorted by label.
    fn get_services_by_type(
        &self,
        py: Python<'_>,
        service_type: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<Py<ServiceStateSnapshot>>> {
        let t = extract_service_type("service_type", service_type)?;
        self.core
            .by_type(&t)
            .into_iter()
            .map(|d| snapshot_obj(py, d))
            .collect()
    }

    /// Snapshots of services in `state`, sorted by label.
    fn get_services_by_state(
        &self,
        py: Python<'_>,
        state: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<Py<ServiceStateSnapshot>>> {
        let s = extract_state("state", state)?;
        self.core
            .by_state(s)
            .into_iter()
            .map(|d| snapshot_obj(py, d))
            .collect()
    }

    /// Removes `label`; its subscribers get a change to `UNKNOWN` with `cleared=True`.
    /// Returns whether it existed.
    fn clear(&self, py: Python<'_>, label: &Bound<'_, PyAny>) -> PyResult<bool> {
        let label = extract_text("label", label, LABEL_MAX)?;
        let (existed, p) = self.core.clear(&label);
        self.notify(py, p)?;
        Ok(existed)
    }

    /// Removes every service (subscribers are notified of each). Returns how many.
    fn clear_all(&self, py: Python<'_>) -> PyResult<usize> {
        let (n, p) = self.core.clear_all();
        self.notify(py, p)?;
        Ok(n)
    }

    /// Subscribes to changes of `label` (None = every service). Returns a `Channel` of
    /// `StateChangeEvent`s with per-subscription sequence numbers. Default buffer: the
    /// store's `subscription_buffer`; default strategy: drop (as in the reference). With the
    /// block strategy, only writers that owe this watcher a change wait for room (at most
    /// the strategy's `timeout`: then the change is dropped for this watcher, counted in
    /// its stats and `subscription_drops`, a gap in its sequence numbers); other labels'
    /// writes and reads go on. A writer never waits on a full watcher that only it would drain: the
    /// watcher's consumer is the last thread that received from it (the subscribing thread
    /// until then), and that thread's writes into a full buffer take the strategy's
    /// `on_self_block` action ("drop" or "evict_oldest"; counted in `overflowed`) instead.
    /// Closing the channel, or dropping its last reference, unsubscribes it.
    #[pyo3(signature = (label=None, *, buffer_size=None, strategy=None))]
    fn subscribe(
        &self,
        label: Option<&Bound<'_, PyAny>>,
        buffer_size: Option<&Bound<'_, PyAny>>,
        strategy: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Channel> {
        let label = match label {
            Some(l) if !l.is_none() => Some(extract_text("label", l, LABEL_MAX)?),
            _ => None,
        };
        let cap = extract_capacity("buffer_size", buffer_size, self.core.default_buffer)?;
        let strategy = extract_strategy(strategy, BufferAction::Drop)?;
        if strategy.on_self_block == SelfBlock::Raise {
            // A write is never failed after it applied.
            return Err(value_err(
                "strategy",
                "on_self_block='raise' is not available for store subscriptions (a write that applied is never failed); use 'drop' or 'evict_oldest'",
            ));
        }
        let sub = self.core.subscribe(label, cap, strategy);
        let core = Arc::downgrade(&self.core);
        let id = sub.id;
        Ok(Channel::changes(
            sub.channel.clone(),
            Some(Box::new(move || {
                if let Some(c) = core.upgrade() {
                    c.unsubscribe(id);
                }
            })),
        ))
    }

    /// Number of services.
    fn __len__(&self) -> usize {
        self.core.len()
    }

    /// Metrics: total_services, state_changes, operations, subscription_events (delivered
    /// into subscriber buffers), subscription_drops (dropped or evicted there),
    /// active_subscriptions, services_by_type, services_by_state (only non-zero counts).
    fn get_metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = self.core.metrics();
        let d = PyDict::new(py);
        d.set_item("total_services", m.total_services)?;
        d.set_item("state_changes", m.state_changes)?;
        d.set_item("operations", m.operations)?;
        d.set_item("subscription_events", m.subscription_events)?;
        d.set_item("subscription_drops", m.subscription_drops)?;
        d.set_item("active_subscriptions", m.active_subscriptions)?;
        let bt = PyDict::new(py);
        for (t, n) in m.by_type {
            bt.set_item(service_type_obj(py, &t), n)?;
        }
        d.set_item("services_by_type", bt)?;
        let bs = PyDict::new(py);
        for (s, n) in m.by_state {
            bs.set_item(state_obj(py, s), n)?;
        }
        d.set_item("services_by_state", bs)?;
        d.set_item("memory_bytes", self.core.memory_bytes())?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!("StateStore(services={})", self.core.len())
    }
}
