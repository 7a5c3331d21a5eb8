//! The use cases on the embedded backends (a fresh SQLite file, the memory
//! state) with a fan-out that records what would reach which rooms.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tempfile::TempDir;

use super::delivery::DeliveryMarks;
use super::error::ChatError;
use super::fanout::{Fanout, thread_room, user_room};
use super::policy::PolicyChain;
use super::{Backends, ChatService, Limits};
use crate::audit::AuditLog;
use crate::config::AuditKeys;
use crate::domain::model::{MessageView, UserProfile};
use crate::domain::server_events::ServerEvent;
use crate::domain::{Actor, ConnectionId, Role};
use crate::events::EventBus;
use crate::state::memory::MemoryState;
use crate::store::sql::SqlStore;
use crate::testing::temp_dir;

/// One recorded broadcast.
#[derive(Debug, Clone)]
struct Emitted {
    rooms: Vec<String>,
    except_rooms: Vec<String>,
    except: Option<ConnectionId>,
    event: ServerEvent,
}

/// A [`Fanout`] that records every broadcast; the devices of the users in
/// `acking` acknowledge what they are delivered.
#[derive(Default)]
struct Recorder {
    emitted: Mutex<Vec<Emitted>>,
    acking: Mutex<Vec<String>>,
    /// How long a broadcast hangs before it goes out (a frozen adapter).
    stall: Mutex<Duration>,
}

#[async_trait]
impl Fanout for Recorder {
    async fn emit_except(
        &self,
        rooms: Vec<String>,
        except_rooms: Vec<String>,
        except: Option<&ConnectionId>,
        event: &ServerEvent,
    ) {
        let stall = *self.stall.lock().unwrap();
        tokio::time::sleep(stall).await;
        self.emitted.lock().unwrap().push(Emitted {
            rooms,
            except_rooms,
            except: except.cloned(),
            event: event.clone(),
        });
    }

    async fn deliver(&self, user: &str, event: &ServerEvent, _: Duration) -> bool {
        self.emitted.lock().unwrap().push(Emitted {
            rooms: vec![user_room(user)],
            except_rooms: Vec::new(),
            except: None,
            event: event.clone(),
        });
        self.acking.lock().unwrap().iter().any(|u| u == user)
    }
}

impl Recorder {
    /// Takes what was recorded so far.
    fn take(&self) -> Vec<Emitted> {
        std::mem::take(&mut *self.emitted.lock().unwrap())
    }

    /// From now on `user`'s devices acknowledge deliveries.
    fn acks(&self, user: &str) {
        self.acking.lock().unwrap().push(user.to_owned());
    }
}

/// A service with two users in one thread, and a third user outside it.
struct World {
    chat: ChatService,
    fanout: Arc<Recorder>,
    state: Arc<MemoryState>,
    writer: tokio::task::JoinHandle<()>,
    events: EventBus,
    thread: String,
    alice: Actor,
    bob: Actor,
    eve: Actor,
    _dir: TempDir,
}

fn actor(user: &str, role: Role, socket: &str) -> Actor {
    Actor {
        user_id: user.into(),
        role,
        connection: Some(ConnectionId(socket.into())),
    }
}

async fn world() -> World {
    let dir = temp_dir();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let store = Arc::new(SqlStore::connect(&url).await.unwrap());
    let state = Arc::new(MemoryState::new());
    let fanout = Arc::new(Recorder::default());
    let limits = Limits {
        max_body_chars: 100,
        messages_per_minute: 5,
        ..Limits::defaults()
    };
    let (events, writer) = EventBus::start(state.clone(), Vec::new());
    let seal = Arc::new(AuditLog::new(
        store.clone(),
        AuditKeys::new("test", b"test key").unwrap(),
    ));
    let (marks, _marks_writer) = DeliveryMarks::start(store.clone(), seal.clone());
    let chat = ChatService::new(
        Backends {
            store,
            seal,
            state: state.clone(),
            fanout: fanout.clone(),
        },
        events.clone(),
        marks,
        PolicyChain::builtin(limits),
        limits,
    );
    let service = Actor {
        user_id: "service".into(),
        role: Role::Admin,
        connection: None,
    };
    for (id, role) in [
        ("alice", Role::Client),
        ("bob", Role::Freelancer),
        ("eve", Role::Client),
    ] {
        let profile = UserProfile {
            id: id.into(),
            display_name: id.to_uppercase(),
            avatar_url: None,
            role,
        };
        chat.upsert_user(&service, profile).await.unwrap();
    }
    let thread = chat
        .create_thread(
            &service,
            Some("logo".into()),
            "Logo".into(),
            vec!["alice".into(), "bob".into()],
        )
        .await
        .unwrap()
        .id;
    fanout.take();
    World {
        chat,
        fanout,
        state,
        writer,
        events,
        thread,
        alice: actor("alice", Role::Client, "a1"),
        bob: actor("bob", Role::Freelancer, "b1"),
        eve: actor("eve", Role::Client, "e1"),
        _dir: dir,
    }
}

