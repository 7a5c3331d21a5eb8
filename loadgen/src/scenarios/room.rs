//! `room`: one thread with M members, the first S of them sending, together
//! at `rate` messages per second; every message reaches the M-1 others.

use std::time::Duration;

use serde_json::json;

use super::messaging::{Plan, Sender};
use super::{Member, user};
use crate::api::Thread;
use crate::ledger::SocketId;

/// The plan of one room of `members` sockets, `senders` of which send.
pub fn plan(
    prefix: &str,
    members: usize,
    senders: usize,
    rate: f64,
    duration: Duration,
    body_size: usize,
) -> Plan {
    let thread = format!("{prefix}-t0");
    let users: Vec<_> = (0..members).map(|i| user(prefix, i)).collect();
    let everyone: Vec<SocketId> = (0..members as SocketId).collect();
    let senders: Vec<Sender> = (0..senders.min(members) as SocketId)
        .map(|me| Sender {
            socket: me,
            thread: thread.clone(),
            recipients: everyone.iter().copied().filter(|&s| s != me).collect(),
        })
        .collect();
    Plan {
        scenario: "room",
        params: json!({
            "members": members,
            "senders": senders.len(),
            "rate": rate,
            "durationSec": duration.as_secs_f64(),
            "bodySize": body_size,
        }),
        threads: vec![Thread {
            id: thread.clone(),
            participants: users.iter().map(|u| u.id.clone()).collect(),
        }],
        members: users
            .into_iter()
            .map(|user| Member {
                user,
                joins: vec![thread.clone()],
            })
            .collect(),
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
    fn senders_reach_everyone_else() {
        let p = plan("lg", 4, 2, 10.0, Duration::from_secs(1), 10);
        assert_eq!(p.members.len(), 4);
        assert_eq!(p.threads.len(), 1);
        assert_eq!(p.threads[0].participants.len(), 4);
        assert_eq!(p.senders.len(), 2);
        assert_eq!(p.senders[0].recipients, [1, 2, 3]);
        assert_eq!(p.senders[1].recipients, [0, 2, 3]);
        assert_eq!(plan("lg", 2, 5, 1.0, Duration::ZERO, 1).senders.len(), 2);
    }
}
