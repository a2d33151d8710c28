//! Retries and event ids: a retry of a commit that succeeded stores nothing twice, a stored
//! prefix is recognised and only the rest appended, and an event id names one event in one place.

use super::*;

/// A batch whose last event repeats the id of its first is refused as a whole (an invalid
/// request, not a conflict): nothing of it is stored, the stream stays absent, and its other ids
/// stay free. An append is all or nothing, including when the failure is found in the middle.
pub async fn a_batch_with_a_duplicate_event_id_stores_nothing<S: Storage>(store: &S) {
    let from = head(store).await;
    let id = unique_id("dup-in-batch");
    let stream = (ENTITY, id.as_str());
    let mut batch = numbered(&id, 0, 3);
    batch[2].event_id = batch[0].event_id.clone();
    let err = append_err(
        store,
        stream,
        ExpectedVersion::NoStream,
        &batch,
        "the batch repeats an event id",
    )
    .await;
    assert_invalid("a batch repeating an event id", &err);
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
/// first, is refused and stores nothing: event ids are unique across the store, and a store
/// that wrote the events before the duplicate would break atomicity.
pub async fn a_batch_reusing_a_stored_event_id_stores_nothing<S: Storage>(store: &S) {
    let from = head(store).await;
    let other = unique_id("reused-elsewhere");
    let other_stream = (ENTITY, other.as_str());
    let existing = numbered(&other, 0, 2);
    append_ok(store, other_stream, ExpectedVersion::NoStream, &existing).await;

    let id = unique_id("reuse");
    let stream = (ENTITY, id.as_str());
    for at in [1, 0, 2] {
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
        assert_invalid(
            &format!("a batch reusing a stored event id at index {at}"),
            &err,
        );
        assert!(
            read(store, stream).await.is_empty(),
            "no event of a batch reusing a stored id (at index {at}) may be stored"
        );
        let fresh: Vec<EventId> = ids_of(&batch)
            .into_iter()
            .filter(|i| *i != existing[1].event_id)
            .collect();
        check_absent_from_log(store, "after a batch reusing an id", from, &fresh).await;
    }
    check_stream(
        store,
        "the stream that owns the id",
        other_stream,
        &existing,
    )
    .await;
}

/// The very same event (id, name, body) appended to a second stream, or under another entity
/// name, is refused: an event id names one event in one place, and a retry is recognised only in
/// the stream it went to.
pub async fn an_event_id_is_not_reused_by_another_stream<S: Storage>(store: &S) {
    let a = unique_id("id-owner");
    let b = unique_id("id-thief");
    let events = numbered(&a, 0, 1);
    append_ok(store, (ENTITY, &a), ExpectedVersion::NoStream, &events).await;
    for (stream, what) in [
        ((ENTITY, b.as_str()), "another stream"),
        ((OTHER, a.as_str()), "another entity name"),
    ] {
        let err = append_err(
            store,
            stream,
            ExpectedVersion::NoStream,
            &events,
            &format!("the event id is stored in {what}"),
        )
        .await;
        assert_invalid(&format!("an event id stored in {what}"), &err);
        assert!(
            read(store, stream).await.is_empty(),
            "the refused append must not create {what}"
        );
    }
    check_stream(store, "the owner", (ENTITY, &a), &events).await;
}

/// Appending the same events again (same ids, names and bodies, same request) returns the
/// outcome of the first append (version, positions and commit times) and stores nothing twice.
/// A commit whose reply was lost (a timeout, a dropped connection) is retried this way, and must
/// not duplicate.
pub async fn a_retried_append_returns_the_stored_outcome<S: Storage>(store: &S) {
    let from = head(store).await;
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
    check_log(store, "after retries", from, LARGE, &expected).await;
}

/// An append whose first event id is stored but whose content differs (another body, another
/// name, a changed later event), or that puts a new event before a stored one, is refused, not
/// a retry, and stores nothing: treating it as a retry would silently drop the new content.
pub async fn a_retry_with_different_content_is_rejected<S: Storage>(store: &S) {
    let from = head(store).await;
    let id = unique_id("retry-changed");
    let stream = (ENTITY, id.as_str());
    let events = numbered(&id, 0, 2);
    append_ok(store, stream, ExpectedVersion::NoStream, &events).await;

    let mut other_body = events.clone();
    other_body[0].body = r#"{"changed":true}"#.to_owned();
    let mut other_name = events.clone();
    other_name[0].event_name = Cow::Borrowed("conformance:renamed");
    let mut later_changed = events.clone();
    later_changed[1].body = r#"{"changed":"second"}"#.to_owned();
    let new = numbered(&id, 2, 1).remove(0);
    let new_first = vec![events[0].clone(), new.clone(), events[1].clone()];
    let swapped = vec![events[1].clone(), events[0].clone()];

    for (what, batch) in [
        ("the first body differs", &other_body),
        ("the first event name differs", &other_name),
        ("the second body differs", &later_changed),
        ("a new event comes before a stored one", &new_first),
        ("the stored events come in another order", &swapped),
    ] {
        let err = append_err(store, stream, ExpectedVersion::NoStream, batch, what).await;
        assert_invalid(&format!("a changed retry ({what})"), &err);
        check_stream(
            store,
            &format!("after a changed retry ({what})"),
            stream,
            &events,
        )
        .await;
    }
    check_absent_from_log(store, "after a changed retry", from, &[new.event_id]).await;
}

/// A retry is recognised even after another writer appended to the stream since: it returns
/// the outcome of the original append (not a conflict, since its expected version is now
/// stale), and stores nothing. The retry may come long after the lost reply.
pub async fn a_retry_after_another_writer_appended_is_recognised<S: Storage>(store: &S) {
    let from = head(store).await;
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
    check_log(store, "after late retries", from, LARGE, &expected).await;
}

/// A commit of `[e1, e2]` whose outcome was lost, retried as `[e1, e2, e3]` with the same
/// expected version (the entity queued one more event meanwhile), stores only `e3`, right after
/// the stored two: the outcome has version 3, `e1` and `e2` at their original positions and
/// commit times, and `e3` once, after them. Retrying that again is a plain retry. The same holds
/// on a stream that had events before (`Exact(n)`). Without this a repository whose commit
/// outcome was lost could never commit that entity again.
pub async fn a_lost_outcome_then_one_more_event_appends_only_the_new_one<S: Storage>(store: &S) {
    let from = head(store).await;
    let id = unique_id("lost-then-more");
    let stream = (ENTITY, id.as_str());
    let e = numbered(&id, 0, 3);
    let f = numbered(&id, 3, 3);
    let mut expected_log = Vec::new();
    for (what, events, expected, before) in [
        ("a new stream", &e, ExpectedVersion::NoStream, 0u64),
        ("a stream at version 3", &f, ExpectedVersion::Exact(3), 3),
    ] {
        let unit = UnitOfWork::single(AppendRequest::new(ENTITY, &id, expected, &events[..2]));
        let lost = commit_ok(store, &format!("the first commit on {what}"), &unit).await;
        let lost = &lost.appends[0];

        let unit = UnitOfWork::single(AppendRequest::new(ENTITY, &id, expected, events));
        let ctx = format!("the retry with one more event on {what}");
        let outcome = commit_ok(store, &ctx, &unit).await;
        let outcome = &outcome.appends[0];
        assert_eq!(
            outcome.version,
            before + 3,
            "{ctx}: the stored two and the new one make version {}",
            before + 3
        );
        assert_eq!(
            outcome.events[..2],
            lost.events[..],
            "{ctx}: the stored events must be reported where the first commit put them"
        );
        assert!(
            outcome.events[2].position > lost.events[1].position,
            "{ctx}: the new event must come after the stored ones in the log: {outcome:?}"
        );

        let again = commit_ok(store, &format!("{ctx}, retried"), &unit).await;
        assert_eq!(
            &again.appends[0], outcome,
            "{ctx}: retrying it once more is a plain retry and returns the same outcome"
        );
        expected_log.extend(pairs(events, outcome));
    }
    let sent: Vec<NewEvent> = e.iter().chain(&f).cloned().collect();
    check_stream(
        store,
        "after lost outcomes and one more event",
        stream,
        &sent,
    )
    .await;
    check_log(
        store,
        "after lost outcomes and one more event",
        from,
        LARGE,
        &expected_log,
    )
    .await;
}

/// A commit of `[e1, e2]` whose outcome was lost, retried as `[e1, e2, e3]` after another
/// writer appended to the stream, is a conflict (`Error::Concurrency`, naming the stream, the
/// expectation and the version now), and `e3` is not stored: it was decided on a state that is
/// no longer the stream's, and only a reload can settle it. A plain retry of `[e1, e2]` is still
/// recognised.
pub async fn a_lost_outcome_after_another_writer_appended_conflicts<S: Storage>(store: &S) {
    let from = head(store).await;
    let id = unique_id("lost-then-other");
    let stream = (ENTITY, id.as_str());
    let e = numbered(&id, 0, 3);
    let first = UnitOfWork::single(AppendRequest::new(
        ENTITY,
        &id,
        ExpectedVersion::NoStream,
        &e[..2],
    ));
    let lost = commit_ok(store, "the first commit", &first).await;
    let other = numbered(&format!("{id}/other"), 0, 1);
    append_ok(store, stream, ExpectedVersion::Exact(2), &other).await;

    for expected in [ExpectedVersion::NoStream, ExpectedVersion::Any] {
        let unit = UnitOfWork::single(AppendRequest::new(ENTITY, &id, expected, &e));
        let ctx =
            format!("the retry expecting {expected} with one more event after another writer");
        let err = commit_err(store, &ctx, &unit).await;
        assert_conflict(&ctx, &err, stream, expected, 3);
    }
    let sent: Vec<NewEvent> = e[..2].iter().chain(&other).cloned().collect();
    check_stream(store, "after the conflicting retry", stream, &sent).await;
    check_absent_from_log(
        store,
        "after the conflicting retry",
        from,
        &[e[2].event_id.clone()],
    )
    .await;

    let again = commit_ok(store, "a plain retry of the first commit", &first).await;
    assert_eq!(
        again.appends, lost.appends,
        "a plain retry of the lost commit must still return its stored outcome"
    );
}

/// A unit that guards one stream (an append of no events) and appends to another, retried after
/// its outcome was lost and after the guarded stream moved on: still a retry of a unit that was
/// committed, not a conflict (the guard held when it was committed). What `Batch` sends for an
/// entity it only read.
pub async fn a_retried_unit_whose_guarded_stream_moved_is_still_a_retry<S: Storage>(store: &S) {
    let id = unique_id("guard-retry");
    let guarded = format!("{id}/guarded");
    let g = numbered(&guarded, 0, 1);
    append_ok(store, (ENTITY, &guarded), ExpectedVersion::NoStream, &g).await;
    let e = numbered(&id, 0, 2);
    let unit = UnitOfWork::new()
        .append(AppendRequest::new(
            ENTITY,
            &guarded,
            ExpectedVersion::Exact(1),
            &[],
        ))
        .append(AppendRequest::new(
            ENTITY,
            &id,
            ExpectedVersion::NoStream,
            &e,
        ));
    let first = commit_ok(store, "the guarded unit", &unit).await;
    let more = numbered(&guarded, 1, 1);
    append_ok(store, (ENTITY, &guarded), ExpectedVersion::Exact(1), &more).await;

    let again = commit_ok(store, "the retry after the guarded stream moved", &unit).await;
    assert_eq!(
        again.appends[1], first.appends[1],
        "the retry must report the stored outcome of the appended stream"
    );
    check_stream(store, "after the retry", (ENTITY, &id), &e).await;

    // A new unit with the same stale guard is refused.
    let fresh = numbered(&id, 2, 1);
    let stale = UnitOfWork::new()
        .append(AppendRequest::new(
            ENTITY,
            &guarded,
            ExpectedVersion::Exact(1),
            &[],
        ))
        .append(AppendRequest::new(
            ENTITY,
            &id,
            ExpectedVersion::Exact(2),
            &fresh,
        ));
    let ctx = "a new unit whose guard no longer holds";
    let err = commit_err(store, ctx, &stale).await;
    assert_conflict(ctx, &err, (ENTITY, &guarded), ExpectedVersion::Exact(1), 2);
    check_stream(store, "after the refused unit", (ENTITY, &id), &e).await;
}

/// Event ids are any non-empty text, as other writers make them (Ventyd's `generateId` may
/// return any string: a nanoid, a ULID, a prefixed id), and an id is its text, compared byte for
/// byte: the same UUID spelled in upper case, without hyphens or in braces is a different id
/// from ventyd's lowercase hyphenated spelling. Each round trips exactly, a retry with such ids
/// is recognised as one, and a text id stored in one stream may not be used in another.
pub async fn event_ids_of_any_text_round_trip_and_are_compared_exactly<S: Storage>(store: &S) {
    let from = head(store).await;
    let id = unique_id("text-ids");
    let stream = (ENTITY, id.as_str());
    let uuid = UuidV7.uuid();
    let lower = uuid.hyphenated().to_string();
    let texts = [
        lower.clone(),
        lower.to_uppercase(),
        uuid.simple().to_string(),
        uuid.braced().to_string(),
        format!("V1StGXR8_Z5jdHi6B-myT-{}", uuid.simple()),
        format!("evt ✓ 'q' \"dq\" %_ {lower} "),
        format!("{lower}{}", "x".repeat(500)),
    ];
    let mut events = numbered(&id, 0, texts.len());
    for (e, text) in events.iter_mut().zip(&texts) {
        e.event_id = EventId::parse(text).expect("non-empty text is an event id");
        assert_eq!(e.event_id.to_string(), *text, "an event id keeps its text");
    }
    assert_eq!(
        events[0].event_id.as_uuid(),
        Some(uuid),
        "the lowercase hyphenated text is the UUID"
    );
    let first = append_ok(store, stream, ExpectedVersion::NoStream, &events).await;
    let stored = read(store, stream).await;
    for (e, text) in stored.iter().zip(&texts) {
        assert_eq!(
            e.event_id.to_string(),
            *text,
            "the event id {text:?} must come back as written"
        );
    }
    check_stream(store, "events with ids of any text", stream, &events).await;

    let again = append_ok(store, stream, ExpectedVersion::NoStream, &events).await;
    assert_eq!(
        again, first,
        "a retry of events with text ids must be recognised and return the stored outcome"
    );
    let err = append_err(
        store,
        (OTHER, id.as_str()),
        ExpectedVersion::NoStream,
        &events[1..2],
        "the text event id is stored in another stream",
    )
    .await;
    assert_invalid("a text event id stored in another stream", &err);

    // Another spelling of a stored id is another id: it appends.
    let mut variant = numbered(&id, texts.len(), 1);
    variant[0].event_id = EventId::parse(&format!("{lower}{}", "X".repeat(500))).unwrap();
    let more = append_ok(
        store,
        stream,
        ExpectedVersion::Exact(texts.len() as u64),
        &variant,
    )
    .await;
    let mut expected = pairs(&events, &first);
    expected.extend(pairs(&variant, &more));
    check_log(store, "events with ids of any text", from, LARGE, &expected).await;
}
