//! [`ChatStore`] over sqlx's `Any` driver: one implementation for MySQL/MariaDB and SQLite.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, AssertSqlSafe, Executor, Row};

use super::dialect::Dialect;
use super::{
    AddParticipant, AdminQueries, AuditEntry, AuditSeal, ChatStore, CreateThread, DecisionRecord,
    Directory, InsertMessage, MarkRead, MessageWithReceipts, Messages, NewMessage, NewReceipt,
    NewRefusal, NewThread, ParticipantMatch, ParticipantRecord, Pending, PluginArchive, StoreError,
    StoreResult, StoredPlugin, ThreadActivity, ThreadRecord, ThreadSearch, UserSearch,
};
use crate::domain::model::{Message, Page, ParticipantProfile, Receipt, ThreadMeta, UserProfile};
use crate::domain::{MessageId, Millis, Role, is_valid_id};

/// Longest wait for a pooled connection (its liveness ping included) before a
/// call fails as `unavailable`, unless the caller sets one (`CHAT_BACKEND_TIMEOUT_MS`).
const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
const MESSAGE_COLUMNS: &str =
    "id, thread_id, sender_id, body, client_message_id, created_at, request_hash";
/// Receipts marked delivered by one statement at most.
const MARK_DELIVERED_CHUNK: usize = 500;
const AUDIT_COLUMNS: &str =
    "seq, thread_id, plugin, kind, actor_id, detail, created_at, prev_mac, mac, key_id";
/// The columns of a [`ThreadRecord`], of `chat_thread t`.
const THREAD_COLUMNS: &str = "t.id, t.title, t.created_at, t.last_activity_at, t.message_count, t.last_message_id, \
     t.audit_since, t.audit_by, t.audit_case";
const USER_COLUMNS: &str = "id, display_name, avatar_url, role";
/// Display names [`SqlStore::fold_names`] folds per round trip.
const FOLD_BATCH: i64 = 500;

mod audit;
mod decisions;

static MYSQL_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/mysql");
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// The SQL chat store.
#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
    dialect: Dialect,
}

/// The MySQL error number of a database error (`None` on SQLite).
fn mysql_number(e: &sqlx::Error) -> Option<u16> {
    e.as_database_error()?
        .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .map(|d| d.number())
}

