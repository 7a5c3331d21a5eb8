//! Acknowledged deliveries, written in batches: whatever acknowledgements are
//! queued while one write runs go into the next, one statement each, so the
//! database sees a few writes per second under load instead of one per
//! message and recipient, and an acknowledgement at low load is written at once.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::domain::{MessageId, now_ms};
use crate::store::{AuditSeal, Messages};

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
    /// Starts the writer over `store`, sealing evidence with `seal` (call
    /// within the runtime); returns the queue and the task, which ends after
    /// [`DeliveryMarks::close`] once the queue is written.
    pub fn start(store: Arc<dyn Messages>, seal: Arc<dyn AuditSeal>) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, tokio::spawn(write(store, seal, rx)))
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

async fn write(
    store: Arc<dyn Messages>,
    seal: Arc<dyn AuditSeal>,
    mut rx: mpsc::UnboundedReceiver<Mark>,
) {
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
            if let Err(e) = store.mark_delivered(&batch, now_ms(), &*seal).await {
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
