//! One suite for every [`ChatStore`] backend, generated per backend: each case
//! is a test in `sqlite` (a fresh file) and one in `mysql` (the MariaDB of
//! `CHAT_TEST_DATABASE_URL`), so a failure names the case and the backend.

use std::sync::Arc;

use tempfile::TempDir;

use super::sql::SqlStore;
use super::*;
use crate::domain::model::{Message, UserProfile};
use crate::domain::policy::Decider;
use crate::domain::{MessageId, Millis, Role};
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

/// Seals nothing: no thread of these cases is under audit (the audit log's
/// own tests cover threads that are).
struct NoAudit;

impl AuditSeal for NoAudit {
    fn seal(&self, _: &mut AuditEntry) -> String {
        unreachable!("no thread of the conformance cases is under audit")
    }
}

/// Two users and a thread between them; returns (thread, alice, bob).
pub(crate) async fn thread_of_two(s: &dyn ChatStore) -> (String, String, String) {
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
    s.insert_message(&m, &receipts, &NoAudit).await.unwrap()
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
        s.mark_read(&thread, &bob, m2, 2_000, &NoAudit)
            .await
            .unwrap(),
        MarkRead::Marked {
            mark: m2,
            moved: true
        },
        "{name}"
    );
    assert_eq!(
        s.mark_read(&thread, &bob, m1, 2_001, &NoAudit)
            .await
            .unwrap(),
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
        s.mark_read(&other, &bob, m3, 2_002, &NoAudit)
            .await
            .unwrap(),
        MarkRead::NotInThread,
        "{name}"
    );

    s.mark_delivered(
        &[(bob.clone(), m3), (unique("nobody"), m3)],
        1_500,
        &NoAudit,
    )
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
    s.mark_delivered(&acked, 7, &NoAudit).await.unwrap();
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

async fn user_named(s: &dyn ChatStore, id: &str, name: &str) {
    let user = UserProfile {
        id: id.to_owned(),
        display_name: name.to_owned(),
        avatar_url: None,
        role: Role::Client,
    };
    s.upsert_user(&user, 1).await.unwrap();
}

async fn thread_at(s: &dyn ChatStore, title: &str, participants: &[&str], at: Millis) -> String {
    let thread = NewThread {
        id: unique("t"),
        title: title.to_owned(),
        participant_ids: participants.iter().map(|p| (*p).to_owned()).collect(),
        created_at_ms: at,
    };
    assert_eq!(
        s.create_thread(&thread).await.unwrap(),
        CreateThread::Created
    );
    thread.id
}

async fn message_at(s: &dyn ChatStore, thread: &str, from: &str, at: Millis) -> Message {
    let m = NewMessage {
        thread_id: thread.into(),
        sender_id: from.into(),
        body: format!("at {at}"),
        client_message_id: unique("k"),
        created_at_ms: at,
        request_hash: unique("h"),
        rewritten_by: Vec::new(),
    };
    let receipt = NewReceipt {
        user_id: from.into(),
        delivered: true,
        read: true,
    };
    inserted(s.insert_message(&m, &[receipt], &NoAudit).await.unwrap())
}

fn search(f: impl FnOnce(&mut ThreadSearch)) -> ThreadSearch {
    let mut q = ThreadSearch {
        limit: 100,
        ..ThreadSearch::default()
    };
    f(&mut q);
    q
}

fn by_name(term: &str) -> ParticipantMatch {
    ParticipantMatch::UserOrNamePrefix(term.to_owned())
}

async fn found(s: &dyn ChatStore, q: &ThreadSearch) -> Vec<String> {
    s.search_threads(q)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|t| t.id)
        .collect()
}

