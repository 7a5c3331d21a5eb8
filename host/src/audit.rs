//! The dispute audit trail: append-only entries per thread, chained with
//! HMAC-SHA256 under a key the database never sees, so an edited, deleted,
//! reordered or truncated entry is detected by [`AuditLog::verify`].

use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::domain::now_ms;
use crate::store::{AuditChain, AuditEntry, AuditHead, StoreError};

/// `prev_mac` of a thread's first entry.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Concurrent appenders racing for the same seq retry this often.
const APPEND_ATTEMPTS: usize = 8;

/// What [`AuditLog::append`] writes.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    /// Thread.
    pub thread_id: String,
    /// Writing plugin.
    pub plugin: String,
    /// Event kind.
    pub kind: String,
    /// Who caused it.
    pub actor_id: String,
    /// Free text (JSON by convention).
    pub detail: String,
}

/// Result of checking a thread's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// Entries read.
    pub entries: usize,
    /// True if every entry and the head check out.
    pub valid: bool,
    /// The first problem found.
    pub problem: Option<String>,
}

/// Appends and verifies audit entries.
pub struct AuditLog {
    store: Arc<dyn AuditChain>,
    key: Arc<[u8]>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl AuditLog {
    /// An audit log over `store`, keyed by `key`.
    pub fn new(store: Arc<dyn AuditChain>, key: &[u8]) -> Self {
        Self {
            store,
            key: key.into(),
        }
    }

    fn mac(&self, parts: &[&[u8]]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        hex(&mac.finalize().into_bytes())
    }

    fn entry_mac(&self, e: &AuditEntry) -> String {
        self.mac(&[
            e.prev_mac.as_bytes(),
            e.thread_id.as_bytes(),
            &e.seq.to_be_bytes(),
            e.plugin.as_bytes(),
            e.kind.as_bytes(),
            e.actor_id.as_bytes(),
            e.detail.as_bytes(),
            &e.created_at_ms.to_be_bytes(),
        ])
    }

    fn head_mac(&self, thread: &str, seq: i64, mac: &str) -> String {
        self.mac(&[
            b"head",
            thread.as_bytes(),
            &seq.to_be_bytes(),
            mac.as_bytes(),
        ])
    }

    /// Appends a record at the end of its thread's chain; returns its seq.
    pub async fn append(&self, record: AuditRecord) -> Result<i64, StoreError> {
        for _ in 0..APPEND_ATTEMPTS {
            let tail = self.store.audit_tail(&record.thread_id).await?;
            let (seq, prev_mac) = tail.map_or((1, GENESIS.to_owned()), |t| (t.seq + 1, t.mac));
            let mut entry = AuditEntry {
                seq,
                thread_id: record.thread_id.clone(),
                plugin: record.plugin.clone(),
                kind: record.kind.clone(),
                actor_id: record.actor_id.clone(),
                detail: record.detail.clone(),
                created_at_ms: now_ms(),
                prev_mac,
                mac: String::new(),
            };
            entry.mac = self.entry_mac(&entry);
            let head = self.head_mac(&entry.thread_id, seq, &entry.mac);
            if self.store.audit_insert(&entry, &head).await? {
                return Ok(seq);
            }
        }
        Err(StoreError::Unavailable(anyhow::anyhow!(
            "audit chain contended; retry"
        )))
    }

    async fn consistent_read(
        &self,
        thread: &str,
    ) -> Result<(Option<AuditHead>, Vec<AuditEntry>), StoreError> {
        let mut attempts = 0;
        loop {
            let before = self.store.audit_head(thread).await?;
            let entries = self.store.audit_entries(thread).await?;
            let after = self.store.audit_head(thread).await?;
            attempts += 1;
            if before == after || attempts == 5 {
                return Ok((after, entries));
            }
        }
    }

    /// A thread's entries, oldest first.
    pub async fn entries(&self, thread: &str) -> Result<Vec<AuditEntry>, StoreError> {
        self.store.audit_entries(thread).await
    }

    /// Recomputes the chain and the head. The head is read before and after the
    /// entries; while appends move it, the read is repeated, so a busy chain is
    /// checked on a consistent view rather than reported as tampered.
    pub async fn verify(&self, thread: &str) -> Result<Verification, StoreError> {
        let (head, entries) = self.consistent_read(thread).await?;
        let fail = |problem: String| Verification {
            entries: entries.len(),
            valid: false,
            problem: Some(problem),
        };
        let mut prev = GENESIS.to_owned();
        for (i, e) in entries.iter().enumerate() {
            let expected_seq = i as i64 + 1;
            if e.seq != expected_seq {
                return Ok(fail(format!(
                    "entry {expected_seq} is missing (found {} in its place)",
                    e.seq
                )));
            }
            if e.prev_mac != prev || e.mac != self.entry_mac(e) {
                return Ok(fail(format!(
                    "entry {} was altered, reordered or its predecessor removed",
                    e.seq
                )));
            }
            prev = e.mac.clone();
        }
        match head {
            None if entries.is_empty() => {}
            None => return Ok(fail("the chain's head is missing".into())),
            Some(head) => {
                let sealed = usize::try_from(head.seq - 1)
                    .ok()
                    .and_then(|i| entries.get(i));
                if sealed.is_none_or(|e| head.head_mac != self.head_mac(thread, e.seq, &e.mac)) {
                    return Ok(fail(format!(
                        "the chain was truncated or its head forged: the head says {} entries",
                        head.seq
                    )));
                }
            }
        }
        Ok(Verification {
            entries: entries.len(),
            valid: true,
            problem: None,
        })
    }
}

#[cfg(test)]
mod tests {
    //! The chain on every store backend: edits, deletions, truncation and
    //! reordering behind the store's back are detected.

