//! Lists: every aggregate of one stream category, followed from the log in global
//! order, and the pages cut from them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use caseline_eventlog::{Interest, Position, RecordedEvent, Uuid};
use caseline_projection::{Fold, Followed};
use caseline_server::ApiError;

use crate::{Aggregate, Loaded};

/// An aggregate that lists are made of: the format of its state in projections'
/// checkpoints (bump it when the state changes).
pub trait Listed: Aggregate + serde::Serialize + serde::de::DeserializeOwned {
    const FORMAT: u32;
}

/// Every aggregate of one stream category, in the order each began.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(bound = "A: Listed", from = "Stored<A>")]
pub struct Category<A> {
    items: HashMap<Uuid, Loaded<A>>,
    /// By the position of each one's first event.
    #[serde(with = "caseline_projection::positions::keys")]
    order: BTreeMap<Position, Uuid>,
    /// The case each one belongs to (its events' `case_id`).
    cases: HashMap<Uuid, Uuid>,
    /// The first positions of each case's aggregates: a case's list reads its own.
    /// Derived from `cases` (rebuilt on load, not checkpointed).
    #[serde(skip)]
    by_case: HashMap<Uuid, BTreeSet<Position>>,
    /// Each one's first position.
    #[serde(skip)]
    began: HashMap<Uuid, Position>,
}

/// A category as checkpointed: without what is derived.
#[derive(serde::Deserialize)]
#[serde(bound = "A: Listed")]
struct Stored<A> {
    items: HashMap<Uuid, Loaded<A>>,
    #[serde(with = "caseline_projection::positions::keys")]
    order: BTreeMap<Position, Uuid>,
    cases: HashMap<Uuid, Uuid>,
}

impl<A> From<Stored<A>> for Category<A> {
    fn from(stored: Stored<A>) -> Self {
        let mut category = Category {
            items: stored.items,
            order: stored.order,
            cases: stored.cases,
            by_case: HashMap::new(),
            began: HashMap::new(),
        };
        for (position, id) in &category.order {
            category.began.insert(*id, *position);
            if let Some(case_id) = category.cases.get(id) {
                category
                    .by_case
                    .entry(*case_id)
                    .or_default()
                    .insert(*position);
            }
        }
        category
    }
}

impl<A> std::fmt::Debug for Category<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Category")
            .field("items", &self.items.len())
            .finish_non_exhaustive()
    }
}

impl<A> Default for Category<A> {
    fn default() -> Self {
        Self {
            items: HashMap::new(),
            order: BTreeMap::new(),
            cases: HashMap::new(),
            by_case: HashMap::new(),
            began: HashMap::new(),
        }
    }
}

impl<A: Listed> Fold for Category<A> {
    const FORMAT: u32 = A::FORMAT;
    type Error = ApiError;
    const INTEREST: Interest = Interest::of(&[A::CATEGORY], &[], &[]);

    fn reads(event: &RecordedEvent) -> bool {
        caseline_projection::category_of(event) == Some(A::CATEGORY)
    }

    fn apply(&mut self, event: &RecordedEvent) -> Result<(), ApiError> {
        let Some(id) = event
            .stream
            .as_str()
            .split_once('-')
            .and_then(|(_, id)| Uuid::parse_str(id).ok())
        else {
            return Ok(());
        };
        let item = self.items.entry(id).or_default();
        if item.version.is_some_and(|v| event.version <= v) {
            // Delivered again (catch-up is at-least-once): applied already.
            return Ok(());
        }
        if item.version.is_none() {
            self.order.insert(event.position, id);
            self.began.insert(id, event.position);
        }
        item.fold(event)?;
        if let Some(case_id) = event.metadata.case_id
            && self.cases.get(&id) != Some(&case_id)
            && let Some(began) = self.began.get(&id)
        {
            // Filed under the case its latest event names (a helpline contact's
            // referral moves to the case opened from the contact).
            if let Some(old) = self.cases.insert(id, case_id)
                && let Some(set) = self.by_case.get_mut(&old)
            {
                set.remove(began);
                if set.is_empty() {
                    self.by_case.remove(&old);
                }
            }
            self.by_case.entry(case_id).or_default().insert(*began);
        }
        Ok(())
    }
}

/// Candidates a list takes from its category at a time ([`Projection::first`]): each
/// take catches the projection up with the log (one query), so a caller who may see few
/// of many is not answered one small page of candidates per query.
pub const CANDIDATES_AT_ONCE: usize = 256;

/// Every aggregate of one stream category, followed from the log in global order, for
/// lists. Commands never read it (they load their own stream). It catches up before
/// every query, so what a caller just wrote is listed on their next call.
#[derive(Debug)]
pub struct Projection<A> {
    followed: Arc<Followed<Category<A>>>,
}

impl<A: Listed> Projection<A> {
    /// Lists over `followed` (see `caseline_host::Host::projection`).
    pub fn new(followed: Arc<Followed<Category<A>>>) -> Self {
        Self { followed }
    }

