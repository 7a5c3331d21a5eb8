//! Thread metadata (title, participants with profiles) read through the 5-minute cache.

use std::sync::Arc;
use std::time::Duration;

use super::error::ChatError;
use crate::domain::model::ThreadMeta;
use crate::state::ThreadCache;
use crate::store::Directory;

/// How long thread metadata stays cached.
pub const THREAD_META_TTL: Duration = Duration::from_secs(300);

/// Reads thread metadata from the cache, falling back to the store. Cache
/// failures only cost a database read; they never fail the action.
pub struct ThreadDirectory {
    store: Arc<dyn Directory>,
    state: Arc<dyn ThreadCache>,
}

impl ThreadDirectory {
    /// A directory over these backends.
    pub fn new(store: Arc<dyn Directory>, state: Arc<dyn ThreadCache>) -> Self {
        Self { store, state }
    }

    /// The thread's metadata, or `not_found`.
    pub async fn require(&self, thread: &str) -> Result<ThreadMeta, ChatError> {
        match self.state.thread_meta_get(thread).await {
            Ok(Some(json)) => match serde_json::from_str(&json) {
                Ok(meta) => return Ok(meta),
                Err(e) => tracing::warn!(thread, error = %e, "unreadable cached thread metadata"),
            },
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(thread, error = %e, "thread cache unavailable; reading the database")
            }
        }
        let meta = self
            .store
            .thread_meta(thread)
            .await?
            .ok_or_else(|| ChatError::NotFound(format!("thread {thread} does not exist")))?;
        if let Ok(json) = serde_json::to_string(&meta)
            && let Err(e) = self
                .state
                .thread_meta_put(thread, &json, THREAD_META_TTL)
                .await
        {
            tracing::warn!(thread, error = %e, "could not cache thread metadata");
        }
        Ok(meta)
    }

    /// Drops the cached metadata after a change (e.g. a new participant).
    pub async fn invalidate(&self, thread: &str) -> Result<(), ChatError> {
        Ok(self.state.thread_meta_invalidate(thread).await?)
    }
}
