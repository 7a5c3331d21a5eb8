//! The dispute audit trail: append-only entries per thread, chained with
//! HMAC-SHA256 under a key the database never sees, so an edited, deleted,
//! reordered or truncated entry is detected by [`AuditLog::verify`]. Every
//! entry and head names the key that sealed it, so keys can be rotated: the
//! current key seals, the old ones still verify.
//!
//! While a thread is under audit the trail also holds the host's evidence of
//! its history ([`crate::domain::evidence`]), and [`AuditLog::verify`] checks
//! the stored messages and receipts against it ([`evidence`]): an edited,
//! deleted or inserted message, or an altered receipt, is named.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::config::{AuditKeys, LEGACY_AUDIT_KEY_ID};
use crate::domain::now_ms;
pub use crate::store::AuditRecord;
use crate::store::{
    AUDIT_GENESIS, AuditChain, AuditEntry, AuditHead, AuditSeal, StoreError, ThreadAudit,
};

mod evidence;

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
    /// Under audit: the messages checked against the trail's evidence.
    pub messages_checked: Option<usize>,
}

/// Appends and verifies audit entries.
pub struct AuditLog {
    store: Arc<dyn AuditChain>,
    keys: AuditKeys,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn mac(key: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    hex(&mac.finalize().into_bytes())
}

/// The MAC of an entry. The key id is not part of it: a MAC only checks under
/// its own key, so a changed id fails anyway, and the entries written before
/// key ids keep the same formula.
fn entry_mac(key: &[u8], e: &AuditEntry) -> String {
    mac(
        key,
        &[
            e.prev_mac.as_bytes(),
            e.thread_id.as_bytes(),
            &e.seq.to_be_bytes(),
            e.plugin.as_bytes(),
            e.kind.as_bytes(),
            e.actor_id.as_bytes(),
            e.detail.as_bytes(),
            &e.created_at_ms.to_be_bytes(),
        ],
    )
}

fn head_mac(key: &[u8], thread: &str, seq: i64, entry_mac: &str) -> String {
    mac(
        key,
        &[
            b"head",
            thread.as_bytes(),
            &seq.to_be_bytes(),
            entry_mac.as_bytes(),
        ],
    )
}

impl AuditLog {
    /// An audit log over `store`, sealing with the current key of `keys`.
    pub fn new(store: Arc<dyn AuditChain>, keys: AuditKeys) -> Self {
        Self { store, keys }
    }

    /// The problem, if no key named `key_id` gives `expected` for `compute`:
    /// `mismatch`, or that this host does not have that key.
    fn seal_problem(
        &self,
        what: &str,
        key_id: &str,
        expected: &str,
        compute: impl Fn(&[u8]) -> String,
        mismatch: String,
    ) -> Option<String> {
        let keys = self.keys.verifying(key_id);
        if keys.iter().any(|key| compute(key) == expected) {
            None
        } else if keys.is_empty() {
            Some(format!(
                "{what} was sealed with key {key_id}, which this host does not have"
            ))
        } else {
            Some(mismatch)
        }
    }

    /// Appends a record at the end of its thread's chain; returns its seq.
    pub async fn append(&self, record: AuditRecord) -> Result<i64, StoreError> {
        self.store.audit_append(&record, self).await
    }

    /// Puts a thread under audit, sealing its history into the trail (an audit
    /// already running is kept); `None` if the thread does not exist.
    pub async fn start(
        &self,
        thread: &str,
        by: &str,
        case: Option<&str>,
    ) -> Result<Option<ThreadAudit>, StoreError> {
        self.store
            .audit_start(thread, by, case, now_ms(), self)
            .await
    }

    /// Ends a thread's audit; false if it was not under audit, `None` if the
    /// thread does not exist.
    pub async fn end(&self, thread: &str, by: &str) -> Result<Option<bool>, StoreError> {
        self.store.audit_end(thread, by, self).await
    }

    /// A thread's entries, oldest first.
    pub async fn entries(&self, thread: &str) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(self.store.audit_snapshot(thread).await?.entries)
    }

    /// Recomputes the chain and the head, each entry under the key it names,
    /// then, under audit, checks the stored history against the evidence.
    /// Everything is read in one snapshot, so a busy thread is checked on a
    /// consistent view rather than reported as tampered.
    pub async fn verify(&self, thread: &str) -> Result<Verification, StoreError> {
        let snapshot = self.store.audit_snapshot(thread).await?;
        let entries = &snapshot.entries;
        let problem = self
            .chain_problem(thread, snapshot.head.as_ref(), entries)
            .or_else(|| evidence::problem(entries, snapshot.audit.as_ref(), &snapshot.history));
        Ok(Verification {
            entries: entries.len(),
            valid: problem.is_none(),
            problem,
            messages_checked: snapshot.audit.is_some().then_some(snapshot.history.len()),
        })
    }

