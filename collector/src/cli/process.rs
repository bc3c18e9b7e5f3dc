//! What every command sets up: its configuration, read and validated, and an async runtime.

use anyhow::{bail, Context};
use collector::config::Config;
use std::path::PathBuf;

pub(crate) fn load(path: Option<PathBuf>) -> anyhow::Result<Config> {
    let Some(path) = path else {
        bail!("--config FILE is required");
    };
    Ok(Config::load(&path)?)
}

pub(crate) fn multi_thread_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
