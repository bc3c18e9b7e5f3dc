//! The listener facing Fastly: the accept loop (`server`), what a connection may hold (`conn`),
//! TLS and its reloads (`tls`), the route tables of both listeners (`routes`) and the shared-token
//! check (`auth`).

pub(crate) mod auth;
pub(crate) mod conn;
pub(crate) mod routes;
pub(crate) mod server;
pub(crate) mod tls;
