//! edgelog's edge app: a Fastly Compute service that proxies to the `origin` backend and writes
//! one access-log line per request to named log endpoints.
//!
//! The modules other than `app` are pure logic with no Fastly dependency, so `cargo test` on the
//! host runs their tests; `app` is the Compute side and only builds for wasm32.

pub mod emit;
pub mod escape;
pub mod facts;
pub mod format;
pub mod privacy;
pub mod record;
pub mod settings;
pub mod timefmt;
pub mod vars;
pub mod vcl;

#[cfg(target_arch = "wasm32")]
pub mod app;
