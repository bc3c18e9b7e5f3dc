//! The two questions an operator asks of a collector, answered separately:
//!
//! - readiness (`/readyz`, [`Health`]): does it take batches now? A load balancer asks this. It
//!   is no only when a batch would be refused: starting, draining, shutting down, the buffer full
//!   (with `when_full: reject`), its disk full, or its ack position not saved. An output that is
//!   down never makes it no: that is when the buffer should be taking the traffic.
//! - delivery (`/delivery`, [`Delivery`]): are the lines getting out? Alerts ask this. It is no
//!   when an output is unreachable, refused or lacks a permission, its stream or bucket is
//!   missing, it has been throttled for long, or its oldest buffered line is older than
//!   `delivery_alert_after`.
//!
//! Invariant: a reason is a sentence for an operator; it never holds a secret (errors from AWS
//! name codes and actions, never keys).

mod delivery;
mod readiness;

pub use delivery::Delivery;
pub use readiness::Health;
