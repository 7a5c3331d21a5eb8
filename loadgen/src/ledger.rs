//! Delivery accounting: which socket should receive which message, and what
//! actually arrived.
//!
//! Every send is registered with [`Ledger::expect`] before its frame leaves,
//! naming the sockets that must each receive it exactly once. Receipts are
//! fed to [`Ledger::receive`]. A send the server refused (error ack) is
//! withdrawn with [`Ledger::cancel`]. [`Ledger::tally`] then counts, per
//! (message, recipient socket) pair, what was received, duplicated or lost.

use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;

/// Index of a socket in the run.
pub type SocketId = u32;

/// Identity of one send: the sending socket and its sequence number. It is
/// carried on the wire in the `clientMessageId` (see [`MsgKey::client_id`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MsgKey {
    /// The sending socket.
    pub sender: SocketId,
    /// The sender's sequence number, from 0.
    pub seq: u32,
}

impl MsgKey {
    /// `clientMessageId` of this send: `<prefix>-<sender>-<seq>`.
    pub fn client_id(self, prefix: &str) -> String {
        format!("{prefix}-{}-{}", self.sender, self.seq)
    }

    /// Reads back a `clientMessageId` written by [`MsgKey::client_id`] with the same prefix.
    pub fn parse(client_id: &str, prefix: &str) -> Option<Self> {
        let rest = client_id.strip_prefix(prefix)?.strip_prefix('-')?;
        let (sender, seq) = rest.split_once('-')?;
        Some(Self {
            sender: sender.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

/// What one receipt was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// The first arrival of an expected message at this socket; carries the
    /// message's intended send time.
    First(Instant),
    /// The same message again at the same socket.
    Duplicate,
    /// A message this socket was not expecting (unknown, withdrawn, or not addressed to it).
    Unexpected,
}

/// The counts of a run. `received + lost == expected`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tally {
    /// Messages registered and not withdrawn.
    pub messages: u64,
    /// Deliveries owed: one per (message, recipient socket).
    pub expected: u64,
    /// Owed deliveries that arrived at least once.
    pub received: u64,
    /// Extra arrivals of a message at a socket that already had it.
    pub duplicated: u64,
    /// Owed deliveries that never arrived.
    pub lost: u64,
    /// Arrivals nobody was owed (withdrawn, unknown, or at a non-recipient).
    pub unexpected: u64,
    /// Messages withdrawn because the server refused them.
    pub withdrawn: u64,
}

struct Entry {
    intended: Instant,
    /// Recipient sockets, sorted.
    recipients: Box<[SocketId]>,
    /// Arrivals per recipient, in the order of `recipients`.
    arrivals: Box<[u32]>,
    /// Arrivals at sockets not in `recipients`.
    strays: u32,
    withdrawn: bool,
}

/// The accounting of one run; see the module documentation.
#[derive(Default)]
pub struct Ledger {
    entries: HashMap<MsgKey, Entry>,
    unknown: u64,
    owed: u64,
    delivered: u64,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a send intended at `intended` that each of `recipients` must receive once.
    /// Registering a key again replaces the old registration's expectations.
    pub fn expect(&mut self, key: MsgKey, intended: Instant, recipients: &[SocketId]) {
        let mut recipients = recipients.to_vec();
        recipients.sort_unstable();
        recipients.dedup();
        let arrivals = vec![0; recipients.len()].into_boxed_slice();
        self.owed += recipients.len() as u64;
        let entry = Entry {
            intended,
            recipients: recipients.into_boxed_slice(),
            arrivals,
            strays: 0,
            withdrawn: false,
        };
        if let Some(old) = self.entries.insert(key, entry) {
            self.forget(&old);
        }
    }

    fn forget(&mut self, entry: &Entry) {
        if !entry.withdrawn {
            self.owed -= entry.recipients.len() as u64;
            self.delivered -= entry.arrivals.iter().filter(|&&n| n > 0).count() as u64;
        }
    }

    /// Withdraws a send the server refused: nothing is owed for it any more,
    /// and whatever arrives of it is unexpected.
    pub fn cancel(&mut self, key: MsgKey) {
        let Some(mut entry) = self.entries.remove(&key) else {
            return;
        };
        self.forget(&entry);
        entry.withdrawn = true;
        self.entries.insert(key, entry);
    }

    /// Records that `socket` received message `key`.
    pub fn receive(&mut self, socket: SocketId, key: MsgKey) -> Receipt {
        let Some(entry) = self.entries.get_mut(&key) else {
            self.unknown += 1;
            return Receipt::Unexpected;
        };
        let Ok(slot) = entry.recipients.binary_search(&socket) else {
            entry.strays += 1;
            return Receipt::Unexpected;
        };
        entry.arrivals[slot] += 1;
        match (entry.withdrawn, entry.arrivals[slot]) {
            (true, _) => Receipt::Unexpected,
            (false, 1) => {
                self.delivered += 1;
                Receipt::First(entry.intended)
            }
            (false, _) => Receipt::Duplicate,
        }
    }

    /// Records an arrival that could not be attributed to any send (e.g. a
    /// `clientMessageId` of another run).
    pub fn receive_unknown(&mut self) {
        self.unknown += 1;
    }

    /// Deliveries still owed: registered, not withdrawn, not yet received.
    pub fn outstanding(&self) -> u64 {
        self.owed - self.delivered
    }

    /// The counts so far.
    pub fn tally(&self) -> Tally {
        let mut t = Tally {
            unexpected: self.unknown,
            ..Tally::default()
        };
        for entry in self.entries.values() {
            t.unexpected += u64::from(entry.strays);
            if entry.withdrawn {
                t.withdrawn += 1;
                t.unexpected += entry.arrivals.iter().map(|&n| u64::from(n)).sum::<u64>();
                continue;
            }
            t.messages += 1;
            for &n in entry.arrivals.iter() {
                t.expected += 1;
                match n {
                    0 => t.lost += 1,
                    n => {
                        t.received += 1;
                        t.duplicated += u64::from(n - 1);
                    }
                }
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key(sender: SocketId, seq: u32) -> MsgKey {
        MsgKey { sender, seq }
    }

    #[test]
    fn client_ids_round_trip_and_reject_other_prefixes() {
        let k = key(12, 345);
        let id = k.client_id("lg-x1");
        assert_eq!(id, "lg-x1-12-345");
        assert_eq!(MsgKey::parse(&id, "lg-x1"), Some(k));
        assert_eq!(MsgKey::parse(&id, "lg-x2"), None);
        assert_eq!(MsgKey::parse("lg-x1-12", "lg-x1"), None);
        assert_eq!(MsgKey::parse("lg-x1-a-1", "lg-x1"), None);
        assert_eq!(MsgKey::parse("lg-x112-345", "lg-x1"), None);
    }

    #[test]
    fn a_clean_room_run_adds_up() {
        let mut ledger = Ledger::new();
        let t0 = Instant::now();
        // Three sockets in one room; 0 and 1 send, everyone else receives.
        ledger.expect(key(0, 0), t0, &[1, 2]);
        ledger.expect(key(1, 0), t0, &[0, 2]);
        assert_eq!(ledger.outstanding(), 4);
        assert_eq!(ledger.receive(1, key(0, 0)), Receipt::First(t0));
        assert_eq!(ledger.receive(2, key(0, 0)), Receipt::First(t0));
        assert_eq!(ledger.receive(0, key(1, 0)), Receipt::First(t0));
        assert_eq!(ledger.receive(2, key(1, 0)), Receipt::First(t0));
        assert_eq!(ledger.outstanding(), 0);
        assert_eq!(
            ledger.tally(),
            Tally {
                messages: 2,
                expected: 4,
                received: 4,
                ..Tally::default()
            }
        );
    }

    #[test]
    fn counts_lost_duplicated_and_unexpected() {
        let mut ledger = Ledger::new();
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(20);
        ledger.expect(key(0, 0), t0, &[1, 2, 3]);
        ledger.expect(key(0, 1), t1, &[3, 1, 2]);
        // Message (0,0): socket 1 twice, socket 2 three times, socket 3 never.
        assert_eq!(ledger.receive(1, key(0, 0)), Receipt::First(t0));
        assert_eq!(ledger.receive(1, key(0, 0)), Receipt::Duplicate);
        assert_eq!(ledger.receive(2, key(0, 0)), Receipt::First(t0));
        assert_eq!(ledger.receive(2, key(0, 0)), Receipt::Duplicate);
        assert_eq!(ledger.receive(2, key(0, 0)), Receipt::Duplicate);
        // Message (0,1): only socket 3, with its own intended time.
        assert_eq!(ledger.receive(3, key(0, 1)), Receipt::First(t1));
        // The sender gets its own message back, and a message nobody sent arrives.
        assert_eq!(ledger.receive(0, key(0, 1)), Receipt::Unexpected);
        assert_eq!(ledger.receive(1, key(7, 7)), Receipt::Unexpected);
        ledger.receive_unknown();
        assert_eq!(ledger.outstanding(), 3);
        let t = ledger.tally();
        assert_eq!(
            t,
            Tally {
                messages: 2,
                expected: 6,
                received: 3,
                duplicated: 3,
                lost: 3,
                unexpected: 3,
                withdrawn: 0,
            }
        );
        assert_eq!(t.received + t.lost, t.expected);
    }

    #[test]
    fn withdrawn_sends_are_not_owed() {
        let mut ledger = Ledger::new();
        let t0 = Instant::now();
        ledger.expect(key(0, 0), t0, &[1]);
        ledger.expect(key(0, 1), t0, &[1]);
        ledger.expect(key(0, 2), t0, &[1]);
        // (0,1) arrives, then its ack says it failed: the arrival becomes unexpected.
        assert_eq!(ledger.receive(1, key(0, 1)), Receipt::First(t0));
        ledger.cancel(key(0, 1));
        ledger.cancel(key(0, 2));
        ledger.cancel(key(9, 9)); // unknown: ignored
        assert_eq!(ledger.outstanding(), 1);
        assert_eq!(ledger.receive(1, key(0, 2)), Receipt::Unexpected);
        assert_eq!(ledger.receive(1, key(0, 0)), Receipt::First(t0));
        assert_eq!(ledger.outstanding(), 0);
        assert_eq!(
            ledger.tally(),
            Tally {
                messages: 1,
                expected: 1,
                received: 1,
                unexpected: 2,
                withdrawn: 2,
                ..Tally::default()
            }
        );
    }

    #[test]
    fn registering_a_key_again_replaces_it() {
        let mut ledger = Ledger::new();
        let t0 = Instant::now();
        ledger.expect(key(0, 0), t0, &[1, 1, 2]);
        assert_eq!(ledger.outstanding(), 2);
        ledger.receive(1, key(0, 0));
        ledger.expect(key(0, 0), t0, &[2]);
        assert_eq!(ledger.outstanding(), 1);
        assert_eq!(ledger.tally().expected, 1);
        assert_eq!(ledger.tally().lost, 1);
    }
}