    /// The first problem of a chain, if any.
    fn chain_problem(
        &self,
        thread: &str,
        head: Option<&AuditHead>,
        entries: &[AuditEntry],
    ) -> Option<String> {
        let mut prev = AUDIT_GENESIS;
        // The first entry sealed with a named key: the entries written before
        // key ids all come before it, so a `legacy` one after it is forged.
        let mut named: Option<&AuditEntry> = None;
        for (i, e) in entries.iter().enumerate() {
            let expected_seq = i as i64 + 1;
            if e.seq != expected_seq {
                return Some(format!(
                    "entry {expected_seq} is missing (found {} in its place)",
                    e.seq
                ));
            }
            let altered = format!(
                "entry {} was altered, reordered or its predecessor removed",
                e.seq
            );
            if e.prev_mac != prev {
                return Some(altered);
            }
            match (e.key_id == LEGACY_AUDIT_KEY_ID, named) {
                (true, Some(first)) => {
                    return Some(format!(
                        "entry {} claims a key from before key ids, after entry {} was sealed with key {}",
                        e.seq, first.seq, first.key_id
                    ));
                }
                (false, None) => named = Some(e),
                _ => {}
            }
            let mismatch = if e.key_id == LEGACY_AUDIT_KEY_ID {
                format!(
                    "entry {} was sealed before entries named their key, and no key of this host \
                     verifies it: it was altered, or its key (an old CHAT_AUDIT_KEY, or an old \
                     CHAT_JWT_SECRET) is missing from CHAT_AUDIT_OLD_KEYS as legacy:<secret>",
                    e.seq
                )
            } else {
                altered
            };
            let what = format!("entry {}", e.seq);
            let compute = |key: &[u8]| entry_mac(key, e);
            if let Some(problem) = self.seal_problem(&what, &e.key_id, &e.mac, compute, mismatch) {
                return Some(problem);
            }
            prev = &e.mac;
        }
        let head = match head {
            None if entries.is_empty() => return None,
            None => return Some("the chain's head is missing".into()),
            Some(head) => head,
        };
        let forged = format!(
            "the chain was truncated or its head forged: the head says {} entries",
            head.seq
        );
        let Some(newest) = usize::try_from(head.seq - 1)
            .ok()
            .and_then(|i| entries.get(i))
        else {
            return Some(forged);
        };
        // The head is sealed in the same write as its entry, with the same key.
        if head.key_id != newest.key_id {
            return Some(forged);
        }
        let compute = |key: &[u8]| head_mac(key, thread, newest.seq, &newest.mac);
        self.seal_problem(
            "the chain's head",
            &head.key_id,
            &head.head_mac,
            compute,
            forged,
        )
    }
}

impl AuditSeal for AuditLog {
    fn seal(&self, entry: &mut AuditEntry) -> String {
        let (key_id, key) = self.keys.current();
        entry.key_id = key_id.to_owned();
        entry.mac = entry_mac(key, entry);
        head_mac(key, &entry.thread_id, entry.seq, &entry.mac)
    }
}

#[cfg(test)]
mod tests {
    //! The chain on every store backend: edits, deletions, truncation and
    //! reordering behind the store's back are detected; keys rotate, and the
    //! entries written before key ids still verify.

    use clap::Parser;

    use super::{AuditLog, AuditRecord};
    use crate::config::{AuditKeys, Config, legacy_derived_key};
    use crate::domain::model::Message;
    use crate::domain::now_ms;
    use crate::domain::policy::Decider;
    use crate::store::conformance::{Backend, mysql, sqlite, thread_of_two};
    use crate::store::{ChatStore, InsertMessage, NewMessage, NewReceipt, NewRefusal};
    use crate::testing::unique;

    /// A log whose only key is `secret`, named `id`.
    fn log_with(store: &Backend, id: &str, secret: &[u8]) -> AuditLog {
        AuditLog::new(store.store.clone(), AuditKeys::new(id, secret).unwrap())
    }

    /// A log with the keys of this configuration (`--audit-key …` etc.).
    fn log_configured(store: &Backend, args: &[&str]) -> AuditLog {
        let config = Config::parse_from(["chat-host"].iter().chain(args));
        AuditLog::new(store.store.clone(), config.secrets().unwrap().audit)
    }

