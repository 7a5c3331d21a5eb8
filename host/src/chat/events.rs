//! The event stream: every use case publishes what happened; a background task
//! appends it to `chat:logs:events` off the hot path (bounded queue, overflow counted).

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::model::{MessageId, Millis, now_ms};
use crate::state::{StateStore, StreamEntry};

/// Events waiting to be written before new ones are dropped (and counted).
const QUEUE_CAPACITY: usize = 10_000;
/// Most events written in one round trip.
const BATCH: usize = 256;

/// Something that happened, for analytics and audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatEvent {
    /// `message_sent`, `message_read`, `thread_joined`, `user_online`, ...
    pub kind: &'static str,
    /// Who caused it.
    pub user_id: String,
    /// The thread, if any.
    pub thread_id: Option<String>,
    /// The message, if any.
    pub message_id: Option<MessageId>,
    /// The user an admin action was about, if any.
    pub subject_id: Option<String>,
    /// When.
    pub at_ms: Millis,
}

impl ChatEvent {
    /// An event of `kind` caused by `user` now.
    pub fn new(kind: &'static str, user: &str) -> Self {
        Self {
            kind,
            user_id: user.to_owned(),
            thread_id: None,
            message_id: None,
            subject_id: None,
            at_ms: now_ms(),
        }
    }

    /// Sets the thread.
    pub fn thread(mut self, thread: &str) -> Self {
        self.thread_id = Some(thread.to_owned());
        self
    }

    /// Sets the message.
    pub fn message(mut self, id: MessageId) -> Self {
        self.message_id = Some(id);
        self
    }

    /// Sets the user an admin action was about.
    pub fn subject(mut self, user: &str) -> Self {
        self.subject_id = Some(user.to_owned());
        self
    }

    fn to_entry(&self) -> StreamEntry {
        let mut fields = vec![
            ("userId".to_owned(), self.user_id.clone()),
            ("at".to_owned(), self.at_ms.to_string()),
        ];
        if let Some(thread) = &self.thread_id {
            fields.push(("threadId".into(), thread.clone()));
        }
        if let Some(id) = self.message_id {
            fields.push(("messageId".into(), id.to_string()));
        }
        if let Some(subject) = &self.subject_id {
            fields.push(("subjectId".into(), subject.clone()));
        }
        StreamEntry {
            kind: self.kind.to_owned(),
            fields,
        }
    }
}

/// Sees every event after it happened (e.g. the events plugins). Must not block.
pub trait EventObserver: Send + Sync {
    /// Called once per event by the writer task.
    fn observe(&self, event: &ChatEvent);
}

/// Publishes events without ever blocking the caller.
pub struct EventBus {
    tx: mpsc::Sender<ChatEvent>,
    stop: CancellationToken,
}

impl EventBus {
    /// Starts the writer task that appends events to `state`'s stream and shows
    /// them to `observers`.
    pub fn start(
        state: Arc<dyn StateStore>,
        observers: Vec<Arc<dyn EventObserver>>,
    ) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let stop = CancellationToken::new();
        let writer = tokio::spawn(write_events(rx, state, observers, stop.clone()));
        (Self { tx, stop }, writer)
    }

    /// Queues an event; if the queue is full the event is dropped and counted.
    pub fn publish(&self, event: ChatEvent) {
        if self.tx.try_send(event).is_err() {
            metrics::counter!("chat_events_dropped_total").increment(1);
        }
    }

    /// Stops accepting events; the writer flushes what is queued and ends.
    pub fn close(&self) {
        self.stop.cancel();
    }
}

async fn write_events(
    mut rx: mpsc::Receiver<ChatEvent>,
    state: Arc<dyn StateStore>,
    observers: Vec<Arc<dyn EventObserver>>,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => if n == 0 { return },
            () = stop.cancelled() => rx.close(),
        }
        while rx.try_recv().map(|e| batch.push(e)).is_ok() && batch.len() < BATCH {}
        if batch.is_empty() {
            continue;
        }
        for event in &batch {
            for observer in &observers {
                observer.observe(event);
            }
        }
        let entries: Vec<StreamEntry> = batch.drain(..).map(|e| e.to_entry()).collect();
        match state.append_events(&entries).await {
            Ok(()) => {
                metrics::counter!("chat_events_written_total").increment(entries.len() as u64)
            }
            Err(e) => {
                metrics::counter!("chat_events_dropped_total").increment(entries.len() as u64);
                tracing::warn!(error = %e, count = entries.len(), "event stream write failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::memory::MemoryState;

    #[tokio::test]
    async fn published_events_are_flushed_on_close() {
        let state = Arc::new(MemoryState::new());
        let (bus, writer) = EventBus::start(state.clone(), Vec::new());
        for i in 0..600 {
            bus.publish(
                ChatEvent::new("message_sent", "alice")
                    .thread("t1")
                    .message(i),
            );
        }
        bus.close();
        writer.await.unwrap();
        let events = state.recent_events(1000);
        assert_eq!(events.len(), 600);
        assert_eq!(events[599].kind, "message_sent");
        assert!(
            events[599]
                .fields
                .contains(&("messageId".into(), "599".into()))
        );
    }
}
