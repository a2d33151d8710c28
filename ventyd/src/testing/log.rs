//! The log: positions in commit order, reading by cursor (paging, resuming, saving a cursor,
//! refusing a foreign or damaged one) and filters.

use super::*;

/// Appends to different streams, one after another, get positions that increase in commit
/// order (not grouped by stream; gaps allowed), and the log lists them in that order.
/// Projections follow the log and must see events in the order they happened.
pub async fn positions_increase_in_commit_order_across_streams<S: Storage>(store: &S) {
    let from = head(store).await;
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
            outcome.events[0].position > last,
            "an append must get positions after every earlier append's: got {:?} after {last}",
            outcome.positions()
        );
        last = *outcome.positions().last().expect("one position per event");
        expected.extend(pairs(&batch, &outcome));
    }
    check_log(store, "commit order across streams", from, LARGE, &expected).await;
}

/// Paging through the log from a cursor by 1, 2, 3, 7, a large number and `usize::MAX` entries
/// at a time, each page resuming from the last one's cursor, returns this case's events exactly
/// once each, in commit order; no page is longer than its limit; a page that stops short of the
/// head says so (`at_head` false), and paging on reaches the head (`at_head` true). A
/// projection's catch-up is exactly this loop.
pub async fn paging_the_log_sees_each_event_once_in_order<S: Storage>(store: &S) {
    let from = head(store).await;
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
        check_log(store, &format!("paging by {limit}"), from, limit, &expected).await;
    }
    let page = read_log(store, "one entry of many", &LogRequest::new(from, 1)).await;
    assert_eq!(
        page.entries.len(),
        1,
        "a page of limit 1 with {} events after its cursor holds one",
        expected.len()
    );
    assert!(
        !page.at_head,
        "a page that stopped with {} more events committed after it must not claim to be at the head",
        expected.len() - 1
    );
    let (_, end) = read_to_head(
        store,
        "paging to the head",
        LogRequest::new(page.cursor, LARGE),
    )
    .await;
    let last = read_log(
        store,
        "at the head",
        &LogRequest::new(end, LARGE).filter(LogFilter::all().entity_name(unique_name("nobody"))),
    )
    .await;
    assert!(
        last.at_head && last.entries.is_empty(),
        "a read from the head cursor, filtered on a name nobody writes, is empty and at the head"
    );
}

/// Resuming from the cursor of any entry returns exactly the events after it, in order; from the
/// cursor of the last one, none of them. A projection's checkpoint is such a cursor.
pub async fn resuming_from_an_entry_cursor_returns_the_rest<S: Storage>(store: &S) {
    let from = head(store).await;
    let a = unique_id("resume");
    let b = unique_id("resume");
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
    let ids: HashSet<EventId> = expected.iter().map(|(id, _)| id.clone()).collect();
    let logged = scan_log(
        store,
        "collecting cursors",
        LogRequest::new(from, LARGE),
        &ids,
    )
    .await;
    assert_eq!(
        logged.len(),
        expected.len(),
        "every event of the case must be in the log"
    );
    for k in [0, 1, 5, 6, expected.len() - 2] {
        check_log(
            store,
            &format!("from the cursor of event #{k}"),
            logged[k].cursor,
            2,
            &expected[k + 1..],
        )
        .await;
    }
    let last = logged.last().expect("events").cursor;
    let all: Vec<EventId> = expected.iter().map(|(id, _)| id.clone()).collect();
    check_absent_from_log(store, "from the cursor of the last event", last, &all).await;
}

/// Reading from the head returns no event and says it is at the head; events committed after
/// that are read from the same cursor (through a filter that leaves out another entity's), and
/// from the cursor after them nothing again. A read
/// from `START` begins at the beginning, and limits up to `usize::MAX` do not overflow.
/// Projections poll the head, so this is the common case.
pub async fn reading_at_the_head_returns_nothing<S: Storage>(store: &S) {
    let entity = unique_name("at-head");
    let mine = LogFilter::all().entity_name(&entity);
    let from = head(store).await;
    let page = read_log(
        store,
        "at the head",
        &LogRequest::new(from, 10).filter(mine.clone()),
    )
    .await;
    assert!(
        page.entries.is_empty() && page.at_head,
        "a filtered read from the head must be empty and at the head, got {} entries, at_head {}",
        page.entries.len(),
        page.at_head
    );

    let id = unique_id("at-head");
    let decoy = unique_name("at-head-decoy");
    append_ok(
        store,
        (&decoy, &id),
        ExpectedVersion::NoStream,
        &numbered(&id, 0, 1),
    )
    .await;
    let events = numbered(&id, 0, 2);
    let outcome = append_ok(store, (&entity, &id), ExpectedVersion::NoStream, &events).await;
    append_ok(
        store,
        (&decoy, &id),
        ExpectedVersion::Exact(1),
        &numbered(&id, 1, 1),
    )
    .await;
    let (read, end) = read_to_head(
        store,
        "after two appends",
        LogRequest::new(page.cursor, 10).filter(mine.clone()),
    )
    .await;
    assert_eq!(
        ids_and_positions(&read),
        pairs(&events, &outcome),
        "the events committed after the head must be read from its cursor"
    );
    for limit in [10, usize::MAX] {
        let again = read_log(
            store,
            "at the head again",
            &LogRequest::new(end, limit).filter(mine.clone()),
        )
        .await;
        assert!(
            again.entries.is_empty() && again.at_head,
            "after the last event, a read (limit {limit}) must be empty and at the head"
        );
    }
    let first = read_log(store, "from START", &LogRequest::new(LogCursor::START, 5)).await;
    assert!(
        !first.entries.is_empty() && first.entries.len() <= 5,
        "a read from START of a store holding events must return 1 to 5 entries, got {}",
        first.entries.len()
    );
}

