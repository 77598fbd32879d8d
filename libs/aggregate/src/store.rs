//! The command path: a command on one aggregate, run once for its request, on the
//! state it was authorised on, appended at the version read.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use caseline_eventlog::{
    Error as LogError, EventLog, ExpectedVersion, Metadata, NewEvent, StreamName, Uuid,
};
use caseline_server::ApiError;

use crate::request::{Request, reused};
use crate::turns::{Retry, turn};
use crate::{Aggregate, EventCodec, Loaded, Refusal};

/// Aggregates a [`Store`] keeps between commands; past this the cache starts afresh
/// (a state is cheap to fold again from its stream, and the log is asked about every
/// request the fresh state has not seen). Each holds its state and its requests'
/// filter, at most 15 KiB however long its stream (see `Requests`): at worst 150 MiB
/// of filters, were every cached stream past 5 733 requests (a 1 KiB filter up to 819).
pub const CACHED_AGGREGATES: usize = 10_000;

/// What must hold for a command to be appended: asked on every state it is decided on,
/// so a caller who lost their standing meanwhile never writes. A gate that is a call's
/// authorisation holds the call.
pub trait Gate<A>: Sync {
    fn check(
        &self,
        id: Uuid,
        loaded: &Loaded<A>,
    ) -> impl Future<Output = Result<(), ApiError>> + Send;
}

/// No gate: the system's own commands (joining a team on a referral accepted, which
/// was authorised as that step).
impl<A: Aggregate> Gate<A> for () {
    async fn check(&self, _: Uuid, _: &Loaded<A>) -> Result<(), ApiError> {
        Ok(())
    }
}

/// A command on one aggregate, as a request made it.
#[derive(Debug)]
pub struct Intent<'a> {
    /// The aggregate's id.
    pub id: Uuid,
    pub request: &'a Request,
    /// The version the client last saw, if it said.
    pub expected: Option<u64>,
    /// The envelope of the events (who, on which case, in which call); its request id
    /// is the request's.
    pub metadata: Metadata,
}

/// What a command came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Done {
    /// The aggregate's version after it.
    pub version: u64,
    /// It appended events (now, or the first time this request was made); `false`: the
    /// rules found nothing to change.
    pub changed: bool,
}

/// The aggregates of one kind, loaded from the log and kept with their version.
pub struct Store<A> {
    log: Arc<dyn EventLog>,
    cache: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<Loaded<A>>>>>,
}

