//! The storage conformance suite: one async function per behaviour every [`Storage`] adapter
//! must show, and [`storage_conformance!`](crate::storage_conformance) to run them all against
//! an adapter, one `#[test]` per case.
//!
//! ```no_run
//! // tests/conformance.rs
//! ventyd::storage_conformance!(memory, async { ventyd::MemoryStorage::new() });
//! ```
//!
//! The macro expands to a module (`memory`) with one test per case
//! (`memory::a_document_round_trips`, ...), so a failure names the behaviour that broke, and
//! `cargo test memory::` or `cargo test document` pick cases the usual way. Each test builds a
//! fresh store with the given expression on a multi-thread Tokio runtime with two workers, so the
//! concurrency cases really run in parallel. A last test, `all_cases_on_one_shared_store`, runs
//! every case at the same time against one store.
//!
//! The cases come in groups, one file each: `streams` (round trips, ranges, visitors, odd
//! characters), `versions` (expected versions), `retries` (idempotent retries, event id reuse, a
//! lost outcome followed by one more event), `units` (units of work) and `refusals` (malformed
//! units), `documents` and `listing`, `log` (cursors, filters) and `times` (commit times),
//! `concurrency` (racing writers) and `readers` (readers while writers commit), and
//! `repository` (the repository on top of a store). `writing` and `reading` hold the helpers
//! they share.
//!
//! # Writing a case
//! Every case takes `&S` and works only on streams, collections and names of its own: ids carry a
//! fresh UUID v7 ([`UuidV7`]), so cases can share one database (a PostgreSQL test database, say)
//! and run in parallel, and re-running the suite on a database that was not cleaned still passes.
//!
//! A case that reads the global log ([`Storage::read_log`]) looks only at its own events, but
//! still checks the log's rules on them: a page holds at most `limit` entries, positions increase
//! in commit order (they may have gaps), and resuming from a cursor returns the rest without gaps
//! or repeats. It starts from a cursor at the head of the log taken before it writes
//! (`head`: one read filtered on a name nobody writes, which the store skips through
//! itself), so what it pages through is what was committed while it ran, not the whole log of a
//! shared store.
//!
//! Cases that spawn tasks need `S: Clone` to hand the store to each task; the macro passes an
//! `Arc` of the store, which is always `Clone` and a [`Storage`] itself. A few cases pause for a
//! millisecond (so that commit times differ), so a runtime that runs a case by hand needs its
//! timer enabled, as the macro's has.
//!
//! A failing case panics with a message that says what was expected and why it matters.
//!
//! A new case is a `pub async fn` in one of the files here plus its name in the list inside
//! `__storage_conformance_cases!` (the only list), which adds it for every adapter at once. A
//! unit test fails when a case is missing from the list.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;

use crate::event_id::EventId;
use serde_json::json;
use tokio::task::JoinHandle;

use crate::error::{Error, StorageErrorKind};
use crate::id::{IdGenerator, UuidV7};
use crate::storage::{
    AppendOutcome, AppendRequest, CommitOutcome, Document, EventPlace, ExpectedRevision,
    ExpectedVersion, LogCursor, LogFilter, LogPage, LogRequest, NewEvent, ReadRange, Storage,
    StoredEvent, UnitOfWork,
};
use crate::time::Timestamp;

mod reading;
mod writing;

mod concurrency;
mod documents;
mod listing;
mod log;
mod readers;
mod refusals;
mod repository;
mod retries;
mod streams;
mod times;
mod units;
mod versions;

pub use concurrency::*;
pub use documents::*;
pub use listing::*;
pub use log::*;
pub use readers::*;
pub use refusals::*;
pub use repository::*;
pub use retries::*;
pub use streams::*;
pub use times::*;
pub use units::*;
pub use versions::*;

