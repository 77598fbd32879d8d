//! A limit on the calls refused before anyone is authenticated (no valid token, an
//! unknown method), per peer address: each such refusal appends an access record, so
//! without a limit anyone who can reach the port could grow the log as fast as they can
//! send (docs/security.md).
//!
//! Within a minute, the first `per_minute` refusals from one address are answered and
//! recorded as usual; the next one is answered RESOURCE_EXHAUSTED and recorded once,
//! with the reason `rate_limited`; the rest of that minute is answered
//! RESOURCE_EXHAUSTED without a record of its own. Calls that pass the trust layer are
//! never limited. The table holds at most [`PEERS_TRACKED`] addresses.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// Refusals recorded per address and minute unless configured.
pub const DEFAULT_REFUSED_PER_MINUTE: u32 = 120;
/// Addresses whose refusals are counted at once. Past this, those whose minute has
/// ended are forgotten first; if none has, the table starts afresh (an address then
/// gets its budget again, which a flood from that many addresses has anyway).
pub const PEERS_TRACKED: usize = 10_000;
/// The window a budget is counted over.
const WINDOW: Duration = Duration::from_secs(60);

/// What to do with one more refusal from an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Within the budget: answer and record it as usual.
    Record,
    /// The first one over: answer RESOURCE_EXHAUSTED and record that limiting began.
    Limit,
    /// Further over: answer RESOURCE_EXHAUSTED, record nothing.
    Quiet,
}

#[derive(Debug)]
struct Window {
    began: SystemTime,
    refused: u32,
}

/// Refusals counted per address.
#[derive(Debug)]
pub(crate) struct Refusals {
    per_minute: u32,
    peers: Mutex<HashMap<IpAddr, Window>>,
}

impl Refusals {
    pub(crate) fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            peers: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one refusal from `peer` at `now`. A call whose address is unknown (not
    /// over TCP) is not limited.
    pub(crate) fn note(&self, peer: Option<IpAddr>, now: SystemTime) -> Refusal {
        let Some(peer) = peer else {
            return Refusal::Record;
        };
        let ended = |w: &Window| now.duration_since(w.began).is_ok_and(|d| d >= WINDOW);
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if peers.len() >= PEERS_TRACKED && !peers.contains_key(&peer) {
            peers.retain(|_, w| !ended(w));
            if peers.len() >= PEERS_TRACKED {
                peers.clear();
            }
        }
        let window = peers.entry(peer).or_insert(Window {
            began: now,
            refused: 0,
        });
        if ended(window) {
            *window = Window {
                began: now,
                refused: 0,
            };
        }
        window.refused = window.refused.saturating_add(1);
        match window.refused.checked_sub(self.per_minute) {
            None | Some(0) => Refusal::Record,
            Some(1) => Refusal::Limit,
            Some(_) => Refusal::Quiet,
        }
    }

    /// Addresses counted now.
    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.peers.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::{Duration, SystemTime};

    use super::{PEERS_TRACKED, Refusal, Refusals};

    fn ip(n: u32) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::from(n)))
    }

    #[test]
    fn a_budget_per_address_and_minute() {
        let refusals = Refusals::new(3);
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let seen: Vec<Refusal> = (0..6).map(|_| refusals.note(ip(1), t0)).collect();
        use Refusal::*;
        assert_eq!(seen, [Record, Record, Record, Limit, Quiet, Quiet]);
        // Another address has its own budget.
        assert_eq!(refusals.note(ip(2), t0), Record);
        // A minute later the budget is whole again.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(refusals.note(ip(1), later), Record);
        // Calls with no address are not limited.
        assert!((0..10).all(|_| refusals.note(None, t0) == Record));
    }

    #[test]
    fn the_table_stays_within_its_bound() {
        let refusals = Refusals::new(1);
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut most = 0;
        for n in 0..(PEERS_TRACKED as u32 * 2 + 7) {
            // Half the addresses a minute later: their elders are forgotten first.
            let at = if n > PEERS_TRACKED as u32 {
                t0 + Duration::from_secs(61)
            } else {
                t0
            };
            refusals.note(ip(n), at);
            most = most.max(refusals.tracked());
        }
        assert_eq!(most, PEERS_TRACKED);
    }
}
