//! [`ChatStore`] over sqlx's `Any` driver: one implementation for MySQL/MariaDB and SQLite.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, AssertSqlSafe, Executor, Row};

use super::dialect::Dialect;
use super::{
    AddParticipant, AuditChain, AuditEntry, AuditHead, ChatStore, CreateThread, Directory,
    InsertMessage, MarkRead, MessageWithReceipts, Messages, NewMessage, NewReceipt, NewThread,
    Pending, PluginArchive, StoreError, StoreResult, StoredPlugin, ThreadActivity,
};
use crate::domain::model::{Message, Page, ParticipantProfile, Receipt, ThreadMeta, UserProfile};
use crate::domain::{MessageId, Millis, Role};

/// Longest wait for a pooled connection before a call fails as `unavailable`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
const MESSAGE_COLUMNS: &str =
    "id, thread_id, sender_id, body, client_message_id, created_at, request_hash";
/// Receipts marked delivered by one statement at most.
const MARK_DELIVERED_CHUNK: usize = 500;
const AUDIT_COLUMNS: &str =
    "seq, thread_id, plugin, kind, actor_id, detail, created_at, prev_mac, mac";

static MYSQL_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/mysql");
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// The SQL chat store.
#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
    dialect: Dialect,
}

fn err(e: sqlx::Error) -> StoreError {
    let retryable = match &e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        // MySQL lock wait timeout / deadlock; SQLite busy / locked.
        sqlx::Error::Database(db) => {
            matches!(db.code().as_deref(), Some("1205" | "1213" | "5" | "6"))
        }
        _ => false,
    };
    if retryable {
        StoreError::Unavailable(e.into())
    } else {
        StoreError::Other(e.into())
    }
}

fn is_concurrent_migration(e: &sqlx::migrate::MigrateError) -> bool {
    use sqlx::migrate::MigrateError;
    match e {
        MigrateError::Dirty(_) => true,
        MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => {
            is_unique_violation(e)
                || e.as_database_error()
                    .and_then(|d| d.code())
                    .is_some_and(|c| c == "1050")
        }
        _ => false,
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// A stored role; the API only ever writes known ones.
fn role(stored: &str) -> Result<Role, sqlx::Error> {
    Role::parse(stored)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown role {stored:?}").into()))
}

fn message_from_row(row: &AnyRow) -> Result<Message, sqlx::Error> {
    Ok(Message {
        id: row.try_get("id")?,
        thread_id: row.try_get("thread_id")?,
        sender_id: row.try_get("sender_id")?,
        body: row.try_get("body")?,
        client_message_id: row.try_get("client_message_id")?,
        created_at_ms: row.try_get("created_at")?,
        request_hash: row.try_get("request_hash")?,
    })
}

fn audit_from_row(row: &AnyRow) -> Result<AuditEntry, sqlx::Error> {
    Ok(AuditEntry {
        seq: row.try_get("seq")?,
        thread_id: row.try_get("thread_id")?,
        plugin: row.try_get("plugin")?,
        kind: row.try_get("kind")?,
        actor_id: row.try_get("actor_id")?,
        detail: row.try_get("detail")?,
        created_at_ms: row.try_get("created_at")?,
        prev_mac: row.try_get("prev_mac")?,
        mac: row.try_get("mac")?,
    })
}

impl SqlStore {
    /// Runs a page query of messages (`thread`, `bound`, `limit + 1`): up to
    /// `limit` messages in the query's order, and whether there were more.
    async fn message_page(
        &self,
        sql: String,
        thread: &str,
        bound: MessageId,
        limit: u32,
    ) -> StoreResult<Page<Message>> {
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(thread)
            .bind(bound)
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        let has_more = rows.len() > limit as usize;
        let items = rows
            .iter()
            .take(limit as usize)
            .map(message_from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        Ok(Page { items, has_more })
    }

    /// The first column of every row of a query, as strings.
    async fn strings(
        &self,
        query: sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> StoreResult<Vec<String>> {
        let rows = query.fetch_all(&self.pool).await.map_err(err)?;
        rows.iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()
            .map_err(err)
    }

    /// Connects to `url` (`mysql://…` or `sqlite://…`) and applies the migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let store = Self::connect_without_migrating(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects to `url` without touching the schema.
    pub async fn connect_without_migrating(url: &str) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let dialect =
            Dialect::from_url(url).context("DATABASE_URL must start with mysql:// or sqlite://")?;
        let mut options = AnyPoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT);
        options = match dialect {
            Dialect::MySql => options.max_connections(16),
            Dialect::Sqlite => options.max_connections(4).after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL")
                        .await
                        .map(drop)
                })
            }),
        };
        let pool = options
            .connect(url)
            .await
            .with_context(|| format!("connecting to the database ({})", redact(url)))?;
        Ok(Self { pool, dialect })
    }

    /// Applies pending migrations of this dialect.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.dialect {
            Dialect::MySql => &MYSQL_MIGRATIONS,
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
        };
        // Instances starting together race for the same migration (MariaDB ignores
        // sqlx's infinite GET_LOCK timeout): the loser waits for the winner and retries.
        let mut attempt = 0;
        loop {
            match migrator.run(&self.pool).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt < 40 && is_concurrent_migration(&e) => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(e).context("applying migrations"),
            }
        }
    }

    /// Which database this is.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }
}

