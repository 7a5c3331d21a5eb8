//! Checks a thread's stored history against the evidence in its trail (the
//! chain itself is checked first, so every entry read here is the host's own).
//!
//! The current audit period starts at the last `audit_started` entry. Its
//! `history_sealed` entries hold each earlier message with its receipts as
//! they stood; `message_stored` entries each later message as stored; and the
//! `receipts_*` entries every receipt time written since. Undoing those later
//! writes on the stored history gives back the sealed state, so:
//! - a sealed message whose message or receipts differ was altered;
//! - a later message whose content differs from its entry was edited;
//! - a receipt time that differs from the entry that wrote it was altered;
//! - a message in no entry was inserted; an entry's message that is gone was deleted.

use std::collections::HashMap;

use serde::de::DeserializeOwned;

use crate::domain::MessageId;
use crate::domain::evidence::{
    self, HOST, HistorySealed, MessageStored, ReceiptsDelivered, ReceiptsRead, kind,
};
use crate::domain::model::Receipt;
use crate::store::{AuditEntry, MessageWithReceipts, ThreadAudit};

/// A receipt time some entry wrote: the time and the entry's seq.
type Written = HashMap<(MessageId, String), (i64, i64)>;

/// What the current audit period's entries say.
#[derive(Default)]
struct Evidence {
    /// Messages sealed when the audit started: hash and entry.
    sealed: HashMap<MessageId, (String, i64)>,
    /// Messages stored since: what the entry says, and the entry.
    stored: HashMap<MessageId, (MessageStored, i64)>,
    /// `deliveredAt` times written since.
    delivered: Written,
    /// `readAt` times written since.
    read: Written,
}

fn parse<T: DeserializeOwned>(e: &AuditEntry) -> Result<T, String> {
    serde_json::from_str(&e.detail).map_err(|err| format!("entry {} is unreadable: {err}", e.seq))
}

fn message_id(e: &AuditEntry, id: &str) -> Result<MessageId, String> {
    id.parse()
        .map_err(|_| format!("entry {} names no message id: {id:?}", e.seq))
}

impl Evidence {
    /// The evidence of the period that starts at `entries[0]`.
    fn read(entries: &[AuditEntry]) -> Result<Self, String> {
        let mut ev = Self::default();
        for e in entries.iter().filter(|e| e.plugin == HOST) {
            match e.kind.as_str() {
                kind::HISTORY_SEALED => {
                    for (id, hash) in parse::<HistorySealed>(e)?.messages {
                        ev.sealed.insert(message_id(e, &id)?, (hash, e.seq));
                    }
                }
                kind::MESSAGE_STORED => {
                    let stored: MessageStored = parse(e)?;
                    ev.stored
                        .insert(message_id(e, &stored.message)?, (stored, e.seq));
                }
                kind::RECEIPTS_DELIVERED => {
                    let d: ReceiptsDelivered = parse(e)?;
                    for (id, user) in d.receipts {
                        ev.delivered
                            .insert((message_id(e, &id)?, user), (d.at_ms, e.seq));
                    }
                }
                kind::RECEIPTS_READ => {
                    let r: ReceiptsRead = parse(e)?;
                    for id in &r.messages {
                        ev.read
                            .insert((message_id(e, id)?, r.user.clone()), (r.at_ms, e.seq));
                    }
                    for id in &r.delivered {
                        ev.delivered
                            .insert((message_id(e, id)?, r.user.clone()), (r.at_ms, e.seq));
                    }
                }
                _ => {}
            }
        }
        Ok(ev)
    }

    /// `r` as it stood before the writes of this period, and the problem when
    /// a written time is not the stored one.
    fn undo(&mut self, r: &Receipt) -> (Receipt, Option<Problem>) {
        let mut before = r.clone();
        let mut problem = None;
        let key = (r.message_id, r.user_id.clone());
        for (written, stored, what) in [
            (
                &mut self.delivered,
                &mut before.delivered_at_ms,
                "delivered",
            ),
            (&mut self.read, &mut before.read_at_ms, "read"),
        ] {
            if let Some((at, seq)) = written.remove(&key) {
                if *stored != Some(at) && problem.is_none() {
                    problem = Some(Problem::at(
                        seq,
                        format!(
                            "the {what} time of message {} for {} differs from entry {seq}: the receipt was altered",
                            r.message_id, r.user_id
                        ),
                    ));
                }
                *stored = None;
            }
        }
        (before, problem)
    }
}