async fn threads_are_found_by_participants_title_and_dates(backend: Backend) {
    let Backend { name, store: s, .. } = backend;
    // A tag of this run starts every name and title word, so the rows of other
    // runs on the shared database never match.
    let tag = unique("q").to_lowercase();
    let (jane, janet, bob) = (unique("jane"), unique("janet"), unique("bob"));
    user_named(&*s, &jane, &format!("{tag} Jane Doe")).await;
    user_named(&*s, &janet, &format!("{tag} JANET Roe")).await;
    user_named(&*s, &bob, &format!("{tag} Bøb")).await;
    let (logo, site, other) = (
        format!("{tag}logo"),
        format!("{tag}site"),
        format!("{tag}x"),
    );
    let t1 = thread_at(&*s, &format!("Logo: {logo}"), &[&jane, &bob], 10_000).await;
    let t2 = thread_at(
        &*s,
        &format!("{site} re-design, {logo}"),
        &[&janet, &bob],
        20_000,
    )
    .await;
    let t3 = thread_at(&*s, &other, &[&jane, &janet], 30_000).await;
    message_at(&*s, &t1, &jane, 40_000).await;

    let everyone = found(&*s, &search(|q| q.participants = vec![by_name(&tag)])).await;
    assert_eq!(
        everyone,
        [t1.clone(), t3.clone(), t2.clone()],
        "{name}: newest activity first (t1 has a message at 40 s)"
    );
    assert_eq!(
        found(
            &*s,
            &search(|q| q.participants = vec![by_name(&format!("{} JAN", tag.to_uppercase()))])
        )
        .await,
        everyone,
        "{name}: a prefix several users share means any of them, ignoring case"
    );
    assert_eq!(
        found(
            &*s,
            &search(|q| q.participants = vec![by_name(&format!("{tag} jane"))])
        )
        .await,
        everyone,
        "{name}: Jane and Janet both start with `jane`"
    );
    assert_eq!(
        found(
            &*s,
            &search(|q| q.participants = vec![by_name(&format!("{tag} bØb"))])
        )
        .await,
        [t1.clone(), t2.clone()],
        "{name}: a non-ASCII name, ignoring case"
    );
    assert_eq!(
        found(&*s, &search(|q| q.participants = vec![by_name(&jane)])).await,
        [t1.clone(), t3.clone()],
        "{name}: a user id"
    );
    assert_eq!(
        found(
            &*s,
            &search(|q| q.participants = vec![ParticipantMatch::User(jane.clone())])
        )
        .await,
        [t1.clone(), t3.clone()],
        "{name}: a user id only"
    );
    assert_eq!(
        found(
            &*s,
            &search(|q| q.participants = vec![by_name(&bob), by_name(&format!("{tag} janet"))])
        )
        .await,
        vec![t2.clone()],
        "{name}: a pair: the threads with both"
    );
    assert!(
        found(
            &*s,
            &search(|q| q.participants = vec![by_name(&format!("{tag} nobody"))])
        )
        .await
        .is_empty(),
        "{name}"
    );

    let title = |words: &[&str]| {
        let words: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
        search(move |q| q.title_words = words)
    };
    assert_eq!(
        found(&*s, &title(&[&logo.to_uppercase()])).await,
        [t1.clone(), t2.clone()],
        "{name}: a title word, ignoring case"
    );
    assert_eq!(
        found(&*s, &title(&[&logo[..logo.len() - 2], &site, "desig"])).await,
        vec![t2.clone()],
        "{name}: every word, each a word prefix"
    );
    assert!(
        found(&*s, &title(&[&logo, &format!("{tag}nothing")]))
            .await
            .is_empty(),
        "{name}"
    );
    assert_eq!(
        found(
            &*s,
            &search(|q| {
                q.title_words = vec![logo.clone()];
                q.participants = vec![by_name(&janet)];
            })
        )
        .await,
        vec![t2.clone()],
        "{name}: title and participant"
    );

    let between = |from: Option<Millis>, before: Option<Millis>| {
        let tag = tag.clone();
        search(move |q| {
            q.participants = vec![by_name(&tag)];
            q.active_from = from;
            q.active_before = before;
        })
    };
    assert_eq!(
        found(&*s, &between(Some(20_000), Some(40_000))).await,
        [t3.clone(), t2.clone()],
        "{name}: from is inclusive, to exclusive"
    );
    assert_eq!(
        found(&*s, &between(Some(30_001), None)).await,
        vec![t1.clone()],
        "{name}: the last activity counts, not the creation"
    );
    assert_eq!(
        found(&*s, &between(None, Some(20_001))).await,
        vec![t2.clone()],
        "{name}"
    );
}