    /// The problem `verify` reports (`None`: valid).
    async fn problem(log: &AuditLog, thread: &str) -> Option<String> {
        let v = log.verify(thread).await.unwrap();
        assert_eq!(v.valid, v.problem.is_none());
        v.problem
    }

    /// Appends `n` entries to a new thread's chain; returns the thread.
    async fn chain(log: &AuditLog, n: usize) -> String {
        let thread = unique("t");
        for i in 0..n {
            assert_eq!(log.append(record(&thread, i)).await.unwrap(), i as i64 + 1);
        }
        thread
    }

    async fn audit_chain_detects_edits_and_needs_the_key(backend: Backend) {
        let log = log_with(&backend, "k", b"test key");
        let thread = chain(&log, 4).await;
        assert!(log.verify(&thread).await.unwrap().valid, "{}", backend.name);
        let wrong_key = log_with(&backend, "k", b"other key");
        let Backend { name, url, .. } = backend;
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
        let log = log_with(&backend, "k", b"k");
        let Backend { name, url, .. } = backend;
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

    /// Runs a statement behind the store's back (tampering tests), again when
    /// MariaDB picks it as a deadlock victim against the other tests' writes.
    async fn raw(url: &str, sql: &str) {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(url).await.unwrap();
        for attempt in 1.. {
            match sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&pool)
                .await
            {
                Err(e)
                    if attempt < 5
                        && e.as_database_error().and_then(|d| d.code()).as_deref()
                            == Some("40001") => {}
                other => {
                    other.unwrap();
                    return;
                }
            }
        }
    }

    async fn audit_chain_detects_reordering(backend: Backend) {
        let log = log_with(&backend, "k", b"k");
        let Backend { name, url, .. } = backend;
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

    async fn audit_keys_rotate_and_an_unknown_key_is_named(backend: Backend) {
        let name = backend.name;
        let first = log_with(&backend, "k1", b"first key");
        let thread = chain(&first, 2).await;
        let rotated = AuditLog::new(
            backend.store.clone(),
            AuditKeys::new("k2", b"second key")
                .unwrap()
                .keep("k1", b"first key")
                .unwrap(),
        );
        assert_eq!(
            problem(&rotated, &thread).await,
            None,
            "{name}: old key kept"
        );
        rotated.append(record(&thread, 3)).await.unwrap();
        let ids: Vec<String> = rotated
            .entries(&thread)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.key_id)
            .collect();
        assert_eq!(ids, ["k1", "k1", "k2"], "{name}: the current key seals");
        assert_eq!(
            problem(&rotated, &thread).await,
            None,
            "{name}: mixed chain"
        );

        let dropped = log_with(&backend, "k2", b"second key");
        assert_eq!(
            problem(&dropped, &thread).await.as_deref(),
            Some("entry 1 was sealed with key k1, which this host does not have"),
            "{name}"
        );
        // The key named k1 is not the one that sealed: an alteration, not an unknown key.
        let impostor = AuditLog::new(
            backend.store.clone(),
            AuditKeys::new("k2", b"second key")
                .unwrap()
                .keep("k1", b"not the first key")
                .unwrap(),
        );
        let p = problem(&impostor, &thread).await.unwrap();
        assert!(p.starts_with("entry 1 was altered"), "{name}: {p}");
        // Relabelling an entry with another known key is detected too.
        raw(
            &backend.url,
            &format!(
                "UPDATE chat_audit_entry SET key_id = 'k2' WHERE thread_id = '{thread}' AND seq = 2"
            ),
        )
        .await;
        let p = problem(&rotated, &thread).await.unwrap();
        assert!(p.starts_with("entry 2 was altered"), "{name}: {p}");
    }

    /// Rows as migration 0006 leaves them: a chain sealed before key ids, labelled
    /// `legacy` by the column's default.
    async fn legacy_chain(backend: &Backend, secret: &[u8]) -> String {
        let thread = chain(&log_with(backend, "pre", secret), 3).await;
        let head = backend
            .store
            .audit_snapshot(&thread)
            .await
            .unwrap()
            .head
            .unwrap();
        for q in [
            format!("UPDATE chat_audit_entry SET key_id = 'legacy' WHERE thread_id = '{thread}'"),
            format!("DELETE FROM chat_audit_head WHERE thread_id = '{thread}'"),
            format!(
                "INSERT INTO chat_audit_head (thread_id, seq, head_mac) VALUES ('{thread}', {}, '{}')",
                head.seq, head.head_mac
            ),
        ] {
            raw(&backend.url, &q).await;
        }
        let head = backend
            .store
            .audit_snapshot(&thread)
            .await
            .unwrap()
            .head
            .unwrap();
        assert_eq!(
            head.key_id, "legacy",
            "{}: the column's default",
            backend.name
        );
        thread
    }

