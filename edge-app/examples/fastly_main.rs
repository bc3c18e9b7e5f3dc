//! An app written with `#[fastly::main]`, which sends the response its handler returns: the
//! line is written with `Record::finish` just before returning. Settings come from the Config
//! Store `logging`; the app opts in to edgelog's global helpers (its own `log::` messages go to
//! the endpoint `app_log`, and panics are logged).
//!
//! Build: `cargo build -p edgelog --example fastly_main --target wasm32-wasip1`.

#[cfg(target_arch = "wasm32")]
#[fastly::main]
fn main(req: fastly::Request) -> Result<fastly::Response, fastly::Error> {
    use fastly::Response;

    let logger = edgelog::Logger::from_config_store("logging");
    edgelog::init_log("app_log", log::LevelFilter::Info)?;
    logger.install_panic_hook();

    let mut record = logger.start(&req);
    let tier = req.get_header("x-tier").and_then(|v| v.to_str().ok());
    record.field("tier", tier.unwrap_or("free"));
    log::info!("handling {}", req.get_path());

    match req.get_path() {
        "/teapot" => {
            let resp = Response::from_status(418).with_body_text_plain("short and stout\n");
            record.finish(&resp);
            Ok(resp)
        }
        "/panic" => panic!("example panic"),
        _ => {
            // On failure `?` returns early: the record is dropped unfinished and still writes
            // its line, as a failed request.
            let resp = req.send("origin")?;
            record.field("cart", serde_json::json!({"items": 2, "total": 9.5}));
            record.finish(&resp);
            Ok(resp)
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("a Fastly Compute app: build it with --target wasm32-wasip1");
}
