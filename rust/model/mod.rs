//! The Python classes of the data model: service updates and snapshots (`update`), the
//! `Event` base class and the built-in event kinds (`event`).

pub mod event;
pub mod update;