fn err(e: sqlx::Error) -> StoreError {
    let retryable = match &e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        // MySQL lock wait timeout (1205) / deadlock (1213); SQLite busy / locked.
        sqlx::Error::Database(db) => {
            matches!(mysql_number(&e), Some(1205 | 1213))
                || matches!(db.code().as_deref(), Some("5" | "6"))
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

/// Write transactions run this often at most when MariaDB picks them as
/// deadlock victims.
const DEADLOCK_ATTEMPTS: usize = 4;

/// True for a transaction MariaDB rolled back to break a deadlock (1213): it
/// left nothing behind, so it may run again.
fn is_deadlock(e: &StoreError) -> bool {
    let StoreError::Unavailable(cause) = e else {
        return false;
    };
    cause.downcast_ref::<sqlx::Error>().and_then(mysql_number) == Some(1213)
}

/// Runs a write transaction, again while it is a deadlock victim.
async fn retrying<T, F, Fut>(mut transaction: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StoreResult<T>>,
{
    for _ in 1..DEADLOCK_ATTEMPTS {
        match transaction().await {
            Err(e) if is_deadlock(&e) => {
                tracing::debug!(error = %e, "deadlock victim; running again")
            }
            other => return other,
        }
    }
    transaction().await
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

fn thread_from_row(row: &AnyRow) -> Result<ThreadRecord, sqlx::Error> {
    Ok(ThreadRecord {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        created_at_ms: row.try_get("created_at")?,
        last_activity_at_ms: row.try_get("last_activity_at")?,
        message_count: row.try_get("message_count")?,
        last_message_id: row.try_get("last_message_id")?,
        audit: audit::thread_audit(row)?,
    })
}

fn user_from_row(row: &AnyRow) -> Result<UserProfile, sqlx::Error> {
    Ok(UserProfile {
        id: row.try_get("id")?,
        display_name: row.try_get("display_name")?,
        avatar_url: row.try_get("avatar_url")?,
        role: role(&row.try_get::<String, _>("role")?)?,
    })
}

/// The search key of a display name (`chat_user.name_key`): each character
/// lowercased on its own (Unicode, no context rules), whitespace and control
/// characters as one space each. A name search folds its prefix the same way,
/// so it ignores case, and every key sorts after any prefix of it in both
/// databases (MariaDB's `PAD SPACE` then never meets a character below the space).
pub fn name_key(name: &str) -> String {
    name.chars()
        .flat_map(|c| {
            let c = if c.is_whitespace() || c.is_control() {
                ' '
            } else {
                c
            };
            c.to_lowercase()
        })
        .collect()
}

/// The least string greater than every string that starts with `prefix`, in
/// code-point order (that of SQLite's BINARY and MariaDB's `utf8mb4_bin`):
/// `prefix` with its last character incremented. `None` when no such string
/// exists (every character is `char::MAX`).
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last as u32 + 1 {
            0xD800 => Some('\u{E000}'), // past the surrogates
            n => char::from_u32(n),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// A value bound to a statement built at run time.
#[derive(Debug)]
enum Arg {
    Text(String),
    Int(i64),
}

/// A statement built at run time and the values of its placeholders, in order.
#[derive(Debug)]
struct Statement {
    sql: String,
    args: Vec<Arg>,
}

impl Statement {
    /// The query, every argument bound.
    fn query(&self) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments> {
        self.args.iter().fold(
            sqlx::query(AssertSqlSafe(self.sql.as_str())),
            |q, arg| match arg {
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::Int(n) => q.bind(*n),
            },
        )
    }
}

/// `column >= prefix AND column < end` (no end when none exists): the range of
/// the strings that start with `prefix`, read by index.
fn prefix_range(column: &str, prefix: &str, args: &mut Vec<Arg>) -> String {
    args.push(Arg::Text(prefix.to_owned()));
    match prefix_end(prefix) {
        Some(end) => {
            args.push(Arg::Text(end));
            format!("{column} >= ? AND {column} < ?")
        }
        None => format!("{column} >= ?"),
    }
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
        key_id: row.try_get("key_id")?,
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
        Self::connect_with_timeout(url, DEFAULT_ACQUIRE_TIMEOUT).await
    }

    /// [`SqlStore::connect`], where a call that gets no pooled connection within
    /// `acquire_timeout` fails as `unavailable`. A stalled server is found here:
    /// each checkout pings the connection first, within that time.
    pub async fn connect_with_timeout(
        url: &str,
        acquire_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let store = Self::connect_without_migrating(url, acquire_timeout).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects to `url` without touching the schema.
    async fn connect_without_migrating(
        url: &str,
        acquire_timeout: Duration,
    ) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let dialect =
            Dialect::from_url(url).context("DATABASE_URL must start with mysql:// or sqlite://")?;
        let mut options = AnyPoolOptions::new().acquire_timeout(acquire_timeout);
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

    /// Starts a transaction with `begin` (e.g. [`Dialect::begin_write`]).
    ///
    /// The `BEGIN` runs to its end in a task of its own even when the caller
    /// gives up on it (an event past its deadline): sqlx counts a transaction
    /// only once `BEGIN`'s answer is read, so a `BEGIN` cancelled in flight
    /// used to leave its connection inside a transaction nothing rolled back,
    /// and the pool handed it on: the next borrower read a stale snapshot and
    /// its writes waited uncommitted (the Postgres form is sqlx issue 4393; the
    /// MySQL transaction manager has the same window). Finished in its task,
    /// an abandoned transaction is dropped there and rolled back.
    fn begin(
        &self,
        begin: &'static str,
    ) -> impl Future<Output = StoreResult<sqlx::Transaction<'static, sqlx::Any>>> + 'static {
        let pool = self.pool.clone();
        let task = tokio::spawn(async move { pool.begin_with(begin).await });
        async move {
            match task.await {
                Ok(begun) => begun.map_err(err),
                Err(e) => Err(StoreError::Other(e.into())),
            }
        }
    }

    /// Applies pending migrations of this dialect, then folds the display
    /// names they left without a search key ([`SqlStore::fold_names`]).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        self.run_migrations().await?;
        self.fold_names().await.context("folding display names")
    }

    async fn run_migrations(&self) -> anyhow::Result<()> {
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

    /// Sets the search key ([`name_key`]) of every user that has none: the
    /// migration that added it folded printable ASCII names in SQL, where
    /// `LOWER()` is the same fold, and left the others to this, so both
    /// databases fold alike. Usually finds none; a profile written meanwhile
    /// keeps the key its write set.
    async fn fold_names(&self) -> StoreResult<()> {
        loop {
            let rows = sqlx::query(
                "SELECT id, display_name FROM chat_user WHERE name_key IS NULL LIMIT ?",
            )
            .bind(FOLD_BATCH)
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
            let mut folded = 0;
            for row in &rows {
                let (id, name): (String, String) =
                    (row.try_get(0).map_err(err)?, row.try_get(1).map_err(err)?);
                folded += sqlx::query(
                    "UPDATE chat_user SET name_key = ? WHERE id = ? AND display_name = ? AND name_key IS NULL",
                )
                .bind(name_key(&name))
                .bind(&id)
                .bind(&name)
                .execute(&self.pool)
                .await
                .map_err(err)?
                .rows_affected();
            }
            if folded == 0 {
                return Ok(());
            }
        }
    }

    /// The statement of [`AdminQueries::search_threads`] (`limit + 1` rows,
    /// to tell whether more follow). Each filter is read by an index: a
    /// participant through `chat_user`'s primary key and `idx_user_name_key`
    /// to `chat_participant`'s user index, a title through the full-text
    /// index, the dates and the cursor through `idx_thread_activity`, which
    /// also gives the order.
    fn thread_search(&self, search: &ThreadSearch) -> Statement {
        let mut args = Vec::new();
        let mut conditions = Vec::new();
        for wanted in &search.participants {
            conditions.push(match wanted {
                ParticipantMatch::User(id) => {
                    args.push(Arg::Text(id.clone()));
                    "t.id IN (SELECT p.thread_id FROM chat_participant p WHERE p.user_id = ?)"
                        .to_owned()
                }
                ParticipantMatch::UserOrNamePrefix(term) => {
                    args.push(Arg::Text(term.clone()));
                    let names = prefix_range("u.name_key", &name_key(term), &mut args);
                    format!(
                        "t.id IN (SELECT p.thread_id FROM chat_participant p JOIN chat_user u ON u.id = p.user_id \
                         WHERE u.id = ? OR ({names}))"
                    )
                }
            });
        }
        if !search.title_words.is_empty() {
            conditions.push(self.dialect.title_match().to_owned());
            args.push(Arg::Text(self.dialect.title_query(&search.title_words)));
        }
        if let Some(from) = search.active_from {
            conditions.push("t.last_activity_at >= ?".to_owned());
            args.push(Arg::Int(from));
        }
        if let Some(before) = search.active_before {
            conditions.push("t.last_activity_at < ?".to_owned());
            args.push(Arg::Int(before));
        }
        if let Some(after) = &search.after {
            conditions.push(
                "(t.last_activity_at < ? OR (t.last_activity_at = ? AND t.id < ?))".to_owned(),
            );
            args.extend([
                Arg::Int(after.last_activity_at_ms),
                Arg::Int(after.last_activity_at_ms),
                Arg::Text(after.thread_id.clone()),
            ]);
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        args.push(Arg::Int(i64::from(search.limit) + 1));
        Statement {
            sql: format!(
                "SELECT {THREAD_COLUMNS} FROM chat_thread t{filter} \
                 ORDER BY t.last_activity_at DESC, t.id DESC LIMIT ?"
            ),
            args,
        }
    }

    /// How the database would run [`AdminQueries::search_threads`]: one line
    /// per step, `<table> <access type> <index>` on MySQL (EXPLAIN), the
    /// step's detail on SQLite (EXPLAIN QUERY PLAN).
    #[cfg(test)]
    pub(crate) async fn plan_of_thread_search(
        &self,
        search: &ThreadSearch,
    ) -> StoreResult<Vec<String>> {
        let mut statement = self.thread_search(search);
        statement.sql = match self.dialect {
            Dialect::MySql => format!("EXPLAIN {}", statement.sql),
            Dialect::Sqlite => format!("EXPLAIN QUERY PLAN {}", statement.sql),
        };
        let rows = statement.query().fetch_all(&self.pool).await.map_err(err)?;
        rows.iter()
            .map(|r| match self.dialect {
                Dialect::MySql => Ok(format!(
                    "{} {} {}",
                    r.try_get::<Option<String>, _>("table")?.unwrap_or_default(),
                    r.try_get::<Option<String>, _>("type")?.unwrap_or_default(),
                    r.try_get::<Option<String>, _>("key")?.unwrap_or_default()
                )),
                Dialect::Sqlite => r.try_get::<String, _>("detail"),
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(err)
    }

    /// Up to `limit` users of one index range, by id, after `after`.
    async fn users_in_range(
        &self,
        column: &str,
        prefix: &str,
        after: &str,
        limit: i64,
    ) -> StoreResult<Vec<UserProfile>> {
        let mut args = Vec::new();
        let range = prefix_range(column, prefix, &mut args);
        args.extend([Arg::Text(after.to_owned()), Arg::Int(limit)]);
        let statement = Statement {
            sql: format!(
                "SELECT {USER_COLUMNS} FROM chat_user WHERE {range} AND id > ? ORDER BY id LIMIT ?"
            ),
            args,
        };
        let rows = statement.query().fetch_all(&self.pool).await.map_err(err)?;
        rows.iter()
            .map(user_from_row)
            .collect::<Result<_, _>>()
            .map_err(err)
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
            .bind(name_key(&user.display_name))
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
        let mut tx = self.begin(self.dialect.begin_write()).await?;
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
        let inserted = sqlx::query(
            "INSERT INTO chat_thread (id, title, created_at, last_activity_at) VALUES (?, ?, ?, ?)",
        )
        .bind(&thread.id)
        .bind(&thread.title)
        .bind(thread.created_at_ms)
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

/// The write transactions of [`Messages`], each run once; [`retrying`] runs
/// them again when MariaDB picks one as a deadlock victim.
impl SqlStore {
    async fn insert_message_once(
        &self,
        m: &NewMessage,
        receipts: &[NewReceipt],
        seal: &dyn AuditSeal,
    ) -> StoreResult<InsertMessage> {
        let mut tx = self.begin(self.dialect.begin_write()).await?;
        // The thread's counters first: the exclusive lock on its row comes before
        // the shared one the message's foreign key takes, so two sends of a thread
        // queue on it instead of deadlocking on the upgrade (MySQL). A repeated
        // clientMessageId rolls it back with the rest.
        sqlx::query(
            "UPDATE chat_thread SET message_count = message_count + 1, \
             last_activity_at = CASE WHEN last_activity_at < ? THEN ? ELSE last_activity_at END WHERE id = ?",
        )
        .bind(m.created_at_ms)
        .bind(m.created_at_ms)
        .bind(&m.thread_id)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        let audited = audit::audit_state(&mut tx, self.dialect, &m.thread_id, audit::Lock::None)
            .await
            .map_err(err)?
            .flatten()
            .is_some();
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
        // Never backwards: a send that got an earlier id may commit later.
        sqlx::query(
            "UPDATE chat_thread SET last_message_id = ? WHERE id = ? \
             AND (last_message_id IS NULL OR last_message_id < ?)",
        )
        .bind(id)
        .bind(&m.thread_id)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        let message = Message {
            id,
            thread_id: m.thread_id.clone(),
            sender_id: m.sender_id.clone(),
            body: m.body.clone(),
            client_message_id: m.client_message_id.clone(),
            created_at_ms: m.created_at_ms,
            request_hash: Some(m.request_hash.clone()),
        };
        for by in &m.rewritten_by {
            let decision = DecisionRecord {
                message_id: Some(id),
                user_id: m.sender_id.clone(),
                by: by.clone(),
                hook: decisions::MESSAGE_HOOK.into(),
                verdict: "rewrite".into(),
                reason: None,
                input_sha256: m.request_hash.clone(),
                at_ms: m.created_at_ms,
            };
            decisions::insert(&mut tx, &decision, &m.thread_id)
                .await
                .map_err(err)?;
        }
        if audited {
            let mut stored: Vec<Receipt> = receipts
                .iter()
                .map(|r| Receipt {
                    message_id: id,
                    user_id: r.user_id.clone(),
                    delivered_at_ms: r.delivered.then_some(m.created_at_ms),
                    read_at_ms: r.read.then_some(m.created_at_ms),
                })
                .collect();
            stored.sort_by(|a, b| a.user_id.cmp(&b.user_id));
            audit::seal_message(
                &mut tx,
                self.dialect,
                &message,
                &stored,
                &m.rewritten_by,
                seal,
            )
            .await
            .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        Ok(InsertMessage::Inserted(message))
    }

    async fn mark_read_once(
        &self,
        thread: &str,
        user: &str,
        message: MessageId,
        now: Millis,
        seal: &dyn AuditSeal,
    ) -> StoreResult<MarkRead> {
        let mut tx = self.begin(self.dialect.begin_write()).await?;
        // First the thread's row, shared: an audit starting waits for this read.
        let audited = audit::audit_state(&mut tx, self.dialect, thread, audit::Lock::Shared)
            .await
            .map_err(err)?
            .flatten()
            .is_some();
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
            let set = if audited {
                audit::unread(&mut tx, self.dialect, thread, user, mark)
                    .await
                    .map_err(err)?
            } else {
                Vec::new()
            };
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
            audit::seal_read(&mut tx, self.dialect, thread, user, &set, now, seal)
                .await
                .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        Ok(MarkRead::Marked { mark, moved })
    }

    async fn record_refusal_once(&self, r: &NewRefusal, seal: &dyn AuditSeal) -> StoreResult<()> {
        let mut tx = self.begin(self.dialect.begin_write()).await?;
        let audited =
            audit::audit_state(&mut tx, self.dialect, &r.thread_id, audit::Lock::Exclusive)
                .await
                .map_err(err)?
                .flatten()
                .is_some();
        let decision = DecisionRecord {
            message_id: None,
            user_id: r.user_id.clone(),
            by: r.by.clone(),
            hook: decisions::MESSAGE_HOOK.into(),
            verdict: "reject".into(),
            reason: Some(r.reason.clone()),
            input_sha256: r.request_hash.clone(),
            at_ms: r.at_ms,
        };
        decisions::insert(&mut tx, &decision, &r.thread_id)
            .await
            .map_err(err)?;
        if audited {
            audit::seal_refusal(&mut tx, self.dialect, r, seal)
                .await
                .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        Ok(())
    }

    async fn mark_delivered_once(
        &self,
        chunk: &[(String, MessageId)],
        now: Millis,
        seal: &dyn AuditSeal,
    ) -> StoreResult<()> {
        let mut tx = self.begin(self.dialect.begin_write()).await?;
        // Their threads' rows first, shared, for the audit.
        let audited = audit::undelivered_in_audit(&mut tx, self.dialect, chunk)
            .await
            .map_err(err)?;
        let pairs = vec!["(message_id = ? AND user_id = ?)"; chunk.len()].join(" OR ");
        let sql = format!(
            "UPDATE chat_message_receipt SET delivered_at = ? WHERE delivered_at IS NULL AND ({pairs})"
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(now);
        for (user, id) in chunk {
            query = query.bind(*id).bind(user);
        }
        query.execute(&mut *tx).await.map_err(err)?;
        audit::seal_deliveries(&mut tx, self.dialect, audited, now, seal)
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)?;
        Ok(())
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
        seal: &dyn AuditSeal,
    ) -> StoreResult<InsertMessage> {
        retrying(|| self.insert_message_once(m, receipts, seal)).await
    }

    async fn mark_read(
        &self,
        thread: &str,
        user: &str,
        message: MessageId,
        now: Millis,
        seal: &dyn AuditSeal,
    ) -> StoreResult<MarkRead> {
        retrying(|| self.mark_read_once(thread, user, message, now, seal)).await
    }

    async fn record_refusal(&self, r: &NewRefusal, seal: &dyn AuditSeal) -> StoreResult<()> {
        retrying(|| self.record_refusal_once(r, seal)).await
    }

    async fn mark_delivered(
        &self,
        receipts: &[(String, MessageId)],
        now: Millis,
        seal: &dyn AuditSeal,
    ) -> StoreResult<()> {
        // One statement for a whole batch of acknowledgements; each pair is a
        // primary-key lookup.
        for chunk in receipts.chunks(MARK_DELIVERED_CHUNK) {
            retrying(|| self.mark_delivered_once(chunk, now, seal)).await?;
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
impl AdminQueries for SqlStore {
    async fn search_threads(&self, search: &ThreadSearch) -> StoreResult<Page<ThreadRecord>> {
        let rows = self
            .thread_search(search)
            .query()
            .fetch_all(&self.pool)
            .await
            .map_err(err)?;
        let has_more = rows.len() > search.limit as usize;
        let items = rows
            .iter()
            .take(search.limit as usize)
            .map(thread_from_row)
            .collect::<Result<_, _>>()
            .map_err(err)?;
        Ok(Page { items, has_more })
    }

    async fn thread_record(&self, thread: &str) -> StoreResult<Option<ThreadRecord>> {
        let sql = format!("SELECT {THREAD_COLUMNS} FROM chat_thread t WHERE t.id = ?");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(thread)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(thread_from_row).transpose().map_err(err)
    }

    async fn participants_of(
        &self,
        threads: &[String],
    ) -> StoreResult<HashMap<String, Vec<ParticipantRecord>>> {
        if threads.is_empty() {
            return Ok(HashMap::new());
        }
        let statement = Statement {
            sql: format!(
                "SELECT p.thread_id, u.id, u.display_name, u.avatar_url, u.role, p.last_read_message_id \
                 FROM chat_participant p JOIN chat_user u ON u.id = p.user_id \
                 WHERE p.thread_id IN ({}) ORDER BY p.thread_id, p.joined_at, p.user_id",
                placeholders(threads.len())
            ),
            args: threads.iter().cloned().map(Arg::Text).collect(),
        };
        let rows = statement.query().fetch_all(&self.pool).await.map_err(err)?;
        let mut by_thread: HashMap<String, Vec<ParticipantRecord>> = HashMap::new();
        for r in &rows {
            let record = ParticipantRecord {
                profile: ParticipantProfile {
                    user_id: r.try_get(1).map_err(err)?,
                    display_name: r.try_get(2).map_err(err)?,
                    avatar_url: r.try_get(3).map_err(err)?,
                    role: role(&r.try_get::<String, _>(4).map_err(err)?).map_err(err)?,
                },
                last_read_message_id: r.try_get(5).map_err(err)?,
            };
            by_thread
                .entry(r.try_get(0).map_err(err)?)
                .or_default()
                .push(record);
        }
        Ok(by_thread)
    }

    async fn messages_by_id(&self, ids: &[MessageId]) -> StoreResult<Vec<Message>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let statement = Statement {
            sql: format!(
                "SELECT {MESSAGE_COLUMNS} FROM chat_message WHERE id IN ({})",
                placeholders(ids.len())
            ),
            args: ids.iter().copied().map(Arg::Int).collect(),
        };
        let rows = statement.query().fetch_all(&self.pool).await.map_err(err)?;
        rows.iter()
            .map(message_from_row)
            .collect::<Result<_, _>>()
            .map_err(err)
    }

    async fn decisions_of_thread(
        &self,
        thread: &str,
        limit: u32,
    ) -> StoreResult<Vec<DecisionRecord>> {
        decisions::of_thread(&self.pool, thread, limit)
            .await
            .map_err(err)
    }

    async fn search_users(&self, search: &UserSearch) -> StoreResult<Page<UserProfile>> {
        let after = search.after.as_deref().unwrap_or_default();
        let wanted = i64::from(search.limit) + 1;
        // Each prefix is a range of its own index (ids: the primary key; names:
        // idx_user_name_key), merged here by id, so neither becomes a scan.
        let mut users: Vec<UserProfile> = match &search.prefix {
            None => self.users_in_range("id", "", after, wanted).await?,
            Some(prefix) => {
                let mut found = self
                    .users_in_range("name_key", &name_key(prefix), after, wanted)
                    .await?;
                if is_valid_id(prefix) {
                    found.extend(self.users_in_range("id", prefix, after, wanted).await?);
                }
                found.sort_by(|a, b| a.id.cmp(&b.id));
                found.dedup_by(|a, b| a.id == b.id);
                found
            }
        };
        let has_more = users.len() > search.limit as usize;
        users.truncate(search.limit as usize);
        Ok(Page {
            items: users,
            has_more,
        })
    }

    async fn user(&self, id: &str) -> StoreResult<Option<UserProfile>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM chat_user WHERE id = ?");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(err)?;
        row.as_ref().map(user_from_row).transpose().map_err(err)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A write transaction whose caller gives up while its `BEGIN` is in flight
    /// (an event past its deadline) leaves no pooled connection inside a
    /// transaction: the next borrower's statements run on their own, see what
    /// others committed and commit by themselves.
    #[tokio::test]
    async fn a_begin_cancelled_in_flight_leaves_no_connection_in_a_transaction() {
        let Some(url) = crate::testing::mysql_url() else {
            return;
        };
        sqlx::any::install_default_drivers();
        // One connection, so the next statement runs on the one the BEGIN was sent on.
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        let store = SqlStore {
            pool,
            dialect: Dialect::MySql,
        };
        for wait_us in (0..400).step_by(20) {
            let begin = store.begin(store.dialect.begin_write());
            let _ = tokio::time::timeout(Duration::from_micros(wait_us), begin).await;
            let open: i64 = sqlx::query_scalar("SELECT @@in_transaction")
                .fetch_one(&store.pool)
                .await
                .unwrap();
            assert_eq!(
                open, 0,
                "a BEGIN cancelled after {wait_us} us left its connection in a transaction"
            );
        }
    }

    /// A real MariaDB deadlock (two transactions locking two rows in opposite
    /// orders) is `unavailable` and a deadlock; other errors are not run again.
    #[tokio::test]
    async fn a_deadlock_victim_is_unavailable_and_runs_again() {
        let Some(url) = crate::testing::mysql_url() else {
            return;
        };
        let store = SqlStore::connect(&url).await.unwrap();
        let (a, b) = (crate::testing::unique("t"), crate::testing::unique("t"));
        for id in [&a, &b] {
            sqlx::query(
                "INSERT INTO chat_thread (id, title, created_at) VALUES (?, 'deadlock', 0)",
            )
            .bind(id)
            .execute(&store.pool)
            .await
            .unwrap();
        }
        let lock = "SELECT id FROM chat_thread WHERE id = ? FOR UPDATE";
        let (mut one, mut two) = (
            store.pool.begin().await.unwrap(),
            store.pool.begin().await.unwrap(),
        );
        sqlx::query(lock).bind(&a).execute(&mut *one).await.unwrap();
        sqlx::query(lock).bind(&b).execute(&mut *two).await.unwrap();
        let (first, second) = tokio::join!(
            sqlx::query(lock).bind(&b).execute(&mut *one),
            sqlx::query(lock).bind(&a).execute(&mut *two)
        );
        let victim = first
            .err()
            .or(second.err())
            .map(err)
            .expect("one of them is the victim");
        assert!(
            matches!(victim, StoreError::Unavailable(_)) && is_deadlock(&victim),
            "{victim:?}"
        );
        drop((one, two));

        let mut runs = 0;
        let outcome: StoreResult<()> = retrying(|| {
            runs += 1;
            async { Err(err(sqlx::Error::PoolTimedOut)) }
        })
        .await;
        assert!(matches!(outcome, Err(StoreError::Unavailable(_))));
        assert_eq!(runs, 1, "only a deadlock victim runs again");
    }

    #[test]
    fn name_keys_ignore_case_and_turn_whitespace_into_spaces() {
        assert_eq!(name_key("Zoë\tÅSA  Σ"), "zoë åsa  σ");
        assert_eq!(
            name_key("İ"),
            "i\u{307}",
            "Unicode lowercase, one character at a time"
        );
    }

    #[test]
    fn a_prefix_range_ends_at_the_next_string_in_code_point_order() {
        assert_eq!(prefix_end("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_end("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(
            prefix_end("a\u{10FFFF}").as_deref(),
            Some("b"),
            "past char::MAX, the previous character moves"
        );
        assert_eq!(prefix_end("\u{10FFFF}"), None);
        assert_eq!(prefix_end(""), None);
    }
}
