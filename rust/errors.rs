//! tracebus's exception classes (the errors naming a parameter are in `args`).

use pyo3::create_exception;
use pyo3::exceptions::PyException;

create_exception!(
    tracebus,
    TracebusError,
    PyException,
    "Base class of tracebus's errors."
);
create_exception!(
    tracebus,
    BusClosedError,
    TracebusError,
    "The event bus (or channel) is closed: publish and subscribe are refused."
);
create_exception!(
    tracebus,
    ChannelClosed,
    TracebusError,
    "The channel is closed and holds no more items."
);
create_exception!(
    tracebus,
    PublishTimeoutError,
    TracebusError,
    "A block-strategy subscriber stayed full past the publish timeout; the event was counted as dropped for it."
);
create_exception!(
    tracebus,
    PublishDepthError,
    TracebusError,
    "Handlers published events nested deeper than the bus's max_depth."
);