impl World {
    /// Where the thread's typing and read events go: its room and both participants' sockets.
    fn audience(&self) -> Vec<String> {
        vec![
            thread_room(&self.thread),
            user_room("alice"),
            user_room("bob"),
        ]
    }

    async fn send(&self, from: &Actor, key: &str, body: &str) -> Result<MessageView, ChatError> {
        let payload = json!({ "threadId": self.thread, "body": body, "clientMessageId": key });
        Ok(self.chat.send_message(from, payload).await?.message)
    }

    /// `(deliveredAt set, readAt set)` of `user`'s receipt of `message`.
    async fn receipt(&self, message: &MessageView, user: &str) -> (bool, bool) {
        let page = self
            .chat
            .admin_history(&self.service(), &self.thread, None, None)
            .await
            .unwrap();
        let entry = page
            .items
            .iter()
            .find(|m| m.message.id.to_string() == message.id)
            .expect("message in history");
        let receipt = entry
            .receipts
            .iter()
            .find(|r| r.user_id == user)
            .expect("receipt of the user");
        (
            receipt.delivered_at_ms.is_some(),
            receipt.read_at_ms.is_some(),
        )
    }

    fn service(&self) -> Actor {
        Actor {
            user_id: "service".into(),
            role: Role::Admin,
            connection: None,
        }
    }

    /// The event-stream kinds written so far (closes the bus).
    async fn stream_kinds(self) -> Vec<String> {
        self.events.close();
        self.writer.await.unwrap();
        self.state
            .recent_events(1000)
            .into_iter()
            .map(|e| e.kind)
            .collect()
    }
}

fn code(result: Result<impl std::fmt::Debug, ChatError>) -> &'static str {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code(),
    }
}

#[tokio::test]
async fn a_message_reaches_every_room_once_and_is_delivered_only_when_a_device_acknowledges_it() {
    let w = world().await;
    w.chat.connect(&w.alice, None).await;
    w.chat.connect(&w.bob, None).await;
    w.fanout.take();

    let sent = w.send(&w.alice, "k1", "  hello  ").await.unwrap();
    assert_eq!(sent.body, "hello", "the body is trimmed");
    assert_eq!(sent.sender_id, "alice");
    w.chat.deliveries_settled().await;

    let emitted = w.fanout.take();
    assert_eq!(emitted.len(), 2, "{emitted:?}");
    for e in &emitted {
        assert!(matches!(&e.event, ServerEvent::Message(m) if m.message == sent));
    }
    let plain = &emitted[0];
    assert_eq!(plain.rooms, [user_room("alice"), thread_room(&w.thread)]);
    assert_eq!(
        plain.except_rooms,
        [user_room("bob")],
        "bob's devices get it once, with an ack request"
    );
    assert_eq!(
        plain.except, w.alice.connection,
        "not echoed to the sending socket"
    );
    assert_eq!(emitted[1].rooms, [user_room("bob")]);
    assert_eq!(
        w.receipt(&sent, "bob").await,
        (false, false),
        "online but not acknowledged: not delivered"
    );
    assert_eq!(
        w.receipt(&sent, "alice").await,
        (true, true),
        "the sender's own"
    );

    w.fanout.acks("bob");
    let acked = w.send(&w.alice, "k2", "and now?").await.unwrap();
    w.chat.deliveries_settled().await;
    assert_eq!(
        w.receipt(&acked, "bob").await,
        (true, false),
        "acknowledged: delivered"
    );

    let owed = w
        .chat
        .connect(&actor("bob", Role::Freelancer, "b2"), None)
        .await;
    assert_eq!(
        owed.queued,
        [sent],
        "the unacknowledged one is owed to the next connection"
    );
    assert!(w.stream_kinds().await.contains(&"message_sent".to_owned()));
}