/// A log read with a limit of 0 is refused (`InvalidRequest`), from `START`, from the head and
/// filtered: such a page could never move on.
pub async fn a_log_limit_of_zero_is_refused<S: Storage>(store: &S) {
    let from = head(store).await;
    let filtered = LogRequest::new(from, 0).filter(LogFilter::all().entity_name(ENTITY));
    for request in [
        LogRequest::new(LogCursor::START, 0),
        LogRequest::new(from, 0),
        filtered,
    ] {
        match store.read_log(&request).await {
            Ok(page) => panic!(
                "a log read with a limit of 0 must be refused, got {} entries",
                page.entries.len()
            ),
            Err(e) => assert_invalid("a log read with a limit of 0", &e),
        }
    }
}

/// A cursor written as a string (`Display`) or as JSON (serde) and read back is the same
/// cursor and resumes at the same place. Projections keep their checkpoints this way, in a
/// document or a file.
pub async fn a_saved_cursor_resumes_at_the_same_place<S: Storage>(store: &S) {
    let from = head(store).await;
    let id = unique_id("saved-cursor");
    let events = numbered(&id, 0, 6);
    let outcome = append_ok(store, (ENTITY, &id), ExpectedVersion::NoStream, &events).await;
    let expected = pairs(&events, &outcome);
    let ids: HashSet<EventId> = ids_of(&events).into_iter().collect();
    let logged = scan_log(
        store,
        "collecting cursors",
        LogRequest::new(from, LARGE),
        &ids,
    )
    .await;
    for cursor in [from, logged[2].cursor, LogCursor::START] {
        let text = cursor.to_string();
        let parsed: LogCursor = text
            .parse()
            .unwrap_or_else(|e| panic!("the cursor {text} does not parse back: {e}"));
        assert_eq!(
            parsed, cursor,
            "a cursor written as text must parse back to itself"
        );
        let json = serde_json::to_string(&cursor).expect("a cursor serializes");
        assert_eq!(
            json,
            serde_json::to_string(&text).unwrap(),
            "a cursor serializes as its text"
        );
        let back: LogCursor = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("the cursor {json} does not deserialize: {e}"));
        assert_eq!(
            back, cursor,
            "a cursor written as JSON must read back to itself"
        );
    }
    let text = logged[2].cursor.to_string();
    check_log(
        store,
        "from a cursor parsed from text",
        text.parse().unwrap(),
        2,
        &expected[3..],
    )
    .await;
    let json = serde_json::to_string(&logged[2].cursor).unwrap();
    check_log(
        store,
        "from a cursor read from JSON",
        serde_json::from_str(&json).unwrap(),
        LARGE,
        &expected[3..],
    )
    .await;
    check_log(
        store,
        "from the saved head",
        from.to_string().parse().unwrap(),
        LARGE,
        &expected,
    )
    .await;
}

/// A cursor string with any one character changed, cut short, extended or replaced fails to
/// parse, as text and as JSON, and the error converts to an `InvalidRequest`: a damaged
/// checkpoint must stop a projection, not make it skip or repeat events.
pub async fn a_damaged_cursor_fails_to_parse<S: Storage>(store: &S) {
    let id = unique_id("damaged-cursor");
    let events = numbered(&id, 0, 1);
    let from = head(store).await;
    append_ok(store, (ENTITY, &id), ExpectedVersion::NoStream, &events).await;
    let ids: HashSet<EventId> = ids_of(&events).into_iter().collect();
    let logged = scan_log(
        store,
        "finding the event",
        LogRequest::new(from, LARGE),
        &ids,
    )
    .await;
    let text = logged[0].cursor.to_string();
    let mut damaged: Vec<String> = Vec::new();
    for (i, c) in text.char_indices() {
        let other = match c {
            '0'..='8' => char::from(c as u8 + 1),
            '9' => '0',
            'a'..='e' => char::from(c as u8 + 1),
            'f' => 'a',
            _ => 'x',
        };
        damaged.push(format!(
            "{}{other}{}",
            &text[..i],
            &text[i + c.len_utf8()..]
        ));
    }
    damaged.extend([
        text[..text.len() - 1].to_owned(),
        text[..text.len() / 2].to_owned(),
        format!("{text}:0"),
        format!("{text}0"),
        format!(" {text}"),
        String::new(),
        "garbage".to_owned(),
        "ventyd-cursor:1:".to_owned(),
    ]);
    for bad in &damaged {
        match bad.parse::<LogCursor>() {
            Ok(cursor) => {
                panic!("the damaged cursor {bad:?} (from {text:?}) must not parse, got {cursor}")
            }
            Err(e) => assert_invalid(&format!("the damaged cursor {bad:?}"), &Error::from(e)),
        }
        let json = serde_json::to_string(bad).unwrap();
        assert!(
            serde_json::from_str::<LogCursor>(&json).is_err(),
            "the damaged cursor {json} must not deserialize"
        );
    }
}

