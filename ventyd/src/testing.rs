//! The storage conformance suite: one async function per behaviour every [`Storage`] adapter
//! must show, and [`storage_conformance!`](crate::storage_conformance) to run them all against
//! an adapter, one `#[test]` per case.
//!
//! ```no_run
//! // tests/conformance.rs
//! ventyd::storage_conformance!(memory, async { ventyd::MemoryStorage::new() });
//! ```
//!
//! The macro expands to a module (`memory`) with one test per case (`memory::snapshot_round_trips`,
//! ...), so a failure names the behaviour that broke, and `cargo test memory::` or
//! `cargo test snapshot` pick cases the usual way. Each test builds a fresh store with the given
//! expression on a multi-thread Tokio runtime with two workers, so the concurrency cases really
//! run in parallel. A last test, `all_cases_on_one_shared_store`, runs every case at the same time
//! against one store.
//!
//! # Writing a case
//! Every case takes `&S` and works only on streams of its own: entity ids carry a fresh UUID v7
//! ([`UuidV7`]), so cases can share one database (a PostgreSQL test database, say) and run in
//! parallel, and re-running the suite on a database that was not cleaned still passes. A case
//! that reads the global log ([`Storage::read_all`]) therefore looks only at its own events, but
//! still checks the log's rules on them: positions strictly increase in commit order, a page holds
//! at most `limit` events, and paging on from a position returns the rest without gaps or repeats.
//!
//! Cases that spawn tasks need `S: Clone` to hand the store to each task; the macro passes an
//! `Arc` of the store, which is always `Clone` and a [`Storage`] itself.
//!
//! A failing case panics with a message that says what was expected and why it matters.
//!
//! A new case is an `async fn` here plus its name in the list inside `__storage_conformance_cases!`
//! (the only list), which adds it for every adapter at once.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;
use tokio::sync::Barrier;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::envelope::Metadata;
use crate::error::Error;
use crate::id::{IdGenerator, UuidV7};
use crate::storage::{
    AppendOutcome, AppendRequest, EventRef, EventVisitor, ExpectedVersion, NewEvent, ReadRange,
    Snapshot, Storage, StoredEvent,
};
use crate::time::Timestamp;

/// Runs every conformance case against a store, one `#[test]` per case.
///
/// `storage_conformance!(name, async { store })` expands to `mod name { ... }` with one test for
/// each case of [`ventyd::testing`](crate::testing), plus `all_cases_on_one_shared_store`, which
/// runs every case concurrently against a single store (cases use streams of their own, so they
/// must not disturb each other). The second argument is an `async` expression that builds a
/// fresh store; it is evaluated once per test, inside a multi-thread Tokio runtime with two
/// workers, and may refer to items of the enclosing module.
///
/// ```no_run
/// // tests/conformance.rs
/// ventyd::storage_conformance!(memory, async { ventyd::MemoryStorage::new() });
/// ventyd::storage_conformance!(sqlite, async {
///     ventyd::SqliteStorage::in_memory().await.unwrap()
/// });
/// ```
#[macro_export]
macro_rules! storage_conformance {
    ($name:ident, $store:expr $(,)?) => {
        $crate::__storage_conformance_cases! {
            [$crate::__storage_conformance_module] $name, $store,
        }
    };
}

/// Calls the macro in brackets with the given arguments followed by `[case, case, ...]`: the one
/// list of conformance cases.
#[doc(hidden)]
#[macro_export]
macro_rules! __storage_conformance_cases {
    ([$($callback:tt)*] $($args:tt)*) => {
        $($callback)*! {
            $($args)* [
                reading_an_unknown_stream_returns_nothing,
                reading_the_log_past_its_end_returns_nothing,
                a_missing_snapshot_is_none,
                append_then_read_round_trips_every_field,
                bodies_round_trip_as_the_same_json,
                versions_are_gapless_over_several_appends,
                an_empty_append_only_checks_the_expected_version,
                expect_no_stream_creates_a_stream,
                expect_no_stream_on_an_existing_stream_conflicts,
                expect_exact_version_appends,
                expect_exact_version_too_low_conflicts,
                expect_exact_version_too_high_conflicts,
                expect_exact_zero_is_no_stream,
                expect_any_appends_to_new_and_existing_streams,
                a_conflict_stores_nothing,
                a_batch_with_a_duplicate_event_id_stores_nothing,
                a_batch_reusing_a_stored_event_id_stores_nothing,
                an_event_id_is_not_reused_by_another_stream,
                a_retried_append_returns_the_stored_outcome,
                a_retry_with_different_content_is_rejected,
                a_retry_after_another_writer_appended_is_recognised,
                positions_increase_in_commit_order_across_streams,
                read_all_pages_without_gaps_or_repeats,
                read_all_from_a_position_returns_the_rest,
                read_stream_honours_version_ranges,
                visiting_a_stream_sees_what_reading_it_returns,
                a_visitor_error_stops_the_read,
                a_large_body_round_trips,
                a_batch_as_large_as_the_queue_limit_round_trips,
                odd_characters_round_trip,
                streams_differing_only_slightly_stay_distinct,
                many_interleaved_streams_keep_their_own_events,
                snapshot_round_trips,
                an_older_snapshot_never_replaces_a_newer_one,
                snapshots_are_kept_per_stream,
                append_with_a_snapshot_stores_both,
                append_with_a_mismatched_snapshot_stores_neither,
                concurrent_appends_to_one_stream_have_one_winner,
                concurrent_creates_of_one_stream_have_one_winner,
                concurrent_appends_with_any_are_all_stored,
                concurrent_appends_to_many_streams_lose_nothing,
                concurrent_retry_loops_lose_and_duplicate_nothing,
                readers_never_see_half_a_batch,
                repository_round_trip,
            ]
        }
    };
}

/// Expands to the test module of [`storage_conformance!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __storage_conformance_module {
    ($name:ident, $store:expr, [$($case:ident),* $(,)?]) => {
        #[allow(unused_imports)]
        mod $name {
            use super::*;

            $(
                #[test]
                fn $case() {
                    $crate::testing::__private::run(async {
                        let store = ::std::sync::Arc::new($store.await);
                        $crate::testing::$case(&store).await;
                    });
                }
            )*

            #[test]
            fn all_cases_on_one_shared_store() {
                $crate::testing::__private::run(async {
                    let store = ::std::sync::Arc::new($store.await);
                    let mut cases = $crate::testing::__private::Cases::default();
                    $(
                        cases.spawn(::core::stringify!($case), {
                            let store = ::std::sync::Arc::clone(&store);
                            async move { $crate::testing::$case(&store).await }
                        });
                    )*
                    cases.join().await;
                });
            }
        }
    };
}

/// What the code [`storage_conformance!`](crate::storage_conformance) generates names. Not
/// public API.
#[doc(hidden)]
pub mod __private {
    use std::future::Future;

    use tokio::task::JoinHandle;

    pub use tokio;

    /// Runs a case on a multi-thread runtime with two workers, so that spawned tasks run in
    /// parallel.
    pub fn run<F: Future<Output = ()>>(case: F) {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("cannot build the Tokio runtime for the conformance suite")
            .block_on(case);
    }

