//! `chat:plugin/audit`: appends to the hash-chained audit trail.

use crate::audit::AuditRecord;
use crate::domain::is_valid_id;
use crate::plugins::bindings::chat::plugin::audit;
use crate::plugins::store_data::PluginState;

/// Longest `detail`, in bytes.
const MAX_DETAIL: usize = 16 << 10;
/// Longest `kind`, in bytes.
const MAX_KIND: usize = 64;

impl audit::Host for PluginState {
    async fn append(&mut self, entry: audit::AuditRecord) -> Result<u64, String> {
        if !is_valid_id(&entry.thread_id) || !is_valid_id(&entry.actor_id) {
            return Err("thread-id and actor-id must be valid ids".into());
        }
        if entry.kind.is_empty() || entry.kind.len() > MAX_KIND || entry.detail.len() > MAX_DETAIL {
            return Err(format!(
                "kind is 1-{MAX_KIND} bytes, detail at most {MAX_DETAIL}"
            ));
        }
        let env = self.env.clone();
        let record = AuditRecord {
            thread_id: entry.thread_id,
            plugin: env.name.to_string(),
            kind: entry.kind,
            actor_id: entry.actor_id,
            detail: entry.detail,
        };
        env.audit
            .append(record)
            .await
            .map(|seq| seq as u64)
            .map_err(|e| e.to_string())
    }
}