    async fn entries_from_before_key_ids_verify_after_the_upgrade_and_a_rotation(backend: Backend) {
        let name = backend.name;
        let (jwt, old_key) = (
            "the JWT secret: 32 bytes or more!",
            "the old audit key: 32 bytes or more",
        );
        // One trail sealed with the old CHAT_AUDIT_KEY, one with the key derived from the JWT secret.
        let keyed = legacy_chain(&backend, old_key.as_bytes()).await;
        let derived = legacy_chain(&backend, &legacy_derived_key(jwt.as_bytes())).await;

        // The upgrade, with the configuration unchanged.
        let upgraded = log_configured(&backend, &["--jwt-secret", jwt, "--audit-key", old_key]);
        for thread in [&keyed, &derived] {
            assert_eq!(problem(&upgraded, thread).await, None, "{name}: upgrade");
            upgraded.append(record(thread, 4)).await.unwrap();
            assert_eq!(problem(&upgraded, thread).await, None, "{name}: appended");
        }
        let old_id = upgraded.keys.current().0.to_owned();

        // Then a rotation of both secrets, the old audit key kept under its id and the
        // old JWT secret pinned for the derived key.
        let (new_jwt, new_key) = (
            "a new JWT secret: 32 bytes or more",
            "a new audit key: 32 bytes or more!",
        );
        let old_keys = format!("{old_id}:{old_key},legacy:{jwt}");
        let rotated = log_configured(
            &backend,
            &[
                "--jwt-secret",
                new_jwt,
                "--audit-key",
                new_key,
                "--audit-old-keys",
                &old_keys,
            ],
        );
        for thread in [&keyed, &derived] {
            assert_eq!(problem(&rotated, thread).await, None, "{name}: rotated");
            rotated.append(record(thread, 5)).await.unwrap();
            assert_eq!(problem(&rotated, thread).await, None, "{name}: appended");
        }
        let unpinned = format!("{old_id}:{old_key}");
        let forgotten = log_configured(
            &backend,
            &[
                "--jwt-secret",
                new_jwt,
                "--audit-key",
                new_key,
                "--audit-old-keys",
                &unpinned,
            ],
        );
        assert_eq!(problem(&forgotten, &keyed).await, None, "{name}");
        let p = problem(&forgotten, &derived).await.unwrap();
        assert!(
            p.starts_with("entry 1 was sealed before entries named their key, and no key of this host verifies it"),
            "{name}: {p}"
        );
        let none = log_configured(&backend, &["--audit-key", new_key]);
        let p = problem(&none, &keyed).await.unwrap();
        assert!(
            p.contains("CHAT_AUDIT_OLD_KEYS as legacy:<secret>"),
            "{name}: {p}"
        );

        // No `legacy` entry may follow one sealed with a named key.
        raw(&backend.url, &format!("UPDATE chat_audit_entry SET key_id = 'legacy' WHERE thread_id = '{keyed}' AND seq = 5")).await;
        let p = problem(&rotated, &keyed).await.unwrap();
        assert!(
            p.starts_with(&format!("entry 5 claims a key from before key ids, after entry 4 was sealed with key {old_id}")),
            "{name}: {p}"
        );
    }

    /// Verifying while another task appends never reports a valid chain as
    /// tampered: head and entries come from one snapshot.
    async fn verify_during_appends_sees_a_valid_chain(backend: Backend) {
        let log = std::sync::Arc::new(log_with(&backend, "k", b"k"));
        let thread = chain(&log, 1).await;
        let appender = tokio::spawn({
            let (log, thread) = (log.clone(), thread.clone());
            async move {
                for i in 1..60 {
                    log.append(record(&thread, i)).await.unwrap();
                }
            }
        });
        let mut checks = 0;
        while !appender.is_finished() {
            assert_eq!(problem(&log, &thread).await, None, "{}", backend.name);
            checks += 1;
        }
        appender.await.unwrap();
        assert!(checks > 1, "{}: verified while appending", backend.name);
        assert_eq!(log.verify(&thread).await.unwrap().entries, 60);
    }

