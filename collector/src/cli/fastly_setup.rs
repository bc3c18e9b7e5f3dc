//! The Fastly side of a deployment as `fastly` CLI commands, derived from the collector's own
//! configuration: the HTTPS log endpoint exactly as this collector reads it, the `edgelog`
//! Config Store linked to the service, the `origin` backend, and the activation. Printed as a
//! shell script (a dry run) or run one after the other.

use collector::config::Config;
use std::path::{Path, PathBuf};

/// The environment variable the printed script reads the ingest token from (never printed).
pub const TOKEN_VARIABLE: &str = "EDGELOG_INGEST_TOKEN";
/// Fastly's log batch period the endpoint gets unless told (seconds).
pub const DEFAULT_PERIOD_SECONDS: u32 = 5;
/// The Config Store the edge app reads.
pub const CONFIG_STORE: &str = "edgelog";
/// The backend the edge app forwards to.
pub const BACKEND: &str = "origin";

/// What the configuration does not say.
#[derive(Debug, Clone)]
pub struct Options {
    /// The Fastly service that runs the edge app.
    pub service_id: String,
    /// The collector's public HTTPS URL; `ingest.path` is added when it has no path.
    pub url: String,
    /// The log endpoint's name (the edge app's `endpoints`).
    pub endpoint: String,
    /// `gzip`, `zstd`, `snappy`, or `none`.
    pub compression: String,
    pub period: u32,
    /// The edge app's line format (its `format` setting).
    pub format: String,
    /// The origin as `host` or `host:port` (HTTPS); absent: no backend is created.
    pub origin: Option<String>,
    /// PEM of the CA the collector's certificate chains to, when not a public one.
    pub tls_ca_cert: Option<PathBuf>,
    /// The client certificate and key Fastly presents (needed when `tls.client_ca` is set).
    pub tls_client_cert: Option<PathBuf>,
    pub tls_client_key: Option<PathBuf>,
    /// The name checked against the collector's certificate; default the URL's host.
    pub tls_hostname: Option<String>,
}

/// Why no commands could be made; each names the option or key to change.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("--url: {0}")]
    Url(String),
    #[error("--service-id {0}: fastly.service_ids does not list it (nor \"*\"), so the collector would refuse Fastly's challenge")]
    ServiceNotAllowed(String),
    #[error("--compression {0:?}: one of gzip, zstd, snappy, none")]
    Compression(String),
    #[error("--period {0}: must be 1 or more seconds")]
    Period(u32),
    #[error("tls.client_ca is set, so the collector asks for a client certificate: give --tls-client-cert and --tls-client-key (issued by that CA)")]
    ClientCertificateNeeded,
    #[error("--tls-client-cert and --tls-client-key go together")]
    ClientPair,
    #[error("{flag}: cannot read {path}: {source}")]
    Read {
        flag: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{flag} {path}: not a PEM file")]
    NotPem { flag: &'static str, path: PathBuf },
    #[error(
        "ingest.auth is not set: Fastly's requests would carry no token; set ingest.auth first"
    )]
    NoToken,
    #[error("{command}: {why}")]
    Run { command: String, why: String },
}

