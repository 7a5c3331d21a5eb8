//! The host's append-only, hash-chained audit table, readable and verifiable
//! by admins (disputes).

use crate::AuditRecord;

/// Appends an entry and returns its sequence number.
pub fn append(entry: &AuditRecord) -> Result<u64, String> {
    crate::sys::audit_append(entry)
}

/// Appends `{thread_id, kind, actor_id, detail}`; see [`append`].
pub fn record(thread_id: &str, kind: &str, actor_id: &str, detail: &str) -> Result<u64, String> {
    append(&AuditRecord {
        thread_id: thread_id.to_string(),
        kind: kind.to_string(),
        actor_id: actor_id.to_string(),
        detail: detail.to_string(),
    })
}