    /// At most `limit` of the aggregates begun after `after` that `include` admits,
    /// oldest first, each with the position that pages them (the last one's is where
    /// the next call goes on from).
    async fn select(
        &self,
        after: Option<Position>,
        limit: usize,
        include: impl Fn(&Loaded<A>) -> bool,
    ) -> Result<Vec<(Position, Uuid, Loaded<A>)>, ApiError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let state = self.followed.view().await?;
        let from = after.map_or(Unbounded, Excluded);
        Ok(state
            .order
            .range((from, Unbounded))
            .filter_map(|(p, id)| state.items.get(id).map(|l| (*p, *id, l)))
            .filter(|(_, _, l)| include(l))
            .take(limit)
            .map(|(p, id, l)| (p, id, l.clone()))
            .collect())
    }

    /// The first `size + 1` aggregates begun after `after` that `include` admits and
    /// `keep` keeps, oldest first, each with the position that pages it, for
    /// [`page_of`]. Candidates are taken [`CANDIDATES_AT_ONCE`] (or `size + 1`, if
    /// more) at a time and `keep` (the caller's standing on each, decided without the
    /// projection's lock) is asked of them in order, so a call holds that many copies
    /// at a time and stops as soon as the page is full, whatever the size of the
    /// category.
    pub async fn first<T, Kept>(
        &self,
        after: Option<Position>,
        size: usize,
        include: impl Fn(&Loaded<A>) -> bool,
        mut keep: impl FnMut(Uuid, Loaded<A>) -> Kept,
    ) -> Result<Vec<(Position, T)>, ApiError>
    where
        Kept: std::future::Future<Output = Result<Option<T>, ApiError>>,
    {
        let chunk = size.saturating_add(1).max(CANDIDATES_AT_ONCE);
        let mut kept = Vec::new();
        let mut cursor = after;
        loop {
            let candidates = self.select(cursor, chunk, &include).await?;
            let whole = candidates.len() == chunk;
            for (position, id, loaded) in candidates {
                if kept.len() > size {
                    return Ok(kept);
                }
                cursor = Some(position);
                if let Some(t) = keep(id, loaded).await? {
                    kept.push((position, t));
                }
            }
            if !whole || kept.len() > size {
                return Ok(kept);
            }
        }
    }
}

impl<A: Listed> Projection<A> {
    /// The aggregates of the cases `case_ids` begun after `after` that `include`
    /// admits, oldest first, each with the position that pages them: the work is that
    /// of those cases' aggregates, whatever the size of the category.
    pub async fn of_cases(
        &self,
        case_ids: &[Uuid],
        after: Option<Position>,
        include: impl Fn(&Loaded<A>) -> bool,
    ) -> Result<Vec<(Position, Uuid, Loaded<A>)>, ApiError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let state = self.followed.view().await?;
        let from = after.map_or(Unbounded, Excluded);
        let mut found: Vec<(Position, Uuid, Loaded<A>)> = case_ids
            .iter()
            .filter_map(|case_id| state.by_case.get(case_id))
            .flat_map(|positions| positions.range((from, Unbounded)))
            .filter_map(|p| {
                let id = state.order.get(p)?;
                let item = state.items.get(id)?;
                include(item).then(|| (*p, *id, item.clone()))
            })
            .collect();
        found.sort_by_key(|(p, _, _)| *p);
        found.dedup_by_key(|(p, _, _)| *p);
        Ok(found)
    }
}

/// A list's page from the items the caller may see, in order, each with the position
/// that pages it: at most `size` of them, and the next page's token when more follow
/// (empty on the last page). Gather `size + 1` visible items at most: the one past the
/// page only says that there is a next page.
pub fn page_of<T>(visible: Vec<(Position, T)>, size: usize) -> (Vec<T>, String) {
    let more = visible.len() > size;
    let mut items: Vec<_> = visible.into_iter().take(size).collect();
    let next = match items.last() {
        Some((position, _)) if more => position.to_string(),
        _ => String::new(),
    };
    (items.drain(..).map(|(_, item)| item).collect(), next)
}

#[cfg(test)]
mod tests {
    use caseline_eventlog::{Metadata, Position, RecordedEvent, StreamName, Uuid};
    use caseline_projection::Fold;

    use super::{Category, page_of};
    use crate::fixtures::Tally;

    #[test]
    fn an_event_delivered_twice_is_applied_once() {
        let id = Uuid::new_v4();
        let event = |version: u64, position: &str| RecordedEvent {
            event_id: Uuid::new_v4(),
            stream: StreamName::for_id("tally", id).expect("a stream name"),
            version,
            position: position.parse().expect("a position"),
            event_type: crate::fixtures::TALLIED.into(),
            data: Vec::new(),
            metadata: Metadata::default(),
            recorded_at: std::time::SystemTime::now(),
            prev_hash: [0; 32],
            hash: [0; 32],
        };
        let mut category = Category::<Tally>::default();
        for e in [event(0, "1"), event(1, "2"), event(1, "2"), event(0, "1")] {
            category.apply(&e).expect("applies");
        }
        let item = &category.items[&id];
        assert_eq!((item.aggregate.0, item.version), (2, Some(1)));
        assert_eq!(category.order.len(), 1);
    }

