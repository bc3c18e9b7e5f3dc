//! The edgelog proxy app: forwards every request to the backend `origin` and logs it with the
//! edgelog library, settings from the Config Store `edgelog`.
//!
//! A plain `main` rather than `#[fastly::main]`: the response is sent to the client first and
//! the line written afterwards, so it carries the bytes actually sent and logging adds no latency.

#[cfg(target_arch = "wasm32")]
fn main() {
    proxy::main();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("edge-app is a Fastly Compute service: build it with --target wasm32-wasip1");
    std::process::exit(2);
}

#[cfg(target_arch = "wasm32")]
mod proxy {
    use edgelog::{needs_streaming, Logger, Record};
    use fastly::http::{header, Method, StatusCode};
    use fastly::{Request, Response};

    /// The Config Store the settings are read from.
    const STORE: &str = "edgelog";
    /// The backend every request is forwarded to.
    const BACKEND: &str = "origin";
    /// Answered by the edge itself, for load balancers and smoke tests.
    const HEALTH_PATH: &str = "/__edgelog/health";

    pub fn main() {
        let logger = Logger::from_config_store(STORE);
        logger.install_panic_hook();
        let req = Request::from_client();
        let mut record = logger.start(&req);
        let resp = serve(req, &mut record);
        record.send_to_client(resp);
    }

    fn serve(mut req: Request, record: &mut Record) -> Response {
        if req.get_method() == Method::GET && req.get_path() == HEALTH_PATH {
            return text(StatusCode::OK, "ok\n");
        }
        #[cfg(feature = "test-routes")]
        if req.get_path() == "/__edgelog/test/panic" {
            panic!("edgelog test panic");
        }
        let result = if needs_streaming(&req) {
            send_streaming(&mut req, record)
        } else {
            req.send(BACKEND).map_err(|e| e.root_cause().to_string())
        };
        result.unwrap_or_else(|error| {
            record.error(error);
            text(StatusCode::BAD_GATEWAY, "origin unavailable\n")
        })
    }

    /// Sends a request body without a Content-Length to the origin while counting it.
    fn send_streaming(req: &mut Request, record: &mut Record) -> Result<Response, String> {
        let mut body = req.take_body();
        let outgoing = req.clone_without_body();
        let (mut stream, pending) = outgoing
            .send_async_streaming(BACKEND)
            .map_err(|e| e.root_cause().to_string())?;
        let copied = std::io::copy(&mut body, &mut stream).map_err(|e| e.to_string())?;
        record.request_body_bytes(copied);
        stream.finish().map_err(|e| e.to_string())?;
        pending.wait().map_err(|e| e.root_cause().to_string())
    }

    fn text(status: StatusCode, body: &str) -> Response {
        Response::from_status(status)
            .with_header(header::CONTENT_TYPE, "text/plain")
            .with_body(body)
    }
}
