//! The event bus: use cases and admin services publish what happened; a
//! background task shows it to the observers (the events plugins) and appends it
//! to the event stream (`chat:logs:events`, under the deployment's Redis
//! prefix), off the hot path (bounded queue, overflow counted).

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::domain::events::{ChatEvent, EventObserver};
use crate::state::{EventStream, StreamEntry};

/// Events waiting to be written before new ones are dropped (and counted).
const QUEUE_CAPACITY: usize = 10_000;
/// Most events written in one round trip.
const BATCH: usize = 256;

/// Publishes events without ever blocking the caller; clones share one queue.
#[derive(Clone)]
pub struct EventBus {
    tx: mpsc::Sender<ChatEvent>,
    stop: CancellationToken,
}

impl EventBus {
    /// Starts the writer task that appends events to `state`'s stream and shows
    /// them to `observers`.
    pub fn start(
        state: Arc<dyn EventStream>,
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

/// The stream entry of an event: `type` plus the fields it carries.
fn stream_entry(event: &ChatEvent) -> StreamEntry {
    let mut fields = vec![
        ("userId".to_owned(), event.user_id.clone()),
        ("at".to_owned(), event.at_ms.to_string()),
    ];
    if let Some(thread) = &event.thread_id {
        fields.push(("threadId".into(), thread.clone()));
    }
    if let Some(id) = event.message_id {
        fields.push(("messageId".into(), id.to_string()));
    }
    if let Some(subject) = &event.subject_id {
        fields.push(("subjectId".into(), subject.clone()));
    }
    StreamEntry {
        kind: event.kind.as_str().to_owned(),
        fields,
    }
}

async fn write_events(
    mut rx: mpsc::Receiver<ChatEvent>,
    state: Arc<dyn EventStream>,
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
        let entries: Vec<StreamEntry> = batch.drain(..).map(|e| stream_entry(&e)).collect();
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
    use crate::domain::events::EventKind;
    use crate::state::memory::MemoryState;

    #[tokio::test]
    async fn published_events_are_flushed_on_close() {
        let state = Arc::new(MemoryState::new());
        let (bus, writer) = EventBus::start(state.clone(), Vec::new());
        for i in 0..600 {
            bus.publish(
                ChatEvent::new(EventKind::MessageSent, "alice")
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