/// A cursor of another store (another origin) is refused (`InvalidRequest`) instead of being
/// read as a position of this one: a checkpoint carried over to another database would
/// otherwise skip or repeat events silently.
pub async fn a_cursor_of_another_store_is_refused<S: Storage>(store: &S) {
    let id = unique_id("foreign-cursor");
    let events = numbered(&id, 0, 1);
    let from = head(store).await;
    append_ok(store, (ENTITY, &id), ExpectedVersion::NoStream, &events).await;
    let ids: HashSet<EventId> = ids_of(&events).into_iter().collect();
    let logged = scan_log(
        store,
        "finding the event",
        LogRequest::new(from, LARGE),
        &ids,
    )
    .await;
    let text = logged[0].cursor.to_string();
    // The store's own origin, from its cursor's text, so that a random one equal to it is skipped.
    let own = text
        .strip_prefix("ventyd-cursor:1:")
        .and_then(|rest| rest.split(':').next())
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .unwrap_or_else(|| panic!("the store's cursor {text:?} is not in LogCursor's text form"));
    let origins = [
        1,
        2,
        u64::MAX,
        own ^ 1,
        crate::id::random_u64(),
        crate::id::random_u64(),
        crate::id::random_u64(),
    ];
    for origin in origins.into_iter().filter(|o| *o != own && *o != 0) {
        for (a, b) in [(5, 0), (0, 0), (1, 7)] {
            let cursor = LogCursor::from_parts(origin, a, b);
            let filtered = LogRequest::new(cursor, 10).filter(LogFilter::all().entity_name(ENTITY));
            for request in [LogRequest::new(cursor, 10), filtered] {
                match store.read_log(&request).await {
                    Ok(page) => panic!(
                        "the cursor {cursor} of another store must be refused, got {} entries",
                        page.entries.len()
                    ),
                    Err(e) => assert_invalid(&format!("a cursor of store {origin:016x}"), &e),
                }
            }
        }
    }
}

/// A filtered read (by entity name, by event name, by either) returns only the events that
/// pass, in log order, whatever the page size, and its cursor moves past the events it skipped:
/// a read from it returns none of them. A projection that follows a few event types must not
/// re-read the rest of the log on every poll.
pub async fn a_filtered_read_returns_only_matching_events<S: Storage>(store: &S) {
    let from = head(store).await;
    let (x, y) = (unique_name("filter-x"), unique_name("filter-y"));
    let picked = format!("{y}:picked");
    let (xid, yid) = (unique_id("filter"), unique_id("filter"));
    let mut b = numbered(&yid, 0, 1);
    b[0].event_name = Cow::Owned(picked.clone());
    let plan: [(&str, &str, Vec<NewEvent>); 5] = [
        (&x, &xid, numbered(&xid, 0, 1)),
        (&y, &yid, b),
        (&y, &yid, numbered(&yid, 1, 1)),
        (&x, &xid, numbered(&xid, 1, 1)),
        (&y, &yid, numbered(&yid, 2, 1)),
    ];
    let mut written = Vec::new();
    for (name, id, events) in &plan {
        let outcome = append_ok(store, (name, id), ExpectedVersion::Any, events).await;
        written.push(pairs(events, &outcome)[0].clone());
    }
    let [a, b, c, d, e] = [
        written[0].clone(),
        written[1].clone(),
        written[2].clone(),
        written[3].clone(),
        written[4].clone(),
    ];
    for (what, filter, expected) in [
        (
            "entity x",
            LogFilter::all().entity_name(&x),
            vec![a.clone(), d.clone()],
        ),
        (
            "entity y",
            LogFilter::all().entity_name(&y),
            vec![b.clone(), c, e],
        ),
        (
            "the picked event",
            LogFilter::all().event_name(&picked),
            vec![b.clone()],
        ),
        (
            "entity x or the picked event",
            LogFilter::all().entity_name(&x).event_name(&picked),
            vec![a, b, d],
        ),
    ] {
        for limit in [1, 2, LARGE] {
            let ctx = format!("filtered on {what} by {limit}");
            let (events, end) = read_to_head(
                store,
                &ctx,
                LogRequest::new(from, limit).filter(filter.clone()),
            )
            .await;
            assert_eq!(
                ids_and_positions(&events),
                expected,
                "{ctx}: only the matching events, in log order"
            );
            let all: Vec<EventId> = written.iter().map(|(id, _)| id.clone()).collect();
            check_absent_from_log(
                store,
                &format!("{ctx}: from the cursor after it"),
                end,
                &all,
            )
            .await;
        }
    }
}