async fn threads_count_their_messages_and_keep_the_newest(backend: Backend) {
    let Backend { name, store: s, .. } = backend;
    let (thread, alice, bob) = thread_of_two(&*s).await;
    let fresh = s.thread_record(&thread).await.unwrap().unwrap();
    assert_eq!(
        (
            fresh.message_count,
            fresh.last_activity_at_ms,
            fresh.last_message_id
        ),
        (0, 5, None),
        "{name}: a new thread's activity is its creation"
    );
    let first = inserted(send(&*s, &thread, &alice, &bob, "k1", "one").await);
    let second = inserted(send(&*s, &thread, &bob, &alice, "k2", "two").await);
    assert!(matches!(
        send(&*s, &thread, &alice, &bob, "k1", "one").await,
        InsertMessage::Existing(_)
    ));
    let record = s.thread_record(&thread).await.unwrap().unwrap();
    assert_eq!(
        record,
        ThreadRecord {
            id: thread.clone(),
            title: "Logo".into(),
            created_at_ms: 5,
            last_activity_at_ms: 1_000,
            message_count: 2,
            last_message_id: Some(second.id),
            audit: None,
        },
        "{name}: a retried clientMessageId counts once"
    );
    assert!(
        s.thread_record(&unique("t")).await.unwrap().is_none(),
        "{name}"
    );

    let participants = s
        .participants_of(&[thread.clone(), unique("t")])
        .await
        .unwrap();
    assert_eq!(
        participants.len(),
        1,
        "{name}: threads without any are left out"
    );
    let marks: Vec<(String, Option<MessageId>)> = participants[&thread]
        .iter()
        .map(|p| (p.profile.user_id.clone(), p.last_read_message_id))
        .collect();
    assert_eq!(
        marks,
        [
            (alice.clone(), Some(first.id)),
            (bob.clone(), Some(second.id))
        ],
        "{name}: in the order they were added, each with the mark of its own send"
    );
    assert_eq!(
        participants[&thread][1].profile.role,
        Role::Freelancer,
        "{name}"
    );

    let mut messages = s
        .messages_by_id(&[second.id, first.id, MessageId::MAX])
        .await
        .unwrap();
    messages.sort_by_key(|m| m.id);
    assert_eq!(messages, [first, second], "{name}");
    assert!(s.messages_by_id(&[]).await.unwrap().is_empty(), "{name}");
}

/// Concurrent sends to one thread all store (none deadlocks on the thread's
/// counters), and the counters end with every one of them.
async fn concurrent_sends_to_one_thread_all_count(backend: Backend) {
    let Backend { name, store: s, .. } = backend;
    let (thread, alice, bob) = thread_of_two(&*s).await;
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let (s, thread, alice, bob) = (s.clone(), thread.clone(), alice.clone(), bob.clone());
            tokio::spawn(async move {
                let (from, to) = if i % 2 == 0 {
                    (&alice, &bob)
                } else {
                    (&bob, &alice)
                };
                send(&*s, &thread, from, to, &format!("k{i}"), "at once").await
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(inserted(task.await.unwrap()).id);
    }
    let record = s.thread_record(&thread).await.unwrap().unwrap();
    assert_eq!(record.message_count, 10, "{name}");
    assert_eq!(record.last_message_id, ids.iter().max().copied(), "{name}");
}

async fn thread_search_pages_newest_first_with_a_cursor(backend: Backend) {
    let Backend { name, store: s, .. } = backend;
    let owner = unique("owner");
    user_named(&*s, &owner, "Owner").await;
    let mut threads = Vec::new();
    for at in [100, 300, 300, 200, 300] {
        threads.push((at, thread_at(&*s, "Paged", &[&owner], at).await));
    }
    threads.sort_by(|a, b| b.cmp(a));
    let expected: Vec<String> = threads.into_iter().map(|(_, id)| id).collect();

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .search_threads(&ThreadSearch {
                participants: vec![ParticipantMatch::User(owner.clone())],
                after: after.clone(),
                limit: 2,
                ..ThreadSearch::default()
            })
            .await
            .unwrap();
        assert!(page.items.len() <= 2, "{name}");
        seen.extend(page.items.iter().map(|t| t.id.clone()));
        if !page.has_more {
            break;
        }
        let last = page.items.last().unwrap();
        after = Some(ActivityCursor {
            last_activity_at_ms: last.last_activity_at_ms,
            thread_id: last.id.clone(),
        });
    }
    assert_eq!(
        seen, expected,
        "{name}: every thread once, newest first, ties by id descending"
    );
}

