//! What an event or update is: kinds (states, severities, event types), ids, the routing
//! header and the service-update data.

pub mod header;
pub mod ids;
pub mod kinds;
pub mod update;