use reading::*;
use writing::*;

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
///
/// A store that needs a server can make every test of its module return early, passing, when
/// the server is not configured: `storage_conformance!(name, async { store }, only_if: cond)`
/// evaluates `cond` (a `bool`) at the start of each test and skips the test when it is false.
/// Print why in `cond`, and fail there instead where a missing server must not pass (on CI).
#[macro_export]
macro_rules! storage_conformance {
    ($name:ident, $store:expr $(,)?) => {
        $crate::__storage_conformance_cases! {
            [$crate::__storage_conformance_module] $name, $store, true,
        }
    };
    ($name:ident, $store:expr, only_if: $cond:expr $(,)?) => {
        $crate::__storage_conformance_cases! {
            [$crate::__storage_conformance_module] $name, $store, $cond,
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
                // streams.rs
                reading_an_unknown_stream_returns_nothing,
                append_then_read_round_trips_every_field,
                bodies_round_trip_as_the_same_json,
                read_stream_honours_version_ranges,
                visiting_a_stream_sees_what_reading_it_returns,
                a_visitor_error_stops_the_read,
                a_large_body_round_trips,
                a_batch_as_large_as_the_queue_limit_round_trips,
                odd_characters_round_trip,
                streams_differing_only_slightly_stay_distinct,
                many_interleaved_streams_keep_their_own_events,
                // versions.rs
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
                // retries.rs
                a_batch_with_a_duplicate_event_id_stores_nothing,
                a_batch_reusing_a_stored_event_id_stores_nothing,
                an_event_id_is_not_reused_by_another_stream,
                a_retried_append_returns_the_stored_outcome,
                a_retry_with_different_content_is_rejected,
                a_retry_after_another_writer_appended_is_recognised,
                a_lost_outcome_then_one_more_event_appends_only_the_new_one,
                a_lost_outcome_after_another_writer_appended_conflicts,
                a_retried_unit_whose_guarded_stream_moved_is_still_a_retry,
                event_ids_of_any_text_round_trip_and_are_compared_exactly,
                // units.rs
                a_unit_commits_streams_of_different_entity_names_atomically,
                a_conflict_on_one_append_stores_nothing_of_the_unit,
                a_document_conflict_fails_the_whole_unit,
                appends_and_document_writes_commit_together,
                a_unit_of_document_writes_only_commits,
                an_empty_append_in_a_unit_guards_its_stream,
                a_retried_unit_returns_the_stored_outcome_without_rewriting_documents,
                // refusals.rs
                a_unit_naming_a_stream_twice_is_refused,
                a_unit_writing_a_document_twice_is_refused,
                an_empty_unit_is_refused,
                an_event_id_used_twice_in_a_unit_is_refused,
                nul_characters_are_refused,
                nul_escapes_in_bodies_and_metadata_are_refused,
                empty_names_are_refused,
                // documents.rs
                a_missing_document_is_none,
                a_document_round_trips,
                putting_expecting_absent_on_an_existing_document_conflicts,
                an_exact_revision_write_gives_the_next_revision,
                a_wrong_exact_revision_conflicts_with_the_actual_revision,
                any_revision_writes_whatever_is_there,
                deleting_removes_a_document,
                deleting_with_a_wrong_revision_conflicts,
                collections_are_isolated,
                document_bodies_round_trip_as_the_same_json,
                document_keys_are_compared_exactly,
                // listing.rs
                listing_pages_through_a_collection_in_key_order,
                listing_orders_keys_by_their_utf8_bytes,
                a_listing_limit_of_zero_is_refused,
                // log.rs
                positions_increase_in_commit_order_across_streams,
                paging_the_log_sees_each_event_once_in_order,
                resuming_from_an_entry_cursor_returns_the_rest,
                reading_at_the_head_returns_nothing,
                a_log_limit_of_zero_is_refused,
                a_saved_cursor_resumes_at_the_same_place,
                a_damaged_cursor_fails_to_parse,
                a_cursor_of_another_store_is_refused,
                a_filtered_read_returns_only_matching_events,
                // times.rs
                recorded_at_is_the_store_commit_time,
                recorded_times_never_decrease_in_log_order,
                recorded_at_is_reported_and_read_back,
                // concurrency.rs
                concurrent_appends_to_one_stream_have_one_winner,
                concurrent_creates_of_one_stream_have_one_winner,
                concurrent_appends_with_any_are_all_stored,
                concurrent_appends_to_many_streams_lose_nothing,
                concurrent_retry_loops_lose_and_duplicate_nothing,
                concurrent_writes_to_one_document_have_one_winner,
                concurrent_units_over_two_streams_stay_atomic,
                // readers.rs
                readers_never_see_half_a_batch,
                a_log_reader_sees_every_event_once_while_writers_commit,
                // repository.rs
                repository_round_trip,
                a_repository_batch_commits_entities_and_documents_together,
                concurrent_repository_updates_all_land,
            ]
        }
    };
}

