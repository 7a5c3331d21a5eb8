//! The one error type of the plugin runtime and its admin service. Callers
//! branch on the variant (the HTTP layer maps each to a status in one place),
//! never on the text.

use std::path::PathBuf;

use crate::state::StateError;
use crate::store::StoreError;

/// Why a plugin operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// No loaded plugin has this name.
    #[error("no plugin named {0}")]
    NotFound(String),
    /// A plugin's key-value store has no such key.
    #[error("{plugin} has no key {key}")]
    NoKey {
        /// The plugin.
        plugin: String,
        /// The key asked for.
        key: String,
    },
    /// No thread has this id.
    #[error("thread {0} does not exist")]
    NoThread(String),
    /// A request names a plugin, key, value or thread the runtime cannot take
    /// (bad name, oversized value, bad base64).
    #[error("{0}")]
    InvalidRequest(String),
    /// The manifest does not parse or breaks a rule (name, limits).
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),
    /// The uploaded component is not a component at all (e.g. not base64).
    #[error("invalid component: {0}")]
    InvalidComponent(String),
    /// The manifest names another plugin than the one it is loaded as.
    #[error("the manifest names the plugin {found:?}; it must be {expected:?}")]
    NameMismatch {
        /// The name it is loaded as (path or file name).
        expected: String,
        /// The name the manifest gives.
        found: String,
    },
    /// The component was refused: it does not compile, does not match the
    /// imports this host provides, or does not instantiate.
    #[error("plugin {plugin} {stage}: {cause:#}")]
    Refused {
        /// The plugin's name.
        plugin: String,
        /// What failed.
        stage: Stage,
        /// wasmtime's explanation.
        #[source]
        cause: anyhow::Error,
    },
    /// A plugin file could not be read.
    #[error("reading {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The state store (plugin key-value entries, change announcements) failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The database (stored plugins, audit trail) failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A blocking load task panicked or was cancelled.
    #[error("plugin load task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The step of loading at which a component was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Compiling the component.
    Compile,
    /// Linking its imports against the host's.
    Link,
    /// Instantiating it (and finding its hooks).
    Instantiate,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Compile => "does not compile",
            Stage::Link => "does not match the chat:plugin@0.1.0 imports this host provides",
            Stage::Instantiate => "was refused at instantiation",
        })
    }
}

impl PluginError {
    /// Shorthand for [`PluginError::InvalidRequest`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidRequest(message.into())
    }
}
