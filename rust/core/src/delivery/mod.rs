//! How events travel: the bounded subscription channel and the batcher.

pub mod batch;
pub mod channel;
