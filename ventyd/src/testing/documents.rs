//! Documents: keyed JSON bodies with revisions (snapshots, view rows, checkpoints), written by
//! compare-and-set and read back by key.

use super::streams::BODIES;
use super::*;
use crate::storage::DocumentWrite;

/// A document write that must fail with a conflict naming the document, `expected` and `actual`.
async fn write_conflicts<S: Storage>(store: &S, write: DocumentWrite<'_>, actual: Option<u64>) {
    let ctx = format!(
        "{:?} of {:?} expecting {} ({:?}) when it is at {actual:?}",
        write.key, write.collection, write.expected, write.op
    );
    let err = commit_err(store, &ctx, &UnitOfWork::new().document(write)).await;
    assert_document_conflict(
        &ctx,
        &err,
        (write.collection, write.key),
        write.expected,
        actual,
    );
}

/// A document that was never written reads as `None` (not an error): in an unknown collection,
/// under another key of a known one, and under the id of a stream that has events (a snapshot
/// exists only once written). Loading then replays every event.
pub async fn a_missing_document_is_none<S: Storage>(store: &S) {
    let collection = unique_name("missing");
    let id = unique_id("missing");
    assert_eq!(
        read_document(store, &collection, &id).await,
        None,
        "a document of an unknown collection must be None"
    );
    put_document(
        store,
        (&collection, "other"),
        ExpectedRevision::Absent,
        "{}",
    )
    .await;
    assert_eq!(
        read_document(store, &collection, &id).await,
        None,
        "another key of a known collection must be None"
    );
    append_ok(
        store,
        (ENTITY, &id),
        ExpectedVersion::NoStream,
        &numbered(&id, 0, 3),
    )
    .await;
    assert_eq!(
        read_document(store, &collection, &id).await,
        None,
        "appending events writes no document"
    );
}

/// A document put into an empty place reads back with revision 1, its body as the same JSON,
/// and the commit's time (the store's clock) as `updated_at`, both by key and in a listing.
pub async fn a_document_round_trips<S: Storage>(store: &S) {
    let collection = unique_name("round-trip");
    let at = (collection.as_str(), "key ✓");
    let body = r#"{"name":"Zoë 🦀","tags":["a","b"],"n":1.5,"quote":"'\"%_"}"#;
    let before = Timestamp::now();
    let outcome = put_document(store, at, ExpectedRevision::Absent, body).await;
    let after = Timestamp::now();
    assert_eq!(
        outcome.documents,
        [Some(1)],
        "a new document is at revision 1"
    );
    check_recent("a document's commit", outcome.recorded_at, before, after);
    let doc = read_document(store, at.0, at.1).await;
    check_document(
        "a new document",
        doc.as_ref(),
        at,
        1,
        body,
        outcome.recorded_at,
    );
    let listed = list_all(store, "a new document", at.0, LARGE).await;
    assert_eq!(
        listed.iter().collect::<Vec<_>>(),
        doc.iter().collect::<Vec<_>>(),
        "the listing must show the document as reading it by key does"
    );
}

