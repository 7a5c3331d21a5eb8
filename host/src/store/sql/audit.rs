//! Audit trails in SQL, and the evidence the message and receipt writes seal
//! into them, in their own transactions, while a thread is under audit.
//!
//! Every write that changes a thread's history or trail first locks the
//! thread's row (MySQL; SQLite's write transactions are serial): sends and
//! appends exclusively, receipt writes shared. Starting an audit takes the row
//! exclusively, so each write either committed before the history was sealed
//! (and is in the seal) or sees the audit and seals its own evidence.

use std::collections::HashMap;

use async_trait::async_trait;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, AssertSqlSafe, Row, Transaction};

use super::{
    AUDIT_COLUMNS, MESSAGE_COLUMNS, SqlStore, audit_from_row, err, is_deadlock,
    is_unique_violation, message_from_row, placeholders, retrying,
};
use crate::domain::evidence::{
    self, AuditEnded, AuditStarted, HOST, HistorySealed, MessageRejected, MessageStored,
    ReceiptsDelivered, ReceiptsRead, SEALED_PER_ENTRY, kind,
};
use crate::domain::model::{Message, Receipt};
use crate::domain::policy::Decider;
use crate::domain::{MessageId, Millis, now_ms};
use crate::store::dialect::Dialect;
use crate::store::{
    AUDIT_GENESIS, AuditChain, AuditEntry, AuditHead, AuditRecord, AuditSeal, AuditSnapshot,
    MessageWithReceipts, NewRefusal, StoreError, StoreResult, ThreadAudit,
};

/// Appends racing for the same seq of a thread without a row (nothing to lock) retry this often.
const APPEND_ATTEMPTS: usize = 8;

/// How a read of a thread's audit state locks the thread's row.
#[derive(Clone, Copy)]
pub(super) enum Lock {
    /// Not at all (the transaction holds it already, or only reads).
    None,
    /// Against writers: receipt writes.
    Shared,
    /// Against everyone: audit switches and appends.
    Exclusive,
}

/// The thread's audit (`Some(None)`: not under audit), or `None` if the thread
/// does not exist.
pub(super) async fn audit_state(
    conn: &mut AnyConnection,
    dialect: Dialect,
    thread: &str,
    lock: Lock,
) -> Result<Option<Option<ThreadAudit>>, sqlx::Error> {
    let suffix = match lock {
        Lock::None => "",
        Lock::Shared => dialect.lock_shared(),
        Lock::Exclusive => dialect.lock_exclusive(),
    };
    let sql =
        format!("SELECT audit_since, audit_by, audit_case FROM chat_thread WHERE id = ?{suffix}");
    let Some(row) = sqlx::query(AssertSqlSafe(sql))
        .bind(thread)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(thread_audit(&row)?))
}

/// The audit of a `chat_thread` row (columns `audit_since`, `audit_by`,
/// `audit_case`), if it is under one.
pub(super) fn thread_audit(row: &AnyRow) -> Result<Option<ThreadAudit>, sqlx::Error> {
    let Some(since_ms) = row.try_get::<Option<Millis>, _>("audit_since")? else {
        return Ok(None);
    };
    Ok(Some(ThreadAudit {
        since_ms,
        by: row
            .try_get::<Option<String>, _>("audit_by")?
            .unwrap_or_default(),
        case: row.try_get("audit_case")?,
    }))
}

