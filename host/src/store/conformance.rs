//! One suite for every [`ChatStore`] backend: a fresh SQLite file and the real
//! MariaDB (`CHAT_TEST_DATABASE_URL`, default `mysql://root@127.0.0.1:3306/chat_host_test`;
//! a missing database fails the run).

use std::sync::Arc;

use super::sql::SqlStore;
use super::*;
use crate::chat::model::{Message, UserProfile};
use crate::testing::{mysql_url, unique};

/// Each backend with its URL (for the tampering tests, which go behind the store's back).
async fn backends() -> Vec<(&'static str, Arc<dyn ChatStore>, String)> {
    let dir = std::env::temp_dir().join(unique("chat-host-store"));
    std::fs::create_dir_all(&dir).unwrap();
    let sqlite_url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
    let sqlite = SqlStore::connect(&sqlite_url).await.expect("sqlite store");
    let url = mysql_url();
    let mysql = SqlStore::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("MariaDB at {url} is required for these tests: {e:#}"));
    vec![
        ("sqlite", Arc::new(sqlite), sqlite_url),
        ("mysql", Arc::new(mysql), url),
    ]
}

/// Two users and a thread between them; returns (thread, alice, bob).
async fn thread_of_two(s: &dyn ChatStore) -> (String, String, String) {
    let (alice, bob, thread) = (unique("alice"), unique("bob"), unique("t"));
    for (id, role) in [(&alice, "client"), (&bob, "freelancer")] {
        let user = UserProfile {
            id: id.clone(),
            display_name: id.to_uppercase(),
            avatar_url: None,
            role: role.into(),
        };
        s.upsert_user(&user, 1).await.unwrap();
    }
    let new = NewThread {
        id: thread.clone(),
        title: "Logo".into(),
        participant_ids: vec![alice.clone(), bob.clone()],
        created_at_ms: 5,
    };
    assert_eq!(s.create_thread(&new).await.unwrap(), CreateThread::Created);
    (thread, alice, bob)
}