    use super::{AuditLog, AuditRecord};
    use crate::store::conformance::{Backend, mysql, sqlite};
    use crate::testing::unique;

    /// Appends `n` entries to a new thread's chain; returns the thread.
    async fn chain(log: &AuditLog, n: usize) -> String {
        let thread = unique("t");
        for i in 0..n {
            let record = AuditRecord {
                thread_id: thread.clone(),
                plugin: "dispute-audit".into(),
                kind: "message_sent".into(),
                actor_id: "alice".into(),
                detail: format!("{{\"n\":{i}}}"),
            };
            assert_eq!(log.append(record).await.unwrap(), i as i64 + 1);
        }
        thread
    }

    async fn audit_chain_detects_edits_and_needs_the_key(backend: Backend) {
        let Backend {
            name,
            store: s,
            url,
            ..
        } = backend;
        let log = AuditLog::new(s.clone(), b"test key");
        let thread = chain(&log, 4).await;
        assert!(log.verify(&thread).await.unwrap().valid, "{name}");
        let wrong_key = AuditLog::new(s.clone(), b"other key");
        assert!(
            !wrong_key.verify(&thread).await.unwrap().valid,
            "{name}: a recomputed chain needs the key"
        );

        // Tampering is done with plain SQL, as someone with database access would.
        raw(&url, &format!("UPDATE chat_audit_entry SET detail = 'edited' WHERE thread_id = '{thread}' AND seq = 2")).await;
        let v = log.verify(&thread).await.unwrap();
        assert!(
            !v.valid && v.problem.unwrap().contains("entry 2"),
            "{name}: edit"
        );
    }

    async fn audit_chain_detects_deletion_and_truncation(backend: Backend) {
        let Backend {
            name,
            store: s,
            url,
            ..
        } = backend;
        let log = AuditLog::new(s.clone(), b"k");
        let (middle, tail) = (chain(&log, 3).await, chain(&log, 3).await);
        raw(
            &url,
            &format!("DELETE FROM chat_audit_entry WHERE thread_id = '{middle}' AND seq = 2"),
        )
        .await;
        assert!(
            !log.verify(&middle).await.unwrap().valid,
            "{name}: deleted middle entry"
        );
        raw(
            &url,
            &format!("DELETE FROM chat_audit_entry WHERE thread_id = '{tail}' AND seq = 3"),
        )
        .await;
        let v = log.verify(&tail).await.unwrap();
        assert!(
            !v.valid && v.problem.unwrap().contains("truncated"),
            "{name}: truncated tail"
        );
    }

    /// Runs a statement behind the store's back (tampering tests).
    async fn raw(url: &str, sql: &str) {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&pool)
            .await
            .unwrap();
    }

    async fn audit_chain_detects_reordering(backend: Backend) {
        let Backend {
            name,
            store: s,
            url,
            ..
        } = backend;
        let log = AuditLog::new(s.clone(), b"k");
        let thread = chain(&log, 3).await;
        // Swap the positions of entries 1 and 2 (seq 1 -> 99 -> 2, 2 -> 1).
        for q in [
            format!(
                "UPDATE chat_audit_entry SET seq = 99 WHERE thread_id = '{thread}' AND seq = 1"
            ),
            format!("UPDATE chat_audit_entry SET seq = 1 WHERE thread_id = '{thread}' AND seq = 2"),
            format!(
                "UPDATE chat_audit_entry SET seq = 2 WHERE thread_id = '{thread}' AND seq = 99"
            ),
        ] {
            raw(&url, &q).await;
        }
        assert!(
            !log.verify(&thread).await.unwrap().valid,
            "{name}: reordered"
        );
    }

    crate::testing::per_backend! {
        backends: [sqlite, mysql],
        cases: [
            audit_chain_detects_edits_and_needs_the_key,
            audit_chain_detects_deletion_and_truncation,
            audit_chain_detects_reordering,
        ],
    }
}
