//! The centralized state store.

pub mod store;
