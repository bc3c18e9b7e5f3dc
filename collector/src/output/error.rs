//! The outputs' start-up error.

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("output failed to start: {0}")]
    Start(String),
}