#[tokio::test]
async fn an_offline_recipient_is_owed_its_messages_once_per_connection_until_one_acknowledges() {
    let w = world().await;
    let first = w.send(&w.alice, "k1", "are you there?").await.unwrap();
    let second = w.send(&w.alice, "k2", "hello?").await.unwrap();
    assert_eq!(
        w.receipt(&first, "bob").await,
        (false, false),
        "not delivered yet"
    );

    let arrival = w.chat.connect(&w.bob, None).await;
    assert_eq!(
        arrival.queued,
        [first.clone(), second.clone()],
        "queue and database merged, each once"
    );
    let again = w
        .chat
        .connect(&actor("bob", Role::Freelancer, "b2"), None)
        .await;
    assert_eq!(again.queued, arrival.queued, "not acknowledged: owed again");

    let ids: Vec<i64> = arrival
        .queued
        .iter()
        .map(|m| m.id.parse().unwrap())
        .collect();
    w.chat.acknowledged(&w.bob, &ids);
    w.chat.deliveries_settled().await;
    assert_eq!(w.receipt(&first, "bob").await, (true, false));
    let after = w
        .chat
        .connect(&actor("bob", Role::Freelancer, "b3"), None)
        .await;
    assert!(after.queued.is_empty(), "acknowledged: owed no more");

    // A device that resumes from a cursor gets what came after it, delivered
    // to another device or not; a cursor it cannot have is ignored.
    let cursor = first.id.parse().unwrap();
    let resumed = w
        .chat
        .connect(&actor("bob", Role::Freelancer, "b4"), Some(cursor))
        .await;
    assert_eq!(resumed.queued, [second]);
    let future = w
        .chat
        .connect(&actor("bob", Role::Freelancer, "b5"), Some(i64::MAX))
        .await;
    assert!(future.queued.is_empty());
    let eve = w.chat.connect(&w.eve, Some(0)).await;
    assert!(eve.queued.is_empty(), "never another thread's messages");
}

#[tokio::test]
async fn a_queued_message_that_a_device_acknowledged_is_not_sent_again() {
    let w = world().await;
    // Sent while bob looked offline (e.g. presence lost in a Redis restart):
    // queued, and also delivered live to a socket that acknowledged it.
    let m = w.send(&w.alice, "k1", "both ways").await.unwrap();
    w.chat.acknowledged(&w.bob, &[m.id.parse().unwrap()]);
    w.chat.deliveries_settled().await;
    let arrival = w.chat.connect(&w.bob, None).await;
    assert!(
        arrival.queued.is_empty(),
        "the database's receipt, not the queue, decides: {:?}",
        arrival.queued
    );
}

#[tokio::test]
async fn a_repeated_client_message_id_returns_the_stored_message_and_a_reused_one_is_refused() {
    let w = world().await;
    let first = w.send(&w.alice, "k1", "once").await.unwrap();
    let again = w.send(&w.alice, "k1", "once").await.unwrap();
    assert_eq!(first, again);
    assert_eq!(
        code(w.send(&w.alice, "k1", "something else").await),
        "invalid_payload"
    );
    let history = w
        .chat
        .history(&w.bob, json!({ "threadId": w.thread }))
        .await
        .unwrap();
    assert_eq!(history.messages, vec![first]);
}

#[tokio::test]
async fn bad_sends_are_refused_with_the_contracts_codes_and_store_nothing() {
    let w = world().await;
    assert_eq!(code(w.send(&w.eve, "k1", "hi").await), "not_found");
    assert_eq!(code(w.send(&w.alice, "k2", "   ").await), "invalid_payload");
    assert_eq!(
        code(w.send(&w.alice, "k3", &"x".repeat(101)).await),
        "invalid_payload"
    );
    let unknown = json!({ "threadId": "nope", "body": "hi", "clientMessageId": "k4" });
    assert_eq!(
        code(w.chat.send_message(&w.alice, unknown).await),
        "not_found"
    );
    assert_eq!(
        code(w.chat.send_message(&w.alice, json!({ "body": 1 })).await),
        "invalid_payload"
    );
    for i in 0..5 {
        w.send(&w.alice, &format!("r{i}"), "hi").await.unwrap();
    }
    assert_eq!(
        code(w.send(&w.alice, "r5", "one too many").await),
        "rate_limited"
    );
    let history = w
        .chat
        .history(&w.alice, json!({ "threadId": w.thread }))
        .await
        .unwrap();
    assert_eq!(
        history.messages.len(),
        5,
        "only the accepted sends are stored"
    );
}