async fn users_are_found_by_id_or_name_prefix(backend: Backend) {
    let Backend { name, store: s, .. } = backend;
    let tag = unique("uq");
    let ids = [format!("{tag}_a"), format!("{tag}_b"), format!("{tag}_c")];
    user_named(&*s, &ids[0], "Zoë Quinn").await;
    user_named(&*s, &ids[1], &format!("{tag} ZOË Quist")).await;
    user_named(&*s, &ids[2], &format!("{}\tcarla", tag.to_uppercase())).await;
    let users = |prefix: Option<&str>, after: Option<&str>, limit: u32| UserSearch {
        prefix: prefix.map(str::to_owned),
        after: after.map(str::to_owned),
        limit,
    };
    let ids_of = |page: Page<UserProfile>| page.items.into_iter().map(|u| u.id).collect::<Vec<_>>();

    assert_eq!(
        ids_of(s.search_users(&users(Some(&tag), None, 10)).await.unwrap()),
        ids,
        "{name}: by id prefix and by name prefix (ignoring case; a tab folds to a space), by id"
    );
    let first = s.search_users(&users(Some(&tag), None, 2)).await.unwrap();
    assert!(first.has_more, "{name}");
    let rest = s
        .search_users(&users(Some(&tag), Some(&first.items[1].id), 2))
        .await
        .unwrap();
    assert_eq!(ids_of(rest.clone()), vec![ids[2].clone()], "{name}");
    assert!(!rest.has_more, "{name}");
    assert_eq!(
        ids_of(
            s.search_users(&users(Some(&format!("{tag} zoë q")), None, 10))
                .await
                .unwrap()
        ),
        vec![ids[1].clone()],
        "{name}: a name prefix with a space and a non-ASCII capital"
    );
    assert_eq!(
        ids_of(
            s.search_users(&users(
                Some(&format!("{} carla", tag.to_lowercase())),
                None,
                10
            ))
            .await
            .unwrap()
        ),
        vec![ids[2].clone()],
        "{name}"
    );
    assert!(
        s.search_users(&users(Some(&tag.to_uppercase()), None, 10))
            .await
            .unwrap()
            .items
            .iter()
            .all(|u| u.id != ids[0]),
        "{name}: an id prefix keeps its case"
    );
    let everyone = s.search_users(&users(None, Some(&tag), 3)).await.unwrap();
    assert_eq!(
        ids_of(everyone),
        ids,
        "{name}: no prefix lists everyone by id, after the cursor"
    );

    let zoe = s.user(&ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (zoe.display_name.as_str(), zoe.role),
        ("Zoë Quinn", Role::Client),
        "{name}"
    );
    assert!(s.user(&unique("nobody")).await.unwrap().is_none(), "{name}");
}

/// The display names a migration left without a search key get one when the
/// store starts (the SQLite migration folds only printable ASCII names).
async fn names_without_a_search_key_are_folded_at_start(backend: Backend) {
    let Backend {
        name,
        store: s,
        url,
        ..
    } = backend;
    let (tag, id) = (unique("fold"), unique("u"));
    user_named(&*s, &id, &format!("{tag} ÅSA")).await;
    let raw = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query("UPDATE chat_user SET name_key = NULL WHERE id = ?")
        .bind(&id)
        .execute(&raw)
        .await
        .unwrap();
    let prefix = UserSearch {
        prefix: Some(format!("{} åsa", tag.to_lowercase())),
        after: None,
        limit: 10,
    };
    assert!(
        s.search_users(&prefix).await.unwrap().items.is_empty(),
        "{name}"
    );
    let restarted = SqlStore::connect(&url).await.unwrap();
    let found: Vec<String> = restarted
        .search_users(&prefix)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(found, [id], "{name}");
}

/// The searches read indexes: EXPLAIN on MariaDB shows no full scan (`ALL`) of
/// any table, EXPLAIN QUERY PLAN on SQLite no `SCAN` of a table (the FTS5
/// table's own lookup aside), on a population large enough for the planners
/// to choose as they would in production.
async fn thread_searches_read_indexes_not_tables(backend: Backend) {
    let Backend { name, url, .. } = backend;
    let store = SqlStore::connect(&url).await.unwrap();
    let s: &dyn ChatStore = &store;
    let tag = unique("plan").to_lowercase();
    let users: Vec<String> = (0..40).map(|i| format!("{tag}_{i}")).collect();
    for (i, user) in users.iter().enumerate() {
        user_named(s, user, &format!("{tag} user {i}")).await;
    }
    for i in 0..200 {
        let (a, b) = (&users[i % 40], &users[(i * 7 + 1) % 40]);
        let thread = thread_at(
            s,
            &format!("{tag}w{} project {i}", i % 10),
            &[a, b],
            i as i64,
        )
        .await;
        if i % 20 == 0 {
            message_at(s, &thread, a, 1_000 + i as i64).await;
        }
    }
    let analyze = match store.dialect() {
        dialect::Dialect::MySql => {
            "ANALYZE TABLE chat_user, chat_thread, chat_participant, chat_message"
        }
        dialect::Dialect::Sqlite => "ANALYZE",
    };
    let raw = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::raw_sql(analyze).execute(&raw).await.unwrap();

    let searches = [
        search(|q| q.participants = vec![by_name(&format!("{tag} user 1"))]),
        search(|q| q.participants = vec![by_name(&users[3])]),
        search(|q| q.participants = vec![ParticipantMatch::User(users[3].clone())]),
        search(|q| q.participants = vec![by_name(&users[3]), by_name(&format!("{tag} user 22"))]),
        search(|q| q.title_words = vec![format!("{tag}w3")]),
        search(|q| {
            q.title_words = vec![format!("{tag}w3"), "proj".into()];
            q.participants = vec![by_name(&users[5])];
            q.active_from = Some(10);
            q.active_before = Some(150);
            q.after = Some(ActivityCursor {
                last_activity_at_ms: 140,
                thread_id: "t".into(),
            });
        }),
    ];
    for q in &searches {
        let plan = store.plan_of_thread_search(q).await.unwrap();
        let scans: Vec<&String> = plan
            .iter()
            .filter(|step| match store.dialect() {
                // `<subquery2>` and the like are the planner's own temporary
                // tables (a materialized IN list), not ours.
                dialect::Dialect::MySql => {
                    !step.starts_with('<') && step.split(' ').nth(1) == Some("ALL")
                }
                dialect::Dialect::Sqlite => {
                    step.starts_with("SCAN") && !step.contains("VIRTUAL TABLE")
                }
            })
            .collect();
        assert!(
            scans.is_empty(),
            "{name}: {q:?} scans {scans:?}; plan: {plan:#?}"
        );
        assert!(
            !found(s, q).await.is_empty() || q.after.is_some(),
            "{name}: {q:?} finds something"
        );
    }
}