impl<A> std::fmt::Debug for Store<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl<A: Aggregate> Store<A> {
    pub fn new(log: Arc<dyn EventLog>) -> Self {
        Self {
            log,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn log(&self) -> &dyn EventLog {
        self.log.as_ref()
    }

    /// Aggregates kept now (at most [`CACHED_AGGREGATES`]).
    pub fn cached(&self) -> usize {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The aggregate `id` as the log says now (`version` `None`: there is none).
    pub async fn load(&self, id: Uuid) -> Result<Loaded<A>, ApiError> {
        let stream = A::stream(id)?;
        let slot = {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            let hit = cache.contains_key(&id);
            caseline_telemetry::metrics::cache_lookup("aggregates", hit);
            if cache.len() >= CACHED_AGGREGATES && !hit {
                cache.clear();
            }
            Arc::clone(cache.entry(id).or_default())
        };
        let mut loaded = slot.lock().await;
        if let Err(e) = loaded.follow(self.log.as_ref(), &stream).await {
            // Whatever was applied before the failure is not trusted again.
            *loaded = Loaded::default();
            return Err(e);
        }
        Ok(loaded.clone())
    }

    /// Runs `command` for `intent.request` on the aggregate `intent.id`, in its stream's
    /// turn ([`crate::turns`]): a retry of a request already applied gets its first
    /// answer; `expected` (the version the client saw) must still stand, else ABORTED
    /// with the current version; `gate` is asked on every state decided on; the events
    /// are appended at the version read, so a conflicting command that landed meanwhile
    /// from another process makes this one decide again on the new state. `first`, if
    /// given, is the state the caller was authorised on, used for the first attempt
    /// unless a command of this process appended past it meanwhile.
    pub async fn execute(
        &self,
        intent: Intent<'_>,
        first: Option<Loaded<A>>,
        command: A::Command,
        gate: &impl Gate<A>,
    ) -> Result<Done, ApiError> {
        let Intent {
            id,
            request,
            expected,
            mut metadata,
        } = intent;
        metadata.request_id = Some(request.id);
        let stream = A::stream(id)?;
        let turn = turn(&stream).await;
        let mut first = first;
        let mut retry = Retry::new();
        loop {
            let loaded = match first.take() {
                Some(loaded) if turn.still_current(loaded.version) => loaded,
                // Read in the turn: commands before this one moved the stream on.
                _ => self.load(id).await?,
            };
            if let Some(done) = self.answered(&loaded, id, request).await? {
                return Ok(done);
            }
            gate.check(id, &loaded).await?;
            if let Some(v) = expected
                && loaded.version != Some(v)
            {
                return Err(wrong_version(
                    stream,
                    ExpectedVersion::Exact(v),
                    loaded.version,
                ));
            }
            let events = loaded
                .aggregate
                .decide(command.clone())
                .map_err(|refusal| refusal.status(A::KIND, id))?;
            if events.is_empty() {
                return match loaded.version {
                    Some(version) => Ok(Done {
                        version,
                        changed: false,
                    }),
                    None => Err(Refusal::Missing.status(A::KIND, id)),
                };
            }
            let new: Vec<NewEvent> = events
                .iter()
                .enumerate()
                .map(|(i, e)| NewEvent {
                    event_id: request.event_id(i),
                    event_type: e.event_type().to_owned(),
                    data: e.encode(),
                    metadata: metadata.clone(),
                })
                .collect();
            let at = loaded
                .version
                .map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
            match self.log.append(&stream, at, new).await {
                Ok(result) => {
                    turn.appended(result.last_version);
                    return Ok(Done {
                        version: result.last_version,
                        changed: true,
                    });
                }
                Err(LogError::WrongExpectedVersion { .. })
                    if expected.is_none() && retry.again().await =>
                {
                    continue;
                }
                Err(LogError::WrongExpectedVersion { actual, .. }) => {
                    return Err(wrong_version(
                        stream,
                        expected.map_or(at, ExpectedVersion::Exact),
                        actual,
                    ));
                }
                Err(LogError::EventIdConflict { .. }) => {
                    // The same request raced itself (a client retry while the first
                    // attempt was in flight): the stored one is the answer.
                    let loaded = self.load(id).await?;
                    return self
                        .answered(&loaded, id, request)
                        .await?
                        .ok_or_else(reused);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// [`Store::execute`] for the command `build` makes, asked only once the request is
    /// known not to be a retry: `build` seals the command's text and checks what lies
    /// outside the aggregate's stream (another case, the case's stage, today's date),
    /// and a retry gets its first answer whatever those checks would say now.
    pub async fn build_and_execute(
        &self,
        intent: Intent<'_>,
        first: Option<Loaded<A>>,
        build: impl AsyncFnOnce() -> Result<A::Command, ApiError>,
        gate: &impl Gate<A>,
    ) -> Result<Done, ApiError> {
        if let Some(done) = self
            .retried(intent.id, first.as_ref(), intent.request)
            .await?
        {
            return Ok(done);
        }
        let command = build().await?;
        self.execute(intent, first, command, gate).await
    }

    /// [`Store::answered`] on `loaded` if given, else on the aggregate as the log says
    /// now.
    async fn retried(
        &self,
        id: Uuid,
        loaded: Option<&Loaded<A>>,
        request: &Request,
    ) -> Result<Option<Done>, ApiError> {
        match loaded {
            Some(loaded) => self.answered(loaded, id, request).await,
            None => self.answered(&self.load(id).await?, id, request).await,
        }
    }

    /// What the aggregate `id`, loaded, already answered `request`: its first answer
    /// if it was applied, ALREADY_EXISTS if its id was used there for a different
    /// request, `None` if it has not seen it. Also for what a command does outside the
    /// aggregate's stream before [`Store::execute`] (claiming a contact, the other side
    /// of a link), which a retry must neither redo nor be refused by.
    pub async fn answered(
        &self,
        loaded: &Loaded<A>,
        id: Uuid,
        request: &Request,
    ) -> Result<Option<Done>, ApiError> {
        Ok(loaded
            .answered(self.log.as_ref(), &A::stream(id)?, request)
            .await?
            .map(|version| Done {
                version,
                changed: true,
            }))
    }
}

fn wrong_version(stream: StreamName, expected: ExpectedVersion, actual: Option<u64>) -> ApiError {
    ApiError::Log(LogError::WrongExpectedVersion {
        stream,
        expected,
        actual,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use caseline_eventlog::sqlite::SqliteEventLog;
    use caseline_eventlog::{Direction, EventLog, Metadata, Uuid};
    use caseline_server::ApiError;

    use super::{CACHED_AGGREGATES, Done, Gate, Intent, Store};
    use crate::fixtures::{Count, Tally};
    use crate::{Aggregate, Loaded, Request};

    fn metadata() -> Metadata {
        Metadata {
            actor: "u".into(),
            actor_role: "r".into(),
            agency: "a".into(),
            ..Metadata::default()
        }
    }

    fn intent(id: Uuid, request: &Request, expected: Option<u64>) -> Intent<'_> {
        Intent {
            id,
            request,
            expected,
            metadata: metadata(),
        }
    }

    /// Refuses while shut; counts nothing else.
    struct Door(AtomicBool);

    impl Gate<Tally> for Door {
        async fn check(&self, _: Uuid, _: &Loaded<Tally>) -> Result<(), ApiError> {
            if self.0.load(Ordering::SeqCst) {
                Err(ApiError::PermissionDenied("shut"))
            } else {
                Ok(())
            }
        }
    }

    async fn log_in(dir: &std::path::Path) -> Arc<dyn EventLog> {
        Arc::new(
            SqliteEventLog::open(dir.join("events.sqlite"))
                .await
                .expect("opens"),
        )
    }

    async fn events(log: &dyn EventLog, id: Uuid) -> usize {
        log.read_stream(
            &Tally::stream(id).expect("a name"),
            Direction::Forwards,
            None,
            100,
        )
        .await
        .expect("reads")
        .len()
    }

    /// One command path: appended once per request (a retry gets its first answer and
    /// appends nothing), the request id in every event's envelope, nothing appended
    /// when the rules change nothing, when they refuse, when the gate refuses or when
    /// the version the client saw no longer stands.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_command_runs_once_and_only_when_everything_holds() {
        let dir = tempfile::tempdir().expect("a directory");
        let log = log_in(dir.path()).await;
        let store = Store::<Tally>::new(Arc::clone(&log));
        let id = Uuid::new_v4();
        let open = Door(AtomicBool::new(false));
        let first = Request::with_fingerprint(Uuid::new_v4(), [1; 32]);

        // Nothing to change on an aggregate that does not exist: NOT_FOUND.
        let nothing = store
            .execute(intent(id, &first, None), None, Count::Nothing, &open)
            .await;
        assert!(matches!(
            nothing,
            Err(ApiError::NotFound { kind: "tally", .. })
        ));

        let done = store
            .execute(intent(id, &first, None), None, Count::Add(2), &open)
            .await
            .expect("appends");
        assert_eq!(
            done,
            Done {
                version: 1,
                changed: true
            }
        );
        let again = store
            .execute(intent(id, &first, None), None, Count::Add(2), &open)
            .await
            .expect("answers");
        assert_eq!(again, done, "a retry gets its first answer");
        assert_eq!(events(log.as_ref(), id).await, 2);
        let stored = log
            .read_stream(
                &Tally::stream(id).expect("a name"),
                Direction::Forwards,
                None,
                10,
            )
            .await
            .expect("reads");
        assert!(
            stored
                .iter()
                .all(|e| e.metadata.request_id == Some(first.id))
        );
        assert_eq!(
            stored.iter().map(|e| e.event_id).collect::<Vec<_>>(),
            vec![first.event_id(0), first.event_id(1)]
        );

        let second = Request::with_fingerprint(Uuid::new_v4(), [2; 32]);
        let unchanged = store
            .execute(intent(id, &second, None), None, Count::Nothing, &open)
            .await
            .expect("answers");
        assert_eq!(
            unchanged,
            Done {
                version: 1,
                changed: false
            }
        );

        let refused = store
            .execute(intent(id, &second, None), None, Count::Refuse, &open)
            .await;
        assert!(matches!(refused, Err(ApiError::FailedPrecondition(_))));

        let shut = Door(AtomicBool::new(true));
        let barred = store
            .execute(intent(id, &second, None), None, Count::Add(1), &shut)
            .await;
        assert!(matches!(barred, Err(ApiError::PermissionDenied(_))));

        let stale = store
            .execute(intent(id, &second, Some(0)), None, Count::Add(1), &open)
            .await;
        assert!(matches!(stale, Err(ApiError::Log(_))), "{stale:?}");
        assert_eq!(events(log.as_ref(), id).await, 2, "nothing more appended");

        // The state it was authorised on, if still current, is the one decided on.
        let loaded = store.load(id).await.expect("loads");
        let done = store
            .execute(
                intent(id, &second, Some(1)),
                Some(loaded),
                Count::Add(1),
                &open,
            )
            .await
            .expect("appends");
        assert_eq!(
            done,
            Done {
                version: 2,
                changed: true
            }
        );
        assert_eq!(store.load(id).await.expect("loads").0, 3);
        log.close().await;
    }

    /// `build` is asked only of a request not yet applied: a retry gets its first
    /// answer even when its checks would refuse it now.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_retry_is_answered_before_its_command_is_built() {
        let dir = tempfile::tempdir().expect("a directory");
        let log = log_in(dir.path()).await;
        let store = Store::<Tally>::new(Arc::clone(&log));
        let id = Uuid::new_v4();
        let open = Door(AtomicBool::new(false));
        let request = Request::with_fingerprint(Uuid::new_v4(), [3; 32]);
        let first = store
            .build_and_execute(
                intent(id, &request, None),
                None,
                async || Ok(Count::Add(1)),
                &open,
            )
            .await
            .expect("appends");
        let loaded = store.load(id).await.expect("loads");
        for given in [None, Some(loaded)] {
            let again = store
                .build_and_execute(
                    intent(id, &request, None),
                    given,
                    async || Err(ApiError::FailedPrecondition("would refuse now".into())),
                    &open,
                )
                .await
                .expect("answers");
            assert_eq!(again, first);
        }
        let new = Request::with_fingerprint(Uuid::new_v4(), [4; 32]);
        let refused = store
            .build_and_execute(
                intent(id, &new, None),
                None,
                async || Err(ApiError::FailedPrecondition("refused".into())),
                &open,
            )
            .await;
        assert!(matches!(refused, Err(ApiError::FailedPrecondition(_))));
        assert_eq!(events(log.as_ref(), id).await, 1);
        log.close().await;
    }

    /// However many aggregates are loaded, the store keeps at most CACHED_AGGREGATES.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_cache_stays_within_its_bound() {
        let dir = tempfile::tempdir().expect("a directory");
        let log = log_in(dir.path()).await;
        let store = Store::<Tally>::new(Arc::clone(&log));
        let mut most = 0;
        for _ in 0..CACHED_AGGREGATES + 50 {
            store.load(Uuid::new_v4()).await.expect("loads");
            most = most.max(store.cached());
        }
        assert_eq!(most, CACHED_AGGREGATES);
        assert!(store.cached() <= CACHED_AGGREGATES);
        log.close().await;
    }
}
