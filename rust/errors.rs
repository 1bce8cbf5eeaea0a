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
    PublishDeadlockError,
    TracebusError,
    "A block-strategy send found its buffer full and could not wait without deadlocking (the sender is the buffer's consumer, or the consumer waits on the sender), and the strategy's on_self_block is 'raise'; the item was counted as dropped."
);
create_exception!(
    tracebus,
    PublishDepthError,
    TracebusError,
    "Handlers published events nested deeper than the bus's max_depth."
);
