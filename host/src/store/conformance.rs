//! One suite for every [`ChatStore`] backend, generated per backend: each case
//! is a test in `sqlite` (a fresh file) and one in `mysql` (the MariaDB of
//! `CHAT_TEST_DATABASE_URL`), so a failure names the case and the backend.

use std::sync::Arc;

use tempfile::TempDir;

use super::sql::SqlStore;
use super::*;
use crate::domain::Role;
use crate::domain::model::{Message, UserProfile};
use crate::testing::{mysql_url, temp_dir, unique};

/// A backend under test, with its URL (for the tampering tests, which go
/// behind the store's back) and, for SQLite, the directory of its file.
pub(crate) struct Backend {
    pub name: &'static str,
    pub store: Arc<dyn ChatStore>,
    pub url: String,
    pub _dir: Option<TempDir>,
}

/// A fresh SQLite file.
pub(crate) async fn sqlite() -> Option<Backend> {
    let dir = temp_dir();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let store = SqlStore::connect(&url).await.expect("sqlite store");
    Some(Backend {
        name: "sqlite",
        store: Arc::new(store),
        url,
        _dir: Some(dir),
    })
}

/// The MariaDB of `CHAT_TEST_DATABASE_URL`; `None` (printed) when unset outside CI.
pub(crate) async fn mysql() -> Option<Backend> {
    let url = mysql_url()?;
    let store = SqlStore::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("MariaDB at {url} does not answer: {e:#}"));
    Some(Backend {
        name: "mysql",
        store: Arc::new(store),
        url,
        _dir: None,
    })
}

/// Two users and a thread between them; returns (thread, alice, bob).
async fn thread_of_two(s: &dyn ChatStore) -> (String, String, String) {
    let (alice, bob, thread) = (unique("alice"), unique("bob"), unique("t"));
    for (id, role) in [(&alice, Role::Client), (&bob, Role::Freelancer)] {
        let user = UserProfile {
            id: id.clone(),
            display_name: id.to_uppercase(),
            avatar_url: None,
            role,
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

async fn threads_users_and_participants(backend: Backend) {
    let Backend { name, store: s, .. } = backend;
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
        Role::Freelancer
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
            role: Role::Admin,
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
    let mut contacts = s.contacts_of_user(&carol).await.unwrap();
    contacts.sort();
    let mut expected = vec![alice.clone(), bob.clone()];
    expected.sort();
    assert_eq!(
        contacts, expected,
        "{name}: everyone carol shares a thread with, not carol"
    );
    assert!(
        s.thread_meta(&unique("nope")).await.unwrap().is_none(),
        "{name}"
    );
}

async fn messages_are_idempotent_per_sender_key(backend: Backend) {
    let Backend { name, store: s, .. } = backend;
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

async fn concurrent_sends_with_one_key_store_one_row(backend: Backend) {
    let Backend { name, store: s, .. } = backend;
    let (thread, alice, bob) = thread_of_two(&*s).await;
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (s, thread, alice, bob) = (s.clone(), thread.clone(), alice.clone(), bob.clone());
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

async fn history_pages_oldest_first(backend: Backend) {
    let Backend { name, store: s, .. } = backend;
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

async fn reads_never_move_backwards_and_set_receipts(backend: Backend) {
    let Backend { name, store: s, .. } = backend;
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

    s.mark_delivered(&[(bob.clone(), m3), (unique("nobody"), m3)], 1_500)
        .await
        .unwrap();
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

async fn stored_plugins_roundtrip(backend: Backend) {
    let Backend { name, store: s, .. } = backend;
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

async fn pending_is_what_no_device_acknowledged_and_what_follows_a_cursor(backend: Backend) {
    let Backend { name, store: s, .. } = backend;
    let (thread, alice, bob) = thread_of_two(&*s).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let m = inserted(send(&*s, &thread, &alice, &bob, &unique("k"), &format!("m{i}")).await);
        ids.push(m.id);
    }
    let owed = |p: Pending| p.messages.iter().map(|m| m.id).collect::<Vec<_>>();
    assert_eq!(
        owed(s.pending(&bob, None, 10).await.unwrap()),
        ids,
        "{name}: all unacknowledged"
    );
    assert!(
        s.pending(&alice, None, 10)
            .await
            .unwrap()
            .messages
            .is_empty(),
        "{name}: the sender has its own"
    );

    let acked: Vec<(String, i64)> = ids[..3].iter().map(|id| (bob.clone(), *id)).collect();
    s.mark_delivered(&acked, 7).await.unwrap();
    assert_eq!(
        owed(s.pending(&bob, None, 10).await.unwrap()),
        ids[3..],
        "{name}"
    );
    assert_eq!(
        owed(s.pending(&bob, Some(ids[0]), 10).await.unwrap()),
        ids[1..],
        "{name}: after the cursor, acknowledged or not"
    );
    assert_eq!(
        owed(s.pending(&alice, Some(ids[2]), 10).await.unwrap()),
        ids[3..],
        "{name}: the sender's other devices resume too"
    );

    let capped = s.pending(&bob, Some(0), 2).await.unwrap();
    assert_eq!(
        owed(capped.clone()),
        ids[3..],
        "{name}: the newest, oldest first"
    );
    assert_eq!(
        capped.overflow_threads,
        std::slice::from_ref(&thread),
        "{name}"
    );
    let outsider = unique("carol");
    assert!(
        s.pending(&outsider, Some(0), 10)
            .await
            .unwrap()
            .messages
            .is_empty(),
        "{name}"
    );
}

crate::testing::per_backend! {
    backends: [sqlite, mysql],
    cases: [
        threads_users_and_participants,
        messages_are_idempotent_per_sender_key,
        concurrent_sends_with_one_key_store_one_row,
        history_pages_oldest_first,
        reads_never_move_backwards_and_set_receipts,
        stored_plugins_roundtrip,
        pending_is_what_no_device_acknowledged_and_what_follows_a_cursor,
    ],
}