    /// Stores a message from `from` to `to` (the sender's receipt delivered and read).
    async fn message(
        log: &AuditLog,
        store: &dyn ChatStore,
        thread: &str,
        (from, to): (&str, &str),
        body: &str,
    ) -> Message {
        let new = NewMessage {
            thread_id: thread.into(),
            sender_id: from.into(),
            body: body.into(),
            client_message_id: unique("c"),
            created_at_ms: now_ms(),
            request_hash: String::new(),
            rewritten_by: Vec::new(),
        };
        let receipts = [
            NewReceipt {
                user_id: from.into(),
                delivered: true,
                read: true,
            },
            NewReceipt {
                user_id: to.into(),
                delivered: false,
                read: false,
            },
        ];
        match store.insert_message(&new, &receipts, log).await.unwrap() {
            InsertMessage::Inserted(m) => m,
            other => panic!("{other:?}"),
        }
    }

    /// Under audit, verify checks the stored history against the evidence:
    /// each alteration behind the store's back is named, and undoing it makes
    /// the thread valid again.
    async fn evidence_names_edited_deleted_and_inserted_messages_and_altered_receipts(
        backend: Backend,
    ) {
        let log = log_with(&backend, "k", b"evidence key");
        let (store, name, url) = (&*backend.store, backend.name, backend.url.clone());
        let (thread, alice, bob) = thread_of_two(store).await;
        let pair = (alice.as_str(), bob.as_str());
        let old = message(&log, store, &thread, pair, "before the audit").await;
        let older = message(&log, store, &thread, pair, "also before").await;
        store
            .mark_read(&thread, &bob, old.id, now_ms(), &log)
            .await
            .unwrap();
        let audit = log.start(&thread, "admin-1", Some("D-7")).await.unwrap();
        assert_eq!(
            audit.map(|a| (a.by, a.case)),
            Some(("admin-1".into(), Some("D-7".into())))
        );
        let new = message(&log, store, &thread, pair, "under audit").await;
        store
            .mark_delivered(&[(bob.clone(), new.id)], now_ms(), &log)
            .await
            .unwrap();
        store
            .mark_read(&thread, &bob, new.id, now_ms() + 1, &log)
            .await
            .unwrap();
        let refusal = NewRefusal {
            thread_id: thread.clone(),
            user_id: bob.clone(),
            by: Decider {
                plugin: "contact-filter".into(),
                version: "1".into(),
            },
            reason: "no e-mail addresses".into(),
            request_hash: "h".into(),
            at_ms: now_ms(),
        };
        store.record_refusal(&refusal, &log).await.unwrap();
        let kinds: Vec<String> = log
            .entries(&thread)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds,
            [
                "audit_started",
                "history_sealed",
                "message_stored",
                "receipts_delivered",
                "receipts_read",
                "message_rejected"
            ],
            "{name}: the evidence, in order"
        );
        let v = log.verify(&thread).await.unwrap();
        assert_eq!((v.problem, v.messages_checked), (None, Some(3)), "{name}");