#[tokio::test]
async fn join_shows_the_thread_to_participants_and_admins_only() {
    let w = world().await;
    w.chat.connect(&w.bob, None).await;
    w.send(&w.bob, "k1", "offer").await.unwrap();

    let joined = w
        .chat
        .join(&w.alice, json!({ "threadId": w.thread }))
        .await
        .unwrap();
    assert_eq!(joined.thread.title, "Logo");
    assert_eq!(joined.thread.unread_count, 1);
    assert_eq!(joined.thread.last_message.unwrap().body, "offer");
    let bob = joined
        .thread
        .participants
        .iter()
        .find(|p| p.user_id == "bob")
        .unwrap();
    assert!(bob.online);
    assert_eq!(bob.role, Role::Freelancer);
    assert!(!joined.thread.read_only);

    let admin = actor("tess", Role::Admin, "t1");
    let as_admin = w
        .chat
        .join(&admin, json!({ "threadId": w.thread }))
        .await
        .unwrap();
    assert!(as_admin.thread.read_only, "an admin reads, never writes");

    let join =
        async |who: &Actor, thread: &str| w.chat.join(who, json!({ "threadId": thread })).await;
    assert_eq!(code(join(&w.eve, &w.thread).await), "not_found");
    assert_eq!(code(join(&w.alice, "missing").await), "not_found");
    assert_eq!(code(join(&w.alice, "bad id!").await), "invalid_payload");
    assert_eq!(
        code(
            w.chat
                .leave(&w.alice, json!({ "threadId": "missing" }))
                .await
        ),
        "not_found"
    );
    assert_eq!(
        w.chat
            .leave(&w.alice, json!({ "threadId": w.thread }))
            .await
            .unwrap(),
        w.thread
    );
}

#[tokio::test]
async fn a_non_participant_cannot_tell_an_existing_thread_from_a_missing_one() {
    let w = world().await;
    let m = w.send(&w.alice, "k1", "private").await.unwrap();
    let missing = "no-such-thread";
    // Every thread request of eve, on the real thread and on a missing one.
    let answers = async |thread: &str| -> Vec<(String, String)> {
        let chat = &w.chat;
        let eve = &w.eve;
        let results = [
            chat.join(eve, json!({ "threadId": thread }))
                .await
                .map(drop),
            chat.leave(eve, json!({ "threadId": thread }))
                .await
                .map(drop),
            chat.history(eve, json!({ "threadId": thread }))
                .await
                .map(drop),
            chat.typing(eve, json!({ "threadId": thread, "isTyping": true }))
                .await
                .map(drop),
            chat.read(eve, json!({ "threadId": thread, "messageId": m.id }))
                .await
                .map(drop),
            chat.send_message(
                eve,
                json!({ "threadId": thread, "body": "let me in", "clientMessageId": "k2" }),
            )
            .await
            .map(drop),
        ];
        results
            .into_iter()
            .map(|r| {
                let e = r.expect_err("refused");
                let wire = e.to_wire();
                (
                    wire["code"].as_str().unwrap().to_owned(),
                    wire["message"].as_str().unwrap().replace(thread, "<id>"),
                )
            })
            .collect()
    };
    let existing = answers(&w.thread).await;
    assert!(
        existing.iter().all(|(code, _)| code == "not_found"),
        "{existing:?}"
    );
    assert_eq!(existing, answers(missing).await, "the same answers");
}

