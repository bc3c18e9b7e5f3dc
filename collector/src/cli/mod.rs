//! The `collector` command line: its commands and flags, and what each one runs. The commands that
//! talk to a running collector are in `admin_client`, the Fastly side of a deployment in
//! `fastly_setup`, the status table in `status_table`.

mod admin_client;
mod fastly_setup;
mod process;
mod service;
mod status_table;

use anyhow::Context;
use clap::{Parser, Subcommand};
use process::{load, multi_thread_runtime};
use std::path::PathBuf;

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
    /// Validate the configuration and print it as it takes effect, secrets hidden; read the TLS
    /// files as a start would.
    CheckConfig {
        /// Also check each AWS output's access, without sending a line: the Kinesis stream
        /// answers ListShards, the archive's bucket takes a multipart upload (opened and
        /// aborted).
        #[arg(long)]
        probe: bool,
    },
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
    /// Drain a running collector: it stops taking batches (its readiness and ingest answer 503
    /// `draining`), delivers everything buffered to every output, and exits by itself. Prints
    /// the lines left per output every few seconds; exits 0 once the collector has exited drained.
    Drain {
        /// Collector base URL; default: from --config (the admin listener, else `listen` with
        /// the tail token).
        #[arg(long)]
        url: Option<String>,
        /// Tail token, for a collector reached on `listen`; default: from --config or
        /// $EDGELOG_TAIL_TOKEN.
        #[arg(long, env = "EDGELOG_TAIL_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// CA certificate (PEM) to trust for an HTTPS collector.
        #[arg(long)]
        ca: Option<PathBuf>,
        /// Give up waiting after this long (`90s`, `10m`) and exit non-zero; the collector goes on
        /// draining. Default: wait until it is done.
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<std::time::Duration>,
    },
    /// Print (or, with --run, run) the `fastly` CLI commands that point a Fastly service at this
    /// collector: the HTTPS log endpoint as the configuration expects it, the `edgelog` Config
    /// Store, the `origin` backend, and the activation.
    FastlySetup(Box<fastly_setup::FastlySetupArgs>),
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

pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(cli.config),
        Command::CheckConfig { probe } => check_config(cli.config, probe),
        Command::Challenge { service_ids } => {
            for line in collector::challenge_lines(&service_ids) {
                println!("{line}");
            }
            Ok(())
        }
        Command::Tail {
            url,
            token,
            filter,
            ca,
        } => admin_client::tail(cli.config, url, token, filter, ca),
        Command::FastlySetup(args) => fastly_setup::command(cli.config, *args),
        Command::DeadLetter {
            action: DeadLetterAction::Replay { output, all },
        } => replay(cli.config, &output, all),
        Command::Status {
            url,
            token,
            json,
            ca,
        } => admin_client::status(cli.config, url, token, json, ca),
        Command::Drain {
            url,
            token,
            ca,
            timeout,
        } => admin_client::drain(cli.config, url, token, ca, timeout),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let message = format!("collector: {}", describe(&e));
            eprintln!("{}", collector::logging::scrub(&message));
            std::process::ExitCode::from(1)
        }
    }
}

fn check_config(path: Option<PathBuf>, probe: bool) -> anyhow::Result<()> {
    let config = load(path)?;
    collector::check::tls_files(&config)?;
    print!("{}", config.to_yaml());
    for w in &config.warnings {
        eprintln!("warning: {w}");
    }
    if probe {
        let found = multi_thread_runtime()?.block_on(collector::check::probe(&config))?;
        for line in found {
            eprintln!("probe: {line}");
        }
    }
    Ok(())
}

fn replay(path: Option<PathBuf>, output: &str, all: bool) -> anyhow::Result<()> {
    let config = load(path)?;
    collector::logging::init(config.log_format, config.secret_values());
    let runtime = multi_thread_runtime()?;
    let r = runtime.block_on(collector::replay_dead_letters(&config, output, all))?;
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

fn serve(path: Option<PathBuf>) -> anyhow::Result<()> {
    let config = load(path)?;
    collector::logging::init(config.log_format, config.secret_values());
    let runtime = multi_thread_runtime()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("listen: cannot bind {}", config.listen))?;
        let shutdown_timeout = config.shutdown_timeout;
        let stop = async move {
            shutdown_signal().await;
            service::stopping(shutdown_timeout);
        };
        collector::run_with(config, listener, stop, |_| service::ready()).await?;
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

/// The error and its causes, each cause added only when the message so far does not already say
/// it (the collector's errors name their cause in their own text and keep it as their source).
fn describe(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot bind {0}: {1}")]
    struct Says(&'static str, #[source] std::io::Error);

    #[test]
    fn a_cause_is_said_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::AddrInUse, "address in use");
        let typed = anyhow::Error::new(Says(":443", io())).context("listen");
        assert_eq!(describe(&typed), "listen: cannot bind :443: address in use");
        let plain = anyhow::Error::new(io()).context("listen: cannot bind :443");
        assert_eq!(describe(&plain), "listen: cannot bind :443: address in use");
    }
}
