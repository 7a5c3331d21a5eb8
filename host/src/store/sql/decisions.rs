//! Plugin decisions that changed a message (`chat_decision`): rewrites, with
//! the message they produced, and refusals of sends.

use sqlx::{AnyConnection, AnyPool, Row};

use crate::domain::MessageId;
use crate::domain::policy::Decider;
use crate::store::DecisionRecord;

/// The hook whose decisions are recorded.
pub(super) const MESSAGE_HOOK: &str = "message-hook";

/// Inserts one decision inside the caller's transaction.
pub(super) async fn insert(
    conn: &mut AnyConnection,
    d: &DecisionRecord,
    thread: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO chat_decision (thread_id, message_id, user_id, plugin, plugin_version, hook, verdict, reason, input_sha256, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(thread)
    .bind(d.message_id)
    .bind(&d.user_id)
    .bind(&d.by.plugin)
    .bind(&d.by.version)
    .bind(&d.hook)
    .bind(&d.verdict)
    .bind(&d.reason)
    .bind(&d.input_sha256)
    .bind(d.at_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The newest `limit` decisions of a thread, newest first.
pub(super) async fn of_thread(
    pool: &AnyPool,
    thread: &str,
    limit: u32,
) -> Result<Vec<DecisionRecord>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT message_id, user_id, plugin, plugin_version, hook, verdict, reason, input_sha256, created_at \
         FROM chat_decision WHERE thread_id = ? ORDER BY id DESC LIMIT ?",
    )
    .bind(thread)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(DecisionRecord {
                message_id: r.try_get::<Option<MessageId>, _>(0)?,
                user_id: r.try_get(1)?,
                by: Decider {
                    plugin: r.try_get(2)?,
                    version: r.try_get(3)?,
                },
                hook: r.try_get(4)?,
                verdict: r.try_get(5)?,
                reason: r.try_get(6)?,
                input_sha256: r.try_get(7)?,
                at_ms: r.try_get(8)?,
            })
        })
        .collect()
}
