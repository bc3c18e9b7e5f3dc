//! Entry point of the Compute service.
//!
//! A plain `main` rather than `#[fastly::main]`: the handler sends the response itself and logs
//! afterwards, so the line can carry the bytes actually sent and logging adds no latency.

#[cfg(target_arch = "wasm32")]
fn main() {
    edge_app::app::handler(fastly::Request::from_client());
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("edge-app is a Fastly Compute service: build it with --target wasm32-wasip1");
    std::process::exit(2);
}