/// A put expecting `Absent` on a document that exists is a conflict carrying `Absent` and the
/// document's revision, and changes nothing: two writers creating the same row must not both
/// succeed.
pub async fn putting_expecting_absent_on_an_existing_document_conflicts<S: Storage>(store: &S) {
    let collection = unique_name("absent-exists");
    let at = (collection.as_str(), "k");
    let first = put_document(store, at, ExpectedRevision::Absent, r#"{"v":1}"#).await;
    write_conflicts(
        store,
        DocumentWrite::put(at.0, at.1, ExpectedRevision::Absent, r#"{"v":"x"}"#),
        Some(1),
    )
    .await;
    let doc = read_document(store, at.0, at.1).await;
    check_document(
        "after the refused put",
        doc.as_ref(),
        at,
        1,
        r#"{"v":1}"#,
        first.recorded_at,
    );
    let second = put_document(store, at, ExpectedRevision::Exact(1), r#"{"v":2}"#).await;
    write_conflicts(
        store,
        DocumentWrite::put(at.0, at.1, ExpectedRevision::Absent, r#"{"v":"y"}"#),
        Some(2),
    )
    .await;
    let doc = read_document(store, at.0, at.1).await;
    check_document(
        "after the second refused put",
        doc.as_ref(),
        at,
        2,
        r#"{"v":2}"#,
        second.recorded_at,
    );
}

/// A put expecting `Exact(n)` on a document at revision `n` stores the new body at revision
/// `n + 1`, with the new commit's time. Read, decide, write back: a view row or a snapshot is
/// updated this way.
pub async fn an_exact_revision_write_gives_the_next_revision<S: Storage>(store: &S) {
    let collection = unique_name("exact");
    let at = (collection.as_str(), "k");
    put_document(store, at, ExpectedRevision::Absent, r#"{"v":1}"#).await;
    for n in 1..=3u64 {
        let body = json!({ "v": n + 1 }).to_string();
        let outcome = put_document(store, at, ExpectedRevision::Exact(n), &body).await;
        assert_eq!(
            outcome.documents,
            [Some(n + 1)],
            "Exact({n}) on revision {n} gives revision {}",
            n + 1
        );
        let doc = read_document(store, at.0, at.1).await;
        check_document(
            &format!("after Exact({n})"),
            doc.as_ref(),
            at,
            n + 1,
            &body,
            outcome.recorded_at,
        );
    }
}

/// A put expecting `Exact(n)` on a document at another revision, or on no document, is a
/// conflict carrying `Exact(n)` and the actual revision (`None`: absent), and changes nothing:
/// this is the lost-update protection of documents.
pub async fn a_wrong_exact_revision_conflicts_with_the_actual_revision<S: Storage>(store: &S) {
    let collection = unique_name("exact-wrong");
    let at = (collection.as_str(), "k");
    write_conflicts(
        store,
        DocumentWrite::put(at.0, at.1, ExpectedRevision::Exact(1), "{}"),
        None,
    )
    .await;
    assert_eq!(
        read_document(store, at.0, at.1).await,
        None,
        "a refused put must not create the document"
    );
    put_document(store, at, ExpectedRevision::Absent, r#"{"v":1}"#).await;
    let second = put_document(store, at, ExpectedRevision::Exact(1), r#"{"v":2}"#).await;
    for n in [0, 1, 3, u64::MAX] {
        write_conflicts(
            store,
            DocumentWrite::put(at.0, at.1, ExpectedRevision::Exact(n), r#"{"v":"x"}"#),
            Some(2),
        )
        .await;
    }
    let doc = read_document(store, at.0, at.1).await;
    check_document(
        "after the refused puts",
        doc.as_ref(),
        at,
        2,
        r#"{"v":2}"#,
        second.recorded_at,
    );
}

/// A write expecting `Any` does whatever is there: a put creates the document at revision 1 or
/// gives the next revision, a delete removes it, and a put after that starts over at 1.
pub async fn any_revision_writes_whatever_is_there<S: Storage>(store: &S) {
    let collection = unique_name("any");
    let at = (collection.as_str(), "k");
    for (revision, body) in [(1, r#"{"v":1}"#), (2, r#"{"v":2}"#)] {
        let outcome = put_document(store, at, ExpectedRevision::Any, body).await;
        assert_eq!(
            outcome.documents,
            [Some(revision)],
            "Any gives revision {revision}"
        );
        let doc = read_document(store, at.0, at.1).await;
        check_document(
            "after a put expecting any revision",
            doc.as_ref(),
            at,
            revision,
            body,
            outcome.recorded_at,
        );
    }
    let unit = UnitOfWork::new().document(DocumentWrite::delete(at.0, at.1, ExpectedRevision::Any));
    let outcome = commit_ok(store, "a delete expecting any revision", &unit).await;
    assert_eq!(outcome.documents, [None], "a delete reports no revision");
    assert_eq!(
        read_document(store, at.0, at.1).await,
        None,
        "a delete expecting any revision removes the document"
    );
    let outcome = put_document(store, at, ExpectedRevision::Any, r#"{"v":3}"#).await;
    assert_eq!(
        outcome.documents,
        [Some(1)],
        "a document written anew after a delete starts over at revision 1"
    );
}

/// A delete at the right revision removes the document: it reads as `None` and leaves the
/// listing; deleting an absent document expecting `Absent` or `Any` succeeds and changes nothing;
/// and a put expecting `Absent` afterwards starts over at revision 1.
pub async fn deleting_removes_a_document<S: Storage>(store: &S) {
    let collection = unique_name("delete");
    let at = (collection.as_str(), "gone");
    put_document(store, at, ExpectedRevision::Absent, r#"{"v":1}"#).await;
    put_document(store, at, ExpectedRevision::Exact(1), r#"{"v":2}"#).await;
    let kept = put_document(store, (at.0, "kept"), ExpectedRevision::Absent, "{}").await;
    let unit = UnitOfWork::new().document(DocumentWrite::delete(
        at.0,
        at.1,
        ExpectedRevision::Exact(2),
    ));
    let outcome = commit_ok(store, "deleting a document at revision 2", &unit).await;
    assert_eq!(outcome.documents, [None], "a delete reports no revision");
    assert_eq!(
        read_document(store, at.0, at.1).await,
        None,
        "a deleted document must read as None"
    );
    let keys: Vec<String> = list_all(store, "after a delete", at.0, LARGE)
        .await
        .into_iter()
        .map(|d| d.key)
        .collect();
    assert_eq!(
        keys,
        ["kept"],
        "a deleted document must leave the listing, and only it"
    );
    for expected in [ExpectedRevision::Absent, ExpectedRevision::Any] {
        let unit = UnitOfWork::new().document(DocumentWrite::delete(at.0, at.1, expected));
        let outcome = commit_ok(
            store,
            &format!("deleting an absent document expecting {expected}"),
            &unit,
        )
        .await;
        assert_eq!(outcome.documents, [None]);
        assert_eq!(read_document(store, at.0, at.1).await, None);
    }
    let doc = read_document(store, at.0, "kept").await;
    check_document(
        "the other document",
        doc.as_ref(),
        (at.0, "kept"),
        1,
        "{}",
        kept.recorded_at,
    );
    let again = put_document(store, at, ExpectedRevision::Absent, r#"{"v":"again"}"#).await;
    assert_eq!(
        again.documents,
        [Some(1)],
        "a document written anew after a delete starts over at revision 1"
    );
}

/// A delete expecting the wrong revision (`Exact` of another, `Absent` on an existing document,
/// `Exact` on an absent one) is a conflict carrying the actual revision, and the document stays.
pub async fn deleting_with_a_wrong_revision_conflicts<S: Storage>(store: &S) {
    let collection = unique_name("delete-wrong");
    let at = (collection.as_str(), "k");
    write_conflicts(
        store,
        DocumentWrite::delete(at.0, at.1, ExpectedRevision::Exact(1)),
        None,
    )
    .await;
    let first = put_document(store, at, ExpectedRevision::Absent, r#"{"v":1}"#).await;
    for expected in [
        ExpectedRevision::Exact(2),
        ExpectedRevision::Exact(0),
        ExpectedRevision::Absent,
    ] {
        write_conflicts(store, DocumentWrite::delete(at.0, at.1, expected), Some(1)).await;
    }
    let doc = read_document(store, at.0, at.1).await;
    check_document(
        "after the refused deletes",
        doc.as_ref(),
        at,
        1,
        r#"{"v":1}"#,
        first.recorded_at,
    );
}

/// Collections are separate namespaces: the same key in collections whose names differ by case,
/// a trailing space or a suffix holds a document of each, each listing shows only its own, and
/// a delete in one leaves the others.
pub async fn collections_are_isolated<S: Storage>(store: &S) {
    let base = unique_name("Isolated");
    let collections = [
        base.clone(),
        base.to_lowercase(),
        format!("{base} "),
        format!("{base}/x"),
        format!("{base}x"),
    ];
    let mut written = Vec::new();
    for (i, collection) in collections.iter().enumerate() {
        let body = json!({ "collection": i }).to_string();
        let outcome = put_document(store, (collection, "k"), ExpectedRevision::Absent, &body).await;
        written.push((collection.as_str(), body, outcome.recorded_at));
    }
    for (collection, body, at) in &written {
        let doc = read_document(store, collection, "k").await;
        check_document(
            "collections with one key",
            doc.as_ref(),
            (collection, "k"),
            1,
            body,
            *at,
        );
        let listed = list_all(store, "collections with one key", collection, LARGE).await;
        assert_eq!(
            listed.len(),
            1,
            "the listing of {collection:?} must show only its own document, got {listed:?}"
        );
    }
    let unit = UnitOfWork::new().document(DocumentWrite::delete(
        written[0].0,
        "k",
        ExpectedRevision::Exact(1),
    ));
    commit_ok(store, "deleting from one collection", &unit).await;
    for (collection, body, at) in &written[1..] {
        let doc = read_document(store, collection, "k").await;
        check_document(
            "after a delete in another collection",
            doc.as_ref(),
            (collection, "k"),
            1,
            body,
            *at,
        );
    }
    assert!(
        list_all(store, "an unknown collection", &unique_name("never"), LARGE)
            .await
            .is_empty()
    );
}

/// Document bodies come back as the JSON they were given (the same text, or text of the same
/// value for a store with a JSON column), objects and plain values alike, by key and in a
/// listing.
pub async fn document_bodies_round_trip_as_the_same_json<S: Storage>(store: &S) {
    let collection = unique_name("bodies");
    let scalars = [
        r#""a string ✓""#,
        "123456789012345678901234567890",
        "-0.0",
        "[1,\"two\",null]",
        "null",
        "true",
    ];
    let bodies: Vec<&str> = BODIES.iter().copied().chain(scalars).collect();
    let keys: Vec<String> = (0..bodies.len()).map(|i| format!("body-{i:02}")).collect();
    let mut unit = UnitOfWork::new();
    for (key, body) in keys.iter().zip(&bodies) {
        unit.push_document(DocumentWrite::put(
            &collection,
            key,
            ExpectedRevision::Absent,
            body,
        ));
    }
    let outcome = commit_ok(store, "writing odd bodies", &unit).await;
    for (key, body) in keys.iter().zip(&bodies) {
        let doc = read_document(store, &collection, key).await;
        check_document(
            "an odd body",
            doc.as_ref(),
            (&collection, key),
            1,
            body,
            outcome.recorded_at,
        );
    }
    let listed = list_all(store, "odd bodies", &collection, 5).await;
    for (doc, body) in listed.iter().zip(&bodies) {
        assert!(
            same_json(&doc.body, body),
            "listing must return body {} as the same JSON, got {}",
            preview(body),
            preview(&doc.body)
        );
    }
}

/// Keys that differ only by case, a space, Unicode normalisation or length are different
/// documents, and a key is found only exactly: `%` and `_` are not patterns, quotes do not break
/// out. Keys are entity ids and view keys that come from users.
pub async fn document_keys_are_compared_exactly<S: Storage>(store: &S) {
    let collection = unique_name("keys");
    let u = UuidV7.uuid().simple().to_string();
    let base = format!("Key-{u}");
    let keys = [
        base.clone(),
        base.to_lowercase(),
        format!("{base} "),
        format!(" {base}"),
        format!("{base}-é"),
        format!("{base}-e\u{301}"),
        format!("100%_done-{u}"),
        format!("it's \"{u}\""),
        format!("back\\slash\t{u}"),
        format!("{u}{}", "long-".repeat(200)),
    ];
    let mut unit = UnitOfWork::new();
    let bodies: Vec<String> = keys
        .iter()
        .map(|k| json!({ "key": k }).to_string())
        .collect();
    for (key, body) in keys.iter().zip(&bodies) {
        unit.push_document(DocumentWrite::put(
            &collection,
            key,
            ExpectedRevision::Absent,
            body,
        ));
    }
    let outcome = commit_ok(store, "writing nearly identical keys", &unit).await;
    for (key, body) in keys.iter().zip(&bodies) {
        let doc = read_document(store, &collection, key).await;
        check_document(
            "nearly identical keys",
            doc.as_ref(),
            (&collection, key),
            1,
            body,
            outcome.recorded_at,
        );
    }
    for pattern in [
        "%".to_owned(),
        "_".to_owned(),
        "100%".to_owned(),
        format!("100__done-{u}"),
        base.to_uppercase(),
        format!("{base}  "),
    ] {
        assert_eq!(
            read_document(store, &collection, &pattern).await,
            None,
            "{pattern:?} was never written: keys are compared exactly, not as patterns or folded"
        );
    }
}
