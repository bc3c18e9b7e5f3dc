//! The collector's configuration: one YAML file, read once and validated into typed values.
//!
//! One concern per file: `schema.rs` (the file as written, every key documented), `limits.rs`
//! (every default and limit), `interpolate.rs` (`${VAR}`), `secret.rs` (values that never print), `keytemplate.rs` (S3 object keys), `s3.rs`
//! (the `s3` output block),
//! `validate.rs` (typed values), `error.rs` (errors naming their key), `model.rs` (the typed values).

pub(crate) mod credentials;
#[cfg(test)]
mod doc_tests;
pub(crate) mod error;
pub(crate) mod interpolate;
pub(crate) mod keytemplate;
pub(crate) mod limits;
pub(crate) mod model;
pub(crate) mod s3;
pub(crate) mod schema;
pub(crate) mod secret;
#[cfg(test)]
mod tests;
pub(crate) mod validate;

pub use error::ConfigError;
pub use limits::*;
pub use model::*;
pub use secret::Secret;
