//! Which subscriber gets an event: filter trees and the dispatch index.

pub mod filter;
pub mod index;