        let (o, d, n) = (old.id, older.id, new.id);
        let tampering = [
            (
                format!("UPDATE chat_message SET body = 'edited' WHERE id = {d}"),
                format!("UPDATE chat_message SET body = 'also before' WHERE id = {d}"),
                format!("message {d}, sealed by entry"),
            ),
            (
                format!(
                    "UPDATE chat_message_receipt SET read_at = read_at + 5 WHERE message_id = {o} AND user_id = '{bob}'"
                ),
                format!(
                    "UPDATE chat_message_receipt SET read_at = read_at - 5 WHERE message_id = {o} AND user_id = '{bob}'"
                ),
                format!("message {o}, sealed by entry"),
            ),
            (
                format!("UPDATE chat_message SET body = 'edited' WHERE id = {n}"),
                format!("UPDATE chat_message SET body = 'under audit' WHERE id = {n}"),
                format!("message {n} was edited after entry"),
            ),
            (
                format!(
                    "UPDATE chat_message_receipt SET read_at = read_at + 5 WHERE message_id = {n} AND user_id = '{bob}'"
                ),
                format!(
                    "UPDATE chat_message_receipt SET read_at = read_at - 5 WHERE message_id = {n} AND user_id = '{bob}'"
                ),
                format!("the read time of message {n} for {bob} differs from entry"),
            ),
            (
                format!(
                    "UPDATE chat_message_receipt SET delivered_at = delivered_at - 7 WHERE message_id = {n} AND user_id = '{bob}'"
                ),
                format!(
                    "UPDATE chat_message_receipt SET delivered_at = delivered_at + 7 WHERE message_id = {n} AND user_id = '{bob}'"
                ),
                format!("the delivered time of message {n} for {bob} differs from entry"),
            ),
            (
                format!(
                    "INSERT INTO chat_message (thread_id, sender_id, body, client_message_id, created_at) VALUES ('{thread}', '{bob}', 'forged', 'forged-1', 5)"
                ),
                "DELETE FROM chat_message WHERE client_message_id = 'forged-1'".to_owned(),
                "is in no audit entry: it was added behind the host's back".to_owned(),
            ),
            (
                format!("UPDATE chat_thread SET audit_since = NULL WHERE id = '{thread}'"),
                format!("UPDATE chat_thread SET audit_since = 1 WHERE id = '{thread}'"),
                "never ended, but the thread is not under audit".to_owned(),
            ),
        ];
        for (tamper, undo, expected) in tampering {
            raw(&url, &tamper).await;
            let p = problem(&log, &thread).await.unwrap_or_default();
            assert!(p.contains(&expected), "{name}: {tamper}: {p:?}");
            raw(&url, &undo).await;
            assert_eq!(
                problem(&log, &thread).await,
                None,
                "{name}: undone: {tamper}"
            );
        }
        raw(
            &url,
            &format!("DELETE FROM chat_message_receipt WHERE message_id = {n}"),
        )
        .await;
        raw(&url, &format!("DELETE FROM chat_message WHERE id = {n}")).await;
        let p = problem(&log, &thread).await.unwrap();
        assert!(
            p.contains(&format!("message {n}, recorded by entry")) && p.contains("deleted"),
            "{name}: {p}"
        );

        // Ended, the trail still verifies as a chain; the history is no longer checked.
        assert_eq!(log.end(&thread, "admin-2").await.unwrap(), Some(true));
        let v = log.verify(&thread).await.unwrap();
        assert_eq!((v.valid, v.messages_checked), (true, None), "{name}");
        assert_eq!(log.end(&thread, "admin-2").await.unwrap(), Some(false));
        assert_eq!(log.start(&unique("t"), "admin", None).await.unwrap(), None);
    }

    /// Messages, deliveries and reads racing the start of an audit: each is in
    /// the sealed history or sealed by its own write, never lost between.
    async fn evidence_holds_while_writes_race_the_audit_start(backend: Backend) {
        let log = std::sync::Arc::new(log_with(&backend, "k", b"race key"));
        let store = backend.store.clone();
        let (thread, alice, bob) = thread_of_two(&*store).await;
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let writer = tokio::spawn({
            let (log, store, thread) = (log.clone(), store.clone(), thread.clone());
            async move {
                let mut started_tx = Some(started_tx);
                for i in 0..40 {
                    let m = message(&log, &*store, &thread, (&alice, &bob), &format!("m{i}")).await;
                    store
                        .mark_delivered(&[(bob.clone(), m.id)], now_ms(), &*log)
                        .await
                        .unwrap();
                    if i % 3 == 0 {
                        store
                            .mark_read(&thread, &bob, m.id, now_ms(), &*log)
                            .await
                            .unwrap();
                    }
                    if i == 5 {
                        let _ = started_tx.take().unwrap().send(());
                    }
                }
            }
        });
        started.await.unwrap();
        log.start(&thread, "admin", None).await.unwrap().unwrap();
        writer.await.unwrap();
        let v = log.verify(&thread).await.unwrap();
        assert_eq!(
            (v.problem, v.messages_checked),
            (None, Some(40)),
            "{}",
            backend.name
        );
    }

    fn record(thread: &str, n: usize) -> AuditRecord {
        AuditRecord {
            thread_id: thread.to_owned(),
            plugin: "dispute-audit".into(),
            kind: "message_sent".into(),
            actor_id: "alice".into(),
            detail: format!("{{\"n\":{n}}}"),
        }
    }

    crate::testing::per_backend! {
        backends: [sqlite, mysql],
        cases: [
            audit_chain_detects_edits_and_needs_the_key,
            audit_chain_detects_deletion_and_truncation,
            audit_chain_detects_reordering,
            audit_keys_rotate_and_an_unknown_key_is_named,
            entries_from_before_key_ids_verify_after_the_upgrade_and_a_rotation,
            verify_during_appends_sees_a_valid_chain,
            evidence_names_edited_deleted_and_inserted_messages_and_altered_receipts,
            evidence_holds_while_writes_race_the_audit_start,
        ],
    }
}