#[tokio::test]
async fn reading_moves_the_mark_forward_only_sets_read_receipts_and_tells_the_thread() {
    let w = world().await;
    let first = w.send(&w.alice, "k1", "one").await.unwrap();
    let second = w.send(&w.alice, "k2", "two").await.unwrap();
    w.chat.deliveries_settled().await;
    w.fanout.take();

    let read = |id: &str| {
        w.chat
            .read(&w.bob, json!({ "threadId": w.thread, "messageId": id }))
    };
    let mark = read(&second.id).await.unwrap();
    assert_eq!(mark.last_read_message_id, second.id);
    assert!(w.receipt(&first, "bob").await.1);
    assert!(w.receipt(&second, "bob").await.1);
    let emitted = w.fanout.take();
    assert_eq!(emitted.len(), 1);
    assert_eq!(emitted[0].rooms, w.audience(), "joined or not");
    assert!(
        matches!(&emitted[0].event, ServerEvent::Read(r) if r.user_id == "bob" && r.message_id == second.id)
    );

    let back = read(&first.id).await.unwrap();
    assert_eq!(back.last_read_message_id, second.id, "never backwards");
    assert!(w.fanout.take().is_empty(), "nothing moved, nothing told");
    assert_eq!(code(read("99999").await), "not_found");
    assert_eq!(code(read("12abc").await), "invalid_payload");
}

#[tokio::test]
async fn typing_is_relayed_to_the_thread_and_a_send_ends_it() {
    let w = world().await;
    let typing = |on: bool| {
        w.chat
            .typing(&w.bob, json!({ "threadId": w.thread, "isTyping": on }))
    };
    typing(true).await.unwrap();
    let emitted = w.fanout.take();
    assert_eq!(emitted.len(), 1);
    assert_eq!(emitted[0].rooms, w.audience(), "joined or not");
    assert_eq!(emitted[0].except, w.bob.connection);
    assert!(
        matches!(&emitted[0].event, ServerEvent::Typing(t) if t.is_typing && t.user_id == "bob")
    );

    w.send(&w.bob, "k1", "done typing").await.unwrap();
    let emitted = w.fanout.take();
    let stops: Vec<_> = emitted
        .iter()
        .filter(
            |e| matches!(&e.event, ServerEvent::Typing(t) if !t.is_typing && t.user_id == "bob"),
        )
        .collect();
    assert_eq!(stops.len(), 1, "the send ends typing: {emitted:?}");

    w.send(&w.bob, "k2", "again").await.unwrap();
    assert!(
        !w.fanout
            .take()
            .iter()
            .any(|e| matches!(e.event, ServerEvent::Typing(_))),
        "no stop without a start"
    );
    assert_eq!(
        code(
            w.chat
                .typing(&w.eve, json!({ "threadId": w.thread, "isTyping": true }))
                .await
        ),
        "not_found"
    );
}

