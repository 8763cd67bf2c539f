//! Errors that stop the service from starting or serving. Per-request failures are
//! HTTP responses instead (see `api::error`).

use std::fmt;

#[derive(Debug)]
pub enum Error {
    /// A configuration value is unusable; the message names the field.
    Config(String),
    /// The HTTP server failed while serving.
    Serve(std::io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(msg) => write!(f, "invalid configuration: {msg}"),
            Error::Serve(err) => write!(f, "http server failed: {err}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Config(_) => None,
            Error::Serve(err) => Some(err),
        }
    }
}