/// Expands to the test module of [`storage_conformance!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __storage_conformance_module {
    ($name:ident, $store:expr, $cond:expr, [$($case:ident),* $(,)?]) => {
        #[allow(unused_imports)]
        mod $name {
            use super::*;

            $(
                #[test]
                fn $case() {
                    if !$cond {
                        return;
                    }
                    $crate::testing::__private::run(async {
                        let store = ::std::sync::Arc::new($store.await);
                        $crate::testing::$case(&store).await;
                    });
                }
            )*

            #[test]
            fn all_cases_on_one_shared_store() {
                if !$cond {
                    return;
                }
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
// Names, events and bodies
// ---------------------------------------------------------------------------------------------

/// The entity name most cases write under. Entity ids carry a UUID v7, so every call of a case
/// has streams of its own.
const ENTITY: &str = "conformance";

/// A second entity name, for "the same id under another name".
const OTHER: &str = "conformance_other";

/// A page size larger than any case writes between two reads, for "everything from here".
const LARGE: usize = 1_000;

/// How far a store's clock may be from the test's: a database server's clock is its own.
const CLOCK_SKEW_MILLIS: i64 = 5 * 60 * 1_000;

/// The most pages any loop over the log or a collection reads before it gives up.
const MAX_PAGES: usize = 1_000_000;

/// An id (an entity id, a document key) no other call of any case uses.
fn unique_id(case: &str) -> String {
    format!("{case}-{}", UuidV7.event_id())
}

/// A name (an entity name, a collection, an event name) no other call of any case uses: for the
/// cases that filter the log or list a collection, and must see nothing of other cases.
fn unique_name(case: &str) -> String {
    format!("conformance-{case}-{}", UuidV7.uuid().simple())
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

fn ids_of(events: &[NewEvent]) -> Vec<EventId> {
    events.iter().map(|e| e.event_id.clone()).collect()
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

/// Checks that a commit time is the store's clock at the commit, between `before` and `after`
/// (give or take [`CLOCK_SKEW_MILLIS`]): not the writer's creation time, not a default.
#[track_caller]
fn check_recent(ctx: &str, at: Timestamp, before: Timestamp, after: Timestamp) {
    assert!(
        at.as_millis() >= before.as_millis() - CLOCK_SKEW_MILLIS
            && at.as_millis() <= after.as_millis() + CLOCK_SKEW_MILLIS,
        "{ctx}: the commit time {at} must be the store's clock when it committed (between {before} and {after}, give or take {} s of clock skew)",
        CLOCK_SKEW_MILLIS / 1_000
    );
}

#[cfg(test)]
crate::storage_conformance!(memory_self_test, async { crate::MemoryStorage::new() });

#[cfg(test)]
mod tests {
    /// The files that hold cases, as the list test reads them.
    const FILES: [(&str, &str); 14] = [
        ("concurrency.rs", include_str!("concurrency.rs")),
        ("documents.rs", include_str!("documents.rs")),
        ("listing.rs", include_str!("listing.rs")),
        ("log.rs", include_str!("log.rs")),
        ("readers.rs", include_str!("readers.rs")),
        ("reading.rs", include_str!("reading.rs")),
        ("refusals.rs", include_str!("refusals.rs")),
        ("repository.rs", include_str!("repository.rs")),
        ("retries.rs", include_str!("retries.rs")),
        ("streams.rs", include_str!("streams.rs")),
        ("times.rs", include_str!("times.rs")),
        ("units.rs", include_str!("units.rs")),
        ("versions.rs", include_str!("versions.rs")),
        ("writing.rs", include_str!("writing.rs")),
    ];

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
        let mut defined: Vec<&str> = FILES
            .iter()
            .flat_map(|(_, text)| text.lines())
            .filter_map(|line| line.strip_prefix("pub async fn "))
            .filter_map(|rest| rest.split('<').next())
            .collect();
        listed.sort_unstable();
        defined.sort_unstable();
        assert_eq!(listed, defined);
        let unique: std::collections::HashSet<&str> = listed.iter().copied().collect();
        assert_eq!(unique.len(), listed.len(), "a case is listed twice");
    }

    /// A file of cases added to the folder but not to `FILES` would escape the check above.
    #[test]
    fn every_file_of_cases_is_read() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/testing");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("listing {dir}: {e}"))
            .map(|entry| entry.expect("a directory entry").file_name())
            .filter_map(|name| name.into_string().ok())
            .filter(|name| name.ends_with(".rs") && name != "mod.rs")
            .collect();
        on_disk.sort_unstable();
        let read: Vec<&str> = FILES.iter().map(|(name, _)| *name).collect();
        assert_eq!(on_disk, read);
    }
}