#[tokio::test]
async fn repeated_typing_is_coalesced_and_a_stop_always_goes_through() {
    let w = world().await;
    let typing = |on: bool| {
        w.chat
            .typing(&w.bob, json!({ "threadId": w.thread, "isTyping": on }))
    };
    let relayed = || {
        w.fanout
            .take()
            .iter()
            .filter_map(|e| match &e.event {
                ServerEvent::Typing(t) => Some(t.is_typing),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    for _ in 0..50 {
        typing(true).await.unwrap();
    }
    assert_eq!(relayed(), [true], "50 starts within a second relay one");
    typing(false).await.unwrap();
    typing(false).await.unwrap();
    typing(true).await.unwrap();
    assert_eq!(
        relayed(),
        [false, true],
        "a stop, then a start again at once"
    );
}

#[tokio::test]
async fn a_history_flood_gets_rate_limited_with_retry_after() {
    let w = world().await;
    let history = || {
        w.chat
            .history(&w.alice, json!({ "threadId": w.thread, "limit": 1 }))
    };
    let budget = Limits::defaults().events_per_minute.history;
    for _ in 0..budget {
        history().await.unwrap();
    }
    let Err(ChatError::RateLimited { retry_after_ms }) = history().await else {
        panic!("the budget of {budget} was not enforced");
    };
    assert!(retry_after_ms > 0 && retry_after_ms <= 60_000 / u64::from(budget));
    let bob = w
        .chat
        .history(&w.bob, json!({ "threadId": w.thread, "limit": 1 }))
        .await;
    assert!(bob.is_ok(), "another user keeps their budget");
}

#[tokio::test]
async fn history_pages_backwards_oldest_first_and_caps_the_limit() {
    let w = world().await;
    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(
            w.send(&w.alice, &format!("k{i}"), &format!("m{i}"))
                .await
                .unwrap(),
        );
    }
    let page = |extra: Value| {
        let mut payload = json!({ "threadId": w.thread });
        payload
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        w.chat.history(&w.bob, payload)
    };
    let newest = page(json!({ "limit": 2 })).await.unwrap();
    assert_eq!(newest.messages, sent[3..].to_vec());
    assert!(newest.has_more);
    let older = page(json!({ "limit": 2, "beforeId": sent[3].id }))
        .await
        .unwrap();
    assert_eq!(older.messages, sent[1..3].to_vec());
    let newer = page(json!({ "limit": 2, "afterId": sent[0].id }))
        .await
        .unwrap();
    assert_eq!(newer.messages, sent[1..3].to_vec(), "the page just after");
    assert!(newer.has_more, "newer ones exist");
    let last = page(json!({ "afterId": sent[3].id })).await.unwrap();
    assert_eq!(last.messages, sent[4..].to_vec());
    assert!(!last.has_more);
    assert_eq!(
        code(page(json!({ "afterId": sent[0].id, "beforeId": sent[4].id })).await),
        "invalid_payload"
    );
    let all = page(json!({ "limit": 1000 })).await.unwrap();
    assert_eq!(
        all.messages, sent,
        "a limit over 100 is capped, not refused"
    );
    assert!(!all.has_more);
    assert_eq!(code(page(json!({ "limit": 0 })).await), "invalid_payload");
    assert_eq!(
        code(
            w.chat
                .history(&w.eve, json!({ "threadId": w.thread }))
                .await
        ),
        "not_found"
    );
}

#[tokio::test]
async fn presence_is_announced_on_the_first_socket_and_after_the_last() {
    let w = world().await;
    let online = |emitted: Vec<Emitted>| -> Vec<bool> {
        emitted
            .into_iter()
            .filter_map(|e| match e.event {
                ServerEvent::Presence(p) if p.user_id == "bob" => {
                    assert_eq!(
                        e.rooms,
                        vec![thread_room(&w.thread), user_room("alice")],
                        "the thread's room and every socket of everyone bob shares a thread with"
                    );
                    assert_eq!(p.last_seen_at.is_some(), !p.online);
                    Some(p.online)
                }
                _ => None,
            })
            .collect()
    };
    let phone = actor("bob", Role::Freelancer, "phone");
    let laptop = actor("bob", Role::Freelancer, "laptop");
    w.chat.connect(&phone, None).await;
    assert_eq!(online(w.fanout.take()), [true]);
    w.chat.connect(&laptop, None).await;
    w.chat.disconnect(&phone).await;
    assert_eq!(
        online(w.fanout.take()),
        Vec::<bool>::new(),
        "still on the laptop"
    );
    w.chat.disconnect(&laptop).await;
    assert_eq!(online(w.fanout.take()), [false]);

    let kinds = w.stream_kinds().await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "user_online").count(),
        1,
        "{kinds:?}"
    );
    assert!(kinds.contains(&"user_offline".to_owned()));
}

/// Past the deadline a use case answers `unavailable`. One that had stored
/// nothing is stopped there; a send whose fan-out hangs after the message was
/// stored still reaches the thread, and its retry gets the stored message.
#[tokio::test]
async fn past_the_deadline_a_use_case_answers_unavailable_and_a_stored_send_still_fans_out() {
    let World {
        chat,
        fanout,
        thread,
        alice,
        _dir,
        ..
    } = world().await;
    let chat = Arc::new(chat.with_deadline(Duration::from_millis(200)));

    let (reached, never) = tokio::sync::oneshot::channel::<()>();
    let stopped = chat
        .bounded(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = reached.send(());
            Ok(())
        })
        .await;
    assert_eq!(code(stopped), "unavailable");
    assert!(
        never.await.is_err(),
        "stopped at the deadline, never resumed"
    );

    *fanout.stall.lock().unwrap() = Duration::from_millis(600);
    let payload = json!({ "threadId": thread, "body": "late", "clientMessageId": "k-late" });
    let send = |payload: Value| {
        let (chat, alice) = (chat.clone(), alice.clone());
        async move { chat.send_message(&alice, payload).await }
    };
    let answered = chat.bounded(send(payload.clone())).await;
    assert_eq!(code(answered), "unavailable");
    *fanout.stall.lock().unwrap() = Duration::ZERO;
    chat.deliveries_settled().await;
    let live: Vec<String> = fanout
        .take()
        .into_iter()
        .filter_map(|e| match e.event {
            ServerEvent::Message(m) => Some(m.message.body),
            _ => None,
        })
        .collect();
    assert!(
        live.contains(&"late".to_owned()),
        "fanned out after the deadline: {live:?}"
    );
    let retried = chat.bounded(send(payload)).await.unwrap().message;
    assert_eq!(retried.body, "late", "the retry gets the stored message");
}

