//! The `collector` command: serve, check a configuration, print challenge answers, tail, status.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use collector::config::{Config, LogFormat, DEFAULT_TAIL_HEADER};
use collector::redact::{RedactingStderr, Redactor};
use std::path::PathBuf;
use std::sync::Arc;

/// Receives Fastly HTTPS log streaming batches and forwards every line to Amazon Kinesis.
#[derive(Parser)]
#[command(name = "collector", version)]
struct Cli {
    /// Configuration file; with no command, `serve` it.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the collector.
    Serve,
    /// Validate the configuration and print it as it takes effect, secrets hidden.
    CheckConfig,
    /// Print the lines the challenge endpoint answers for these service ids.
    Challenge {
        /// Fastly service ids, or `*`.
        #[arg(required = true)]
        service_ids: Vec<String>,
    },
    /// Print the lines passing through a running collector, live (like `fastly log-tail`).
    Tail {
        /// Collector base URL; default: from --config (`listen`, `tls`).
        #[arg(long)]
        url: Option<String>,
        /// Tail token; default: from --config (`tail.token`) or $EDGELOG_TAIL_TOKEN.
        #[arg(long, env = "EDGELOG_TAIL_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Only lines containing this text, or JSON lines whose field has this value
        /// (`status=503`, `geo.country_code=US`).
        #[arg(long, default_value = "")]
        filter: String,
        /// CA certificate (PEM) to trust for an HTTPS collector.
        #[arg(long)]
        ca: Option<PathBuf>,
    },
    /// Work with the dead-letter files.
    DeadLetter {
        #[command(subcommand)]
        action: DeadLetterAction,
    },
    /// Print where every line is, per output: received, delivered, dead-lettered, buffered, lag,
    /// rate now (from the collector's `/status`).
    Status {
        /// Collector base URL; default: from --config (the admin listener, else `listen` with
        /// the tail token).
        #[arg(long)]
        url: Option<String>,
        /// Tail token, for a collector reached on `listen`; default: from --config or
        /// $EDGELOG_TAIL_TOKEN.
        #[arg(long, env = "EDGELOG_TAIL_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Print the JSON answer as it is.
        #[arg(long)]
        json: bool,
        /// CA certificate (PEM) to trust for an HTTPS collector.
        #[arg(long)]
        ca: Option<PathBuf>,
    },
    /// Print (or, with --run, run) the `fastly` CLI commands that point a Fastly service at this
    /// collector: the HTTPS log endpoint as the configuration expects it, the `edgelog` Config
    /// Store, the `origin` backend, and the activation.
    FastlySetup(Box<FastlySetupArgs>),
}

#[derive(clap::Args)]
struct FastlySetupArgs {
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
    #[arg(long, default_value_t = collector::fastly_setup::DEFAULT_PERIOD_SECONDS)]
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

#[derive(Subcommand)]
enum DeadLetterAction {
    /// Send the dead-lettered lines again, through the output (once: a journal beside the files
    /// remembers what was replayed).
    Replay {
        /// The output to send them through.
        #[arg(long, default_value = "aws_kinesis")]
        output: String,
        /// Also lines set aside for a reason a replay cannot change (line_too_long,
        /// record_too_large).
        #[arg(long)]
        all: bool,
    },
}

/// Keeps the memory of large buffers (request bodies, PutRecords calls) returnable to the
/// system: glibc otherwise raises its mmap threshold as such buffers are freed and then keeps
/// them in per-thread arenas, which is where peak RSS came from under load (scripts/bench).
/// (glibc only: the static musl build has its own allocator.)
#[cfg(target_env = "gnu")]
fn tune_allocator() {
    // SAFETY: mallopt only changes allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(target_env = "gnu"))]
fn tune_allocator() {}

fn main() -> std::process::ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config),
        Command::CheckConfig => check_config(cli.config),
        Command::Challenge { service_ids } => {
            for line in collector::ingest::challenge::lines(&service_ids) {
                println!("{line}");
            }
            Ok(())
        }
        Command::Tail {
            url,
            token,
            filter,
            ca,
        } => tail(cli.config, url, token, filter, ca),
        Command::FastlySetup(args) => fastly_setup(cli.config, *args),
        Command::DeadLetter {
            action: DeadLetterAction::Replay { output, all },
        } => replay(cli.config, &output, all),
        Command::Status {
            url,
            token,
            json,
            ca,
        } => status(cli.config, url, token, json, ca),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let message = format!("collector: {e:#}");
            eprintln!("{}", Redactor::with_env([]).scrub(&message));
            std::process::ExitCode::from(1)
        }
    }
}

