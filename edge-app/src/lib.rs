//! Structured access logs for Fastly Compute apps.
//!
//! Add one line per request to your own Compute app: start a [`Record`] from the client
//! request, add fields of your own, and finish it with the response. The line (JSON by default,
//! or an Apache / VCL log format string) goes to one or more named log endpoints, after the
//! response has been sent, so logging adds no latency.
//!
//! ```no_run
//! use edgelog::Logger;
//! use fastly::http::StatusCode;
//! use fastly::{Error, Request, Response};
//!
//! fn main() -> Result<(), Error> {
//!     let logger = Logger::builder().endpoint("collector").build()?;
//!     let req = Request::from_client();
//!     let mut record = logger.start(&req);
//!     record.field("release", "2026.11");
//!     let resp = match req.send("origin") {
//!         Ok(resp) => resp,
//!         Err(e) => {
//!             record.error(&e);
//!             Response::from_status(StatusCode::BAD_GATEWAY)
//!         }
//!     };
//!     record.send_to_client(resp);
//!     Ok(())
//! }
//! ```
//!
//! With `#[fastly::main]`, which sends the response the handler returns, write the line with
//! [`Record::finish`] just before returning:
//!
//! ```no_run
//! use fastly::{Error, Request, Response};
//!
//! #[fastly::main]
//! fn main(req: Request) -> Result<Response, Error> {
//!     let logger = edgelog::Logger::from_config_store("logging");
//!     let record = logger.start(&req);
//!     let resp = req.send("origin")?;
//!     record.finish(&resp);
//!     Ok(resp)
//! }
//! ```
//!
//! Settings come from code ([`Logger::builder`]) or from a Config Store you name
//! ([`Logger::from_config_store`]). edgelog does not set the global `log` logger or a panic
//! hook unless you ask ([`init_log`], [`Logger::install_panic_hook`]), so it works beside an
//! app that set up `log-fastly` itself.
//!
//! Everything but the Compute calls is plain Rust and is tested on the host; the Compute side
//! is tested inside Viceroy.

#![deny(missing_docs)]

mod builder;
mod emit;
mod escape;
mod facts;
mod format;
mod headers;
mod json_line;
mod logger;
mod percent;
mod privacy;
mod record;
mod request;
mod settings;
mod timefmt;
mod vars;
mod vcl;

pub use builder::Builder;
pub use logger::{init_log, Error, Logger};
pub use request::{needs_streaming, Record};

/// What the format-string fuzz target calls; not part of the API.
#[doc(hidden)]
pub mod __fuzz {
    pub use crate::format::check_invariants;
}
