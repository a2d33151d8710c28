//! Shared helpers for writing: appends and commits that must succeed or fail, and the checks
//! of what a failure says.

use super::*;
use crate::storage::DocumentWrite;

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

pub(super) async fn append_ok<S: Storage>(
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
    check_outcome(
        &format!("an append to {name} {id:?}"),
        &outcome,
        events.len(),
    );
    outcome
}

/// One place per event, positions increasing in event order, commit times never decreasing.
#[track_caller]
pub(super) fn check_outcome(ctx: &str, outcome: &AppendOutcome, events: usize) {
    assert_eq!(
        outcome.events.len(),
        events,
        "{ctx} of {events} event(s) must report one place per event, got {outcome:?}"
    );
    for w in outcome.events.windows(2) {
        assert!(
            w[0].position < w[1].position,
            "{ctx}: the positions of one append must increase in event order, got {:?}",
            outcome.positions()
        );
        assert!(
            w[0].recorded_at <= w[1].recorded_at,
            "{ctx}: commit times must not decrease in event order, got {:?}",
            outcome.events
        );
    }
}

pub(super) async fn append_err<S: Storage>(
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

/// Commits a unit that must succeed, and checks the outcome's shape: one append outcome per
/// append (each checked like [`append_ok`]'s) and one revision per document write.
pub(super) async fn commit_ok<S: Storage>(
    store: &S,
    ctx: &str,
    unit: &UnitOfWork<'_>,
) -> CommitOutcome {
    let outcome = store
        .commit(unit)
        .await
        .unwrap_or_else(|e| panic!("{ctx}: the commit failed: {e} ({e:?})"));
    assert_eq!(
        outcome.appends.len(),
        unit.appends().len(),
        "{ctx}: a commit must report one outcome per append, in the unit's order: {outcome:?}"
    );
    assert_eq!(
        outcome.documents.len(),
        unit.documents().len(),
        "{ctx}: a commit must report one revision per document write, in the unit's order: {outcome:?}"
    );
    for (a, o) in unit.appends().iter().zip(&outcome.appends) {
        check_outcome(
            &format!("{ctx}: the append to {} {:?}", a.entity_name, a.entity_id),
            o,
            a.events.len(),
        );
    }
    outcome
}

pub(super) async fn commit_err<S: Storage>(store: &S, ctx: &str, unit: &UnitOfWork<'_>) -> Error {
    match store.commit(unit).await {
        Ok(outcome) => {
            panic!("{ctx}: the commit must fail, but the store accepted it: {outcome:?}")
        }
        Err(e) => e,
    }
}

/// Appends `events` expecting `expected`, which must fail with a conflict reporting `expected`
/// and the stream's `actual` version.
pub(super) async fn append_conflicts<S: Storage>(
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
pub(super) fn assert_conflict(
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
            assert!(
                err.is_conflict() && !err.is_retryable(),
                "{ctx}: a conflict is settled by a reload, not by repeating the same call"
            );
        }
        other => panic!(
            "{ctx}: expected Error::Concurrency {{ expected: {expected:?}, actual: {actual} }} on {name} {id:?}, got: {other} ({other:?})"
        ),
    }
}

#[track_caller]
pub(super) fn assert_document_conflict(
    ctx: &str,
    err: &Error,
    (collection, key): (&str, &str),
    expected: ExpectedRevision,
    actual: Option<u64>,
) {
    match err {
        Error::DocumentConflict {
            collection: c,
            key: k,
            expected: e,
            actual: a,
        } => {
            assert_eq!(
                (c.as_str(), k.as_str()),
                (collection, key),
                "{ctx}: the conflict must name the document it happened on"
            );
            assert_eq!(
                *e, expected,
                "{ctx}: the conflict must carry the revision the writer expected"
            );
            assert_eq!(
                *a, actual,
                "{ctx}: the conflict must carry the document's revision (None: absent), so the writer knows what it is up against"
            );
            assert!(
                err.is_conflict() && !err.is_retryable(),
                "{ctx}: a document conflict is settled by reading again, not by repeating the same call"
            );
        }
        other => panic!(
            "{ctx}: expected Error::DocumentConflict {{ expected: {expected:?}, actual: {actual:?} }} on {key:?} of {collection:?}, got: {other} ({other:?})"
        ),
    }
}

/// A refused request: kind [`InvalidRequest`](StorageErrorKind::InvalidRequest), neither a
/// conflict (a reload cannot fix it) nor retryable (repeating it cannot either).
#[track_caller]
pub(super) fn assert_invalid(ctx: &str, err: &Error) {
    assert_eq!(
        err.storage_kind(),
        Some(StorageErrorKind::InvalidRequest),
        "{ctx}: expected a storage error of kind InvalidRequest (fix the request), got: {err} ({err:?})"
    );
    assert!(
        !err.is_conflict() && !err.is_retryable(),
        "{ctx}: a refused request is neither a conflict nor retryable: {err}"
    );
}

/// Puts one document in a unit of its own; returns the commit's outcome.
pub(super) async fn put_document<S: Storage>(
    store: &S,
    (collection, key): (&str, &str),
    expected: ExpectedRevision,
    body: &str,
) -> CommitOutcome {
    let unit = UnitOfWork::new().document(DocumentWrite::put(collection, key, expected, body));
    commit_ok(
        store,
        &format!("putting {key:?} of {collection:?} expecting {expected}"),
        &unit,
    )
    .await
}