fn load(path: Option<PathBuf>) -> anyhow::Result<Config> {
    let Some(path) = path else {
        bail!("--config FILE is required");
    };
    Ok(Config::load(&path)?)
}

fn check_config(path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = load(path)?;
    print!("{}", config.to_yaml());
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    Ok(())
}

fn fastly_setup(path: Option<PathBuf>, a: FastlySetupArgs) -> anyhow::Result<()> {
    use collector::fastly_setup::{plan, run, script, Options};
    let config = load(path)?;
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

fn replay(path: Option<PathBuf>, output: &str, all: bool) -> anyhow::Result<()> {
    let config = load(path)?;
    init_logging(config.log_format, config.secret_values());
    let runtime = multi_thread_runtime()?;
    let r = runtime.block_on(collector::replay::replay(&config, output, all))?;
    println!(
        "replayed {} lines from {} files: {} delivered, {} dead-lettered again",
        r.lines, r.files, r.delivered, r.dead_lettered_again
    );
    for (reason, n) in &r.skipped {
        println!("skipped {n} lines dead-lettered for {reason} (give --all to send them too)");
    }
    if r.unreadable > 0 {
        println!("{} records could not be read and were left", r.unreadable);
    }
    Ok(())
}

fn init_logging(format: LogFormat, secrets: Vec<String>) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("EDGELOG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStderr(Arc::new(Redactor::with_env(secrets))));
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn serve(path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = load(path)?;
    init_logging(config.log_format, config.secret_values());
    let runtime = multi_thread_runtime()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("listen: cannot bind {}", config.listen))?;
        collector::run(config, listener, shutdown_signal()).await?;
        Ok(())
    })
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

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

    /// Sends `GET <path>`; an answer other than 2xx is an error carrying its text.
    async fn get(&self, path: &str, query: &[(&str, &str)]) -> anyhow::Result<reqwest::Response> {
        let mut client = reqwest::Client::builder();
        if let Some(ca) = &self.ca {
            let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
            client = client.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
        }
        let mut req = client
            .build()?
            .get(format!("{}{path}", self.base))
            .query(query);
        if let Some((h, t)) = &self.token {
            req = req.header(h.as_str(), t.as_str());
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("connecting to {}", self.base))?;
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

fn multi_thread_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn status(
    path: Option<PathBuf>,
    url: Option<String>,
    token: Option<String>,
    json: bool,
    ca: Option<PathBuf>,
) -> anyhow::Result<()> {
    let target = AdminTarget::new(path, url, token, ca)?;
    runtime()?.block_on(async move {
        let text = target
            .get(collector::admin::STATUS_PATH, &[])
            .await?
            .text()
            .await?;
        if json {
            println!("{text}");
        } else {
            let v: serde_json::Value =
                serde_json::from_str(&text).context("the status is not JSON")?;
            print!("{}", collector::status_table::render(&v));
        }
        Ok(())
    })
}

fn tail(
    path: Option<PathBuf>,
    url: Option<String>,
    token: Option<String>,
    filter: String,
    ca: Option<PathBuf>,
) -> anyhow::Result<()> {
    let target = AdminTarget::new(path, url, token, ca)?;
    runtime()?.block_on(async move {
        use futures::StreamExt;
        use std::io::Write;
        let resp = target
            .get(collector::tail::PATH, &[("filter", filter.as_str())])
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
