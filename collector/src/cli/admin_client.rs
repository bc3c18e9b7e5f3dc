//! The commands that talk to a running collector's admin routes: `collector status`,
//! `collector tail` and `collector drain`.

use super::status_table;
use anyhow::{bail, Context};
use collector::config::{Config, DEFAULT_TAIL_HEADER};
use std::path::PathBuf;

/// Where the admin routes of a collector are, and the token header to present there (none on
/// the admin listener).
struct AdminTarget {
    base: String,
    token: Option<(String, String)>,
    ca: Option<PathBuf>,
}

impl AdminTarget {
    fn new(
        path: Option<PathBuf>,
        url: Option<String>,
        token: Option<String>,
        ca: Option<PathBuf>,
    ) -> anyhow::Result<AdminTarget> {
        let config = match &path {
            Some(p) => Some(Config::load(p)?),
            None => None,
        };
        let local = |addr: &str| {
            addr.replace("0.0.0.0", "127.0.0.1")
                .replace("[::]", "[::1]")
        };
        let tail = config.as_ref().and_then(|c| c.tail.as_ref());
        let header = tail.map_or(DEFAULT_TAIL_HEADER.to_string(), |t| t.header.clone());
        let configured = tail.map(|t| t.token.expose().to_string());
        let (base, token) = match (url, &config) {
            (Some(u), _) => (u, token.or(configured)),
            (None, Some(c)) => match &c.admin_listen {
                Some(admin) if admin.ends_with(":0") => bail!(
                    "admin.listen {admin} takes a free port at each start: give --url with the port the collector logged"
                ),
                Some(admin) => (format!("http://{}", local(admin)), None),
                None => {
                    let scheme = if c.tls.is_some() { "https" } else { "http" };
                    let token = token.or(configured).context(
                        "admin.listen is off: give --token, set $EDGELOG_TAIL_TOKEN, or set tail.token",
                    )?;
                    (format!("{scheme}://{}", local(&c.listen)), Some(token))
                }
            },
            (None, None) => bail!("give --url or --config"),
        };
        Ok(AdminTarget {
            base: base.trim_end_matches('/').to_string(),
            token: token.map(|t| (header, t)),
            ca,
        })
    }

    fn client(&self) -> anyhow::Result<reqwest::Client> {
        let mut client = reqwest::Client::builder();
        if let Some(ca) = &self.ca {
            let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
            client = client.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
        }
        Ok(client.build()?)
    }

    /// Sends `GET <path>`; an answer other than 2xx is an error carrying its text.
    async fn get(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<reqwest::Response> {
        let req = self
            .client()?
            .get(format!("{}{path}", self.base))
            .query(query);
        self.send(req).await
    }

    /// Sends `POST <path>`; an answer other than 2xx is an error carrying its text.
    async fn post(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let req = self.client()?.post(format!("{}{path}", self.base));
        self.send(req).await
    }

    async fn send(&self, mut req: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        if let Some((h, t)) = &self.token {
            req = req.header(h.as_str(), t.as_str());
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_connect() {
                anyhow::anyhow!(
                    "cannot reach the collector at {}: is it running? ({e})",
                    self.base
                )
            } else {
                anyhow::Error::new(e).context(format!("connecting to {}", self.base))
            }
        })?;
        if !resp.status().is_success() {
            bail!(
                "{}: {}",
                resp.status(),
                resp.text().await.unwrap_or_default().trim()
            );
        }
        Ok(resp)
    }
}

pub(crate) fn status(
    path: Option<PathBuf>,
    url: Option<String>,
    token: Option<String>,
    json: bool,
    ca: Option<PathBuf>,
) -> anyhow::Result<()> {
    let target = AdminTarget::new(path, url, token, ca)?;
    super::process::runtime()?.block_on(async move {
        let text = target
            .get(collector::api::STATUS_PATH, &[])
            .await?
            .text()
            .await?;
        if json {
            println!("{text}");
        } else {
            let status: collector::api::Status =
                serde_json::from_str(&text).context("the status is not JSON")?;
            print!("{}", status_table::render(&status));
        }
        Ok(())
    })
}

pub(crate) fn tail(
    path: Option<PathBuf>,
    url: Option<String>,
    token: Option<String>,
    filter: String,
    ca: Option<PathBuf>,
) -> anyhow::Result<()> {
    let target = AdminTarget::new(path, url, token, ca)?;
    super::process::runtime()?.block_on(async move {
        use futures::StreamExt;
        use std::io::Write;
        let resp = target
            .get(collector::api::TAIL_PATH, &[("filter", filter.as_str())])
            .await?;
        let mut body = resp.bytes_stream();
        let stdout = std::io::stdout();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.context("the collector closed the stream")?;
            let mut out = stdout.lock();
            if out.write_all(&chunk).and_then(|_| out.flush()).is_err() {
                break; // stdout closed (e.g. piped into head)
            }
        }
        Ok(())
    })
}

/// How often `collector drain` looks whether the drained collector has exited.
const EXIT_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// `collector drain`: asks for the drain, prints its progress as the collector streams it, then
/// waits for the collector to exit.
pub(crate) fn drain(
    path: Option<PathBuf>,
    url: Option<String>,
    token: Option<String>,
    ca: Option<PathBuf>,
    timeout: Option<std::time::Duration>,
) -> anyhow::Result<()> {
    let target = AdminTarget::new(path, url, token, ca)?;
    super::process::runtime()?.block_on(async move {
        let work = async {
            use futures::StreamExt;
            use std::io::Write;
            let resp = target.post(collector::api::DRAIN_PATH).await?;
            let mut body = resp.bytes_stream();
            let mut text = Vec::new();
            while let Some(chunk) = body.next().await {
                let Ok(chunk) = chunk else { break };
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&chunk).and_then(|_| out.flush());
                text.extend_from_slice(&chunk);
            }
            let text = String::from_utf8_lossy(&text);
            let last = text.lines().last().unwrap_or_default().to_string();
            if !last.starts_with("drained:") {
                bail!("the collector stopped before it was drained (its last word: {last:?})");
            }
            // Drained: it exits by itself once its listeners close.
            while target.get("/healthz", &[]).await.is_ok() {
                tokio::time::sleep(EXIT_POLL).await;
            }
            println!("the collector has exited, drained");
            Ok(())
        };
        match timeout {
            None => work.await,
            Some(t) => match tokio::time::timeout(t, work).await {
                Ok(done) => done,
                Err(_) => bail!(
                    "not drained after {}; the collector goes on draining (collector status shows what is left)",
                    humantime::format_duration(t)
                ),
            },
        }
    })
}
