//! Live deliveries and their receipts.
//!
//! A [`Courier`] sends each message to a recipient's devices and waits for one
//! to acknowledge it; one that was not acknowledged while the recipient still
//! has a socket (its copy was lost, e.g. with a Redis outage's pub/sub) is
//! tried again. Acknowledged deliveries are written in batches
//! ([`DeliveryMarks`]): whatever acknowledgements are queued while one write
//! runs go into the next, one statement each, so the database sees a few
//! writes per second under load instead of one per message and recipient, and
//! an acknowledgement at low load is written at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::fanout::Fanout;
use crate::domain::server_events::ServerEvent;
use crate::domain::{MessageId, now_ms};
use crate::state::StateStore;
use crate::store::Messages;

/// How long a recipient's devices have to acknowledge a live `chat:message`
/// before it counts as not delivered.
pub const DELIVERY_ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// A delivery nobody acknowledged is tried again after each of these waits
/// while the recipient has a socket somewhere; after the last, the recipient's
/// next connection gets it.
pub const REDELIVERY_WAITS: [Duration; 2] = [Duration::from_secs(5), Duration::from_secs(30)];

/// Sends messages to recipients' devices and records who acknowledged them.
#[derive(Clone)]
pub struct Courier {
    fanout: Arc<dyn Fanout>,
    state: Arc<dyn StateStore>,
    /// Acknowledged receipts on their way to the store.
    pub(super) marks: DeliveryMarks,
    /// Deliveries waiting for an acknowledgement.
    deliveries: TaskTracker,
    /// Ends the waits before redeliveries (at shutdown).
    stop: CancellationToken,
}

impl Courier {
    /// A courier over `fanout`, asking `state` who is online before a redelivery.
    pub fn new(fanout: Arc<dyn Fanout>, state: Arc<dyn StateStore>, marks: DeliveryMarks) -> Self {
        Self {
            fanout,
            state,
            marks,
            deliveries: TaskTracker::new(),
            stop: CancellationToken::new(),
        }
    }

    /// Delivers `event` (message `id`) to `user`'s devices in the background.
    pub fn dispatch(&self, user: String, event: ServerEvent, id: MessageId) {
        self.attempt(user, event, id, 0);
    }

    fn attempt(&self, user: String, event: ServerEvent, id: MessageId, tried: usize) {
        let courier = self.clone();
        self.deliveries.spawn(async move {
            if courier
                .fanout
                .deliver(&user, &event, DELIVERY_ACK_TIMEOUT)
                .await
            {
                courier.marks.delivered(&user, &[id]);
                return;
            }
            let Some(wait) = REDELIVERY_WAITS.get(tried).copied() else {
                return;
            };
            // The wait is no delivery in flight: settling does not wait for it.
            tokio::spawn(async move {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = courier.stop.cancelled() => return,
                }
                let online = courier
                    .state
                    .presence_online(std::slice::from_ref(&user))
                    .await;
                if matches!(online.as_deref(), Ok([true])) {
                    metrics::counter!("chat_redeliveries_total").increment(1);
                    courier.attempt(user, event, id, tried + 1);
                }
            });
        });
    }

    /// Waits until every delivery in flight was acknowledged or timed out and
    /// every acknowledged receipt is written (pending redeliveries excluded).
    pub async fn settled(&self) {
        self.deliveries.close();
        self.deliveries.wait().await;
        self.deliveries.reopen();
        self.marks.flush().await;
    }

    /// Cancels the redeliveries still waiting (at shutdown: the recipients'
    /// next connections get those messages).
    pub fn stop_redeliveries(&self) {
        self.stop.cancel();
    }
}

/// The most receipts one write takes.
const BATCH_MAX: usize = 2_000;

enum Mark {
    Delivered(String, MessageId),
    Flush(oneshot::Sender<()>),
    Close,
}

/// The queue of acknowledged receipts, and its writer task.
#[derive(Clone)]
pub struct DeliveryMarks {
    tx: mpsc::UnboundedSender<Mark>,
}

impl DeliveryMarks {
    /// Starts the writer over `store` (call within the runtime); returns the
    /// queue and the task, which ends after [`DeliveryMarks::close`] once the
    /// queue is written.
    pub fn start(store: Arc<dyn Messages>) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, tokio::spawn(write(store, rx)))
    }

    /// A device of `user` acknowledged these messages.
    pub fn delivered(&self, user: &str, messages: &[MessageId]) {
        for id in messages {
            let _ = self.tx.send(Mark::Delivered(user.to_owned(), *id));
        }
    }

    /// Waits until everything queued so far is written.
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.tx.send(Mark::Flush(done)).is_ok() {
            let _ = written.await;
        }
    }

    /// Writes what is queued, then ends the writer.
    pub fn close(&self) {
        let _ = self.tx.send(Mark::Close);
    }
}

async fn write(store: Arc<dyn Messages>, mut rx: mpsc::UnboundedReceiver<Mark>) {
    let mut batch = Vec::new();
    let mut flushed = Vec::new();
    let mut closing = false;
    while !closing {
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut next = Some(first);
        while let Some(mark) = next.take() {
            match mark {
                Mark::Delivered(user, id) => batch.push((user, id)),
                Mark::Flush(done) => flushed.push(done),
                Mark::Close => closing = true,
            }
            if batch.len() < BATCH_MAX {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            if let Err(e) = store.mark_delivered(&batch, now_ms()).await {
                tracing::warn!(receipts = batch.len(), error = %e, "deliveredAt not recorded; the messages are sent again on the next connect");
            }
            metrics::counter!("chat_receipts_delivered_total").increment(batch.len() as u64);
            batch.clear();
        }
        for done in flushed.drain(..) {
            let _ = done.send(());
        }
    }
}