/// `scheme://user:password@host/db` without the password, for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[async_trait]
impl Directory for SqlStore {
    async fn upsert_user(&self, user: &UserProfile, now: Millis) -> StoreResult<()> {
        sqlx::query(self.dialect.upsert_user())
            .bind(&user.id)
            .bind(&user.display_name)
            .bind(&user.avatar_url)
            .bind(user.role.as_str())
            .bind(now)
            .bind(now)
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(err)
    }

    async fn create_thread(&self, thread: &NewThread) -> StoreResult<CreateThread> {
        let mut tx = self
            .pool
            .begin_with(self.dialect.begin_write())
            .await
            .map_err(err)?;
        if !thread.participant_ids.is_empty() {
            let sql = format!(
                "SELECT id FROM chat_user WHERE id IN ({})",
                placeholders(thread.participant_ids.len())
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for id in &thread.participant_ids {
                query = query.bind(id);
            }
            let rows = query.fetch_all(&mut *tx).await.map_err(err)?;
            let known: Vec<String> = rows
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()
                .map_err(err)?;
            let mut unknown: Vec<String> = thread
                .participant_ids
                .iter()
                .filter(|id| !known.contains(id))
                .cloned()
                .collect();
            if !unknown.is_empty() {
                unknown.dedup();
                return Ok(CreateThread::UnknownUsers(unknown));
            }
        }
        let inserted =
            sqlx::query("INSERT INTO chat_thread (id, title, created_at) VALUES (?, ?, ?)")
                .bind(&thread.id)
                .bind(&thread.title)
                .bind(thread.created_at_ms)
                .execute(&mut *tx)
                .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => return Ok(CreateThread::Conflict),
            other => other.map_err(err)?,
        };
        for user in &thread.participant_ids {
            sqlx::query(self.dialect.insert_participant())
                .bind(&thread.id)
                .bind(user)
                .bind(thread.created_at_ms)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        Ok(CreateThread::Created)
    }

    async fn add_participant(
        &self,
        thread: &str,
        user: &str,
        now: Millis,
    ) -> StoreResult<AddParticipant> {
        let exists = |sql: &'static str, id: &str| {
            let id = id.to_owned();
            async move {
                sqlx::query(sql)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map(|r| r.is_some())
            }
        };
        if !exists("SELECT 1 FROM chat_thread WHERE id = ?", thread)
            .await
            .map_err(err)?
        {
            return Ok(AddParticipant::ThreadNotFound);
        }
        if !exists("SELECT 1 FROM chat_user WHERE id = ?", user)
            .await
            .map_err(err)?
        {
            return Ok(AddParticipant::UnknownUser);
        }
        sqlx::query(self.dialect.insert_participant())
            .bind(thread)
            .bind(user)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(AddParticipant::Added)
    }