/// One argument of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// Printed and passed as it is.
    Plain(String),
    /// `--flag=<ingest token>`: read from [`TOKEN_VARIABLE`] in the script.
    Token(&'static str),
    /// `--flag=<the file's PEM text>`.
    File(&'static str, PathBuf),
    /// `--flag=<the id the config-store create step printed>`.
    StoreId(&'static str),
}

/// One `fastly` command.
#[derive(Debug, Clone)]
pub struct Step {
    /// What it makes, for the script's comments.
    pub what: String,
    pub args: Vec<Arg>,
    /// Its `--json` output holds the new Config Store's id.
    pub yields_store_id: bool,
}

impl Step {
    /// The subcommand words (`logging https create`).
    pub fn subcommand(&self) -> Vec<&str> {
        self.args
            .iter()
            .map_while(|a| match a {
                Arg::Plain(p) if !p.starts_with('-') => Some(p.as_str()),
                _ => None,
            })
            .collect()
    }
}

fn plain(s: impl Into<String>) -> Arg {
    Arg::Plain(s.into())
}

fn flag(name: &str, value: impl std::fmt::Display) -> Arg {
    Arg::Plain(format!("--{name}={value}"))
}

/// The URL Fastly posts to: https, with `ingest.path` when it has no path of its own.
fn endpoint_url(url: &str, path: &str) -> Result<String, SetupError> {
    let Some(rest) = url.strip_prefix("https://") else {
        return Err(SetupError::Url(format!(
            "{url:?}: Fastly sends logs only over https://"
        )));
    };
    let (host, own_path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if host.is_empty() || host.contains(['?', '#', ' ']) {
        return Err(SetupError::Url(format!("{url:?}: no host")));
    }
    Ok(match own_path {
        "" | "/" => format!("https://{host}{path}"),
        _ => url.to_string(),
    })
}

fn url_host(url: &str) -> &str {
    let rest = url.trim_start_matches("https://");
    let authority = rest.split('/').next().unwrap_or(rest);
    match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

fn pem(flag: &'static str, path: &Path) -> Result<Arg, SetupError> {
    let text = std::fs::read_to_string(path).map_err(|source| SetupError::Read {
        flag,
        path: path.to_path_buf(),
        source,
    })?;
    if !text.contains("-----BEGIN ") {
        return Err(SetupError::NotPem {
            flag,
            path: path.to_path_buf(),
        });
    }
    Ok(Arg::File(flag, path.to_path_buf()))
}

/// The commands, in the order they must run.
pub fn plan(cfg: &Config, o: &Options) -> Result<Vec<Step>, SetupError> {
    let url = endpoint_url(&o.url, &cfg.ingest.path)?;
    if !cfg
        .service_ids
        .iter()
        .any(|s| s == "*" || *s == o.service_id)
    {
        return Err(SetupError::ServiceNotAllowed(o.service_id.clone()));
    }
    let Some(auth) = &cfg.ingest.auth else {
        return Err(SetupError::NoToken);
    };
    if !["gzip", "zstd", "snappy", "none"].contains(&o.compression.as_str()) {
        return Err(SetupError::Compression(o.compression.clone()));
    }
    if o.period == 0 {
        return Err(SetupError::Period(o.period));
    }
    let service = || flag("service-id", &o.service_id);
    let version = || [flag("version", "latest"), plain("--autoclone")];

    let mut endpoint = vec![plain("logging"), plain("https"), plain("create"), service()];
    endpoint.extend(version());
    endpoint.extend([
        flag("name", &o.endpoint),
        flag("url", &url),
        flag("method", "POST"),
        flag("content-type", "application/x-ndjson"),
        flag("json-format", 2),
        flag("message-type", "blank"),
        flag("header-name", &auth.header),
        Arg::Token("--header-value"),
        flag("period", o.period),
        // Fastly's batches stay within what the collector takes in one body, before and after
        // decompression.
        flag("request-max-bytes", cfg.ingest.max_body_bytes),
    ]);
    if o.compression != "none" {
        endpoint.push(flag("compression-codec", &o.compression));
    }
    endpoint.push(flag(
        "tls-hostname",
        o.tls_hostname.as_deref().unwrap_or(url_host(&url)),
    ));
    if let Some(ca) = &o.tls_ca_cert {
        endpoint.push(pem("--tls-ca-cert", ca)?);
    }
    match (&o.tls_client_cert, &o.tls_client_key) {
        (Some(cert), Some(key)) => {
            endpoint.push(pem("--tls-client-cert", cert)?);
            endpoint.push(pem("--tls-client-key", key)?);
        }
        (None, None) => {
            if cfg.tls.as_ref().is_some_and(|t| t.client_ca.is_some()) {
                return Err(SetupError::ClientCertificateNeeded);
            }
        }
        _ => return Err(SetupError::ClientPair),
    }

    let mut steps = vec![
        Step {
            what: format!("the HTTPS log endpoint {:?}, posting to {url}", o.endpoint),
            args: endpoint,
            yields_store_id: false,
        },
        Step {
            what: format!("the {CONFIG_STORE} Config Store"),
            args: vec![
                plain("config-store"),
                plain("create"),
                flag("name", CONFIG_STORE),
                plain("--json"),
            ],
            yields_store_id: true,
        },
    ];
    for (key, value) in [("endpoints", &o.endpoint), ("format", &o.format)] {
        steps.push(Step {
            what: format!("its key {key}"),
            args: vec![
                plain("config-store-entry"),
                plain("create"),
                Arg::StoreId("--store-id"),
                flag("key", key),
                flag("value", value),
            ],
            yields_store_id: false,
        });
    }
    let mut link = vec![plain("resource-link"), plain("create"), service()];
    link.extend(version());
    link.push(Arg::StoreId("--resource-id"));
    steps.push(Step {
        what: format!("the link from the service to the {CONFIG_STORE} Config Store"),
        args: link,
        yields_store_id: false,
    });
    if let Some(origin) = &o.origin {
        let (host, port) = match origin.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => (h, p),
            _ => (origin.as_str(), "443"),
        };
        let mut backend = vec![plain("backend"), plain("create"), service()];
        backend.extend(version());
        backend.extend([
            flag("name", BACKEND),
            flag("address", host),
            flag("port", port),
            plain("--use-ssl"),
            plain("--ssl-check-cert"),
            flag("ssl-cert-hostname", host),
            flag("ssl-sni-hostname", host),
            flag("override-host", host),
        ]);
        steps.push(Step {
            what: format!("the backend {BACKEND:?} at {host}:{port}"),
            args: backend,
            yields_store_id: false,
        });
    }
    steps.push(Step {
        what: "the activation of the new version".into(),
        args: vec![
            plain("service-version"),
            plain("activate"),
            service(),
            flag("version", "latest"),
        ],
        yields_store_id: false,
    });
    Ok(steps)
}

/// Single-quotes `s` for a POSIX shell when it needs it.
fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_=./:,@+".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The steps as a bash script; the token comes from [`TOKEN_VARIABLE`], PEM files are read
/// when it runs.
pub fn script(steps: &[Step], service_id: &str) -> String {
    let mut out = format!(
        "#!/usr/bin/env bash\n\
         # Fastly setup for service {service_id}, as the collector's configuration expects it.\n\
         # Needs the Fastly CLI with an API token (FASTLY_API_TOKEN or `fastly profile create`),\n\
         # and {TOKEN_VARIABLE} set to the collector's ingest.auth.token.\n\
         set -euo pipefail\n\
         : \"${{{TOKEN_VARIABLE}:?set {TOKEN_VARIABLE} to ingest.auth.token of the collector configuration}}\"\n"
    );
    for step in steps {
        out.push_str(&format!("\n# {}\n", step.what));
        let words: Vec<String> = step
            .args
            .iter()
            .map(|a| match a {
                Arg::Plain(p) => quote(p),
                Arg::Token(f) => format!("{f}=\"${TOKEN_VARIABLE}\""),
                Arg::File(f, path) => {
                    format!("{f}=\"$(cat {})\"", quote(&path.display().to_string()))
                }
                Arg::StoreId(f) => format!("{f}=\"$store_id\""),
            })
            .collect();
        let command = format!("fastly {}", words.join(" \\\n  "));
        if step.yields_store_id {
            out.push_str(&format!(
                "store_id=$({command} | sed -n 's/.*\"id\": *\"\\([^\"]*\\)\".*/\\1/p' | head -n 1)\n\
                 [ -n \"$store_id\" ] || {{ echo \"no Config Store id in the answer\" >&2; exit 1; }}\n"
            ));
        } else {
            out.push_str(&command);
            out.push('\n');
        }
    }
    out
}

/// Runs the steps with the `fastly` program, the token given.
pub fn run(steps: &[Step], fastly: &Path, token: &str) -> Result<(), SetupError> {
    let mut store_id = String::new();
    for step in steps {
        let mut args = Vec::with_capacity(step.args.len());
        for a in &step.args {
            args.push(match a {
                Arg::Plain(p) => p.clone(),
                Arg::Token(f) => format!("{f}={token}"),
                Arg::File(f, path) => {
                    let text =
                        std::fs::read_to_string(path).map_err(|source| SetupError::Read {
                            flag: f,
                            path: path.clone(),
                            source,
                        })?;
                    // As the script's `$(cat FILE)` passes it: without the final newline.
                    format!("{f}={}", text.trim_end_matches('\n'))
                }
                Arg::StoreId(f) => format!("{f}={store_id}"),
            });
        }
        let name = format!("fastly {}", step.subcommand().join(" "));
        eprintln!("{name}: {}", step.what);
        let out = std::process::Command::new(fastly)
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| SetupError::Run {
                command: name.clone(),
                why: format!("cannot start {}: {e}", fastly.display()),
            })?;
        if !out.status.success() {
            return Err(SetupError::Run {
                command: name,
                why: format!("exited with {}", out.status),
            });
        }
        if step.yields_store_id {
            store_id = store_id_in(&out.stdout).ok_or_else(|| SetupError::Run {
                command: name.clone(),
                why: "no Config Store id in its --json answer".into(),
            })?;
        } else {
            use std::io::Write;
            let _ = std::io::stdout().write_all(&out.stdout);
        }
    }
    Ok(())
}

/// The `id` of a `--json` answer: an object, or an array's first object.
fn store_id_in(json: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(json).ok()?;
    let obj = if v.is_array() { v.get(0)? } else { &v };
    obj.get("id")?.as_str().map(str::to_string)
}

#[derive(clap::Args)]
pub(crate) struct FastlySetupArgs {
    /// The Fastly service that runs the edge app.
    #[arg(long)]
    service_id: String,
    /// The collector's public HTTPS URL (`ingest.path` is added when it has no path).
    #[arg(long)]
    url: String,
    /// The origin the edge app forwards to, `host` or `host:port` (HTTPS); absent: no backend.
    #[arg(long)]
    origin: Option<String>,
    /// The log endpoint's name, as the edge app's `endpoints` setting names it.
    #[arg(long, default_value = "collector")]
    endpoint: String,
    /// How Fastly compresses batches: gzip, zstd, snappy or none.
    #[arg(long, default_value = "gzip")]
    compression: String,
    /// Seconds between Fastly's batches.
    #[arg(long, default_value_t = DEFAULT_PERIOD_SECONDS)]
    period: u32,
    /// The edge app's line format (its `format` setting).
    #[arg(long, default_value = "json")]
    format: String,
    /// PEM of the CA the collector's certificate chains to, when it is not a public CA.
    #[arg(long)]
    tls_ca_cert: Option<PathBuf>,
    /// Client certificate (PEM) Fastly presents; needed when `tls.client_ca` is set.
    #[arg(long)]
    tls_client_cert: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long)]
    tls_client_key: Option<PathBuf>,
    /// The name checked against the collector's certificate; default the URL's host.
    #[arg(long)]
    tls_hostname: Option<String>,
    /// Run the commands instead of printing them.
    #[arg(long)]
    run: bool,
    /// The Fastly CLI to run.
    #[arg(long, default_value = "fastly")]
    fastly: PathBuf,
}

/// `collector fastly-setup`: prints the commands, or runs them with `--run`.
pub(crate) fn command(path: Option<PathBuf>, a: FastlySetupArgs) -> anyhow::Result<()> {
    let config = super::process::load(path)?;
    let steps = plan(
        &config,
        &Options {
            service_id: a.service_id.clone(),
            url: a.url,
            endpoint: a.endpoint,
            compression: a.compression,
            period: a.period,
            format: a.format,
            origin: a.origin,
            tls_ca_cert: a.tls_ca_cert,
            tls_client_cert: a.tls_client_cert,
            tls_client_key: a.tls_client_key,
            tls_hostname: a.tls_hostname,
        },
    )?;
    if a.run {
        let token = config
            .ingest
            .auth
            .as_ref()
            .map(|t| t.token.expose().to_string())
            .unwrap_or_default();
        run(&steps, &a.fastly, &token)?;
    } else {
        print!("{}", script(&steps, &a.service_id));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