    /// A list takes its candidates a page's worth at a time and asks the caller's
    /// standing only until the page is full; paging on from each page's token visits
    /// every kept aggregate once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_page_asks_only_as_far_as_it_needs() {
        use std::sync::Arc;

        use caseline_eventlog::EventLog;
        use caseline_eventlog::sqlite::SqliteEventLog;
        use caseline_projection::SqliteCheckpoints;

        use super::Projection;
        use crate::fixtures::Count;
        use crate::{Intent, Request, Store};

        let dir = tempfile::tempdir().expect("a directory");
        let log: Arc<dyn EventLog> = Arc::new(
            SqliteEventLog::open(dir.path().join("events.sqlite"))
                .await
                .expect("opens"),
        );
        let checkpoints = Arc::new(
            SqliteCheckpoints::open(dir.path().join("state.sqlite"))
                .await
                .expect("opens"),
        );
        let store = Store::<Tally>::new(Arc::clone(&log));
        // Tallies of 1, 2, 3, 1, 2, 3, …: three takes of candidates in all, a third of
        // them of each.
        let total = 3 * super::CANDIDATES_AT_ONCE;
        let mut ids = Vec::new();
        for i in 0..total {
            let mut fingerprint = [0; 32];
            fingerprint[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let request = Request::with_fingerprint(Uuid::new_v4(), fingerprint);
            let id = Uuid::new_v4();
            ids.push(id);
            let intent = Intent {
                id,
                request: &request,
                expected: None,
                metadata: Metadata {
                    actor: "u".into(),
                    actor_role: "r".into(),
                    agency: "a".into(),
                    ..Metadata::default()
                },
            };
            store
                .execute(intent, None, Count::Add(i % 3 + 1), &())
                .await
                .expect("appends");
        }
        let list = Projection::new(caseline_projection::Followed::<Category<Tally>>::new(
            "tallies",
            Arc::clone(&log),
            checkpoints,
        ));
        let include = |l: &crate::Loaded<Tally>| l.aggregate.0 != 1;
        let size = 3;

        let mut asked = 0;
        let first = list
            .first(None, size, include, |_, l| {
                asked += 1;
                std::future::ready(Ok::<_, caseline_server::ApiError>(
                    (l.aggregate.0 == 3).then_some(l.aggregate.0),
                ))
            })
            .await
            .expect("lists");
        assert_eq!(first.len(), size + 1, "a page and one past it");
        assert!(first.iter().all(|(_, t)| *t == 3));
        assert_eq!(
            asked, 8,
            "asked of the candidates up to the fourth kept, no more"
        );

        // Kept only near the end: asked of every candidate, across every take.
        let last: std::collections::HashSet<Uuid> = ids[total - 6..].iter().copied().collect();
        let mut asked = 0;
        let found = list
            .first(None, size, include, |id, _| {
                asked += 1;
                std::future::ready(Ok::<_, caseline_server::ApiError>(
                    last.contains(&id).then_some(id),
                ))
            })
            .await
            .expect("lists");
        assert_eq!(found.len(), 4, "the last six hold four tallies of 2 or 3");
        assert_eq!(asked, 2 * total / 3, "every candidate, none twice");

        // Paged to the end: each tally of 3 kept once, in order.
        let mut seen = Vec::new();
        let mut token = None;
        loop {
            let found = list
                .first(token, size, include, |id, l| {
                    std::future::ready(Ok::<_, caseline_server::ApiError>(
                        (l.aggregate.0 == 3).then_some(id),
                    ))
                })
                .await
                .expect("lists");
            let positions: Vec<Position> = found.iter().map(|(p, _)| *p).collect();
            let (page, next) = page_of(found, size);
            seen.extend(page);
            if next.is_empty() {
                break;
            }
            token = Some(positions[size - 1]);
            assert_eq!(next, positions[size - 1].to_string());
        }
        assert_eq!(seen.len(), total / 3);
        assert_eq!(
            seen.iter().collect::<std::collections::HashSet<_>>().len(),
            total / 3
        );
        log.close().await;
    }

    #[test]
    fn a_page_says_whether_more_follow() {
        let at = |n: &str| n.parse::<Position>().expect("a position");
        let items = |n: usize| (1..=n).map(|i| (at(&i.to_string()), i)).collect::<Vec<_>>();
        assert_eq!(page_of(items(3), 2), (vec![1, 2], at("2").to_string()));
        assert_eq!(page_of(items(2), 2), (vec![1, 2], String::new()));
        assert_eq!(page_of(items(0), 2), (vec![], String::new()));
    }
}
