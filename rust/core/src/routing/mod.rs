//! Which subscriber gets an event: filter trees, their routes and the dispatch index.

pub mod filter;
pub mod index;
pub mod route;