/// Appends an entry at the end of its thread's chain and moves the head, inside
/// the caller's transaction; returns its seq.
async fn append(
    conn: &mut AnyConnection,
    dialect: Dialect,
    record: &AuditRecord,
    seal: &dyn AuditSeal,
) -> Result<i64, sqlx::Error> {
    let tail = sqlx::query(
        "SELECT seq, mac FROM chat_audit_entry WHERE thread_id = ? ORDER BY seq DESC LIMIT 1",
    )
    .bind(&record.thread_id)
    .fetch_optional(&mut *conn)
    .await?;
    let (seq, prev_mac) = match tail {
        Some(row) => (row.try_get::<i64, _>(0)? + 1, row.try_get(1)?),
        None => (1, AUDIT_GENESIS.to_owned()),
    };
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
        key_id: String::new(),
    };
    let head_mac = seal.seal(&mut entry);
    sqlx::query(
        "INSERT INTO chat_audit_entry (seq, thread_id, plugin, kind, actor_id, detail, created_at, prev_mac, mac, key_id) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(entry.seq)
    .bind(&entry.thread_id)
    .bind(&entry.plugin)
    .bind(&entry.kind)
    .bind(&entry.actor_id)
    .bind(&entry.detail)
    .bind(entry.created_at_ms)
    .bind(&entry.prev_mac)
    .bind(&entry.mac)
    .bind(&entry.key_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query(dialect.upsert_audit_head())
        .bind(&entry.thread_id)
        .bind(entry.seq)
        .bind(head_mac)
        .bind(&entry.key_id)
        .execute(&mut *conn)
        .await?;
    Ok(seq)
}

/// Appends one of the host's evidence entries.
async fn append_evidence(
    conn: &mut AnyConnection,
    dialect: Dialect,
    thread: &str,
    kind: &str,
    actor: &str,
    detail: &impl Serialize,
    seal: &dyn AuditSeal,
) -> Result<i64, sqlx::Error> {
    let record = AuditRecord {
        thread_id: thread.to_owned(),
        plugin: HOST.to_owned(),
        kind: kind.to_owned(),
        actor_id: actor.to_owned(),
        detail: serde_json::to_string(detail).map_err(|e| sqlx::Error::Encode(e.into()))?,
    };
    append(conn, dialect, &record, seal).await
}

/// Seals a message stored under audit, with the receipts it was stored with.
pub(super) async fn seal_message(
    conn: &mut AnyConnection,
    dialect: Dialect,
    message: &Message,
    receipts: &[Receipt],
    rewritten_by: &[Decider],
    seal: &dyn AuditSeal,
) -> Result<(), sqlx::Error> {
    let detail = MessageStored {
        message: message.id.to_string(),
        sha256: evidence::content_hash(message),
        receipts: receipts
            .iter()
            .map(|r| (r.user_id.clone(), r.delivered_at_ms, r.read_at_ms))
            .collect(),
        rewritten_by: rewritten_by
            .iter()
            .map(|d| (d.plugin.clone(), d.version.clone()))
            .collect(),
    };
    let (thread, sender) = (&message.thread_id, &message.sender_id);
    append_evidence(
        conn,
        dialect,
        thread,
        kind::MESSAGE_STORED,
        sender,
        &detail,
        seal,
    )
    .await?;
    Ok(())
}

/// Seals a message hook's refusal of a send under audit.
pub(super) async fn seal_refusal(
    conn: &mut AnyConnection,
    dialect: Dialect,
    r: &NewRefusal,
    seal: &dyn AuditSeal,
) -> Result<(), sqlx::Error> {
    let detail = MessageRejected {
        plugin: r.by.plugin.clone(),
        version: r.by.version.clone(),
        reason: r.reason.clone(),
        request_sha256: r.request_hash.clone(),
    };
    let (thread, user) = (&r.thread_id, &r.user_id);
    append_evidence(
        conn,
        dialect,
        thread,
        kind::MESSAGE_REJECTED,
        user,
        &detail,
        seal,
    )
    .await?;
    Ok(())
}

/// The receipts of `user` in `thread` up to `mark` that a read is about to set:
/// `(message, delivered_at)`, by message. They are read as committed and
/// locked, so a delivery racing for them is sealed by one write only.
pub(super) async fn unread(
    conn: &mut AnyConnection,
    dialect: Dialect,
    thread: &str,
    user: &str,
    mark: MessageId,
) -> Result<Vec<(MessageId, Option<Millis>)>, sqlx::Error> {
    let sql = format!(
        "SELECT message_id, delivered_at FROM chat_message_receipt WHERE user_id = ? AND read_at IS NULL \
         AND message_id <= ? AND message_id IN (SELECT id FROM chat_message WHERE thread_id = ? AND id <= ?) \
         ORDER BY message_id{}",
        dialect.lock_exclusive()
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(user)
        .bind(mark)
        .bind(thread)
        .bind(mark)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Seals a read under audit: the receipts [`unread`] found, set at `at`.
pub(super) async fn seal_read(
    conn: &mut AnyConnection,
    dialect: Dialect,
    thread: &str,
    user: &str,
    set: &[(MessageId, Option<Millis>)],
    at: Millis,
    seal: &dyn AuditSeal,
) -> Result<(), sqlx::Error> {
    if set.is_empty() {
        return Ok(());
    }
    let detail = ReceiptsRead {
        user: user.to_owned(),
        at_ms: at,
        messages: set.iter().map(|(id, _)| id.to_string()).collect(),
        delivered: set
            .iter()
            .filter(|(_, delivered)| delivered.is_none())
            .map(|(id, _)| id.to_string())
            .collect(),
    };
    append_evidence(
        conn,
        dialect,
        thread,
        kind::RECEIPTS_READ,
        user,
        &detail,
        seal,
    )
    .await?;
    Ok(())
}

/// Locks the threads of these receipts against audit switches and returns,
/// per thread under audit, those of them still undelivered (read as committed,
/// and locked): what a delivery write is about to set, and must seal.
pub(super) async fn undelivered_in_audit(
    conn: &mut AnyConnection,
    dialect: Dialect,
    receipts: &[(String, MessageId)],
) -> Result<HashMap<String, Vec<(String, String)>>, sqlx::Error> {
    let ids: Vec<MessageId> = receipts.iter().map(|(_, id)| *id).collect();
    let sql = format!(
        "SELECT m.id, m.thread_id, t.audit_since FROM chat_message m JOIN chat_thread t ON t.id = m.thread_id \
         WHERE m.id IN ({}){}",
        placeholders(ids.len()),
        dialect.lock_shared()
    );
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for id in &ids {
        query = query.bind(*id);
    }
    let mut audited: HashMap<MessageId, String> = HashMap::new();
    for row in query.fetch_all(&mut *conn).await? {
        if row.try_get::<Option<Millis>, _>(2)?.is_some() {
            audited.insert(row.try_get(0)?, row.try_get(1)?);
        }
    }
    let candidates: Vec<&(String, MessageId)> = receipts
        .iter()
        .filter(|(_, id)| audited.contains_key(id))
        .collect();
    let mut by_thread: HashMap<String, Vec<(String, String)>> = HashMap::new();
    if candidates.is_empty() {
        return Ok(by_thread);
    }
    let pairs = vec!["(message_id = ? AND user_id = ?)"; candidates.len()].join(" OR ");
    let sql = format!(
        "SELECT message_id, user_id FROM chat_message_receipt WHERE delivered_at IS NULL AND ({pairs}) \
         ORDER BY message_id, user_id{}",
        dialect.lock_exclusive()
    );
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for (user, id) in candidates {
        query = query.bind(*id).bind(user);
    }
    for row in query.fetch_all(&mut *conn).await? {
        let (id, user): (MessageId, String) = (row.try_get(0)?, row.try_get(1)?);
        by_thread
            .entry(audited[&id].clone())
            .or_default()
            .push((id.to_string(), user));
    }
    Ok(by_thread)
}

/// Seals the deliveries [`undelivered_in_audit`] found, set at `at`.
pub(super) async fn seal_deliveries(
    conn: &mut AnyConnection,
    dialect: Dialect,
    set: HashMap<String, Vec<(String, String)>>,
    at: Millis,
    seal: &dyn AuditSeal,
) -> Result<(), sqlx::Error> {
    for (thread, receipts) in set {
        let detail = ReceiptsDelivered {
            at_ms: at,
            receipts,
        };
        append_evidence(
            conn,
            dialect,
            &thread,
            kind::RECEIPTS_DELIVERED,
            HOST,
            &detail,
            seal,
        )
        .await?;
    }
    Ok(())
}

/// Every message of a thread with its receipts (by user), by id.
async fn thread_history(
    conn: &mut AnyConnection,
    thread: &str,
) -> Result<Vec<MessageWithReceipts>, sqlx::Error> {
    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM chat_message WHERE thread_id = ? ORDER BY id");
    let messages = sqlx::query(AssertSqlSafe(sql))
        .bind(thread)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(message_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let rows = sqlx::query(
        "SELECT r.message_id, r.user_id, r.delivered_at, r.read_at FROM chat_message_receipt r \
         JOIN chat_message m ON m.id = r.message_id WHERE m.thread_id = ?",
    )
    .bind(thread)
    .fetch_all(&mut *conn)
    .await?;
    let mut by_message: HashMap<MessageId, Vec<Receipt>> = HashMap::new();
    for r in &rows {
        let receipt = Receipt {
            message_id: r.try_get(0)?,
            user_id: r.try_get(1)?,
            delivered_at_ms: r.try_get(2)?,
            read_at_ms: r.try_get(3)?,
        };
        by_message
            .entry(receipt.message_id)
            .or_default()
            .push(receipt);
    }
    Ok(messages
        .into_iter()
        .map(|message| {
            let mut receipts = by_message.remove(&message.id).unwrap_or_default();
            receipts.sort_by(|a, b| a.user_id.cmp(&b.user_id));
            MessageWithReceipts { message, receipts }
        })
        .collect())
}

/// The audit switches, each run once ([`retrying`] runs them again when
/// MariaDB picks one as a deadlock victim).
impl SqlStore {
    /// A write transaction holding the thread's row exclusively, with the
    /// thread's audit; `None` if the thread does not exist.
    async fn thread_locked(
        &self,
        thread: &str,
    ) -> StoreResult<Option<(Transaction<'static, Any>, Option<ThreadAudit>)>> {
        let mut tx = self.begin(self.dialect.begin_write()).await?;
        let state = audit_state(&mut tx, self.dialect, thread, Lock::Exclusive)
            .await
            .map_err(err)?;
        Ok(state.map(|audit| (tx, audit)))
    }

    async fn audit_start_once(
        &self,
        thread: &str,
        by: &str,
        case: Option<&str>,
        at: Millis,
        seal: &dyn AuditSeal,
    ) -> StoreResult<Option<ThreadAudit>> {
        let Some((mut tx, current)) = self.thread_locked(thread).await? else {
            return Ok(None);
        };
        if let Some(running) = current {
            return Ok(Some(running));
        }
        sqlx::query(
            "UPDATE chat_thread SET audit_since = ?, audit_by = ?, audit_case = ? WHERE id = ?",
        )
        .bind(at)
        .bind(by)
        .bind(case)
        .bind(thread)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        let history = thread_history(&mut tx, thread).await.map_err(err)?;
        let started = AuditStarted {
            by: by.to_owned(),
            case: case.map(str::to_owned),
            messages: history.len(),
        };
        let d = self.dialect;
        append_evidence(&mut tx, d, thread, kind::AUDIT_STARTED, by, &started, seal)
            .await
            .map_err(err)?;
        for part in history.chunks(SEALED_PER_ENTRY) {
            let sealed = HistorySealed {
                messages: part
                    .iter()
                    .map(|m| {
                        let hash = evidence::sealed_hash(&m.message, &m.receipts);
                        (m.message.id.to_string(), hash)
                    })
                    .collect(),
            };
            append_evidence(&mut tx, d, thread, kind::HISTORY_SEALED, by, &sealed, seal)
                .await
                .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        Ok(Some(ThreadAudit {
            since_ms: at,
            by: by.to_owned(),
            case: case.map(str::to_owned),
        }))
    }

    async fn audit_end_once(
        &self,
        thread: &str,
        by: &str,
        seal: &dyn AuditSeal,
    ) -> StoreResult<Option<bool>> {
        let Some((mut tx, current)) = self.thread_locked(thread).await? else {
            return Ok(None);
        };
        if current.is_none() {
            return Ok(Some(false));
        }
        sqlx::query(
            "UPDATE chat_thread SET audit_since = NULL, audit_by = NULL, audit_case = NULL WHERE id = ?",
        )
        .bind(thread)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        let ended = AuditEnded { by: by.to_owned() };
        append_evidence(
            &mut tx,
            self.dialect,
            thread,
            kind::AUDIT_ENDED,
            by,
            &ended,
            seal,
        )
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(Some(true))
    }
}

#[async_trait]
impl AuditChain for SqlStore {
    async fn audit_append(&self, record: &AuditRecord, seal: &dyn AuditSeal) -> StoreResult<i64> {
        for _ in 0..APPEND_ATTEMPTS {
            let mut tx = self.begin(self.dialect.begin_write()).await?;
            audit_state(&mut tx, self.dialect, &record.thread_id, Lock::Exclusive)
                .await
                .map_err(err)?;
            match append(&mut tx, self.dialect, record, seal).await {
                Ok(seq) => {
                    tx.commit().await.map_err(err)?;
                    return Ok(seq);
                }
                Err(e) if is_unique_violation(&e) => continue,
                Err(e) => match err(e) {
                    deadlock if is_deadlock(&deadlock) => continue,
                    other => return Err(other),
                },
            }
        }
        Err(StoreError::Unavailable(anyhow::anyhow!(
            "audit chain contended; retry"
        )))
    }

    async fn audit_start(
        &self,
        thread: &str,
        by: &str,
        case: Option<&str>,
        at: Millis,
        seal: &dyn AuditSeal,
    ) -> StoreResult<Option<ThreadAudit>> {
        retrying(|| self.audit_start_once(thread, by, case, at, seal)).await
    }

    async fn audit_end(
        &self,
        thread: &str,
        by: &str,
        seal: &dyn AuditSeal,
    ) -> StoreResult<Option<bool>> {
        retrying(|| self.audit_end_once(thread, by, seal)).await
    }

    async fn audit_snapshot(&self, thread: &str) -> StoreResult<AuditSnapshot> {
        let mut tx = self.begin(self.dialect.begin_snapshot()).await?;
        let head =
            sqlx::query("SELECT seq, head_mac, key_id FROM chat_audit_head WHERE thread_id = ?")
                .bind(thread)
                .fetch_optional(&mut *tx)
                .await
                .map_err(err)?
                .map(|r| {
                    Ok::<_, sqlx::Error>(AuditHead {
                        seq: r.try_get(0)?,
                        head_mac: r.try_get(1)?,
                        key_id: r.try_get(2)?,
                    })
                })
                .transpose()
                .map_err(err)?;
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM chat_audit_entry WHERE thread_id = ? ORDER BY seq"
        );
        let entries = sqlx::query(AssertSqlSafe(sql))
            .bind(thread)
            .fetch_all(&mut *tx)
            .await
            .map_err(err)?
            .iter()
            .map(audit_from_row)
            .collect::<Result<_, _>>()
            .map_err(err)?;
        let audit = audit_state(&mut tx, self.dialect, thread, Lock::None)
            .await
            .map_err(err)?
            .flatten();
        let history = if audit.is_some() {
            thread_history(&mut tx, thread).await.map_err(err)?
        } else {
            Vec::new()
        };
        tx.commit().await.map_err(err)?;
        Ok(AuditSnapshot {
            head,
            entries,
            audit,
            history,
        })
    }
}