    async fn thread_meta(&self, thread: &str) -> StoreResult<Option<ThreadMeta>> {
        let Some(row) = sqlx::query("SELECT id, title, created_at FROM chat_thread WHERE id = ?")
            .bind(thread)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?
        else {
            return Ok(None);
        };
        let rows = sqlx::query(
            "SELECT p.user_id, u.display_name, u.avatar_url, u.role FROM chat_participant p \
             JOIN chat_user u ON u.id = p.user_id WHERE p.thread_id = ? ORDER BY p.joined_at, p.user_id",
        )
        .bind(thread)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        let participants = rows
            .iter()
            .map(|r| {
                Ok(ParticipantProfile {
                    user_id: r.try_get(0)?,
                    display_name: r.try_get(1)?,
                    avatar_url: r.try_get(2)?,
                    role: role(&r.try_get::<String, _>(3)?)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(err)?;
        Ok(Some(ThreadMeta {
            id: row.try_get(0).map_err(err)?,
            title: row.try_get(1).map_err(err)?,
            created_at_ms: row.try_get(2).map_err(err)?,
            participants,
        }))
    }

    async fn threads_of_user(&self, user: &str) -> StoreResult<Vec<String>> {
        self.strings(
            sqlx::query("SELECT thread_id FROM chat_participant WHERE user_id = ?").bind(user),
        )
        .await
    }

    async fn contacts_of_user(&self, user: &str) -> StoreResult<Vec<String>> {
        self.strings(
            sqlx::query(
                "SELECT DISTINCT q.user_id FROM chat_participant p \
                 JOIN chat_participant q ON q.thread_id = p.thread_id \
                 WHERE p.user_id = ? AND q.user_id <> ?",
            )
            .bind(user)
            .bind(user),
        )
        .await
    }
}

#[async_trait]
impl Messages for SqlStore {
    async fn thread_activity(&self, thread: &str, user: &str) -> StoreResult<ThreadActivity> {
        let rows = sqlx::query(
            "SELECT user_id, last_read_message_id FROM chat_participant WHERE thread_id = ?",
        )
        .bind(thread)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        let last_reads: HashMap<String, Option<MessageId>> = rows
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(err)?;
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM chat_message WHERE thread_id = ? ORDER BY id DESC LIMIT 1"
        );
        let last_message = sqlx::query(AssertSqlSafe(sql))
            .bind(thread)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?
            .as_ref()
            .map(message_from_row)
            .transpose()
            .map_err(err)?;
        let mark = last_reads.get(user).copied().flatten().unwrap_or(0);
        let unread_count: i64 = sqlx::query(
            "SELECT COUNT(*) FROM chat_message WHERE thread_id = ? AND id > ? AND sender_id <> ?",
        )
        .bind(thread)
        .bind(mark)
        .bind(user)
        .fetch_one(&self.pool)
        .await
        .and_then(|r| r.try_get(0))
        .map_err(err)?;
        Ok(ThreadActivity {
            last_message,
            unread_count,
            last_reads,
        })
    }

    async fn message_by_client_id(
        &self,
        sender: &str,
        client_message_id: &str,
    ) -> StoreResult<Option<Message>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM chat_message WHERE sender_id = ? AND client_message_id = ?"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(sender)
            .bind(client_message_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(message_from_row).transpose().map_err(err)
    }

    async fn insert_message(
        &self,
        m: &NewMessage,
        receipts: &[NewReceipt],
    ) -> StoreResult<InsertMessage> {
        let mut tx = self
            .pool
            .begin_with(self.dialect.begin_write())
            .await
            .map_err(err)?;
        let inserted = sqlx::query(
            "INSERT INTO chat_message (thread_id, sender_id, body, client_message_id, created_at, request_hash) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&m.thread_id)
        .bind(&m.sender_id)
        .bind(&m.body)
        .bind(&m.client_message_id)
        .bind(m.created_at_ms)
        .bind(&m.request_hash)
        .execute(&mut *tx)
        .await;
        let id = match inserted {
            Err(e) if is_unique_violation(&e) => {
                tx.rollback().await.map_err(err)?;
                let existing = self
                    .message_by_client_id(&m.sender_id, &m.client_message_id)
                    .await?;
                return existing.map(InsertMessage::Existing).ok_or_else(|| {
                    StoreError::Other(anyhow::anyhow!("duplicate key without a row"))
                });
            }
            other => match other.map_err(err)?.last_insert_id() {
                Some(id) => id,
                // sqlx's Any driver reports no insert id for SQLite; ask the connection.
                None => sqlx::query(self.dialect.last_insert_id())
                    .fetch_one(&mut *tx)
                    .await
                    .and_then(|r| r.try_get(0))
                    .map_err(err)?,
            },
        };
        if !receipts.is_empty() {
            let sql = format!(
                "INSERT INTO chat_message_receipt (message_id, user_id, delivered_at, read_at) VALUES {}",
                vec!["(?, ?, ?, ?)"; receipts.len()].join(", ")
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for r in receipts {
                query = query
                    .bind(id)
                    .bind(&r.user_id)
                    .bind(r.delivered.then_some(m.created_at_ms))
                    .bind(r.read.then_some(m.created_at_ms));
            }
            query.execute(&mut *tx).await.map_err(err)?;
        }
        sqlx::query(
            "UPDATE chat_participant SET last_read_message_id = ? WHERE thread_id = ? AND user_id = ? \
             AND (last_read_message_id IS NULL OR last_read_message_id < ?)",
        )
        .bind(id)
        .bind(&m.thread_id)
        .bind(&m.sender_id)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(InsertMessage::Inserted(Message {
            id,
            thread_id: m.thread_id.clone(),
            sender_id: m.sender_id.clone(),
            body: m.body.clone(),
            client_message_id: m.client_message_id.clone(),
            created_at_ms: m.created_at_ms,
            request_hash: Some(m.request_hash.clone()),
        }))
    }

    async fn mark_read(
        &self,
        thread: &str,
        user: &str,
        message: MessageId,
        now: Millis,
    ) -> StoreResult<MarkRead> {
        let mut tx = self
            .pool
            .begin_with(self.dialect.begin_write())
            .await
            .map_err(err)?;
        let moved = sqlx::query(
            "UPDATE chat_participant SET last_read_message_id = ? WHERE thread_id = ? AND user_id = ? \
             AND (last_read_message_id IS NULL OR last_read_message_id < ?) \
             AND EXISTS (SELECT 1 FROM chat_message WHERE id = ? AND thread_id = ?)",
        )
        .bind(message)
        .bind(thread)
        .bind(user)
        .bind(message)
        .bind(message)
        .bind(thread)
        .execute(&mut *tx)
        .await
        .map_err(err)?
        .rows_affected()
            > 0;
        if !moved {
            let in_thread =
                sqlx::query("SELECT 1 FROM chat_message WHERE id = ? AND thread_id = ?")
                    .bind(message)
                    .bind(thread)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(err)?
                    .is_some();
            if !in_thread {
                return Ok(MarkRead::NotInThread);
            }
        }
        let mark: Option<MessageId> = sqlx::query(
            "SELECT last_read_message_id FROM chat_participant WHERE thread_id = ? AND user_id = ?",
        )
        .bind(thread)
        .bind(user)
        .fetch_optional(&mut *tx)
        .await
        .map_err(err)?
        .map(|r| r.try_get(0))
        .transpose()
        .map_err(err)?
        .flatten();
        let mark = mark.unwrap_or(message);
        if moved {
            sqlx::query(
                "UPDATE chat_message_receipt SET read_at = ?, delivered_at = COALESCE(delivered_at, ?) \
                 WHERE user_id = ? AND read_at IS NULL AND message_id <= ? \
                 AND message_id IN (SELECT id FROM chat_message WHERE thread_id = ? AND id <= ?)",
            )
            .bind(now)
            .bind(now)
            .bind(user)
            .bind(mark)
            .bind(thread)
            .bind(mark)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        Ok(MarkRead::Marked { mark, moved })
    }

    async fn mark_delivered(
        &self,
        receipts: &[(String, MessageId)],
        now: Millis,
    ) -> StoreResult<()> {
        // One statement for a whole batch of acknowledgements; each pair is a
        // primary-key lookup.
        for chunk in receipts.chunks(MARK_DELIVERED_CHUNK) {
            let pairs = vec!["(message_id = ? AND user_id = ?)"; chunk.len()].join(" OR ");
            let sql = format!(
                "UPDATE chat_message_receipt SET delivered_at = ? WHERE delivered_at IS NULL AND ({pairs})"
            );
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(now);
            for (user, id) in chunk {
                query = query.bind(*id).bind(user);
            }
            query.execute(&self.pool).await.map_err(err)?;
        }
        Ok(())
    }

    async fn pending(
        &self,
        user: &str,
        after: Option<MessageId>,
        limit: u32,
    ) -> StoreResult<Pending> {
        // Two index ranges (unacknowledged; after the cursor), merged.
        const OWED: &str = "SELECT message_id FROM chat_message_receipt WHERE user_id = ? AND delivered_at IS NULL \
             UNION SELECT message_id FROM chat_message_receipt WHERE user_id = ? AND message_id > ?";
        let after = after.unwrap_or(MessageId::MAX);
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM chat_message JOIN ({OWED}) owed ON owed.message_id = chat_message.id \
             ORDER BY id DESC LIMIT ?"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(user)
            .bind(user)
            .bind(after)
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        let mut messages = rows
            .iter()
            .map(message_from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let overflow = messages.len() > limit as usize;
        messages.truncate(limit as usize);
        messages.reverse();
        if !overflow {
            return Ok(Pending {
                messages,
                overflow_threads: Vec::new(),
            });
        }
        let sql = format!(
            "SELECT DISTINCT thread_id FROM chat_message JOIN ({OWED}) owed ON owed.message_id = chat_message.id \
             ORDER BY thread_id"
        );
        let overflow_threads = sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(user)
            .bind(user)
            .bind(after)
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        Ok(Pending {
            messages,
            overflow_threads,
        })
    }

    async fn history_after(
        &self,
        thread: &str,
        after: MessageId,
        limit: u32,
    ) -> StoreResult<Page<Message>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM chat_message WHERE thread_id = ? AND id > ? ORDER BY id LIMIT ?"
        );
        self.message_page(sql, thread, after, limit).await
    }

    async fn history(
        &self,
        thread: &str,
        before: Option<MessageId>,
        limit: u32,
    ) -> StoreResult<Page<Message>> {
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM chat_message WHERE thread_id = ? AND id < ? ORDER BY id DESC LIMIT ?"
        );
        let before = before.unwrap_or(MessageId::MAX);
        let mut page = self.message_page(sql, thread, before, limit).await?;
        page.items.reverse();
        Ok(page)
    }

    async fn history_with_receipts(
        &self,
        thread: &str,
        before: Option<MessageId>,
        limit: u32,
    ) -> StoreResult<Page<MessageWithReceipts>> {
        let page = self.history(thread, before, limit).await?;
        let (Some(first), Some(last)) = (page.items.first(), page.items.last()) else {
            return Ok(Page {
                items: Vec::new(),
                has_more: page.has_more,
            });
        };
        let rows = sqlx::query(
            "SELECT r.message_id, r.user_id, r.delivered_at, r.read_at FROM chat_message_receipt r \
             JOIN chat_message m ON m.id = r.message_id \
             WHERE m.thread_id = ? AND r.message_id BETWEEN ? AND ? ORDER BY r.message_id, r.user_id",
        )
        .bind(thread)
        .bind(first.id)
        .bind(last.id)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        let mut by_message: HashMap<MessageId, Vec<Receipt>> = HashMap::new();
        for r in &rows {
            let receipt = Receipt {
                message_id: r.try_get(0).map_err(err)?,
                user_id: r.try_get(1).map_err(err)?,
                delivered_at_ms: r.try_get(2).map_err(err)?,
                read_at_ms: r.try_get(3).map_err(err)?,
            };
            by_message
                .entry(receipt.message_id)
                .or_default()
                .push(receipt);
        }
        let items = page
            .items
            .into_iter()
            .map(|message| MessageWithReceipts {
                receipts: by_message.remove(&message.id).unwrap_or_default(),
                message,
            })
            .collect();
        Ok(Page {
            items,
            has_more: page.has_more,
        })
    }
}

#[async_trait]
impl AuditChain for SqlStore {
    async fn audit_tail(&self, thread: &str) -> StoreResult<Option<AuditEntry>> {
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM chat_audit_entry WHERE thread_id = ? ORDER BY seq DESC LIMIT 1"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(thread)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(audit_from_row).transpose().map_err(err)
    }

    async fn audit_insert(&self, e: &AuditEntry, head_mac: &str) -> StoreResult<bool> {
        let mut tx = self
            .pool
            .begin_with(self.dialect.begin_write())
            .await
            .map_err(err)?;
        let inserted = sqlx::query(
            "INSERT INTO chat_audit_entry (seq, thread_id, plugin, kind, actor_id, detail, created_at, prev_mac, mac) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(e.seq)
        .bind(&e.thread_id)
        .bind(&e.plugin)
        .bind(&e.kind)
        .bind(&e.actor_id)
        .bind(&e.detail)
        .bind(e.created_at_ms)
        .bind(&e.prev_mac)
        .bind(&e.mac)
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(error) if is_unique_violation(&error) => return Ok(false),
            other => other.map_err(err)?,
        };
        sqlx::query(self.dialect.upsert_audit_head())
            .bind(&e.thread_id)
            .bind(e.seq)
            .bind(head_mac)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(true)
    }

    async fn audit_entries(&self, thread: &str) -> StoreResult<Vec<AuditEntry>> {
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM chat_audit_entry WHERE thread_id = ? ORDER BY seq"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(thread)
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        rows.iter()
            .map(audit_from_row)
            .collect::<Result<_, _>>()
            .map_err(err)
    }

    async fn audit_head(&self, thread: &str) -> StoreResult<Option<AuditHead>> {
        let row = sqlx::query("SELECT seq, head_mac FROM chat_audit_head WHERE thread_id = ?")
            .bind(thread)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.map(|r| {
            Ok(AuditHead {
                seq: r.try_get(0)?,
                head_mac: r.try_get(1)?,
            })
        })
        .transpose()
        .map_err(err)
    }
}

#[async_trait]
impl PluginArchive for SqlStore {
    async fn plugin_save(&self, plugin: &StoredPlugin, now: Millis) -> StoreResult<()> {
        sqlx::query(self.dialect.upsert_plugin())
            .bind(&plugin.name)
            .bind(&plugin.manifest)
            .bind(plugin.wasm.clone())
            .bind(now)
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(err)
    }

    async fn plugin_delete(&self, name: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM chat_plugin WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(done.rows_affected() > 0)
    }

    async fn plugin_get(&self, name: &str) -> StoreResult<Option<StoredPlugin>> {
        let row = sqlx::query("SELECT name, manifest, wasm FROM chat_plugin WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.map(|r| {
            Ok(StoredPlugin {
                name: r.try_get(0)?,
                manifest: r.try_get(1)?,
                wasm: r.try_get(2)?,
            })
        })
        .transpose()
        .map_err(err)
    }

    async fn plugin_list(&self) -> StoreResult<Vec<StoredPlugin>> {
        let rows = sqlx::query("SELECT name, manifest, wasm FROM chat_plugin ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        rows.iter()
            .map(|r| {
                Ok(StoredPlugin {
                    name: r.try_get(0)?,
                    manifest: r.try_get(1)?,
                    wasm: r.try_get(2)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(err)
    }
}

#[async_trait]
impl ChatStore for SqlStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(err)
    }

    fn parallelism(&self) -> usize {
        self.pool.options().get_max_connections() as usize
    }
}
