//! What the console's live dashboard shows of the cluster: this instance's
//! sockets and users, the backends' health, the event stream's length and the
//! live instances.

use std::time::Duration;

use super::ChatService;

/// How long the overview waits for each backend before calling it down.
const PROBE: Duration = Duration::from_millis(500);

/// A live instance of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceBeat {
    /// Its id in the presence registry (`local` on the embedded backend).
    pub id: String,
    /// Its last presence refresh, in ms since the Unix epoch.
    pub seen_at_ms: i64,
}

/// One look at the cluster from this instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overview {
    /// Sockets connected to this instance.
    pub sockets: i64,
    /// Users with a socket on this instance.
    pub users: usize,
    /// The durable store answered.
    pub database: bool,
    /// The realtime state store answered.
    pub state: bool,
    /// Entries in the event stream (`None` when the state store did not answer).
    pub stream_length: Option<u64>,
    /// The live instances (empty when the state store did not answer).
    pub instances: Vec<InstanceBeat>,
}

impl ChatService {
    /// This instance's sockets and users, the backends' health, the event
    /// stream's length and the live instances, each probe bounded.
    pub async fn overview(&self) -> Overview {
        let (sockets, users) = self.presence.here();
        let (ready, length, instances) = tokio::join!(
            self.readiness(PROBE),
            tokio::time::timeout(PROBE, self.state.events_len()),
            tokio::time::timeout(PROBE, self.state.presence_instances()),
        );
        let mut instances: Vec<InstanceBeat> = match instances {
            Ok(Ok(beats)) => beats
                .into_iter()
                .map(|(id, seen_at_ms)| InstanceBeat { id, seen_at_ms })
                .collect(),
            _ => Vec::new(),
        };
        instances.sort_by(|a, b| a.id.cmp(&b.id));
        Overview {
            sockets,
            users,
            database: ready.database.is_ok(),
            state: ready.state.is_ok(),
            stream_length: length.ok().and_then(Result::ok),
            instances,
        }
    }
}
