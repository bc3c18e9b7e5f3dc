//! An app that set up `log-fastly` itself, for its own messages: edgelog writes its lines beside
//! it without touching the global logger, and installs no panic hook unless asked.
//!
//! Build: `cargo build -p edgelog --example beside_log_fastly --target wasm32-wasip1`.

#[cfg(target_arch = "wasm32")]
fn main() -> Result<(), fastly::Error> {
    use fastly::http::StatusCode;
    use fastly::{Request, Response};

    let logger = edgelog::Logger::builder()
        .endpoint("collector")
        .format("%m %U %>s %{step}n")
        .build()?;
    // Would fail if edgelog had taken the global logger.
    log_fastly::init_simple("app_log", log::LevelFilter::Info);
    log::info!("app logger ready");

    let req = Request::from_client();
    let mut record = logger.start(&req);
    record.field("step", "checkout");
    if req.get_path() == "/panic" {
        panic!("example panic");
    }
    let resp = match req.send("origin") {
        Ok(resp) => resp,
        Err(e) => {
            log::warn!("origin failed: {e}");
            record.error(&e);
            Response::from_status(StatusCode::BAD_GATEWAY)
        }
    };
    record.send_to_client(resp);
    log::info!("done");
    Ok(())
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("a Fastly Compute app: build it with --target wasm32-wasip1");
}
