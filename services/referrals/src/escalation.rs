//! The referral service's background process. It follows the clock and escalates,
//! once, every referral not accepted (or, once accepted, not completed) by its due
//! time; and it moves referrals made from a helpline contact onto the case opened from
//! that contact ([`crate::attach`]). The clock is the trust layer's, so tests move time
//! instead of waiting.
//!
//! Escalations are events of the referral's stream, written by the system actor
//! [`SYSTEM_ACTOR`] through the one command path as a request derived from the
//! referral, so two processes (or a restarted one) sweeping at once record each
//! escalation once.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use caseline_aggregate::{Intent, Request, Store};
use caseline_eventlog::{EventLog, Metadata, Uuid};
use caseline_policy::teams::to_unix_ms;
use caseline_server::ApiError;
use caseline_trust::Clock;
use caseline_vault::Vault;

use crate::directory::Directory;
use crate::domain::Command;
use crate::store::Referral;
use caseline_case::Case;

/// The actor of the events the referral service writes on its own (escalations,
/// attachments).
pub const SYSTEM_ACTOR: &str = "caseline-referrals";
/// Its role and agency in the envelope.
pub const SYSTEM: &str = "system";
/// Namespace of escalation event ids (UUIDv5 of the referral id).
const ESCALATION_NAMESPACE: Uuid = Uuid::from_u128(0x7e5c_a1a7_e0d1_4b8e_9c3f_5a6b_e5ca_1a7e);

/// The escalation process over a log.
pub struct Escalation {
    vault: Vault,
    directory: Directory,
    store: Store<Referral>,
    cases: Store<Case>,
    clock: Clock,
    /// Where [`Escalation::spawn`] tells when its last whole round began, by the clock.
    swept: tokio::sync::watch::Sender<Option<SystemTime>>,
}

impl std::fmt::Debug for Escalation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Escalation").finish_non_exhaustive()
    }
}

impl Escalation {
    pub(crate) fn new(
        log: Arc<dyn EventLog>,
        vault: Vault,
        clock: Clock,
        directory: Directory,
        swept: tokio::sync::watch::Sender<Option<SystemTime>>,
    ) -> Self {
        Self {
            vault,
            directory,
            store: Store::new(Arc::clone(&log)),
            cases: Store::new(Arc::clone(&log)),
            clock,
            swept,
        }
    }

    /// Sweeps every `every` until the task is dropped or aborted. After each round in
    /// which attaching and sweeping both ran through, publishes the clock's time at the
    /// round's start ([`caseline_host::Clockwork::escalation_swept`]).
    pub fn spawn(self, every: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                // Read before the round: the sweep below decides by this time or later.
                let began = (self.clock)();
                let attached = self.attach().await;
                match &attached {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(attached = n, "contact referrals attached to cases"),
                    Err(e) => tracing::warn!(error = %e, "attaching referrals failed; retrying"),
                }
                let swept = self.sweep().await;
                match &swept {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(escalated = n, "overdue referrals escalated"),
                    Err(e) => tracing::warn!(error = %e, "escalation sweep failed; retrying"),
                }
                if attached.is_ok() && swept.is_ok() {
                    self.swept.send_replace(Some(began));
                }
            }
        })
    }

    /// Attaches every contact's referral whose contact now has a case; returns how many.
    pub async fn attach(&self) -> Result<usize, ApiError> {
        let pending = self.directory.view().await?.unattached();
        let mut attached = 0;
        for (referral_id, case_id) in pending {
            // One that fails is tried again at the next tick; the others go on.
            match crate::attach::attach(&self.vault, &self.cases, &self.store, referral_id, case_id)
                .await
            {
                Ok(true) => attached += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "attaching a referral failed; retrying"),
            }
        }
        Ok(attached)
    }

    /// Escalates every referral overdue now, by the clock; returns how many.
    pub async fn sweep(&self) -> Result<usize, ApiError> {
        let now_ms = to_unix_ms((self.clock)());
        let due: Vec<Uuid> = {
            let view = self.directory.view().await?;
            view.in_order(None)
                .filter(|(_, _, r)| r.state.escalation.is_none() && r.state.is_overdue(now_ms))
                .map(|(_, id, _)| id)
                .collect()
        };
        let mut escalated = 0;
        for referral_id in due {
            match self.escalate(referral_id, now_ms).await {
                Ok(true) => escalated += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "escalating a referral failed; retrying"),
            }
        }
        Ok(escalated)
    }

    /// Escalates one referral if it still needs it, through the one command path as
    /// the system's request (one per referral: a second sweep, here or in another
    /// process, appends nothing twice); true if it stands escalated by the system now.
    async fn escalate(&self, referral_id: Uuid, now_ms: i64) -> Result<bool, ApiError> {
        let loaded = self.store.load(referral_id).await?;
        if loaded.state.escalation.is_some() {
            return Ok(false);
        }
        let request = Request::system(Uuid::new_v5(&ESCALATION_NAMESPACE, referral_id.as_bytes()));
        let case_id = loaded.owner().and_then(|o| o.case_id());
        match self
            .store
            .execute(
                Intent {
                    id: referral_id,
                    request: &request,
                    expected: None,
                    metadata: system(case_id, None),
                },
                Some(loaded),
                Command::Escalate { now_ms },
                &(),
            )
            .await
        {
            Ok(done) => Ok(done.changed),
            // Decided, withdrawn or escalated meanwhile.
            Err(ApiError::FailedPrecondition(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The envelope of the events the referral service writes on its own, about `case_id`
/// if the referral has one, caused by `causation_id` if something caused it.
pub(crate) fn system(case_id: Option<Uuid>, causation_id: Option<Uuid>) -> Metadata {
    Metadata {
        case_id,
        actor: SYSTEM_ACTOR.to_owned(),
        actor_role: SYSTEM.to_owned(),
        agency: SYSTEM.to_owned(),
        causation_id,
        ..Metadata::default()
    }
}