async fn send(
    s: &dyn ChatStore,
    thread: &str,
    from: &str,
    to: &str,
    key: &str,
    body: &str,
) -> InsertMessage {
    let m = NewMessage {
        thread_id: thread.into(),
        sender_id: from.into(),
        body: body.into(),
        client_message_id: key.into(),
        created_at_ms: 1_000,
        request_hash: format!("{thread}|{body}"),
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
    s.insert_message(&m, &receipts).await.unwrap()
}

fn inserted(outcome: InsertMessage) -> Message {
    match outcome {
        InsertMessage::Inserted(m) => m,
        other => panic!("expected a new message, got {other:?}"),
    }
}

#[tokio::test]
async fn threads_users_and_participants() {
    for (name, s, _) in backends().await {
        let (thread, alice, bob) = thread_of_two(&*s).await;
        let meta = s.thread_meta(&thread).await.unwrap().unwrap();
        assert_eq!(meta.title, "Logo", "{name}");
        let ids: Vec<&str> = meta.participant_ids().collect();
        assert!(
            ids.contains(&alice.as_str()) && ids.contains(&bob.as_str()),
            "{name}"
        );
        assert_eq!(
            meta.participants
                .iter()
                .find(|p| p.user_id == bob)
                .unwrap()
                .role,
            "freelancer"
        );

        let again = NewThread {
            id: thread.clone(),
            title: "x".into(),
            participant_ids: vec![alice.clone()],
            created_at_ms: 6,
        };
        assert_eq!(
            s.create_thread(&again).await.unwrap(),
            CreateThread::Conflict,
            "{name}"
        );
        let ghost = unique("ghost");
        let bad = NewThread {
            id: unique("t"),
            title: "x".into(),
            participant_ids: vec![alice.clone(), ghost.clone()],
            created_at_ms: 6,
        };
        assert_eq!(
            s.create_thread(&bad).await.unwrap(),
            CreateThread::UnknownUsers(vec![ghost.clone()]),
            "{name}"
        );
        assert!(
            s.thread_meta(&bad.id).await.unwrap().is_none(),
            "{name}: nothing half-created"
        );

        let carol = unique("carol");
        s.upsert_user(
            &UserProfile {
                id: carol.clone(),
                display_name: "C".into(),
                avatar_url: Some("https://a/c.png".into()),
                role: "admin".into(),
            },
            2,
        )
        .await
        .unwrap();
        assert_eq!(
            s.add_participant(&thread, &carol, 7).await.unwrap(),
            AddParticipant::Added,
            "{name}"
        );
        assert_eq!(
            s.add_participant(&thread, &carol, 8).await.unwrap(),
            AddParticipant::Added,
            "{name}: idempotent"
        );
        assert_eq!(
            s.add_participant(&thread, &ghost, 8).await.unwrap(),
            AddParticipant::UnknownUser,
            "{name}"
        );
        assert_eq!(
            s.add_participant(&unique("t"), &carol, 8).await.unwrap(),
            AddParticipant::ThreadNotFound,
            "{name}"
        );
        assert_eq!(
            s.thread_meta(&thread)
                .await
                .unwrap()
                .unwrap()
                .participants
                .len(),
            3,
            "{name}"
        );
        assert_eq!(
            s.threads_of_user(&carol).await.unwrap(),
            vec![thread.clone()],
            "{name}"
        );
        assert!(
            s.thread_meta(&unique("nope")).await.unwrap().is_none(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn messages_are_idempotent_per_sender_key() {
    for (name, s, _) in backends().await {
        let (thread, alice, bob) = thread_of_two(&*s).await;
        let first = inserted(send(&*s, &thread, &alice, &bob, "k1", "hello").await);
        match send(&*s, &thread, &alice, &bob, "k1", "hello").await {
            InsertMessage::Existing(m) => assert_eq!(m, first, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        // The same key from another sender is another message.
        let second = inserted(send(&*s, &thread, &bob, &alice, "k1", "hi").await);
        assert!(second.id > first.id, "{name}: ids increase");
        assert_eq!(
            s.message_by_client_id(&alice, "k1").await.unwrap(),
            Some(first),
            "{name}"
        );
        assert_eq!(
            s.history(&thread, None, 10).await.unwrap().items.len(),
            2,
            "{name}"
        );
    }
}

#[tokio::test]
async fn concurrent_sends_with_one_key_store_one_row() {
    for (name, s, _) in backends().await {
        let (thread, alice, bob) = thread_of_two(&*s).await;
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let (s, thread, alice, bob) =
                    (s.clone(), thread.clone(), alice.clone(), bob.clone());
                tokio::spawn(async move { send(&*s, &thread, &alice, &bob, "same", "once").await })
            })
            .collect();
        let mut ids = Vec::new();
        for task in tasks {
            ids.push(match task.await.unwrap() {
                InsertMessage::Inserted(m) | InsertMessage::Existing(m) => m.id,
            });
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "{name}: {ids:?}");
        let page = s.history_with_receipts(&thread, None, 10).await.unwrap();
        assert_eq!(page.items.len(), 1, "{name}");
        assert_eq!(
            page.items[0].receipts.len(),
            2,
            "{name}: one receipt per participant"
        );
    }
}

#[tokio::test]
async fn history_pages_oldest_first() {
    for (name, s, _) in backends().await {
        let (thread, alice, bob) = thread_of_two(&*s).await;
        let mut ids = Vec::new();
        for i in 0..7 {
            ids.push(
                inserted(
                    send(
                        &*s,
                        &thread,
                        &alice,
                        &bob,
                        &format!("k{i}"),
                        &format!("m{i}"),
                    )
                    .await,
                )
                .id,
            );
        }
        let newest = s.history(&thread, None, 3).await.unwrap();
        assert_eq!(
            newest.items.iter().map(|m| m.id).collect::<Vec<_>>(),
            ids[4..],
            "{name}"
        );
        assert!(newest.has_more, "{name}");
        let older = s.history(&thread, Some(ids[4]), 3).await.unwrap();
        assert_eq!(
            older.items.iter().map(|m| m.id).collect::<Vec<_>>(),
            ids[1..4],
            "{name}"
        );
        let oldest = s.history(&thread, Some(ids[1]), 3).await.unwrap();
        assert_eq!(
            oldest.items.iter().map(|m| m.id).collect::<Vec<_>>(),
            ids[..1],
            "{name}"
        );
        assert!(!oldest.has_more, "{name}");
    }
}

#[tokio::test]
async fn reads_never_move_backwards_and_set_receipts() {
    for (name, s, _) in backends().await {
        let (thread, alice, bob) = thread_of_two(&*s).await;
        let m1 = inserted(send(&*s, &thread, &alice, &bob, "a", "one").await).id;
        let m2 = inserted(send(&*s, &thread, &alice, &bob, "b", "two").await).id;
        let m3 = inserted(send(&*s, &thread, &alice, &bob, "c", "three").await).id;
        let activity = s.thread_activity(&thread, &bob).await.unwrap();
        assert_eq!(activity.unread_count, 3, "{name}");
        assert_eq!(
            activity.last_message.as_ref().map(|m| m.id),
            Some(m3),
            "{name}"
        );
        assert_eq!(
            activity.last_reads[&alice],
            Some(m3),
            "{name}: sender's own mark"
        );
        assert_eq!(activity.last_reads[&bob], None, "{name}");

        assert_eq!(
            s.mark_read(&thread, &bob, m2, 2_000).await.unwrap(),
            MarkRead::Marked {
                mark: m2,
                moved: true
            },
            "{name}"
        );
        assert_eq!(
            s.mark_read(&thread, &bob, m1, 2_001).await.unwrap(),
            MarkRead::Marked {
                mark: m2,
                moved: false
            },
            "{name}"
        );
        assert_eq!(
            s.thread_activity(&thread, &bob).await.unwrap().unread_count,
            1,
            "{name}"
        );

        let (other, ..) = thread_of_two(&*s).await;
        assert_eq!(
            s.mark_read(&other, &bob, m3, 2_002).await.unwrap(),
            MarkRead::NotInThread,
            "{name}"
        );

        s.mark_delivered(&bob, &[m3], 1_500).await.unwrap();
        let page = s.history_with_receipts(&thread, None, 10).await.unwrap();
        let bob_receipt = |i: usize| {
            page.items[i]
                .receipts
                .iter()
                .find(|r| r.user_id == bob)
                .unwrap()
                .clone()
        };
        assert_eq!(
            (bob_receipt(0).read_at_ms, bob_receipt(0).delivered_at_ms),
            (Some(2_000), Some(2_000)),
            "{name}"
        );
        assert_eq!(bob_receipt(1).read_at_ms, Some(2_000), "{name}");
        assert_eq!(
            (bob_receipt(2).read_at_ms, bob_receipt(2).delivered_at_ms),
            (None, Some(1_500)),
            "{name}"
        );
        let alice_receipt = page.items[0]
            .receipts
            .iter()
            .find(|r| r.user_id == alice)
            .unwrap();
        assert_eq!(alice_receipt.read_at_ms, Some(1_000), "{name}");
    }
}

#[tokio::test]
async fn stored_plugins_roundtrip() {
    for (name, s, _) in backends().await {
        let plugin = StoredPlugin {
            name: unique("p").to_lowercase(),
            manifest: "name = 'x'".into(),
            wasm: vec![0, 97, 115, 109, 255],
        };
        assert_eq!(s.plugin_get(&plugin.name).await.unwrap(), None, "{name}");
        s.plugin_save(&plugin, 1).await.unwrap();
        let mut newer = plugin.clone();
        newer.wasm.push(7);
        s.plugin_save(&newer, 2).await.unwrap();
        assert_eq!(
            s.plugin_get(&plugin.name).await.unwrap(),
            Some(newer.clone()),
            "{name}"
        );
        assert!(s.plugin_list().await.unwrap().contains(&newer), "{name}");
        assert!(s.plugin_delete(&plugin.name).await.unwrap(), "{name}");
        assert!(!s.plugin_delete(&plugin.name).await.unwrap(), "{name}");
    }
}

#[tokio::test]
async fn audit_chain_detects_edits_and_needs_the_key() {
    use crate::audit::{AuditLog, AuditRecord};
    for (name, s, url) in backends().await {
        let log = AuditLog::new(s.clone(), b"test key");
        let thread = unique("t");
        for i in 0..4 {
            let record = AuditRecord {
                thread_id: thread.clone(),
                plugin: "dispute-audit".into(),
                kind: "message_sent".into(),
                actor_id: "alice".into(),
                detail: format!("{{\"n\":{i}}}"),
            };
            assert_eq!(log.append(record).await.unwrap(), i + 1, "{name}");
        }
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
}

#[tokio::test]
async fn audit_chain_detects_deletion_and_truncation() {
    use crate::audit::{AuditLog, AuditRecord};
    for (name, s, url) in backends().await {
        let log = AuditLog::new(s.clone(), b"k");
        let (middle, tail) = (unique("t"), unique("t"));
        for thread in [&middle, &tail] {
            for i in 0..3 {
                let record = AuditRecord {
                    thread_id: thread.clone(),
                    plugin: "a".into(),
                    kind: "k".into(),
                    actor_id: "u".into(),
                    detail: i.to_string(),
                };
                log.append(record).await.unwrap();
            }
        }
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

#[tokio::test]
async fn audit_chain_detects_reordering() {
    use crate::audit::{AuditLog, AuditRecord};
    for (name, s, url) in backends().await {
        let log = AuditLog::new(s.clone(), b"k");
        let thread = unique("t");
        for i in 0..3 {
            let record = AuditRecord {
                thread_id: thread.clone(),
                plugin: "a".into(),
                kind: "k".into(),
                actor_id: "u".into(),
                detail: i.to_string(),
            };
            log.append(record).await.unwrap();
        }
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
}
