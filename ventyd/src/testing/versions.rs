//! Expected versions: optimistic concurrency on one stream, and what a conflict leaves behind.

use super::*;
use crate::storage::DocumentWrite;

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
/// version and no places when the expectation holds (creating no stream), and is a conflict
/// when it does not. It lets a writer assert "nothing changed since I read" without writing.
pub async fn an_empty_append_only_checks_the_expected_version<S: Storage>(store: &S) {
    let id = unique_id("empty-append");
    let stream = (ENTITY, id.as_str());
    for expected in [ExpectedVersion::NoStream, ExpectedVersion::Any] {
        let outcome = append_ok(store, stream, expected, &[]).await;
        assert_eq!(
            outcome,
            AppendOutcome::new(0, Vec::new()),
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
            AppendOutcome::new(2, Vec::new()),
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
    append_conflicts(store, stream, ExpectedVersion::NoStream, &second, 3).await;
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
    append_conflicts(
        store,
        stream,
        ExpectedVersion::Exact(5),
        &numbered(&id, 0, 1),
        0,
    )
    .await;
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
    append_conflicts(
        store,
        stream,
        ExpectedVersion::Exact(0),
        &numbered(&id, 1, 1),
        1,
    )
    .await;
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

/// A conflicting append stores nothing: not in the stream, not in the log, not the document
/// written with it (a snapshot, say), and not its event ids (the same events can be appended
/// afterwards with the right expected version). Otherwise a writer that reloads and retries
/// would find half of its rejected commit already there.
pub async fn a_conflict_stores_nothing<S: Storage>(store: &S) {
    let from = head(store).await;
    let id = unique_id("conflict-atomic");
    let stream = (ENTITY, id.as_str());
    let snapshots = unique_name("snapshots");
    let mut sent = numbered(&id, 0, 2);
    append_ok(store, stream, ExpectedVersion::NoStream, &sent).await;

    let rejected = numbered(&id, 2, 3);
    let unit = UnitOfWork::new()
        .append(AppendRequest::new(
            ENTITY,
            &id,
            ExpectedVersion::Exact(1),
            &rejected,
        ))
        .document(DocumentWrite::put(
            &snapshots,
            &id,
            ExpectedRevision::Any,
            r#"{"version":5}"#,
        ));
    let err = commit_err(
        store,
        "an append expecting version 1 on a stream at version 2",
        &unit,
    )
    .await;
    assert_conflict(
        "Exact(1) with a snapshot document on a stream at version 2",
        &err,
        stream,
        ExpectedVersion::Exact(1),
        2,
    );
    check_stream(store, "after the conflict", stream, &sent).await;
    assert_eq!(
        read_document(store, &snapshots, &id).await,
        None,
        "the document of a rejected unit must not be stored"
    );
    check_absent_from_log(store, "after the conflict", from, &ids_of(&rejected)).await;

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