/// A problem, ordered by the entry it concerns (messages in no entry last).
struct Problem {
    seq: i64,
    text: String,
}

impl Problem {
    fn at(seq: i64, text: String) -> Self {
        Self { seq, text }
    }
}

/// The first problem of the stored history against the current audit period,
/// if any. Nothing is checked when the thread is not under audit and the
/// trail agrees that it is not.
pub(super) fn problem(
    entries: &[AuditEntry],
    audit: Option<&ThreadAudit>,
    history: &[MessageWithReceipts],
) -> Option<String> {
    let is = |e: &AuditEntry, k: &str| e.plugin == HOST && e.kind == k;
    let started = entries.iter().rposition(|e| is(e, kind::AUDIT_STARTED));
    let ended_after = |i: usize| entries[i..].iter().any(|e| is(e, kind::AUDIT_ENDED));
    let Some(start) = started else {
        return audit.map(|_| {
            "the thread is under audit, but its trail has no audit_started entry".to_owned()
        });
    };
    if audit.is_none() {
        return (!ended_after(start)).then(|| {
            format!(
                "the trail says the audit started at entry {} and never ended, but the thread is not under audit",
                entries[start].seq
            )
        });
    }
    let mut ev = match Evidence::read(&entries[start..]) {
        Ok(ev) => ev,
        Err(problem) => return Some(problem),
    };
    let mut problems = Vec::new();
    for m in history {
        let id = m.message.id;
        let mut before = Vec::with_capacity(m.receipts.len());
        let mut altered = false;
        for r in &m.receipts {
            let (r, problem) = ev.undo(r);
            before.push(r);
            if let Some(p) = problem {
                altered = true;
                problems.push(p);
            }
        }
        if altered {
            // Named above; the checks below would only blame an earlier entry for it.
            ev.sealed.remove(&id);
            ev.stored.remove(&id);
            continue;
        }
        if let Some((hash, seq)) = ev.sealed.remove(&id) {
            if evidence::sealed_hash(&m.message, &before) != hash {
                problems.push(Problem::at(
                    seq,
                    format!(
                        "message {id}, sealed by entry {seq} when the audit started, was edited or its receipts altered"
                    ),
                ));
            }
        } else if let Some((stored, seq)) = ev.stored.remove(&id) {
            if evidence::content_hash(&m.message) != stored.sha256 {
                problems.push(Problem::at(
                    seq,
                    format!("message {id} was edited after entry {seq} recorded it"),
                ));
            }
            let mut as_stored: Vec<_> = before
                .iter()
                .map(|r| (r.user_id.clone(), r.delivered_at_ms, r.read_at_ms))
                .collect();
            as_stored.sort();
            let mut recorded = stored.receipts.clone();
            recorded.sort();
            if as_stored != recorded {
                problems.push(Problem::at(
                    seq,
                    format!(
                        "the receipts of message {id} differ from entry {seq}: they were altered"
                    ),
                ));
            }
        } else {
            problems.push(Problem::at(
                i64::MAX,
                format!("message {id} is in no audit entry: it was added behind the host's back"),
            ));
        }
    }
    let sealed = ev.sealed.iter().map(|(id, (_, seq))| (*id, *seq));
    let stored = ev.stored.iter().map(|(id, (_, seq))| (*id, *seq));
    for (id, seq) in sealed.chain(stored) {
        problems.push(Problem::at(
            seq,
            format!("message {id}, recorded by entry {seq}, is missing: it was deleted"),
        ));
    }
    for ((id, user), (_, seq)) in ev.delivered.iter().chain(ev.read.iter()) {
        problems.push(Problem::at(
            *seq,
            format!("the receipt of message {id} for {user}, written by entry {seq}, is missing"),
        ));
    }
    problems.into_iter().min_by_key(|p| p.seq).map(|p| p.text)
}
