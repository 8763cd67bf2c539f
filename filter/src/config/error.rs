//! The error every step of configuration returns: the field and what is wrong with it.
//! A leaf, so that the modules whose parts of the configuration are parsed where they
//! are defined (providers, routes, key injection) need nothing else from `config`.

/// A configuration error that names the offending field.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invalid plugin configuration: {}: {}",
            self.field, self.message
        )
    }
}
