//! `pairs`: N one-to-one threads; both members of every pair send, all
//! pairs together at `rate` messages per second.

use std::time::Duration;

use serde_json::json;

use super::messaging::{Plan, Sender};
use super::{Member, user};
use crate::api::Thread;
use crate::ledger::SocketId;

/// The plan of `pairs` pairs (sockets `2p` and `2p+1` share thread `<prefix>-t<p>`).
pub fn plan(prefix: &str, pairs: usize, rate: f64, duration: Duration, body_size: usize) -> Plan {
    let mut members = Vec::with_capacity(2 * pairs);
    let mut threads = Vec::with_capacity(pairs);
    let mut senders = Vec::with_capacity(2 * pairs);
    for p in 0..pairs {
        let thread = format!("{prefix}-t{p}");
        let (a, b) = (user(prefix, 2 * p), user(prefix, 2 * p + 1));
        threads.push(Thread {
            id: thread.clone(),
            participants: vec![a.id.clone(), b.id.clone()],
        });
        for (me, other) in [(2 * p, 2 * p + 1), (2 * p + 1, 2 * p)] {
            senders.push(Sender {
                socket: me as SocketId,
                thread: thread.clone(),
                recipients: vec![other as SocketId],
            });
        }
        for u in [a, b] {
            members.push(Member {
                user: u,
                joins: vec![thread.clone()],
            });
        }
    }
    Plan {
        scenario: "pairs",
        params: json!({
            "pairs": pairs,
            "rate": rate,
            "ratePerPair": rate / pairs.max(1) as f64,
            "durationSec": duration.as_secs_f64(),
            "bodySize": body_size,
        }),
        members,
        threads,
        senders,
        rate,
        duration,
        body_size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_member_sends_to_the_other() {
        let p = plan("lg", 3, 30.0, Duration::from_secs(1), 10);
        assert_eq!(p.members.len(), 6);
        assert_eq!(p.threads.len(), 3);
        assert_eq!(p.threads[1].participants, ["lg-u2", "lg-u3"]);
        assert_eq!(p.members[3].joins, ["lg-t1"]);
        assert_eq!(p.senders.len(), 6);
        assert_eq!(p.senders[4].socket, 4);
        assert_eq!(p.senders[4].recipients, [5]);
        assert_eq!(p.senders[5].recipients, [4]);
        assert_eq!(p.senders[5].thread, "lg-t2");
    }
}