    /// Cases running at the same time on one store.
    #[derive(Default)]
    pub struct Cases(Vec<(&'static str, JoinHandle<()>)>);

    impl Cases {
        /// Starts a case.
        pub fn spawn<F>(&mut self, name: &'static str, case: F)
        where
            F: Future<Output = ()> + Send + 'static,
        {
            self.0.push((name, tokio::spawn(case)));
        }

        /// Waits for every case, then fails naming each case that failed.
        pub async fn join(self) {
            let mut failed = Vec::new();
            for (name, handle) in self.0 {
                if let Err(e) = handle.await {
                    let why = if e.is_panic() {
                        super::panic_message(&*e.into_panic())
                    } else {
                        e.to_string()
                    };
                    failed.push(format!("{name}: {why}"));
                }
            }
            assert!(
                failed.is_empty(),
                "{} case(s) failed on the shared store:\n{}",
                failed.len(),
                failed.join("\n")
            );
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Awaits a spawned task, re-raising its panic (with its message) in the case.
async fn join<T>(handle: JoinHandle<T>) -> T {
    match handle.await {
        Ok(value) => value,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("a task of the case did not finish: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The entity name most cases write under. Entity ids carry a UUID v7, so every call of a case
/// has streams of its own.
const ENTITY: &str = "conformance";

/// A page size larger than any case writes, for reading "everything from here".
const LARGE: usize = 1_000;

/// An entity id no other call of any case uses.
fn unique_id(case: &str) -> String {
    format!("{case}-{}", UuidV7.event_id())
}

/// An event with a fresh id and the given name and body.
fn event_with(name: &str, body: impl Into<String>) -> NewEvent {
    NewEvent {
        event_id: UuidV7.event_id(),
        event_name: Cow::Owned(name.to_owned()),
        schema_version: 1,
        event_created_at: Timestamp::from_millis(1_700_000_000_123),
        metadata: None,
        body: body.into(),
        // The fingerprint uses all 64 bits; a store with signed integer columns must keep them.
        checked_schema: Some(u64::MAX - 1),
    }
}

/// `n` events numbered from `first`; the body names the stream (`tag`) and the number, so a
/// misplaced event says where it came from.
fn numbered(tag: &str, first: usize, n: usize) -> Vec<NewEvent> {
    (first..first + n)
        .map(|i| {
            event_with(
                "conformance:numbered",
                json!({ "tag": tag, "n": i }).to_string(),
            )
        })
        .collect()
}

/// A short description of a body for messages: 1 MiB bodies are not printed whole.
fn preview(body: &str) -> String {
    const MAX: usize = 120;
    if body.len() <= MAX {
        format!("{body:?}")
    } else {
        let cut = (0..=MAX)
            .rev()
            .find(|&i| body.is_char_boundary(i))
            .unwrap_or(0);
        format!("{:?}... ({} bytes)", &body[..cut], body.len())
    }
}

fn ids_of(events: &[NewEvent]) -> Vec<Uuid> {
    events.iter().map(|e| e.event_id).collect()
}

async fn append_ok<S: Storage>(
    store: &S,
    (name, id): (&str, &str),
    expected: ExpectedVersion,
    events: &[NewEvent],
) -> AppendOutcome {
    let outcome = match store
        .append(AppendRequest::new(name, id, expected, events))
        .await
    {
        Ok(outcome) => outcome,
        Err(e) => panic!(
            "appending {} event(s) to {name} {id:?} expecting {expected} failed: {e} ({e:?})",
            events.len()
        ),
    };
    assert_eq!(
        outcome.positions.len(),
        events.len(),
        "an append of {} event(s) to {name} {id:?} must report one position per event, got {outcome:?}",
        events.len()
    );
    for w in outcome.positions.windows(2) {
        assert!(
            w[0] < w[1],
            "the positions of one append to {name} {id:?} must increase in event order, got {:?}",
            outcome.positions
        );
    }
    outcome
}

async fn append_err<S: Storage>(
    store: &S,
    (name, id): (&str, &str),
    expected: ExpectedVersion,
    events: &[NewEvent],
    why: &str,
) -> Error {
    match store
        .append(AppendRequest::new(name, id, expected, events))
        .await
    {
        Ok(outcome) => panic!(
            "appending {} event(s) to {name} {id:?} expecting {expected} must fail ({why}), but the store accepted it: {outcome:?}",
            events.len()
        ),
        Err(e) => e,
    }
}

async fn read_range<S: Storage>(
    store: &S,
    (name, id): (&str, &str),
    range: ReadRange,
) -> Vec<Arc<StoredEvent>> {
    store
        .read_stream(name, id, range)
        .await
        .unwrap_or_else(|e| panic!("reading {name} {id:?} ({range:?}) failed: {e} ({e:?})"))
}

async fn read<S: Storage>(store: &S, stream: (&str, &str)) -> Vec<Arc<StoredEvent>> {
    read_range(store, stream, ReadRange::ALL).await
}

async fn read_snapshot<S: Storage>(store: &S, (name, id): (&str, &str)) -> Option<Snapshot> {
    store
        .read_snapshot(name, id)
        .await
        .unwrap_or_else(|e| panic!("reading the snapshot of {name} {id:?} failed: {e} ({e:?})"))
}

async fn write_snapshot<S: Storage>(store: &S, snapshot: &Snapshot) {
    store.write_snapshot(snapshot).await.unwrap_or_else(|e| {
        panic!(
            "writing the snapshot of {} {:?} at version {} failed: {e} ({e:?})",
            snapshot.entity_name, snapshot.entity_id, snapshot.version
        )
    });
}

fn snapshot_of((name, id): (&str, &str), version: u64, state: &str) -> Snapshot {
    Snapshot {
        entity_name: name.to_owned(),
        entity_id: id.to_owned(),
        version,
        schema_hash: "conformance-hash-1".to_owned(),
        state: state.to_owned(),
        created_at: Timestamp::from_millis(1_700_000_000_456),
    }
}

/// Checks every field of a stored event against the event that was sent.
#[track_caller]
fn check_event(
    ctx: &str,
    stored: &StoredEvent,
    sent: &NewEvent,
    (name, id): (&str, &str),
    version: u64,
) {
    assert_eq!(
        stored.event_id, sent.event_id,
        "{ctx}: event at version {version} of {name} {id:?} has the wrong id"
    );
    let what = format!(
        "{ctx}: event {} (version {version} of {name} {id:?})",
        sent.event_id
    );
    assert_eq!(stored.event_name, sent.event_name, "{what}: event name");
    assert_eq!(stored.entity_name, name, "{what}: entity name");
    assert_eq!(stored.entity_id, id, "{what}: entity id");
    assert_eq!(stored.version, version, "{what}: version");
    assert_eq!(
        stored.schema_version, sent.schema_version,
        "{what}: schema version"
    );
    assert_eq!(
        stored.event_created_at.as_millis(),
        sent.event_created_at.as_millis(),
        "{what}: creation time (milliseconds since the epoch; sent {}, stored {})",
        sent.event_created_at,
        stored.event_created_at
    );
    assert_eq!(
        stored.metadata.as_deref(),
        sent.metadata.as_deref(),
        "{what}: metadata"
    );
    assert_eq!(
        stored.checked_schema, sent.checked_schema,
        "{what}: the record of the schema the body was checked against"
    );
    assert!(
        same_json(&stored.body, &sent.body),
        "{what}: the body must come back as the JSON it was given\n  sent:   {}\n  stored: {}",
        preview(&sent.body),
        preview(&stored.body)
    );
}

/// Bodies are the same JSON: the same text, or text that parses to the same value. A store that
/// keeps bodies as text (memory, SQLite) returns the very bytes; one that keeps them in a JSON
/// column (PostgreSQL's JSONB) may change whitespace and key order, which no reader can observe
/// once the body is decoded.
fn same_json(a: &str, b: &str) -> bool {
    a == b
        || matches!(
            (
                serde_json::from_str::<serde_json::Value>(a),
                serde_json::from_str::<serde_json::Value>(b),
            ),
            (Ok(x), Ok(y)) if x == y
        )
}

/// Checks that `stored` is exactly `sent`, at versions `first_version..`, with positions
/// increasing with the version.
#[track_caller]
fn check_events(
    ctx: &str,
    stored: &[Arc<StoredEvent>],
    sent: &[NewEvent],
    stream: (&str, &str),
    first_version: u64,
) {
    assert_eq!(
        stored.len(),
        sent.len(),
        "{ctx}: expected {} event(s) of {} {:?} from version {first_version}, read {}: versions {:?}",
        sent.len(),
        stream.0,
        stream.1,
        stored.len(),
        stored.iter().map(|e| e.version).collect::<Vec<_>>()
    );
    for (i, (s, e)) in stored.iter().zip(sent).enumerate() {
        check_event(ctx, s, e, stream, first_version + i as u64);
    }
    for w in stored.windows(2) {
        assert!(
            w[0].position < w[1].position,
            "{ctx}: positions must increase with the version in {} {:?}: version {} is at {}, version {} at {}",
            stream.0,
            stream.1,
            w[0].version,
            w[0].position,
            w[1].version,
            w[1].position
        );
    }
}

/// Reads the whole stream and checks it is exactly `sent`, from version 1.
async fn check_stream<S: Storage>(store: &S, ctx: &str, stream: (&str, &str), sent: &[NewEvent]) {
    let stored = read(store, stream).await;
    check_events(ctx, &stored, sent, stream, 1);
}

/// Appends `events` expecting `expected`, which must fail with a conflict reporting `expected`
/// and the stream's `actual` version.
async fn append_conflicts<S: Storage>(
    store: &S,
    stream: (&str, &str),
    expected: ExpectedVersion,
    events: &[NewEvent],
    actual: u64,
) {
    let why = format!("the stream is at version {actual}");
    let err = append_err(store, stream, expected, events, &why).await;
    assert_conflict(
        &format!("{expected:?} on a stream at version {actual}"),
        &err,
        stream,
        expected,
        actual,
    );
}

#[track_caller]
fn assert_conflict(
    ctx: &str,
    err: &Error,
    (name, id): (&str, &str),
    expected: ExpectedVersion,
    actual: u64,
) {
    match err {
        Error::Concurrency {
            entity_name,
            entity_id,
            expected: e,
            actual: a,
        } => {
            assert_eq!(
                (entity_name.as_str(), entity_id.as_str()),
                (name, id),
                "{ctx}: the conflict must name the stream it happened on"
            );
            assert_eq!(
                *e, expected,
                "{ctx}: the conflict must carry the version the writer expected"
            );
            assert_eq!(
                *a, actual,
                "{ctx}: the conflict must carry the version the stream is at, so the writer knows how far behind it is"
            );
        }
        other => panic!(
            "{ctx}: expected Error::Concurrency {{ expected: {expected:?}, actual: {actual} }} on {name} {id:?}, got: {other} ({other:?})"
        ),
    }
}

/// Pages through the global log from `from` with page size `limit`, checking every page (at most
/// `limit` events, none before the position asked for, positions strictly increasing across
/// pages), and returns the events whose ids are in `ids`, in log order. Stops once all of them
/// have been seen or the log ends.
async fn scan_log<S: Storage>(
    store: &S,
    ctx: &str,
    from: u64,
    limit: usize,
    ids: &HashSet<Uuid>,
) -> Vec<Arc<StoredEvent>> {
    let mut found: Vec<Arc<StoredEvent>> = Vec::new();
    let mut seen = HashSet::new();
    let mut next = from;
    let mut last: Option<u64> = None;
    loop {
        let page = store
            .read_all(next, limit)
            .await
            .unwrap_or_else(|e| panic!("{ctx}: read_all({next}, {limit}) failed: {e} ({e:?})"));
        assert!(
            page.len() <= limit,
            "{ctx}: read_all({next}, {limit}) returned {} events, more than the limit",
            page.len()
        );
        let Some(end) = page.last().map(|e| e.position) else {
            break;
        };
        for e in &page {
            assert!(
                e.position >= next,
                "{ctx}: read_all({next}, {limit}) returned position {}, before the position asked for",
                e.position
            );
            if let Some(last) = last {
                assert!(
                    e.position > last,
                    "{ctx}: the global log must be in strictly increasing position order (paging by {limit}), but {} came after {last}",
                    e.position
                );
            }
            last = Some(e.position);
            if ids.contains(&e.event_id) {
                assert!(
                    seen.insert(e.event_id),
                    "{ctx}: event {} appears twice in the global log (paging by {limit})",
                    e.event_id
                );
                found.push(e.clone());
            }
        }
        if seen.len() == ids.len() {
            break;
        }
        next = end
            .checked_add(1)
            .unwrap_or_else(|| panic!("{ctx}: a position of u64::MAX in the log"));
    }
    found
}

/// Checks that the global log from `from` on holds `expected` (and no other event with one of
/// their ids or of `absent`), in this order and at these positions, paging by `limit`.
async fn check_log<S: Storage>(
    store: &S,
    ctx: &str,
    from: u64,
    limit: usize,
    expected: &[(Uuid, u64)],
) {
    let ids: HashSet<Uuid> = expected.iter().map(|(id, _)| *id).collect();
    let found = scan_log(store, ctx, from, limit, &ids).await;
    let found: Vec<(Uuid, u64)> = found.iter().map(|e| (e.event_id, e.position)).collect();
    assert_eq!(
        found, expected,
        "{ctx}: reading the global log from position {from} by pages of {limit} must return these events (id, position) in this order, with no gap and no repeat"
    );
}

/// Checks that none of `ids` is in the global log from `from` on.
async fn check_absent_from_log<S: Storage>(store: &S, ctx: &str, from: u64, ids: &[Uuid]) {
    let ids: HashSet<Uuid> = ids.iter().copied().collect();
    let found = scan_log(store, ctx, from, LARGE, &ids).await;
    assert!(
        found.is_empty(),
        "{ctx}: events of a rejected append are in the global log: {:?}",
        found
            .iter()
            .map(|e| (e.event_id, &e.entity_id, e.version, e.position))
            .collect::<Vec<_>>()
    );
}

/// Appends one event to a stream of its own and returns its position: everything appended after
/// it is at a later position, so a scan of the log from there finds it.
async fn mark<S: Storage>(store: &S) -> u64 {
    let id = unique_id("marker");
    let outcome = append_ok(
        store,
        (ENTITY, &id),
        ExpectedVersion::NoStream,
        &numbered(&id, 0, 1),
    )
    .await;
    outcome.positions[0]
}

fn pairs(events: &[NewEvent], outcome: &AppendOutcome) -> Vec<(Uuid, u64)> {
    events
        .iter()
        .map(|e| e.event_id)
        .zip(outcome.positions.iter().copied())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Empty reads
// ---------------------------------------------------------------------------------------------

/// Reading a stream that was never written returns no events (not an error), also when another
/// stream has the same entity name or the same entity id, and for any range. A repository relies
/// on this to tell "no such entity" from a failure.
pub async fn reading_an_unknown_stream_returns_nothing<S: Storage>(store: &S) {
    let id = unique_id("unknown");
    for range in [ReadRange::ALL, ReadRange::up_to(3)] {
        assert!(
            read_range(store, (ENTITY, &id), range).await.is_empty(),
            "a stream that was never written must read as empty ({range:?})"
        );
    }
    append_ok(
        store,
        (ENTITY, &id),
        ExpectedVersion::NoStream,
        &numbered(&id, 0, 2),
    )
    .await;
    let other_id = unique_id("unknown");
    assert!(
        read(store, (ENTITY, &other_id)).await.is_empty(),
        "another id under the same entity name must read as empty"
    );
    assert!(
        read(store, ("conformance_other", &id)).await.is_empty(),
        "the same id under another entity name must read as empty"
    );
}

/// Reading the global log from a position after its end, or with a limit of 0, returns nothing;
/// and a read from position 0 starts at the beginning. Projections poll the log's end, so this
/// is the common case, and positions and limits at the edges of `u64`/`usize` must not overflow
/// into an error or into "everything".
pub async fn reading_the_log_past_its_end_returns_nothing<S: Storage>(store: &S) {
    let id = unique_id("past-end");
    let events = numbered(&id, 0, 2);
    let outcome = append_ok(store, (ENTITY, &id), ExpectedVersion::NoStream, &events).await;
    let last = outcome.positions[1];

    let first = store
        .read_all(0, 5)
        .await
        .unwrap_or_else(|e| panic!("read_all(0, 5) failed: {e}"));
    assert!(
        !first.is_empty() && first.len() <= 5,
        "read_all(0, 5) on a store holding events must return 1 to 5 events, got {}",
        first.len()
    );
    assert!(
        first.windows(2).all(|w| w[0].position < w[1].position),
        "read_all must return events in increasing position order"
    );

    for (from, limit) in [
        (last + 1_000_000_000, 10),
        (i64::MAX as u64, 10),
        (i64::MAX as u64 + 1, 10),
        (u64::MAX, 10),
        (u64::MAX, usize::MAX),
    ] {
        let page = store
            .read_all(from, limit)
            .await
            .unwrap_or_else(|e| panic!("read_all({from}, {limit}) failed: {e} ({e:?})"));
        assert!(
            page.is_empty(),
            "read_all({from}, {limit}) is past the end of the log and must be empty, got positions {:?}",
            page.iter().map(|e| e.position).collect::<Vec<_>>()
        );
    }
    for from in [0, outcome.positions[0], last] {
        let page = store
            .read_all(from, 0)
            .await
            .unwrap_or_else(|e| panic!("read_all({from}, 0) failed: {e} ({e:?})"));
        assert!(
            page.is_empty(),
            "read_all({from}, 0) has a limit of 0 and must be empty, got {} events",
            page.len()
        );
    }
}

/// A stream with no snapshot, whether it has events or not, has `None` as its snapshot (not an
/// error): loading then replays every event.
pub async fn a_missing_snapshot_is_none<S: Storage>(store: &S) {
    let id = unique_id("no-snapshot");
    assert_eq!(
        read_snapshot(store, (ENTITY, &id)).await,
        None,
        "a stream that was never written has no snapshot"
    );
    append_ok(
        store,
        (ENTITY, &id),
        ExpectedVersion::NoStream,
        &numbered(&id, 0, 3),
    )
    .await;
    assert_eq!(
        read_snapshot(store, (ENTITY, &id)).await,
        None,
        "a stream whose appends carried no snapshot has none"
    );
}

// ---------------------------------------------------------------------------------------------
// Append and read
// ---------------------------------------------------------------------------------------------

/// One append of several events is read back, by stream and from the global log, with every
/// field as it was sent: event id, name, entity name and id, version, schema version, creation
/// time to the millisecond (also before 1970 and at the edges of what RFC 3339 can write),
/// metadata with every named field and free-form extras (nested, null, numbers, unicode keys),
/// or none, and the body text. An audit trail or an upcaster that gets a field back changed is
/// wrong in ways nobody notices until it matters.
pub async fn append_then_read_round_trips_every_field<S: Storage>(store: &S) {
    let id = unique_id("round-trip");
    let stream = (ENTITY, id.as_str());

    let full = Metadata::new()
        .correlation_id("corr-42")
        .causation_id("cause-41")
        .actor("admin@example.com")
        .reason("support ticket #7: \"name\" fix ✓")
        .with("ip", "127.0.0.1")
        .with("attempt", 3)
        .with("ratio", 0.5)
        .with("flag", false)
        .with("nothing", serde_json::Value::Null)
        .with(
            "nested",
            json!({ "a": [1, "two", null, true], "b": { "c": -7 } }),
        )
        .with("ключ ✓", "значение");
    let extras_only = Metadata::new()
        .with("tenant", "acme")
        .with("ids", json!([1, 2, 3]));

    let mut e1 = event_with("conformance:created", r#"{"name":"Zoë ☃ 🦀","n":1}"#);
    e1.schema_version = 1;
    e1.event_created_at = Timestamp::from_millis(1_700_000_000_123);
    e1.metadata = Some(Arc::new(full));
    let mut e2 = event_with("conformance:updated", "{}");
    e2.schema_version = 2;
    e2.event_created_at = Timestamp::from_millis(-1);
    e2.metadata = None;
    let mut e3 = event_with(
        "conformance:tagged",
        r#"{"tags":["a","b"],"deep":{"x":[{}]}}"#,
    );
    e3.schema_version = u32::MAX;
    e3.event_created_at = Timestamp::MAX;
    e3.metadata = Some(Arc::new(extras_only));
    let mut e4 = event_with("conformance:removed", r#"{"reason":null}"#);
    e4.schema_version = 7;
    e4.event_created_at = Timestamp::MIN;
    e4.metadata = Some(Arc::new(Metadata::new().actor("system")));
    let events = vec![e1, e2, e3, e4];

    let outcome = append_ok(store, stream, ExpectedVersion::NoStream, &events).await;
    assert_eq!(
        outcome.version, 4,
        "after appending 4 events to a new stream it is at version 4"
    );

    let stored = read(store, stream).await;
    check_events("read_stream after one append", &stored, &events, stream, 1);
    let positions: Vec<u64> = stored.iter().map(|e| e.position).collect();
    assert_eq!(
        positions, outcome.positions,
        "the positions read back must be the ones the append reported"
    );

    let ids: HashSet<Uuid> = events.iter().map(|e| e.event_id).collect();
    let logged = scan_log(store, "read_all", outcome.positions[0], LARGE, &ids).await;
    check_events("read_all after one append", &logged, &events, stream, 1);
    let logged_positions: Vec<u64> = logged.iter().map(|e| e.position).collect();
    assert_eq!(
        logged_positions, outcome.positions,
        "read_all must show the positions the append reported"
    );
}

/// Bodies come back as the JSON they were given, through whitespace, key order, escapes,
/// number spellings (`1.50`, `-0.0`, integers beyond `u64`), quotes, backslashes, control
/// characters, SQL and `LIKE` metacharacters, emoji and combining characters. Stores that keep
/// text (memory, SQLite) return the very bytes; a store with a JSON column may normalise the text
/// but not the value, and must still recognise an idempotent retry of the same body.
pub async fn bodies_round_trip_as_the_same_json<S: Storage>(store: &S) {
    let id = unique_id("exact-body");
    let stream = (ENTITY, id.as_str());
    let bodies = [
        r#"{"b":1,  "a" : "x" ,"c":[ 1 , 2 ]}"#,
        "{\n  \"pretty\": true,\n\t\"tab\": \"indent\"\n}",
        r#"{"escaped":"\u00e9 \ud83e\udd80","raw":"é 🦀"}"#,
        r#"{"n":1.50,"neg":-0.0,"big":123456789012345678901234567890,"exp":1E+2}"#,
        r#"{"quote":"she said \"hi\"","backslash":"C:\\path\\to\\","ctl":"\t\n\r\u0001\u001f"}"#,
        r#"{"sql":"'; DROP TABLE events; --","like":"100% _sure_ [a-z]*","html":"<a href='x'>&amp;</a>"}"#,
        r#"{"family":"👩‍👩‍👧‍👦","flag":"🇳🇴","rtl":"مرحبا","cjk":"漢字","combining":"é","zwj":"a‍b"}"#,
        r#"{"empty":"","nested":{"a":{"b":{"c":{"d":[[[[]]]]}}}}}"#,
    ];
    let events: Vec<NewEvent> = bodies
        .iter()
        .map(|b| event_with("conformance:exact", *b))
        .collect();
    let outcome = append_ok(store, stream, ExpectedVersion::NoStream, &events).await;
    check_stream(store, "read_stream of exact bodies", stream, &events).await;
    let ids: HashSet<Uuid> = events.iter().map(|e| e.event_id).collect();
    let logged = scan_log(store, "read_all", outcome.positions[0], LARGE, &ids).await;
    check_events("read_all of exact bodies", &logged, &events, stream, 1);
}

/// Several appends to one stream number its events 1, 2, 3, ... without gaps or repeats, each
/// outcome reports the version after it, and the stream reads back in version order. Loading
/// replays events in this order and rejects gaps, so this is what makes a stream loadable.
pub async fn versions_are_gapless_over_several_appends<S: Storage>(store: &S) {
    let id = unique_id("gapless");
    let stream = (ENTITY, id.as_str());
    let mut sent = Vec::new();
    for (i, n) in [1usize, 3, 1, 5, 2].into_iter().enumerate() {
        let batch = numbered(&id, sent.len(), n);
        let expected = ExpectedVersion::after(sent.len() as u64);
        let outcome = append_ok(store, stream, expected, &batch).await;
        sent.extend(batch);
        assert_eq!(
            outcome.version,
            sent.len() as u64,
            "append #{i} ({n} events) must report the stream's version after it"
        );
    }
    check_stream(store, "after five appends", stream, &sent).await;
}

/// An append of no events only checks the expected version: it succeeds with the stream's
/// version and no positions when the expectation holds (creating no stream), and is a conflict
/// when it does not. It lets a writer assert "nothing changed since I read" without writing.
pub async fn an_empty_append_only_checks_the_expected_version<S: Storage>(store: &S) {
    let id = unique_id("empty-append");
    let stream = (ENTITY, id.as_str());
    for expected in [ExpectedVersion::NoStream, ExpectedVersion::Any] {
        let outcome = append_ok(store, stream, expected, &[]).await;
        assert_eq!(
            outcome,
            AppendOutcome {
                version: 0,
                positions: Vec::new()
            },
            "an empty append expecting {expected} on a missing stream"
        );
    }
    assert!(
        read(store, stream).await.is_empty(),
        "an empty append must not create a stream"
    );
    let err = append_err(
        store,
        stream,
        ExpectedVersion::Exact(3),
        &[],
        "the stream does not exist",
    )
    .await;
    assert_conflict(
        "an empty append expecting Exact(3) on a missing stream",
        &err,
        stream,
        ExpectedVersion::Exact(3),
        0,
    );

    let sent = numbered(&id, 0, 2);
    append_ok(store, stream, ExpectedVersion::NoStream, &sent).await;
    for expected in [ExpectedVersion::Exact(2), ExpectedVersion::Any] {
        let outcome = append_ok(store, stream, expected, &[]).await;
        assert_eq!(
            outcome,
            AppendOutcome {
                version: 2,
                positions: Vec::new()
            },
            "an empty append expecting {expected} on a stream at version 2"
        );
    }
    for expected in [ExpectedVersion::NoStream, ExpectedVersion::Exact(1)] {
        let err = append_err(store, stream, expected, &[], "the stream is at version 2").await;
        assert_conflict(
            &format!("an empty append expecting {expected} on a stream at version 2"),
            &err,
            stream,
            expected,
            2,
        );
    }
    check_stream(store, "after empty appends", stream, &sent).await;
}

// ---------------------------------------------------------------------------------------------
// Expected versions
// ---------------------------------------------------------------------------------------------

/// `ExpectedVersion::NoStream` on a stream that does not exist creates it at version 1.. n. This
/// is how every entity's first commit is sent.
pub async fn expect_no_stream_creates_a_stream<S: Storage>(store: &S) {
    let id = unique_id("no-stream-new");
    let stream = (ENTITY, id.as_str());
    let events = numbered(&id, 0, 2);
    let outcome = append_ok(store, stream, ExpectedVersion::NoStream, &events).await;
    assert_eq!(
        outcome.version, 2,
        "a new stream of 2 events is at version 2"
    );
    check_stream(store, "after NoStream", stream, &events).await;
}

/// `ExpectedVersion::NoStream` on a stream that exists is a conflict carrying `NoStream` and the
/// stream's version, and stores nothing: two entities created with the same id must not merge.
pub async fn expect_no_stream_on_an_existing_stream_conflicts<S: Storage>(store: &S) {
    let id = unique_id("no-stream-existing");
    let stream = (ENTITY, id.as_str());
    let first = numbered(&id, 0, 3);
    append_ok(store, stream, ExpectedVersion::NoStream, &first).await;
    let second = numbered(&id, 3, 1);
    let err = append_err(
        store,
        stream,
        ExpectedVersion::NoStream,
        &second,
        "the stream exists",
    )
    .await;
    assert_conflict(
        "NoStream on a stream at version 3",
        &err,
        stream,
        ExpectedVersion::NoStream,
        3,
    );
    check_stream(store, "after the rejected NoStream append", stream, &first).await;
}

/// `ExpectedVersion::Exact(n)` on a stream at version `n` appends at `n + 1`: a loaded entity
/// commits this way.
pub async fn expect_exact_version_appends<S: Storage>(store: &S) {
    let id = unique_id("exact");
    let stream = (ENTITY, id.as_str());
    let mut sent = numbered(&id, 0, 2);
    append_ok(store, stream, ExpectedVersion::NoStream, &sent).await;
    let next = numbered(&id, 2, 3);
    let outcome = append_ok(store, stream, ExpectedVersion::Exact(2), &next).await;
    assert_eq!(
        outcome.version, 5,
        "Exact(2) plus 3 events ends at version 5"
    );
    sent.extend(next);
    check_stream(store, "after Exact(2)", stream, &sent).await;
}

/// `ExpectedVersion::Exact(n)` with `n` below the stream's version (a writer that missed
/// another's commit) is a conflict carrying `Exact(n)` and the actual version, and stores
/// nothing. This is the lost-update protection of optimistic concurrency.
pub async fn expect_exact_version_too_low_conflicts<S: Storage>(store: &S) {
    let id = unique_id("exact-low");
    let stream = (ENTITY, id.as_str());
    let sent = numbered(&id, 0, 4);
    append_ok(store, stream, ExpectedVersion::NoStream, &sent).await;
    for n in [1, 3] {
        let batch = numbered(&id, 99, 2);
        append_conflicts(store, stream, ExpectedVersion::Exact(n), &batch, 4).await;
    }
    check_stream(store, "after the rejected appends", stream, &sent).await;
}

/// `ExpectedVersion::Exact(n)` with `n` above the stream's version, or on a stream that does not
/// exist, is a conflict carrying `Exact(n)` and the actual version (0 for no stream). A store
/// must not fill the gap or start a stream at version `n + 1`.
pub async fn expect_exact_version_too_high_conflicts<S: Storage>(store: &S) {
    let id = unique_id("exact-high");
    let stream = (ENTITY, id.as_str());
    let err = append_err(
        store,
        stream,
        ExpectedVersion::Exact(5),
        &numbered(&id, 0, 1),
        "the stream does not exist",
    )
    .await;
    assert_conflict(
        "Exact(5) on a missing stream",
        &err,
        stream,
        ExpectedVersion::Exact(5),
        0,
    );
    assert!(
        read(store, stream).await.is_empty(),
        "a rejected append must not create the stream"
    );

    let sent = numbered(&id, 0, 2);
    append_ok(store, stream, ExpectedVersion::NoStream, &sent).await;
    for n in [3, 10, u64::MAX] {
        let batch = numbered(&id, 99, 1);
        append_conflicts(store, stream, ExpectedVersion::Exact(n), &batch, 2).await;
    }
    check_stream(store, "after the rejected appends", stream, &sent).await;
}

/// `ExpectedVersion::Exact(0)` means the stream must be empty, like `NoStream`
/// ([`ExpectedVersion::matches`]): it creates a new stream and conflicts on an existing one.
pub async fn expect_exact_zero_is_no_stream<S: Storage>(store: &S) {
    let id = unique_id("exact-zero");
    let stream = (ENTITY, id.as_str());
    let sent = numbered(&id, 0, 1);
    let outcome = append_ok(store, stream, ExpectedVersion::Exact(0), &sent).await;
    assert_eq!(
        outcome.version, 1,
        "Exact(0) on a new stream starts it at 1"
    );
    let err = append_err(
        store,
        stream,
        ExpectedVersion::Exact(0),
        &numbered(&id, 1, 1),
        "the stream exists",
    )
    .await;
    assert_conflict(
        "Exact(0) on a stream at version 1",
        &err,
        stream,
        ExpectedVersion::Exact(0),
        1,
    );
    check_stream(store, "after Exact(0)", stream, &sent).await;
}

/// `ExpectedVersion::Any` appends after whatever is there: it starts a new stream at 1 and
/// continues an existing one, gaplessly.
pub async fn expect_any_appends_to_new_and_existing_streams<S: Storage>(store: &S) {
    let id = unique_id("any");
    let stream = (ENTITY, id.as_str());
    let mut sent = numbered(&id, 0, 2);
    let outcome = append_ok(store, stream, ExpectedVersion::Any, &sent).await;
    assert_eq!(outcome.version, 2, "Any on a new stream starts it at 1");
    let more = numbered(&id, 2, 3);
    let outcome = append_ok(store, stream, ExpectedVersion::Any, &more).await;
    assert_eq!(outcome.version, 5, "Any on a stream at 2 continues at 3");
    sent.extend(more);
    check_stream(store, "after two Any appends", stream, &sent).await;
}

/// A conflicting append stores nothing: not in the stream, not in the global log, not its
/// snapshot, and not its event ids (the same events can be appended afterwards with the right
/// expected version). Otherwise a writer that reloads and retries would find half of its
/// rejected commit already there.
pub async fn a_conflict_stores_nothing<S: Storage>(store: &S) {
    let id = unique_id("conflict-atomic");
    let stream = (ENTITY, id.as_str());
    let mut sent = numbered(&id, 0, 2);
    let first = append_ok(store, stream, ExpectedVersion::NoStream, &sent).await;

    let rejected = numbered(&id, 2, 3);
    let snapshot = snapshot_of(stream, 4, r#"{"rejected":true}"#);
    let err = store
        .append(
            AppendRequest::new(ENTITY, &id, ExpectedVersion::Exact(1), &rejected)
                .with_snapshot(&snapshot),
        )
        .await
        .expect_err("an append expecting version 1 on a stream at version 2 must fail");
    assert_conflict(
        "Exact(1) with a snapshot on a stream at version 2",
        &err,
        stream,
        ExpectedVersion::Exact(1),
        2,
    );
    check_stream(store, "after the conflict", stream, &sent).await;
    assert_eq!(
        read_snapshot(store, stream).await,
        None,
        "the snapshot of a rejected append must not be stored"
    );
    check_absent_from_log(
        store,
        "after the conflict",
        first.positions[0],
        &ids_of(&rejected),
    )
    .await;

    // The rejected ids were not recorded either: the same events go in at the right version.
    let outcome = append_ok(store, stream, ExpectedVersion::Exact(2), &rejected).await;
    assert_eq!(outcome.version, 5);
    sent.extend(rejected);
    check_stream(
        store,
        "after appending the once-rejected events",
        stream,
        &sent,
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Atomic batches and idempotent retries
// ---------------------------------------------------------------------------------------------

/// A batch whose last event repeats the id of its first is rejected as a whole: nothing of it is
/// stored, the stream stays absent, and its other ids stay free. An append is all or nothing,
/// including when the failure is found in the middle of writing.
pub async fn a_batch_with_a_duplicate_event_id_stores_nothing<S: Storage>(store: &S) {
    let from = mark(store).await;
    let id = unique_id("dup-in-batch");
    let stream = (ENTITY, id.as_str());
    let mut batch = numbered(&id, 0, 3);
    batch[2].event_id = batch[0].event_id;
    let err = append_err(
        store,
        stream,
        ExpectedVersion::NoStream,
        &batch,
        "the batch repeats an event id",
    )
    .await;
    assert!(
        !err.is_concurrency(),
        "a duplicate event id is not a concurrency conflict (a reload and retry cannot fix it): {err}"
    );
    assert!(
        read(store, stream).await.is_empty(),
        "no event of a rejected batch may be stored"
    );
    check_absent_from_log(
        store,
        "after a batch with a duplicate id",
        from,
        &ids_of(&batch),
    )
    .await;

    let good = numbered(&id, 0, 2);
    let fixed = vec![batch[0].clone(), batch[1].clone(), good[1].clone()];
    append_ok(store, stream, ExpectedVersion::NoStream, &fixed).await;
    check_stream(store, "after the corrected batch", stream, &fixed).await;
}

/// A batch containing an event id that is stored already in another stream, in the middle or
/// first, is rejected and stores nothing: event ids are unique across the store, and a store
/// that wrote the events before the duplicate would break atomicity.
pub async fn a_batch_reusing_a_stored_event_id_stores_nothing<S: Storage>(store: &S) {
    let other = unique_id("reused-elsewhere");
    let other_stream = (ENTITY, other.as_str());
    let existing = numbered(&other, 0, 2);
    let first = append_ok(store, other_stream, ExpectedVersion::NoStream, &existing).await;

    let id = unique_id("reuse");
    let stream = (ENTITY, id.as_str());
    for at in [1, 0] {
        let mut batch = numbered(&id, 0, 3);
        batch[at] = existing[1].clone();
        let err = append_err(
            store,
            stream,
            ExpectedVersion::NoStream,
            &batch,
            &format!("event {at} of the batch is stored in another stream"),
        )
        .await;
        assert!(
            !err.is_concurrency(),
            "an event id stored elsewhere is not a concurrency conflict: {err}"
        );
        assert!(
            read(store, stream).await.is_empty(),
            "no event of a batch reusing a stored id (at index {at}) may be stored"
        );
        let fresh: Vec<Uuid> = batch
            .iter()
            .map(|e| e.event_id)
            .filter(|i| *i != existing[1].event_id)
            .collect();
        check_absent_from_log(
            store,
            "after a batch reusing an id",
            first.positions[0],
            &fresh,
        )
        .await;
    }
    check_stream(
        store,
        "the stream that owns the id",
        other_stream,
        &existing,
    )
    .await;
}

/// The very same event (id, name, body) appended to a second stream is rejected: an event id
/// names one event in one place, and a retry is recognised only in the stream it went to.
pub async fn an_event_id_is_not_reused_by_another_stream<S: Storage>(store: &S) {
    let a = unique_id("id-owner");
    let b = unique_id("id-thief");
    let events = numbered(&a, 0, 1);
    append_ok(store, (ENTITY, &a), ExpectedVersion::NoStream, &events).await;
    let err = append_err(
        store,
        (ENTITY, &b),
        ExpectedVersion::NoStream,
        &events,
        "the event id is stored in another stream",
    )
    .await;
    assert!(
        !err.is_concurrency(),
        "an event id stored in another stream is not a concurrency conflict: {err}"
    );
    let err = append_err(
        store,
        ("conformance_other", &a),
        ExpectedVersion::NoStream,
        &events,
        "the event id is stored under another entity name",
    )
    .await;
    assert!(!err.is_concurrency(), "{err}");
    assert!(read(store, (ENTITY, &b)).await.is_empty());
    assert!(read(store, ("conformance_other", &a)).await.is_empty());
    check_stream(store, "the owner", (ENTITY, &a), &events).await;
}

/// Appending the same events again (same ids, names and bodies, same request) returns the
/// outcome of the first append (version and positions) and stores nothing twice. A commit whose
/// reply was lost (a timeout, a dropped connection) is retried this way, and must not duplicate.
pub async fn a_retried_append_returns_the_stored_outcome<S: Storage>(store: &S) {
    let id = unique_id("retry");
    let stream = (ENTITY, id.as_str());
    let events = numbered(&id, 0, 3);
    let first = append_ok(store, stream, ExpectedVersion::NoStream, &events).await;
    for attempt in 1..=2 {
        let again = append_ok(store, stream, ExpectedVersion::NoStream, &events).await;
        assert_eq!(
            again, first,
            "retry #{attempt} of an append must return the stored outcome"
        );
    }
    let mut sent = events.clone();
    let single = numbered(&id, 3, 1);
    let one = append_ok(store, stream, ExpectedVersion::Exact(3), &single).await;
    let again = append_ok(store, stream, ExpectedVersion::Exact(3), &single).await;
    assert_eq!(
        again, one,
        "a retried single-event append returns its outcome"
    );
    sent.extend(single);
    // With `Any` the expectation holds on the retry too, so only the ids can reveal it.
    let any = numbered(&id, 4, 2);
    let any_first = append_ok(store, stream, ExpectedVersion::Any, &any).await;
    let again = append_ok(store, stream, ExpectedVersion::Any, &any).await;
    assert_eq!(
        again, any_first,
        "a retried append expecting any version returns its outcome, and is not appended again"
    );
    sent.extend(any);

    check_stream(store, "after retries", stream, &sent).await;
    let mut expected = pairs(&events, &first);
    expected.extend(pairs(&sent[3..4], &one));
    expected.extend(pairs(&sent[4..], &any_first));
    check_log(store, "after retries", first.positions[0], LARGE, &expected).await;
}

/// An append whose first event id is stored but whose content differs (another body, another
/// name, a changed later event, an extra event) is an error, not a retry, and stores nothing:
/// treating it as a retry would silently drop the new content.
pub async fn a_retry_with_different_content_is_rejected<S: Storage>(store: &S) {
    let id = unique_id("retry-changed");
    let stream = (ENTITY, id.as_str());
    let events = numbered(&id, 0, 2);
    let first = append_ok(store, stream, ExpectedVersion::NoStream, &events).await;

    let mut other_body = events.clone();
    other_body[0].body = r#"{"changed":true}"#.to_owned();
    let mut other_name = events.clone();
    other_name[0].event_name = Cow::Borrowed("conformance:renamed");
    let mut later_changed = events.clone();
    later_changed[1].body = r#"{"changed":"second"}"#.to_owned();
    let mut extra = events.clone();
    extra.push(numbered(&id, 2, 1).remove(0));
    let extra_id = extra[2].event_id;

    for (what, batch) in [
        ("the first body differs", &other_body),
        ("the first event name differs", &other_name),
        ("the second body differs", &later_changed),
        ("it has an extra event", &extra),
    ] {
        let err = append_err(store, stream, ExpectedVersion::NoStream, batch, what).await;
        assert!(
            !err.is_concurrency(),
            "a changed retry ({what}) is not a concurrency conflict (a reload cannot fix it): {err}"
        );
        check_stream(
            store,
            &format!("after a changed retry ({what})"),
            stream,
            &events,
        )
        .await;
    }
    check_absent_from_log(
        store,
        "after a changed retry",
        first.positions[0],
        &[extra_id],
    )
    .await;
}

/// A retry is recognised even after another writer appended to the stream since: it returns
/// the outcome of the original append (not a conflict, since its expected version is now
/// stale), and stores nothing. The retry may come long after the lost reply.
pub async fn a_retry_after_another_writer_appended_is_recognised<S: Storage>(store: &S) {
    let id = unique_id("retry-late");
    let stream = (ENTITY, id.as_str());
    let a = numbered(&id, 0, 2);
    let b = numbered(&id, 2, 2);
    let c = numbered(&id, 4, 1);
    let first = append_ok(store, stream, ExpectedVersion::NoStream, &a).await;
    let second = append_ok(store, stream, ExpectedVersion::Exact(2), &b).await;
    let third = append_ok(store, stream, ExpectedVersion::Exact(4), &c).await;

    let again = append_ok(store, stream, ExpectedVersion::NoStream, &a).await;
    assert_eq!(
        again, first,
        "a retry of the first append after others must return its stored outcome"
    );
    let again = append_ok(store, stream, ExpectedVersion::Exact(2), &b).await;
    assert_eq!(
        again, second,
        "a retry of the second append after another must return its stored outcome"
    );

    let sent: Vec<NewEvent> = a.iter().chain(&b).chain(&c).cloned().collect();
    check_stream(store, "after late retries", stream, &sent).await;
    let mut expected = pairs(&a, &first);
    expected.extend(pairs(&b, &second));
    expected.extend(pairs(&c, &third));
    check_log(
        store,
        "after late retries",
        first.positions[0],
        LARGE,
        &expected,
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// The global log
// ---------------------------------------------------------------------------------------------

/// Appends to different streams, one after another, get positions that increase in commit
/// order (not grouped by stream), and the global log lists them in that order. Projections
/// follow the log by position and must see events in the order they happened.
pub async fn positions_increase_in_commit_order_across_streams<S: Storage>(store: &S) {
    let ids: Vec<String> = (0..3).map(|_| unique_id("commit-order")).collect();
    let plan = [(0, 1), (1, 1), (0, 2), (2, 1), (1, 3), (0, 1), (2, 2)];
    let mut versions = [0u64; 3];
    let mut expected = Vec::new();
    let mut last = 0;
    for (s, n) in plan {
        let batch = numbered(&ids[s], versions[s] as usize, n);
        let outcome = append_ok(
            store,
            (ENTITY, &ids[s]),
            ExpectedVersion::after(versions[s]),
            &batch,
        )
        .await;
        versions[s] += n as u64;
        assert!(
            outcome.positions[0] > last,
            "an append must get positions after every earlier append's: got {:?} after {last}",
            outcome.positions
        );
        last = *outcome.positions.last().expect("one position per event");
        expected.extend(pairs(&batch, &outcome));
    }
    check_log(
        store,
        "commit order across streams",
        expected[0].1,
        LARGE,
        &expected,
    )
    .await;
}

/// Paging through the global log by 1, 2, 3, 7, a large number and `usize::MAX` events at a
/// time, each page starting after the previous one's last position, returns this case's events
/// exactly once each, in commit order, and no page is longer than its limit. A projection's
/// checkpointed catch-up is exactly this loop.
pub async fn read_all_pages_without_gaps_or_repeats<S: Storage>(store: &S) {
    let ids: Vec<String> = (0..3).map(|_| unique_id("paging")).collect();
    let mut versions = [0u64; 3];
    let mut expected = Vec::new();
    for (s, n) in [(0, 2), (1, 1), (2, 3), (0, 1), (1, 2), (2, 1), (0, 1)] {
        let batch = numbered(&ids[s], versions[s] as usize, n);
        let outcome = append_ok(
            store,
            (ENTITY, &ids[s]),
            ExpectedVersion::after(versions[s]),
            &batch,
        )
        .await;
        versions[s] += n as u64;
        expected.extend(pairs(&batch, &outcome));
    }
    for limit in [1, 2, 3, 7, LARGE, usize::MAX] {
        check_log(
            store,
            &format!("paging by {limit}"),
            expected[0].1,
            limit,
            &expected,
        )
        .await;
    }
}

/// Reading the global log from the position of one of this case's events returns that event
/// and the ones after it (the start is inclusive), from the next position only the ones after
/// it, and from after the last one none of them. A projection resumes from its checkpoint + 1.
pub async fn read_all_from_a_position_returns_the_rest<S: Storage>(store: &S) {
    let a = unique_id("from-middle");
    let b = unique_id("from-middle");
    let mut expected = Vec::new();
    for (id, version) in [(&a, 0), (&b, 0), (&a, 3), (&b, 3)] {
        let batch = numbered(id, version, 3);
        let outcome = append_ok(
            store,
            (ENTITY, id),
            ExpectedVersion::after(version as u64),
            &batch,
        )
        .await;
        expected.extend(pairs(&batch, &outcome));
    }
    for k in [0, 1, 5, 6, expected.len() - 1] {
        let (_, position) = expected[k];
        check_log(
            store,
            &format!("from the position of event #{k}"),
            position,
            LARGE,
            &expected[k..],
        )
        .await;
        check_log(
            store,
            &format!("from just after the position of event #{k}"),
            position + 1,
            2,
            &expected[k + 1..],
        )
        .await;
    }
    let ids: Vec<Uuid> = expected.iter().map(|(id, _)| *id).collect();
    let after_last = expected.last().expect("events").1 + 1;
    check_absent_from_log(store, "after the last event", after_last, &ids).await;
}

/// `read_stream` returns exactly the events whose version lies in the range
/// ([`ReadRange::contains`]): from a version, up to a version, both, a single version, ranges
/// reaching past the end, empty and inverted ranges, and the edges 0 and `u64::MAX`. Time
/// travel (`find_one_at`) and snapshot catch-up read partial streams.
pub async fn read_stream_honours_version_ranges<S: Storage>(store: &S) {
    let id = unique_id("ranges");
    let stream = (ENTITY, id.as_str());
    let events = numbered(&id, 0, 6);
    append_ok(store, stream, ExpectedVersion::NoStream, &events).await;
    let r = |from_version, to_version| ReadRange {
        from_version,
        to_version,
    };
    let ranges = [
        ReadRange::ALL,
        ReadRange::up_to(3),
        ReadRange::up_to(6),
        ReadRange::up_to(100),
        r(2, None),
        r(2, Some(4)),
        r(4, Some(4)),
        r(6, None),
        r(6, Some(6)),
        r(7, None),
        r(7, Some(10)),
        r(5, Some(2)),
        r(0, None),
        r(0, Some(0)),
        r(1, Some(0)),
        r(3, Some(100)),
        r(1, Some(u64::MAX)),
        r(u64::MAX, None),
        r(u64::MAX, Some(u64::MAX)),
    ];
    for range in ranges {
        let stored = read_range(store, stream, range).await;
        let want: Vec<u64> = (1..=6).filter(|v| range.contains(*v)).collect();
        let got: Vec<u64> = stored.iter().map(|e| e.version).collect();
        assert_eq!(
            got, want,
            "read_stream with {range:?} must return these versions"
        );
        for e in &stored {
            check_event(
                &format!("read_stream with {range:?}"),
                e,
                &events[(e.version - 1) as usize],
                stream,
                e.version,
            );
        }
    }
}

/// Collects what a visitor is handed, as owned events.
struct Collect(Vec<StoredEvent>);

impl EventVisitor for Collect {
    fn visit(&mut self, event: EventRef<'_>) -> Result<(), Error> {
        self.0.push(event.to_stored());
        Ok(())
    }
}

/// `visit_stream`, the borrowed read a repository loads entities with, hands over exactly the
/// events `read_stream` returns for the same range, field for field and in version order, and
/// gives the visitor back.
pub async fn visiting_a_stream_sees_what_reading_it_returns<S: Storage>(store: &S) {
    let id = unique_id("visit");
    let stream = (ENTITY, id.as_str());
    let mut events = numbered(&id, 0, 5);
    events[2].metadata = Some(Arc::new(Metadata::new().actor("visitor").with("n", 2)));
    events[3].checked_schema = None;
    append_ok(store, stream, ExpectedVersion::NoStream, &events).await;
    for range in [
        ReadRange::ALL,
        ReadRange::up_to(3),
        ReadRange {
            from_version: 2,
            to_version: Some(4),
        },
    ] {
        let read = read_range(store, stream, range).await;
        let visited = store
            .visit_stream(ENTITY, &id, range, Collect(Vec::new()))
            .await
            .unwrap_or_else(|e| panic!("visit_stream with {range:?} failed: {e}"))
            .0;
        let read: Vec<StoredEvent> = read.iter().map(|e| (**e).clone()).collect();
        assert_eq!(
            visited, read,
            "visit_stream with {range:?} must match read_stream"
        );
    }
    let none = store
        .visit_stream(
            ENTITY,
            &unique_id("visit-none"),
            ReadRange::ALL,
            Collect(Vec::new()),
        )
        .await
        .expect("visiting an unknown stream");
    assert!(none.0.is_empty(), "an unknown stream visits nothing");
}

/// Stops after `after` events with an error.
struct FailAfter {
    seen: usize,
    after: usize,
}

impl EventVisitor for FailAfter {
    fn visit(&mut self, _: EventRef<'_>) -> Result<(), Error> {
        self.seen += 1;
        if self.seen > self.after {
            return Err(crate::error::StorageError::msg("the visitor refused event 3").into());
        }
        Ok(())
    }
}

/// An error from the visitor (a body that does not decode, when a repository loads) stops the
/// read and comes back from `visit_stream` as it was, not wrapped in a storage error.
pub async fn a_visitor_error_stops_the_read<S: Storage>(store: &S) {
    let id = unique_id("visit-error");
    let stream = (ENTITY, id.as_str());
    append_ok(
        store,
        stream,
        ExpectedVersion::NoStream,
        &numbered(&id, 0, 5),
    )
    .await;
    let err = store
        .visit_stream(ENTITY, &id, ReadRange::ALL, FailAfter { seen: 0, after: 2 })
        .await
        .err()
        .expect("the visitor's error must stop the read");
    assert!(
        err.to_string().contains("the visitor refused event 3"),
        "the visitor's own error must come back: {err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Sizes, characters and many streams
// ---------------------------------------------------------------------------------------------

/// A 1 MiB body (with multi-byte characters) round-trips exactly through `read_stream` and
/// `read_all`, next to a small event in the same batch. Documents and imports make large events,
/// and a store must not truncate them.
pub async fn a_large_body_round_trips<S: Storage>(store: &S) {
    let id = unique_id("large");
    let stream = (ENTITY, id.as_str());
    let chunk = "0123456789abcdef ✓ ünïcödé 🦀 \\\"quoted\\\" ";
    let mut data = String::with_capacity(1 << 20);
    while data.len() < 1 << 20 {
        data.push_str(chunk);
    }
    let big = event_with("conformance:large", format!(r#"{{"data":"{data}"}}"#));
    assert!(big.body.len() > 1 << 20);
    let events = vec![big, numbered(&id, 1, 1).remove(0)];
    let outcome = append_ok(store, stream, ExpectedVersion::NoStream, &events).await;
    check_stream(store, "a 1 MiB body", stream, &events).await;
    let ids: HashSet<Uuid> = events.iter().map(|e| e.event_id).collect();
    let logged = scan_log(store, "a 1 MiB body", outcome.positions[0], 1, &ids).await;
    check_events("read_all of a 1 MiB body", &logged, &events, stream, 1);
}

/// One append of as many events as an entity may queue ([`DEFAULT_QUEUE_LIMIT`], 10,000) is
/// stored whole, at versions 1..=10,000, and reads back from the stream and the global log. A
/// repository commits a full queue in one append, so an adapter must not hit a statement or
/// parameter limit below it.
///
/// [`DEFAULT_QUEUE_LIMIT`]: crate::DEFAULT_QUEUE_LIMIT
pub async fn a_batch_as_large_as_the_queue_limit_round_trips<S: Storage>(store: &S) {
    let id = unique_id("full-queue");
    let stream = (ENTITY, id.as_str());
    let mut events = numbered(&id, 0, crate::DEFAULT_QUEUE_LIMIT);
    for (i, e) in events.iter_mut().enumerate() {
        e.schema_version = (i % 3) as u32 + 1;
        e.event_created_at = Timestamp::from_millis(1_700_000_000_000 + i as i64);
    }
    let outcome = append_ok(store, stream, ExpectedVersion::NoStream, &events).await;
    assert_eq!(outcome.version, crate::DEFAULT_QUEUE_LIMIT as u64);
    check_stream(store, "a full queue in one append", stream, &events).await;
    check_log(
        store,
        "a full queue in one append",
        outcome.positions[0],
        LARGE,
        &pairs(&events, &outcome),
    )
    .await;
}

/// Entity names, entity ids, event names and bodies with emoji, quotes, `%`, `_`, `'`, `\`,
/// spaces, control characters (no NUL) and a very long id round-trip, and a stream is found
/// only by its exact name and id: a pattern such as `%` or `_` must not match (SQL `LIKE`),
/// nor must quoting break. Ids come from users and other systems; a store cannot choose them.
pub async fn odd_characters_round_trip<S: Storage>(store: &S) {
    let u = UuidV7.event_id();
    let names = [
        "conformance odd ✓",
        "o'brien",
        "100%_done",
        "back\\slash",
        "quote\"d",
        "tab\tnew\nline\r\u{1}\u{1b}\u{7f}",
        "emoji🦀👩‍💻",
        "ünïcödé-名前",
        " spaced ",
        "semi;colon--",
    ];
    let ids = [
        format!("id ✓ {u}"),
        format!("it's {u}"),
        format!("50%_off_{u}"),
        format!("C:\\dir\\{u}\\"),
        format!("say \"{u}\""),
        format!("ctl\t\n\r\u{1}\u{1f}{u}"),
        format!("🦀🇳🇴{u}👩‍👩‍👧"),
        format!("名前-{u}"),
        format!(" {u} "),
        format!("{u}{}", "long-".repeat(200)),
    ];
    let mut written = Vec::new();
    for (name, id) in names.iter().zip(&ids) {
        let stream = (*name, id.as_str());
        let mut events = vec![
            event_with(
                "odd:événement ✓ 'q' \"dq\" %_",
                json!({ "name": name, "id": id, "text": "'%_\\\"🦀\u{1}" }).to_string(),
            ),
            event_with("odd:second", json!({ "n": 2 }).to_string()),
        ];
        events[0].metadata = Some(Arc::new(
            Metadata::new()
                .actor(*name)
                .reason(id.as_str())
                .with(id.as_str(), *name),
        ));
        append_ok(store, stream, ExpectedVersion::NoStream, &events).await;
        written.push((stream, events));
    }
    for (stream, events) in &written {
        check_stream(store, "odd characters", *stream, events).await;
        assert_eq!(read_snapshot(store, *stream).await, None);
    }
    for (name, pattern) in [
        ("100%_done", "%"),
        ("100%_done", "_"),
        ("%", "%"),
        ("o'brien", "it_s %"),
        ("o'brien", "it's %"),
        ("100%_done", &format!("50__off_{u}")),
        ("100_%done", &format!("50%_off_{u}")),
        ("back\\\\slash", &format!("C:\\\\dir\\\\{u}\\\\")),
    ] {
        assert!(
            read(store, (name, pattern)).await.is_empty(),
            "reading {name:?} {pattern:?} must match no stream: ids and names are compared exactly, not as patterns"
        );
    }
}

/// Streams whose names or ids differ only by letter case, a leading or trailing space or tab,
/// or Unicode normalisation are different streams; so are streams whose name and id would
/// concatenate to the same text (`a:b`/`c` and `a`/`b:c`). A store that folds case, trims,
/// normalises or joins keys would merge two entities' histories.
pub async fn streams_differing_only_slightly_stay_distinct<S: Storage>(store: &S) {
    let u = UuidV7.event_id().simple().to_string();
    let base = format!("Stream-{u}");
    let name = format!("conformance-{u}");
    let streams: Vec<(String, String)> = vec![
        (ENTITY.to_owned(), base.clone()),
        (ENTITY.to_owned(), base.to_lowercase()),
        (ENTITY.to_owned(), base.to_uppercase()),
        (ENTITY.to_owned(), format!("{base} ")),
        (ENTITY.to_owned(), format!(" {base}")),
        (ENTITY.to_owned(), format!("{base}\t")),
        (ENTITY.to_owned(), format!("{base}-é")),
        (ENTITY.to_owned(), format!("{base}-e\u{301}")),
        (name.clone(), base.clone()),
        (name.to_uppercase(), base.clone()),
        (format!("{name} "), base.clone()),
        (format!("{name}:x"), "y".to_owned()),
        (name.clone(), "x:y".to_owned()),
        (format!("{name}x"), "y".to_owned()),
        (name.clone(), "xy".to_owned()),
        (format!("{name}/x"), "y".to_owned()),
        (name.clone(), "x/y".to_owned()),
    ];
    let mut written = Vec::new();
    for (name, id) in &streams {
        let events = vec![event_with(
            "conformance:distinct",
            json!({ "name": name, "id": id }).to_string(),
        )];
        if let Err(e) = store
            .append(AppendRequest::new(
                name,
                id,
                ExpectedVersion::NoStream,
                &events,
            ))
            .await
        {
            panic!(
                "creating {name:?} {id:?} failed, as if it were one of the streams created before it ({:?}): {e}",
                written.iter().map(|(s, _)| s).collect::<Vec<_>>()
            );
        }
        written.push(((name.as_str(), id.as_str()), events));
    }
    for (stream, events) in &written {
        check_stream(store, "nearly identical streams", *stream, events).await;
    }
    // Near misses of the streams above that were never written: a store that falls back to a
    // folded or trimmed key when the exact one is missing would find one of the streams.
    let mixed: String = base
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    for (name, id) in [
        (ENTITY.to_owned(), mixed),
        (ENTITY.to_owned(), format!("{base}  ")),
        (ENTITY.to_owned(), format!("\t{base}")),
        (ENTITY.to_owned(), base.trim_start_matches('S').to_owned()),
        (ENTITY.to_uppercase(), base.clone()),
        (format!(" {ENTITY}"), base.clone()),
        (format!("{name}:x:y"), String::new()),
        (format!("{name}:x"), "y ".to_owned()),
    ] {
        assert!(
            read(store, (&name, &id)).await.is_empty(),
            "{name:?} {id:?} was never written and must read as empty, not as a stream whose key differs only slightly"
        );
    }
}

/// Twenty streams written round-robin, one to three events at a time, each keep exactly their
/// own events in version order, and in the global log each stream's events appear in version
/// order. Interleaving is the normal state of a busy store.
pub async fn many_interleaved_streams_keep_their_own_events<S: Storage>(store: &S) {
    const STREAMS: usize = 20;
    const ROUNDS: usize = 5;
    let ids: Vec<String> = (0..STREAMS).map(|_| unique_id("interleaved")).collect();
    let mut sent: Vec<Vec<NewEvent>> = vec![Vec::new(); STREAMS];
    let mut from = None;
    let mut expected = Vec::new();
    for round in 0..ROUNDS {
        for (s, id) in ids.iter().enumerate() {
            let n = (round + s) % 3 + 1;
            let batch = numbered(id, sent[s].len(), n);
            let outcome = append_ok(
                store,
                (ENTITY, id),
                ExpectedVersion::after(sent[s].len() as u64),
                &batch,
            )
            .await;
            from.get_or_insert(outcome.positions[0]);
            expected.extend(pairs(&batch, &outcome));
            sent[s].extend(batch);
        }
    }
    for (id, events) in ids.iter().zip(&sent) {
        check_stream(store, "interleaved streams", (ENTITY, id), events).await;
    }
    check_log(
        store,
        "interleaved streams",
        from.expect("appended"),
        7,
        &expected,
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Snapshots
// ---------------------------------------------------------------------------------------------

/// A written snapshot reads back with every field as written: stream, version, schema hash,
/// the state text exactly (unicode, whitespace) and the creation time to the millisecond.
pub async fn snapshot_round_trips<S: Storage>(store: &S) {
    let id = unique_id("snapshot");
    let stream = (ENTITY, id.as_str());
    append_ok(
        store,
        stream,
        ExpectedVersion::NoStream,
        &numbered(&id, 0, 3),
    )
    .await;
    let mut snapshot = snapshot_of(
        stream,
        3,
        "{\"name\": \"Zoë 🦀\",  \"tags\":[\"a\",\"b\"], \"quote\":\"'\\\"%_\"}",
    );
    snapshot.schema_hash = "sha256:0123456789abcdef ✓".to_owned();
    snapshot.created_at = Timestamp::from_millis(-86_400_001);
    write_snapshot(store, &snapshot).await;
    assert_eq!(
        read_snapshot(store, stream).await,
        Some(snapshot),
        "a snapshot must read back exactly as written"
    );
}

/// Writing a snapshot of a lower version than the stored one leaves the stored one; a higher
/// version replaces it; the same version replaces it too (the trait keeps the stored one only
/// when it is *later*, so a re-snapshot after a state schema change lands). Snapshots can be
/// written by several processes in any order, and an old one must never win.
pub async fn an_older_snapshot_never_replaces_a_newer_one<S: Storage>(store: &S) {
    let id = unique_id("snapshot-order");
    let stream = (ENTITY, id.as_str());
    append_ok(
        store,
        stream,
        ExpectedVersion::NoStream,
        &numbered(&id, 0, 10),
    )
    .await;
    let v5 = snapshot_of(stream, 5, r#"{"v":5}"#);
    let v3 = snapshot_of(stream, 3, r#"{"v":3}"#);
    let v10 = snapshot_of(stream, 10, r#"{"v":10}"#);
    let mut v10_rehashed = snapshot_of(stream, 10, r#"{"v":10,"shape":2}"#);
    v10_rehashed.schema_hash = "conformance-hash-2".to_owned();

    write_snapshot(store, &v5).await;
    write_snapshot(store, &v3).await;
    assert_eq!(
        read_snapshot(store, stream).await.as_ref(),
        Some(&v5),
        "a snapshot at version 3 must not replace one at version 5"
    );
    write_snapshot(store, &v10).await;
    assert_eq!(
        read_snapshot(store, stream).await.as_ref(),
        Some(&v10),
        "a snapshot at version 10 replaces one at version 5"
    );
    write_snapshot(store, &v5).await;
    assert_eq!(
        read_snapshot(store, stream).await.as_ref(),
        Some(&v10),
        "a snapshot at version 5 must not replace one at version 10"
    );
    write_snapshot(store, &v10_rehashed).await;
    assert_eq!(
        read_snapshot(store, stream).await.as_ref(),
        Some(&v10_rehashed),
        "a snapshot at the same version replaces the stored one (only a later one is kept)"
    );
}

/// Snapshots belong to one stream: streams differing by name, by case or by a trailing space
/// each keep their own, and a stream without one has none.
pub async fn snapshots_are_kept_per_stream<S: Storage>(store: &S) {
    let base = unique_id("Snapshot-Keys");
    let streams = [
        (ENTITY.to_owned(), base.clone()),
        (ENTITY.to_owned(), base.to_lowercase()),
        (ENTITY.to_owned(), format!("{base} ")),
        ("conformance_other".to_owned(), base.clone()),
        ("Conformance".to_owned(), base.clone()),
    ];
    let mut written = Vec::new();
    for (i, (name, id)) in streams.iter().enumerate() {
        let stream = (name.as_str(), id.as_str());
        let n = i + 1;
        append_ok(
            store,
            stream,
            ExpectedVersion::NoStream,
            &numbered(id, 0, n),
        )
        .await;
        let snapshot = snapshot_of(stream, n as u64, &json!({ "stream": i }).to_string());
        write_snapshot(store, &snapshot).await;
        written.push(snapshot);
    }
    for snapshot in &written {
        let stream = (snapshot.entity_name.as_str(), snapshot.entity_id.as_str());
        assert_eq!(
            read_snapshot(store, stream).await.as_ref(),
            Some(snapshot),
            "each stream must keep its own snapshot"
        );
    }
    let bare = (ENTITY, format!("{base}-without"));
    assert_eq!(
        read_snapshot(store, (bare.0, bare.1.as_str())).await,
        None,
        "a stream that never had a snapshot has none"
    );
}

/// An append carrying a snapshot of the stream at the version after the append stores both the
/// events and the snapshot; a later one with a newer snapshot replaces it. This is how a
/// repository writes the snapshot in the events' transaction.
pub async fn append_with_a_snapshot_stores_both<S: Storage>(store: &S) {
    let id = unique_id("append-snapshot");
    let stream = (ENTITY, id.as_str());
    let mut sent = numbered(&id, 0, 3);
    let s3 = snapshot_of(stream, 3, r#"{"total":3}"#);
    let outcome = store
        .append(
            AppendRequest::new(ENTITY, &id, ExpectedVersion::NoStream, &sent).with_snapshot(&s3),
        )
        .await
        .unwrap_or_else(|e| panic!("an append with a matching snapshot failed: {e} ({e:?})"));
    assert_eq!(outcome.version, 3);
    check_stream(store, "after an append with a snapshot", stream, &sent).await;
    assert_eq!(
        read_snapshot(store, stream).await.as_ref(),
        Some(&s3),
        "the snapshot of the append must be stored"
    );

    let more = numbered(&id, 3, 2);
    let s5 = snapshot_of(stream, 5, r#"{"total":5}"#);
    store
        .append(
            AppendRequest::new(ENTITY, &id, ExpectedVersion::Exact(3), &more).with_snapshot(&s5),
        )
        .await
        .unwrap_or_else(|e| panic!("a second append with a snapshot failed: {e} ({e:?})"));
    sent.extend(more);
    check_stream(
        store,
        "after a second append with a snapshot",
        stream,
        &sent,
    )
    .await;
    assert_eq!(
        read_snapshot(store, stream).await.as_ref(),
        Some(&s5),
        "the newer snapshot of the second append must replace the first"
    );
}

/// An append whose snapshot does not match it (the version before the append, a version past
/// it, another entity id, another entity name) is rejected and stores neither the events nor the
/// snapshot, also not on the stream the snapshot names. A snapshot that does not describe the
/// stream's state would be trusted by every later load.
pub async fn append_with_a_mismatched_snapshot_stores_neither<S: Storage>(store: &S) {
    let id = unique_id("bad-snapshot");
    let other = unique_id("bad-snapshot-other");
    let stream = (ENTITY, id.as_str());
    let sent = numbered(&id, 0, 2);
    let first = append_ok(store, stream, ExpectedVersion::NoStream, &sent).await;
    let s2 = snapshot_of(stream, 2, r#"{"v":2}"#);
    write_snapshot(store, &s2).await;

    let mut rejected_ids = Vec::new();
    let cases = [
        (
            "the version before the append",
            snapshot_of(stream, 2, r#"{"v":"old"}"#),
        ),
        (
            "a version past the append",
            snapshot_of(stream, 4, r#"{"v":4}"#),
        ),
        (
            "another entity id",
            snapshot_of((ENTITY, &other), 3, r#"{"v":3}"#),
        ),
        (
            "another entity name",
            snapshot_of(("conformance_other", &id), 3, r#"{"v":3}"#),
        ),
    ];
    for (what, snapshot) in &cases {
        let batch = numbered(&id, 2, 1);
        rejected_ids.extend(ids_of(&batch));
        let result = store
            .append(
                AppendRequest::new(ENTITY, &id, ExpectedVersion::Exact(2), &batch)
                    .with_snapshot(snapshot),
            )
            .await;
        match result {
            Ok(outcome) => panic!(
                "an append with a snapshot of {what} must be rejected, but the store accepted it: {outcome:?}"
            ),
            Err(e) => assert!(
                !e.is_concurrency(),
                "a mismatched snapshot ({what}) is not a concurrency conflict: {e}"
            ),
        }
        check_stream(store, &format!("after a snapshot of {what}"), stream, &sent).await;
        assert_eq!(
            read_snapshot(store, stream).await.as_ref(),
            Some(&s2),
            "a rejected append (snapshot of {what}) must leave the stored snapshot alone"
        );
    }
    assert_eq!(
        read_snapshot(store, (ENTITY, &other)).await,
        None,
        "a rejected append must not write a snapshot for the stream the snapshot names"
    );
    assert_eq!(read_snapshot(store, ("conformance_other", &id)).await, None);
    check_absent_from_log(
        store,
        "after mismatched snapshots",
        first.positions[0],
        &rejected_ids,
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------------

/// Sixteen tasks append two events each to one stream at version 1, all expecting version 1,
/// released together: exactly one wins, every other gets a conflict carrying `Exact(1)` and the
/// winner's version 3, and the stream holds the first event and the winner's two, gaplessly.
/// The expected-version check and the write must be one atomic step.
pub async fn concurrent_appends_to_one_stream_have_one_winner<S: Storage + Clone>(store: &S) {
    const TASKS: usize = 16;
    let id = unique_id("race-exact");
    let first = numbered(&id, 0, 1);
    append_ok(store, (ENTITY, &id), ExpectedVersion::NoStream, &first).await;
    let results = race(store, &id, ExpectedVersion::Exact(1), TASKS).await;
    let stream = (ENTITY, id.as_str());
    let winner = check_one_winner(&results, stream, ExpectedVersion::Exact(1), 1);
    let sent: Vec<NewEvent> = first.iter().chain(&results[winner].0).cloned().collect();
    check_stream(store, "after the race", stream, &sent).await;
}

/// Sixteen tasks create the same new stream at once (`NoStream`), two events each: exactly one
/// wins, every other gets a conflict carrying `NoStream` and version 2. Two users signing up
/// with the same natural key race exactly like this.
pub async fn concurrent_creates_of_one_stream_have_one_winner<S: Storage + Clone>(store: &S) {
    const TASKS: usize = 16;
    let id = unique_id("race-create");
    let results = race(store, &id, ExpectedVersion::NoStream, TASKS).await;
    let stream = (ENTITY, id.as_str());
    let winner = check_one_winner(&results, stream, ExpectedVersion::NoStream, 0);
    check_stream(store, "after the race", stream, &results[winner].0).await;
}

type RaceResult = (Vec<NewEvent>, Result<AppendOutcome, Error>);

/// `tasks` tasks append two events each to one stream expecting `expected`, released together.
async fn race<S: Storage + Clone>(
    store: &S,
    id: &str,
    expected: ExpectedVersion,
    tasks: usize,
) -> Vec<RaceResult> {
    let barrier = Arc::new(Barrier::new(tasks));
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let store = store.clone();
            let barrier = barrier.clone();
            let id = id.to_owned();
            tokio::spawn(async move {
                let events = numbered(&format!("{id}/task-{t}"), 0, 2);
                barrier.wait().await;
                let result = store
                    .append(AppendRequest::new(ENTITY, &id, expected, &events))
                    .await;
                (events, result)
            })
        })
        .collect();
    let mut results = Vec::new();
    for h in handles {
        results.push(join(h).await);
    }
    results
}

/// Checks that exactly one of the racers won (ending at `before + 2`) and every other got a
/// conflict naming that version; returns the winner's index.
#[track_caller]
fn check_one_winner(
    results: &[RaceResult],
    stream: (&str, &str),
    expected: ExpectedVersion,
    before: u64,
) -> usize {
    let winners: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, (_, r))| r.is_ok())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one of {} concurrent appends expecting {expected} may win, {} did: the version check and the write must be atomic",
        results.len(),
        winners.len()
    );
    let winner = winners[0];
    if let (_, Ok(outcome)) = &results[winner] {
        assert_eq!(outcome.version, before + 2, "the winner's outcome version");
    }
    for (i, (_, r)) in results.iter().enumerate() {
        if let Err(e) = r {
            assert_conflict(
                &format!("racer #{i} expecting {expected}"),
                e,
                stream,
                expected,
                before + 2,
            );
        }
    }
    winner
}

/// Eight tasks each append twenty-five single events to one stream with `ExpectedVersion::Any`,
/// all at once: every append succeeds, the stream holds all 200 events once each at versions
/// 1..=200, and each task's events keep their order. `Any` must still number events gaplessly
/// under contention.
pub async fn concurrent_appends_with_any_are_all_stored<S: Storage + Clone>(store: &S) {
    const TASKS: usize = 8;
    const EACH: usize = 25;
    let id = unique_id("race-any");
    let barrier = Arc::new(Barrier::new(TASKS));
    let handles: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = store.clone();
            let barrier = barrier.clone();
            let id = id.clone();
            tokio::spawn(async move {
                let events = numbered(&format!("{id}/task-{t}"), 0, EACH);
                barrier.wait().await;
                let mut versions = Vec::new();
                for e in &events {
                    let outcome = append_ok(
                        &store,
                        (ENTITY, &id),
                        ExpectedVersion::Any,
                        std::slice::from_ref(e),
                    )
                    .await;
                    versions.push(outcome.version);
                }
                (events, versions)
            })
        })
        .collect();
    let mut by_id: HashMap<Uuid, (usize, usize, u64)> = HashMap::new();
    for (t, h) in handles.into_iter().enumerate() {
        let (events, versions) = join(h).await;
        for (k, (e, v)) in events.iter().zip(versions).enumerate() {
            by_id.insert(e.event_id, (t, k, v));
        }
    }
    check_contended_stream(store, &id, &by_id, TASKS * EACH).await;
}

/// Checks a stream written by several tasks: `total` events at versions 1..=total, each sent
/// event exactly once at the version its append reported, and each task's events in order.
async fn check_contended_stream<S: Storage>(
    store: &S,
    id: &str,
    by_id: &HashMap<Uuid, (usize, usize, u64)>,
    total: usize,
) {
    let stored = read(store, (ENTITY, id)).await;
    assert_eq!(
        stored.len(),
        total,
        "{total} events were appended concurrently; the stream holds {}",
        stored.len()
    );
    let mut seen = HashSet::new();
    let mut next_of_task: HashMap<usize, usize> = HashMap::new();
    for (i, e) in stored.iter().enumerate() {
        assert_eq!(
            e.version,
            i as u64 + 1,
            "versions must be gapless under contention"
        );
        assert!(
            seen.insert(e.event_id),
            "event {} is stored twice",
            e.event_id
        );
        let Some(&(task, k, version)) = by_id.get(&e.event_id) else {
            panic!(
                "event {} at version {} was never sent",
                e.event_id, e.version
            );
        };
        assert_eq!(
            e.version, version,
            "event {} must be stored at the version its append reported",
            e.event_id
        );
        let next = next_of_task.entry(task).or_default();
        assert_eq!(
            k, *next,
            "task {task}'s events must be stored in the order it appended them"
        );
        *next += 1;
    }
    if let Some(w) = stored.windows(2).find(|w| w[0].position >= w[1].position) {
        panic!(
            "positions must increase with the version: version {} at {}, version {} at {}",
            w[0].version, w[0].position, w[1].version, w[1].position
        );
    }
}

/// Eight tasks write twelve appends each (one to three events) to four streams of their own,
/// all at once: no event is lost, every stream is gapless and holds exactly its events, and
/// every position is unique and found once in the global log. Parallel writers to different
/// entities must not block each other into errors or share positions.
pub async fn concurrent_appends_to_many_streams_lose_nothing<S: Storage + Clone>(store: &S) {
    const TASKS: usize = 8;
    const STREAMS: usize = 4;
    const ROUNDS: usize = 12;
    let run = unique_id("many");
    let barrier = Arc::new(Barrier::new(TASKS));
    let handles: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = store.clone();
            let barrier = barrier.clone();
            let run = run.clone();
            tokio::spawn(async move {
                let ids: Vec<String> = (0..STREAMS).map(|s| format!("{run}/{t}/{s}")).collect();
                let mut sent: Vec<Vec<NewEvent>> = vec![Vec::new(); STREAMS];
                let mut positions: Vec<(Uuid, u64)> = Vec::new();
                barrier.wait().await;
                for round in 0..ROUNDS {
                    let s = round % STREAMS;
                    let batch = numbered(&ids[s], sent[s].len(), round % 3 + 1);
                    let outcome = append_ok(
                        &store,
                        (ENTITY, &ids[s]),
                        ExpectedVersion::after(sent[s].len() as u64),
                        &batch,
                    )
                    .await;
                    assert!(
                        positions
                            .last()
                            .is_none_or(|(_, p)| outcome.positions[0] > *p),
                        "one writer's appends must get increasing positions"
                    );
                    positions.extend(pairs(&batch, &outcome));
                    sent[s].extend(batch);
                }
                (ids, sent, positions)
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        let (ids, sent, positions) = join(h).await;
        for (id, events) in ids.iter().zip(&sent) {
            check_stream(store, "after concurrent writers", (ENTITY, id), events).await;
        }
        all.extend(positions);
    }
    let unique: HashSet<u64> = all.iter().map(|(_, p)| *p).collect();
    assert_eq!(
        unique.len(),
        all.len(),
        "every event must get its own position"
    );
    all.sort_by_key(|(_, p)| *p);
    check_log(store, "after concurrent writers", all[0].1, LARGE, &all).await;
}

/// Six tasks each append eight events to one stream, one at a time, retrying on conflict with
/// the version the conflict reported (as `Repository::update` does after a reload): the stream
/// ends at version 48 with every event once, each at the version its append reported, and each
/// task's events in order. Conflicts must store nothing, or retries would duplicate.
pub async fn concurrent_retry_loops_lose_and_duplicate_nothing<S: Storage + Clone>(store: &S) {
    const TASKS: usize = 6;
    const EACH: usize = 8;
    let id = unique_id("retry-loop");
    let barrier = Arc::new(Barrier::new(TASKS));
    let handles: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = store.clone();
            let barrier = barrier.clone();
            let id = id.clone();
            tokio::spawn(async move {
                let events = numbered(&format!("{id}/task-{t}"), 0, EACH);
                let mut versions = Vec::new();
                let mut conflicts = 0usize;
                barrier.wait().await;
                let mut expected = ExpectedVersion::NoStream;
                for e in &events {
                    loop {
                        let request =
                            AppendRequest::new(ENTITY, &id, expected, std::slice::from_ref(e));
                        match store.append(request).await {
                            Ok(outcome) => {
                                versions.push(outcome.version);
                                expected = ExpectedVersion::Exact(outcome.version);
                                break;
                            }
                            Err(Error::Concurrency { actual, .. }) => {
                                conflicts += 1;
                                assert!(
                                    conflicts < 100_000,
                                    "task {t} is stuck in conflicts on {id:?}"
                                );
                                expected = ExpectedVersion::after(actual);
                                tokio::task::yield_now().await;
                            }
                            Err(other) => panic!(
                                "task {t}: an append expecting {expected} failed with something else than a conflict: {other} ({other:?})"
                            ),
                        }
                    }
                }
                (events, versions)
            })
        })
        .collect();
    let mut by_id: HashMap<Uuid, (usize, usize, u64)> = HashMap::new();
    for (t, h) in handles.into_iter().enumerate() {
        let (events, versions) = join(h).await;
        for (k, (e, v)) in events.iter().zip(versions).enumerate() {
            by_id.insert(e.event_id, (t, k, v));
        }
    }
    check_contended_stream(store, &id, &by_id, TASKS * EACH).await;
}

/// While a writer appends thirty batches of ten events to one stream, a reader reads the stream
/// and the global log over and over: every read holds a multiple of ten of the stream's events
/// (never half a batch), at versions 1..n, never fewer than the read before. Loading an entity
/// in the middle of another's commit must see the commit whole or not at all.
pub async fn readers_never_see_half_a_batch<S: Storage + Clone>(store: &S) {
    const BATCHES: usize = 30;
    const SIZE: usize = 10;
    let id = unique_id("half-batch");
    let first = append_ok(
        store,
        (ENTITY, &id),
        ExpectedVersion::NoStream,
        &numbered(&id, 0, SIZE),
    )
    .await;
    let from = first.positions[0];
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let store = store.clone();
        let id = id.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let (mut reads, mut in_stream, mut in_log) = (0usize, SIZE, SIZE);
            loop {
                let finished = done.load(Ordering::Acquire);
                let events = read(&store, (ENTITY, &id)).await;
                assert!(
                    events.len() % SIZE == 0,
                    "read #{reads} of the stream saw {} events: part of a {SIZE}-event append",
                    events.len()
                );
                assert!(
                    events.len() >= in_stream,
                    "read #{reads} saw {} events after an earlier read saw {in_stream}",
                    events.len()
                );
                for (i, e) in events.iter().enumerate() {
                    assert_eq!(
                        e.version,
                        i as u64 + 1,
                        "read #{reads}: versions must be 1..n"
                    );
                }
                in_stream = events.len();
                let log = store
                    .read_all(from, usize::MAX)
                    .await
                    .unwrap_or_else(|e| panic!("read_all({from}, usize::MAX) failed: {e}"));
                let mine = log
                    .iter()
                    .filter(|e| e.entity_name == ENTITY && e.entity_id == id)
                    .count();
                assert!(
                    mine % SIZE == 0,
                    "read #{reads} of the global log saw {mine} of the stream's events: part of a {SIZE}-event append"
                );
                assert!(
                    mine >= in_log,
                    "the global log lost events: {mine} after {in_log}"
                );
                in_log = mine;
                reads += 1;
                if finished {
                    break;
                }
                tokio::task::yield_now().await;
            }
            (reads, in_stream, in_log)
        })
    };
    for b in 1..BATCHES {
        append_ok(
            store,
            (ENTITY, &id),
            ExpectedVersion::Exact((b * SIZE) as u64),
            &numbered(&id, b * SIZE, SIZE),
        )
        .await;
        tokio::task::yield_now().await;
    }
    done.store(true, Ordering::Release);
    let (reads, in_stream, in_log) = join(reader).await;
    assert_eq!(
        (in_stream, in_log),
        (BATCHES * SIZE, BATCHES * SIZE),
        "the reader's last read ({reads} reads in all) came after the writer finished and must see every event"
    );
}

// ---------------------------------------------------------------------------------------------
// Through the repository
// ---------------------------------------------------------------------------------------------

mod counter {
    use crate::{Aggregate, Reducer, event, mutations};

    #[event(entity = "conformance_counter")]
    #[derive(Debug, Clone, PartialEq)]
    pub enum CounterEvent {
        #[event(initial)]
        Opened {
            label: String,
        },
        Added {
            amount: i64,
        },
    }

    #[derive(Aggregate, Debug, Clone, PartialEq)]
    #[aggregate(event = CounterEvent)]
    pub struct Counter {
        pub label: String,
        pub total: i64,
    }

    impl Reducer for Counter {
        fn init(opened: &CounterOpened) -> Self {
            Counter {
                label: opened.label.clone(),
                total: 0,
            }
        }

        fn apply(&mut self, event: &CounterEvent) {
            match event {
                CounterEvent::Opened { label } => self.label = label.clone(),
                CounterEvent::Added { amount } => self.total += amount,
            }
        }
    }

    #[mutations]
    impl Counter {
        #[mutation]
        pub fn add(&self, amount: i64) -> CounterEvent {
            CounterEvent::Added { amount }
        }
    }
}

/// A [`Repository`](crate::Repository) over the store: create, commit with metadata, load (same
/// state, version and events, positions and metadata included), time travel, a stale writer's
/// conflict, and the reload-and-retry helper. The adapter is what the repository stands on, so
/// this checks that the two agree end to end.
pub async fn repository_round_trip<S: Storage + Clone>(store: &S) {
    use counter::{Counter, CounterMutations, CounterOpened};

    let repo = crate::Repository::<Counter, S>::new(store.clone());
    let mut counter = repo
        .create(CounterOpened {
            label: "conformance ✓ 'q' %".to_owned(),
        })
        .expect("creating a counter");
    counter.add(5).expect("add 5");
    counter.add(-2).expect("add -2");
    let committed = repo
        .commit_with(
            &mut counter,
            Metadata::new().actor("conformance").reason("round trip"),
        )
        .await
        .unwrap_or_else(|e| panic!("the first commit failed: {e} ({e:?})"));
    assert_eq!((committed.events, committed.version), (3, 3));
    let id = counter.entity_id().to_owned();

    let mut loaded = repo
        .find_one(&id)
        .await
        .unwrap_or_else(|e| panic!("loading the counter failed: {e} ({e:?})"))
        .expect("a committed counter must be found");
    assert_eq!(loaded.state(), counter.state(), "the loaded state");
    assert_eq!(loaded.version(), 3, "the loaded version");
    let before: Vec<_> = counter.events().cloned().collect();
    let after: Vec<_> = loaded.events().cloned().collect();
    assert_eq!(
        after, before,
        "loaded events (ids, times, positions, metadata, bodies) must equal the committed ones"
    );
    assert_eq!(after[0].metadata().actor.as_deref(), Some("conformance"));

    loaded.add(10).expect("add 10");
    repo.commit(&mut loaded)
        .await
        .unwrap_or_else(|e| panic!("the second commit failed: {e} ({e:?})"));

    let past = repo
        .find_one_at(&id, 2)
        .await
        .unwrap_or_else(|e| panic!("time travel failed: {e} ({e:?})"))
        .expect("version 2 exists");
    assert_eq!(
        (past.version(), past.state().total),
        (2, 5),
        "the counter at version 2"
    );

    counter.add(1).expect("add 1");
    let err = repo
        .commit(&mut counter)
        .await
        .expect_err("a stale writer's commit must fail");
    assert_conflict(
        "a stale writer",
        &err,
        ("conformance_counter", &id),
        ExpectedVersion::Exact(3),
        4,
    );

    let updated = repo
        .update(&id, 3, |c| c.add(100))
        .await
        .unwrap_or_else(|e: Error| panic!("update failed: {e} ({e:?})"));
    assert!(updated.is_some(), "update must find the counter");
    let last = repo
        .find_one(&id)
        .await
        .unwrap_or_else(|e| panic!("loading the counter failed: {e} ({e:?})"))
        .expect("the counter exists");
    assert_eq!((last.version(), last.state().total), (5, 113));

    let stored = read(store, ("conformance_counter", &id)).await;
    let names: Vec<&str> = stored.iter().map(|e| e.event_name.as_str()).collect();
    assert_eq!(
        names,
        [
            "conformance_counter:opened",
            "conformance_counter:added",
            "conformance_counter:added",
            "conformance_counter:added",
            "conformance_counter:added"
        ]
    );
    assert!(
        repo.find_one(&unique_id("no-counter"))
            .await
            .unwrap_or_else(|e| panic!("loading an unknown counter failed: {e}"))
            .is_none(),
        "an unknown id loads as None"
    );
}

#[cfg(test)]
mod tests {
    /// Collects the names the case list hands to its callback.
    macro_rules! names {
        ([$($case:ident),* $(,)?]) => {
            [$(stringify!($case)),*]
        };
    }

    /// A case written but left out of the list would silently never run.
    #[test]
    fn every_case_is_in_the_list() {
        let mut listed = crate::__storage_conformance_cases!([names]).to_vec();
        let mut defined: Vec<&str> = include_str!("testing.rs")
            .lines()
            .filter_map(|line| line.strip_prefix("pub async fn "))
            .filter_map(|rest| rest.split('<').next())
            .collect();
        listed.sort_unstable();
        defined.sort_unstable();
        assert_eq!(listed, defined);
    }
}