/// A message's rewriters are recorded with it, a refusal on its own; a thread
/// lists its decisions newest first, and another thread's are not among them.
async fn plugin_decisions_are_kept_per_thread(b: Backend) {
    let (s, name) = (&*b.store, b.name);
    let (thread, alice, bob) = thread_of_two(s).await;
    let (other, ..) = thread_of_two(s).await;
    let by = |plugin: &str| Decider {
        plugin: plugin.into(),
        version: "1.2.3".into(),
    };
    let new = NewMessage {
        thread_id: thread.clone(),
        sender_id: alice.clone(),
        body: "[email hidden]".into(),
        client_message_id: unique("k"),
        created_at_ms: 1_000,
        request_hash: "h1".into(),
        rewritten_by: vec![by("mask"), by("tidy")],
    };
    let receipt = NewReceipt {
        user_id: bob.clone(),
        delivered: false,
        read: false,
    };
    let m = inserted(s.insert_message(&new, &[receipt], &NoAudit).await.unwrap());
    let refusal = NewRefusal {
        thread_id: thread.clone(),
        user_id: bob.clone(),
        by: by("mask"),
        reason: "no e-mail addresses".into(),
        request_hash: "h2".into(),
        at_ms: 2_000,
    };
    s.record_refusal(&refusal, &NoAudit).await.unwrap();
    let decisions = s.decisions_of_thread(&thread, 10).await.unwrap();
    let summary: Vec<_> = decisions
        .iter()
        .map(|d| {
            (
                d.message_id,
                d.user_id.as_str(),
                d.by.plugin.as_str(),
                d.verdict.as_str(),
                d.reason.as_deref(),
                d.input_sha256.as_str(),
                d.at_ms,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                None,
                bob.as_str(),
                "mask",
                "reject",
                Some("no e-mail addresses"),
                "h2",
                2_000
            ),
            (
                Some(m.id),
                alice.as_str(),
                "tidy",
                "rewrite",
                None,
                "h1",
                1_000
            ),
            (
                Some(m.id),
                alice.as_str(),
                "mask",
                "rewrite",
                None,
                "h1",
                1_000
            ),
        ],
        "{name}"
    );
    assert!(
        decisions
            .iter()
            .all(|d| d.hook == "message-hook" && d.by.version == "1.2.3")
    );
    assert_eq!(
        s.decisions_of_thread(&thread, 1).await.unwrap().len(),
        1,
        "{name}: limit"
    );
    assert!(
        s.decisions_of_thread(&other, 10).await.unwrap().is_empty(),
        "{name}"
    );
}

crate::testing::per_backend! {
    backends: [sqlite, mysql],
    cases: [
        plugin_decisions_are_kept_per_thread,
        threads_are_found_by_participants_title_and_dates,
        threads_count_their_messages_and_keep_the_newest,
        concurrent_sends_to_one_thread_all_count,
        thread_search_pages_newest_first_with_a_cursor,
        users_are_found_by_id_or_name_prefix,
        names_without_a_search_key_are_folded_at_start,
        thread_searches_read_indexes_not_tables,
        threads_users_and_participants,
        messages_are_idempotent_per_sender_key,
        concurrent_sends_with_one_key_store_one_row,
        history_pages_oldest_first,
        reads_never_move_backwards_and_set_receipts,
        stored_plugins_roundtrip,
        pending_is_what_no_device_acknowledged_and_what_follows_a_cursor,
    ],
}