/// The admin console's use cases: a thread found by a name prefix and a pair,
/// its detail with read marks, presence and the recorded last-seen time, a
/// user with connections and threads, refusals, and the view on the stream.
#[tokio::test]
async fn the_admin_console_finds_threads_and_shows_read_marks_and_presence() {
    use super::admin::{ThreadQuery, UserQuery};

    let w = world().await;
    let operator = Actor {
        user_id: "op_1".into(),
        role: Role::Admin,
        connection: None,
    };
    let sent = w.send(&w.alice, "k1", "hello").await.unwrap();
    let pair = ThreadQuery {
        participants: vec!["Bo".into(), "alice".into()],
        ..ThreadQuery::default()
    };
    let listing = w.chat.admin_threads(&operator, &pair).await.unwrap();
    assert_eq!(listing.threads.len(), 1);
    assert_eq!(listing.next_cursor, None);
    let found = &listing.threads[0];
    assert_eq!(
        (found.thread.id.as_str(), found.thread.message_count),
        ("logo", 1)
    );
    assert_eq!(
        found.last_message.as_ref().map(|m| m.id.to_string()),
        Some(sent.id.clone())
    );
    let none = ThreadQuery {
        participants: vec!["eve".into(), "bob".into()],
        ..ThreadQuery::default()
    };
    assert!(
        w.chat
            .admin_threads(&operator, &none)
            .await
            .unwrap()
            .threads
            .is_empty()
    );

    w.chat.connect(&w.bob, None).await;
    w.chat.connect(&w.alice, None).await;
    w.chat.disconnect(&w.alice).await;
    let detail = w.chat.admin_thread(&operator, "logo").await.unwrap();
    let (alice, bob) = (&detail.participants[0], &detail.participants[1]);
    assert_eq!(
        alice
            .participant
            .last_read_message_id
            .map(|id| id.to_string()),
        Some(sent.id)
    );
    assert_eq!(bob.participant.last_read_message_id, None);
    assert!(bob.connections.online() && bob.connections.last_seen_at_ms.is_none());
    assert!(!alice.connections.online(), "alice's last socket closed");
    assert!(
        alice.connections.last_seen_at_ms.is_some(),
        "and when is recorded"
    );

    let user = w.chat.admin_user(&operator, "bob").await.unwrap();
    assert_eq!(user.user.connections.open, 1);
    assert_eq!(
        user.threads
            .iter()
            .map(|t| t.id.as_str())
            .collect::<Vec<_>>(),
        ["logo"]
    );
    let users = w
        .chat
        .admin_users(
            &operator,
            &UserQuery {
                q: Some("ALI".into()),
                ..UserQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        users
            .users
            .iter()
            .map(|u| u.profile.id.as_str())
            .collect::<Vec<_>>(),
        ["alice"]
    );

    assert_eq!(
        code(w.chat.admin_thread(&operator, "nope").await),
        "not_found"
    );
    assert_eq!(
        code(w.chat.admin_user(&operator, "nope").await),
        "not_found"
    );
    assert_eq!(
        code(w.chat.admin_thread(&operator, "bad id").await),
        "invalid_payload"
    );
    assert_eq!(code(w.chat.admin_thread(&w.bob, "logo").await), "forbidden");

    w.events.close();
    w.writer.await.unwrap();
    let viewed: Vec<_> = w
        .state
        .recent_events(1000)
        .into_iter()
        .filter(|e| e.kind == "admin_viewed_thread")
        .collect();
    assert_eq!(
        viewed.len(),
        1,
        "one view: refusals and searches write nothing"
    );
    assert!(viewed[0].fields.contains(&("userId".into(), "op_1".into())));
    assert!(
        viewed[0]
            .fields
            .contains(&("threadId".into(), "logo".into()))
    );
}
