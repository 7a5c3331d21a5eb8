//! `dispute-audit`: while a thread is under audit (an admin set the kv key
//! `audit:<threadId>`, value = an optional case reference), every event of
//! that thread is appended to the host's hash-chained audit table, with the
//! event's kind, user and thread and a JSON detail:
//!
//! ```json
//! {"kind":"message_sent","user":"u1","thread":"t1","message":"m9","subject":null,"at_ms":1700000000000,"case":"D-17"}
//! ```
//!
//! Deleting the key ends the audit.

use chat_plugin_sdk::{AuditRecord, Event, Plugin, audit, export_plugin, json, kv};

/// The plugin.
pub struct DisputeAudit;

impl Plugin for DisputeAudit {
    fn on_event(event: Event) {
        let Some(thread) = event.thread_id.as_deref() else {
            return;
        };
        let Some(case) = kv::get(&kv::key(&["audit", thread])) else {
            return;
        };
        let entry = record(&event, thread, &case);
        match audit::append(&entry) {
            Ok(seq) => {
                chat_plugin_sdk::trace!("audited {} of thread {thread} as #{seq}", event.kind)
            }
            Err(e) => chat_plugin_sdk::warn!(
                "audit append failed for {} of thread {thread}: {e}",
                event.kind
            ),
        }
    }
}

export_plugin!(DisputeAudit: events);

/// The audit entry for `event` of `thread`, under audit as `case`.
pub fn record(event: &Event, thread: &str, case: &str) -> AuditRecord {
    let case = case.trim();
    let detail = json::Object::new()
        .str("kind", &event.kind)
        .str("user", &event.user_id)
        .str("thread", thread)
        .opt_str("message", event.message_id.as_deref())
        .opt_str("subject", event.subject_id.as_deref())
        .int("at_ms", event.at_ms)
        .opt_str(
            "case",
            if case.is_empty() || case == "1" || case == "true" {
                None
            } else {
                Some(case)
            },
        )
        .finish();
    AuditRecord {
        thread_id: thread.to_string(),
        kind: event.kind.clone(),
        actor_id: event.user_id.clone(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_plugin_sdk::testing;

    #[test]
    fn ignores_threads_not_under_audit() {
        testing::reset();
        DisputeAudit::on_event(Event::new("message_sent", "u1", Some("t1"), 5));
        DisputeAudit::on_event(Event::new("user_online", "u1", None, 5));
        assert!(testing::audit_records().is_empty());
    }

    #[test]
    fn records_events_of_audited_threads() {
        testing::reset();
        testing::kv_put("audit:t1", "D-17");
        let mut e = Event::new("message_sent", "u1", Some("t1"), 1_700_000_000_000);
        e.message_id = Some("m9".into());
        DisputeAudit::on_event(e);
        DisputeAudit::on_event(Event::new("message_sent", "u2", Some("t2"), 6));
        DisputeAudit::on_event(Event::new("admin_viewed_thread", "adm\"in", Some("t1"), 7));
        let recs = testing::audit_records();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].thread_id, "t1");
        assert_eq!(recs[0].kind, "message_sent");
        assert_eq!(recs[0].actor_id, "u1");
        assert_eq!(
            recs[0].detail,
            r#"{"kind":"message_sent","user":"u1","thread":"t1","message":"m9","subject":null,"at_ms":1700000000000,"case":"D-17"}"#
        );
        assert_eq!(recs[1].actor_id, "adm\"in");
        assert!(recs[1].detail.contains(r#""user":"adm\"in""#));
    }

    #[test]
    fn case_marker_without_reference() {
        let r = record(&Event::new("k", "u", Some("t"), 1), "t", "1");
        assert!(r.detail.ends_with(r#""case":null}"#));
    }
}
