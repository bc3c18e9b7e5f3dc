//! A real browser for page tests: headless Chromium driven over the Chrome DevTools Protocol.
//!
//! [`Browser::launch`] starts `chromium --headless` on a free debugging port (read from its
//! start-up line) with a throw-away profile, and attaches to its first page. Every console
//! message of level error, uncaught exception and browser log entry of level error is kept, so a
//! test can say the page ran without one.

use crate::procs::{command, KillOnDrop, Lines};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

type Replies = Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>;

/// Headless Chromium with one page attached.
pub struct Browser {
    _child: KillOnDrop,
    _profile: tempfile::TempDir,
    send: mpsc::UnboundedSender<String>,
    replies: Replies,
    next_id: AtomicU64,
    errors: Arc<Mutex<Vec<String>>>,
}

/// The Chromium binary: Debian's `chromium` (scripts/setup installs it), on PATH.
pub fn chromium() -> std::path::PathBuf {
    for name in ["chromium", "chromium-browser"] {
        if let Some(p) = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        }) {
            return p;
        }
    }
    panic!("chromium is not installed: run scripts/setup (it installs Debian's chromium)")
}

impl Browser {
    /// Starts Chromium and attaches to its page.
    pub async fn launch() -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let mut child = command(chromium())
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromium");
        let stderr = Lines::collect(child.stderr.take().expect("stderr"));
        let lines = stderr
            .wait_for(
                "chromium's DevTools address",
                Duration::from_secs(60),
                |l| l.iter().any(|l| l.contains("DevTools listening on ws://")),
            )
            .await;
        let browser_ws = lines
            .iter()
            .find_map(|l| l.split("DevTools listening on ").nth(1))
            .expect("ws url")
            .trim()
            .to_string();
        let http = browser_ws
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .expect("host:port")
            .to_string();
        let page_ws = {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                let targets: Vec<Value> =
                    match reqwest::get(format!("http://{http}/json/list")).await {
                        Ok(r) => serde_json::from_slice(&r.bytes().await.unwrap_or_default())
                            .unwrap_or_default(),
                        Err(_) => Vec::new(),
                    };
                if let Some(ws) = targets
                    .iter()
                    .find(|t| t["type"] == "page")
                    .and_then(|t| t["webSocketDebuggerUrl"].as_str())
                {
                    break ws.to_string();
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "chromium shows no page: {targets:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        let (ws, _) = tokio_tungstenite::connect_async(page_ws.as_str())
            .await
            .expect("attach to the page");
        let (mut sink, mut stream) = ws.split();
        let (send, mut outgoing) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(text) = outgoing.recv().await {
                if sink.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
        });
        let replies: Replies = Arc::default();
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        {
            let replies = replies.clone();
            let errors = errors.clone();
            tokio::spawn(async move {
                while let Some(Ok(msg)) = stream.next().await {
                    let Ok(text) = msg.to_text() else { continue };
                    let Ok(v) = serde_json::from_str::<Value>(text) else {
                        continue;
                    };
                    if let Some(id) = v["id"].as_u64() {
                        if let Some(tx) = replies.lock().expect("replies").remove(&id) {
                            let _ = tx.send(v);
                        }
                        continue;
                    }
                    if let Some(e) = page_error(&v) {
                        errors.lock().expect("errors").push(e);
                    }
                }
            });
        }
        let b = Browser {
            _child: KillOnDrop(child),
            _profile: profile,
            send,
            replies,
            next_id: AtomicU64::new(1),
            errors,
        };
        for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
            b.call(domain, json!({})).await;
        }
        b
    }

    /// Sends a DevTools command and returns its result; panics on a protocol error.
    pub async fn call(&self, method: &str, params: Value) -> Value {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.replies.lock().expect("replies").insert(id, tx);
        self.send
            .send(json!({"id": id, "method": method, "params": params}).to_string())
            .expect("chromium connection");
        let reply = tokio::time::timeout(Duration::from_secs(30), rx)
            .await
            .unwrap_or_else(|_| panic!("{method}: no answer from chromium"))
            .expect("reply");
        if let Some(e) = reply.get("error") {
            panic!("{method}: {e}");
        }
        reply["result"].clone()
    }

    /// Opens `url` and waits for its load event.
    pub async fn open(&self, url: &str) {
        let r = self.call("Page.navigate", json!({"url": url})).await;
        assert!(r.get("errorText").is_none(), "opening {url}: {r}");
        self.wait_for(
            &format!("{url} loaded"),
            "document.readyState === 'complete'",
        )
        .await;
    }

    /// Evaluates a JavaScript expression in the page (awaiting a promise) and returns its value.
    pub async fn eval(&self, expression: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expression}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Waits until `condition` (a JavaScript expression) is true, or panics after 60 s.
    pub async fn wait_for(&self, what: &str, condition: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if self.eval(&format!("!!({condition})")).await == Value::Bool(true) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not within 60 s (page errors: {:?})",
                self.errors()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The page's size in CSS pixels, as a phone or a desktop would show it.
    pub async fn viewport(&self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        )
        .await;
    }

    /// A PNG of the page as shown.
    pub async fn screenshot(&self) -> Vec<u8> {
        let r = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        base64_simd::STANDARD
            .decode_to_vec(r["data"].as_str().unwrap_or_default())
            .expect("png")
    }

    /// Console errors, uncaught exceptions and error log entries so far.
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().expect("errors").clone()
    }
}

/// An event that reports an error in the page, as text.
fn page_error(v: &Value) -> Option<String> {
    match v["method"].as_str()? {
        "Runtime.consoleAPICalled" if v["params"]["type"] == "error" => {
            Some(format!("console.error: {}", v["params"]["args"]))
        }
        "Runtime.exceptionThrown" => {
            Some(format!("exception: {}", v["params"]["exceptionDetails"]))
        }
        "Log.entryAdded" if v["params"]["entry"]["level"] == "error" => Some(format!(
            "log: {} ({})",
            v["params"]["entry"]["text"], v["params"]["entry"]["url"]
        )),
        _ => None,
    }
}
