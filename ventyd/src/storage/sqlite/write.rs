//! Committing a unit of work: one `BEGIN IMMEDIATE` transaction that checks every expectation,
//! recognises retries, and writes the events and documents.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use crate::event_id::EventId;
use rusqlite::{Connection, OptionalExtension, params};

use super::Ctx;
use super::error::{BUSY_PAUSE, from_sql_int, is_busy, is_unique_violation, to_sql_int};
use crate::error::{Error, StorageError};
use crate::metadata::Metadata;
use crate::record::NewEvent;
use crate::storage::{
    AppendOutcome, AppendRequest, CommitOutcome, DocumentOp, DocumentWrite, EventPlace, Plan,
    Prior, UnitOfWork, check_guards, first_recorded, is_replay, plan, settle,
};
use crate::time::Timestamp;
use crate::version::{ExpectedRevision, ExpectedVersion};

const INSERT_EVENT: &str = "INSERT INTO events \
    (event_id, entity_name, entity_id, version, event_name, schema_version, created_at, body, metadata, \
    checked_schema, recorded_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

const STREAM_VERSION: &str = "SELECT version FROM events \
    WHERE entity_name = ?1 AND entity_id = ?2 ORDER BY version DESC LIMIT 1";

const EVENT_BY_ID: &str = "SELECT position, entity_name, entity_id, version, event_name, body, \
    recorded_at FROM events WHERE event_id = ?1";

/// The commit time of the newest event (see [`commit_time`]).
const LAST_RECORDED: &str = "SELECT recorded_at FROM events ORDER BY position DESC LIMIT 1";

/// [`STREAM_VERSION`] of a unit's first stream and [`LAST_RECORDED`] in one statement: for a
/// single-event commit, one statement run instead of two.
const STREAM_VERSION_AND_LAST_RECORDED: &str = "SELECT \
    (SELECT version FROM events WHERE entity_name = ?1 AND entity_id = ?2 \
    ORDER BY version DESC LIMIT 1), \
    (SELECT recorded_at FROM events ORDER BY position DESC LIMIT 1)";

const DOCUMENT_REVISION: &str = "SELECT revision FROM documents WHERE collection = ?1 AND key = ?2";

const PUT_DOCUMENT: &str = "INSERT INTO documents (collection, key, revision, body, updated_at) \
    VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (collection, key) DO UPDATE SET \
    revision = excluded.revision, body = excluded.body, updated_at = excluded.updated_at";

const DELETE_DOCUMENT: &str = "DELETE FROM documents WHERE collection = ?1 AND key = ?2";

/// A unit of work copied so that it can move to another thread.
#[derive(Debug, Clone)]
pub(super) struct OwnedUnit {
    appends: Vec<(String, String, ExpectedVersion, Vec<NewEvent>)>,
    documents: Vec<(String, String, ExpectedRevision, Option<String>)>,
}

impl OwnedUnit {
    pub(super) fn new(unit: &UnitOfWork<'_>) -> Self {
        OwnedUnit {
            appends: unit
                .appends()
                .iter()
                .map(|a| {
                    (
                        a.entity_name.to_owned(),
                        a.entity_id.to_owned(),
                        a.expected,
                        a.events.to_vec(),
                    )
                })
                .collect(),
            documents: unit
                .documents()
                .iter()
                .map(|d| {
                    let body = match d.op {
                        DocumentOp::Put(body) => Some(body.to_owned()),
                        DocumentOp::Delete => None,
                    };
                    (d.collection.to_owned(), d.key.to_owned(), d.expected, body)
                })
                .collect(),
        }
    }

    pub(super) fn unit(&self) -> UnitOfWork<'_> {
        let mut unit = UnitOfWork::new();
        for (name, id, expected, events) in &self.appends {
            unit.push_append(AppendRequest::new(name, id, *expected, events));
        }
        for (collection, key, expected, body) in &self.documents {
            unit.push_document(match body {
                Some(body) => DocumentWrite::put(collection, key, *expected, body),
                None => DocumentWrite::delete(collection, key, *expected),
            });
        }
        unit
    }
}

/// Why one attempt at a commit stopped before its end (the transaction is rolled back).
enum Failure {
    /// The unit is refused: a conflict, a reused event id.
    Refused(Error),
    /// SQLite failed, a unique constraint included.
    Sql(rusqlite::Error),
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Failure::Sql(e)
    }
}

/// Commits `unit` on the writer connection, waiting for the file's write lock up to the busy
/// timeout.
pub(super) fn commit_blocking(
    conn: &mut Connection,
    ctx: &Ctx,
    unit: &UnitOfWork<'_>,
) -> Result<CommitOutcome, Error> {
    let deadline = Instant::now() + ctx.options.busy_timeout;
    match commit_until(conn, ctx, unit, Some(deadline)) {
        Some(result) => result,
        None => unreachable!("a commit that may wait returns an answer"),
    }
}

/// Commits `unit` if the file's write lock is free right now; `None` (nothing written) when
/// another connection holds it. The caller must have set the connection's busy timeout to
/// zero, so that SQLite does not wait either.
pub(super) fn commit_now(
    conn: &mut Connection,
    ctx: &Ctx,
    unit: &UnitOfWork<'_>,
) -> Option<Result<CommitOutcome, Error>> {
    commit_until(conn, ctx, unit, None)
}

/// Commits `unit`, retrying while the file is busy until `deadline`; without one, gives up at
/// the first busy answer and returns `None`.
fn commit_until(
    conn: &mut Connection,
    ctx: &Ctx,
    unit: &UnitOfWork<'_>,
    deadline: Option<Instant>,
) -> Option<Result<CommitOutcome, Error>> {
    let action = || describe(unit);
    let metadata = match encode_metadata(unit) {
        Ok(metadata) => metadata,
        Err(e) => return Some(Err(e)),
    };
    // The first attempt trusts the expected versions and lets the unique constraints catch a
    // retry; when one fires, the second attempt looks every event id up first.
    let mut careful = false;
    loop {
        match commit_once(conn, ctx, unit, &metadata, careful) {
            Ok(outcome) => return Some(Ok(outcome)),
            Err(Failure::Sql(e)) if is_busy(&e) => match deadline {
                None => return None,
                Some(deadline) if Instant::now() < deadline => std::thread::sleep(BUSY_PAUSE),
                Some(_) => return Some(Err(ctx.error(action(), e))),
            },
            Err(Failure::Sql(e)) if is_unique_violation(&e) && !careful => careful = true,
            Err(Failure::Sql(e)) => return Some(Err(ctx.error(action(), e))),
            Err(Failure::Refused(error)) => return Some(Err(error)),
        }
    }
}

/// What a commit is, for error messages.
fn describe(unit: &UnitOfWork<'_>) -> String {
    match (unit.appends(), unit.documents()) {
        ([one], []) => format!("cannot append to {} {:?}", one.entity_name, one.entity_id),
        (appends, documents) => format!(
            "cannot commit a unit of work of {} append(s) and {} document write(s)",
            appends.len(),
            documents.len()
        ),
    }
}

/// The metadata of each event as JSON text, per append. Events of one commit share one `Arc`,
/// which is encoded once.
fn encode_metadata(unit: &UnitOfWork<'_>) -> Result<Vec<Vec<Option<Arc<str>>>>, Error> {
    let mut last: Option<(&Arc<Metadata>, Arc<str>)> = None;
    let mut out = Vec::with_capacity(unit.appends().len());
    for req in unit.appends() {
        let mut texts = Vec::with_capacity(req.events.len());
        for e in req.events {
            let Some(m) = &e.metadata else {
                texts.push(None);
                continue;
            };
            match &last {
                Some((held, text)) if Arc::ptr_eq(held, m) => texts.push(Some(text.clone())),
                _ => {
                    let text: Arc<str> = serde_json::to_string(&**m)
                        .map_err(|err| {
                            StorageError::with_source(
                                format!(
                                    "cannot encode the metadata of {} {:?} as JSON",
                                    req.entity_name, req.entity_id
                                ),
                                err,
                            )
                        })?
                        .into();
                    texts.push(Some(text.clone()));
                    last = Some((m, text));
                }
            }
        }
        out.push(texts);
    }
    Ok(out)
}

fn commit_once(
    conn: &mut Connection,
    ctx: &Ctx,
    unit: &UnitOfWork<'_>,
    metadata: &[Vec<Option<Arc<str>>>],
    careful: bool,
) -> Result<CommitOutcome, Failure> {
    // IMMEDIATE takes the write lock before anything is read, so no other writer can get
    // between the checks and the writes.
    let tx = Tx::begin(conn)?;
    let (recorded_at, first) = match unit.appends().first() {
        Some(one) => {
            let (version, last): (Option<i64>, Option<i64>) = tx
                .prepare_cached(STREAM_VERSION_AND_LAST_RECORDED)?
                .query_row(params![one.entity_name, one.entity_id], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?;
            (not_before(last), Some(version))
        }
        None => (commit_time(&tx)?, None),
    };
    let outcome = apply(&tx, ctx, unit, metadata, careful, recorded_at, first)?;
    tx.commit()?;
    Ok(outcome)
}

/// A `BEGIN IMMEDIATE` transaction, begun and committed through cached statements (rusqlite's
/// `Transaction` compiles `BEGIN` and `COMMIT` afresh each time; cached, a single-event commit
/// costs about 2,000 fewer instructions, 4% of it, as counted with callgrind); rolled back when
/// dropped without [`commit`](Tx::commit), on an error or a panic.
struct Tx<'c> {
    conn: &'c mut Connection,
    open: bool,
}

impl<'c> Tx<'c> {
    fn begin(conn: &'c mut Connection) -> rusqlite::Result<Self> {
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        Ok(Tx { conn, open: true })
    }

    fn commit(mut self) -> rusqlite::Result<()> {
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        self.open = false;
        Ok(())
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl std::ops::DerefMut for Tx<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.conn
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        // A failed `COMMIT` (busy, a full disk) leaves the transaction open; so does an error
        // before it.
        if self.open && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// The commit time of a transaction: the clock, but never below the newest stored commit time,
/// so commit times never decrease in log order even when the clocks of processes sharing the
/// file disagree. Read once per transaction: every unit of a group commits together.
fn commit_time(tx: &Connection) -> rusqlite::Result<Timestamp> {
    let last: Option<i64> = tx
        .prepare_cached(LAST_RECORDED)?
        .query_row([], |row| row.get(0))
        .optional()?;
    Ok(not_before(last))
}

/// The clock, or the newest stored commit time `last` (in milliseconds) when that is later.
fn not_before(last: Option<i64>) -> Timestamp {
    match last {
        Some(last) => Timestamp::now().max(Timestamp::from_millis(last)),
        None => Timestamp::now(),
    }
}

/// Checks and writes one unit, committed at `recorded_at`, inside a transaction (or a
/// savepoint) that the caller holds and ends: on an error, the caller rolls back. `first` is
/// the version of the unit's first stream when the caller has read it already in this
/// transaction (`Some(None)`: the stream has no events).
fn apply(
    tx: &Connection,
    ctx: &Ctx,
    unit: &UnitOfWork<'_>,
    metadata: &[Vec<Option<Arc<str>>>],
    careful: bool,
    recorded_at: Timestamp,
    first: Option<Option<i64>>,
) -> Result<CommitOutcome, Failure> {
    let plans = plan_appends(tx, ctx, unit, careful, first)?;
    let replay = is_replay(unit, &plans);
    check_guards(unit, &plans, replay).map_err(Failure::Refused)?;

    let mut revisions = Vec::with_capacity(unit.documents().len());
    // Taking a statement from the cache and putting it back costs 1,500 instructions: none
    // for a unit without documents.
    if !unit.documents().is_empty() {
        let mut revision = tx.prepare_cached(DOCUMENT_REVISION)?;
        for d in unit.documents() {
            let current: Option<i64> = revision
                .query_row(params![d.collection, d.key], |row| row.get(0))
                .optional()?;
            let current = current.map(from_sql_int).transpose()?;
            if replay {
                revisions.push(current);
            } else if !d.expected.matches(current) {
                return Err(Failure::Refused(d.conflict(current)));
            } else {
                revisions.push(d.next_revision(current));
            }
        }
    }
    if replay {
        // Nothing to write: the whole unit was stored by an earlier attempt.
        let recorded_at = first_recorded(&plans).unwrap_or_else(Timestamp::now);
        let appends = plans.into_iter().map(Plan::into_unwritten).collect();
        return Ok(CommitOutcome::new(recorded_at, appends, revisions));
    }

    let at = recorded_at.as_millis();
    let mut appends = Vec::with_capacity(plans.len());
    {
        let mut insert = tx.prepare_cached(INSERT_EVENT)?;
        for ((req, plan), metadata) in unit.appends().iter().zip(plans).zip(metadata) {
            let (after, skip, mut places) = match plan {
                Plan::Replayed(_) | Plan::Guard { .. } => {
                    appends.push(plan.into_unwritten());
                    continue;
                }
                Plan::Write {
                    after,
                    skip,
                    stored,
                } => (after, skip, stored),
            };
            places.reserve(req.events.len() - skip);
            for (i, (e, metadata)) in req.events[skip..].iter().zip(&metadata[skip..]).enumerate() {
                let version = to_sql_int(after + i as u64 + 1)?;
                e.event_id.with_str(|event_id| {
                    insert.execute(params![
                        event_id,
                        req.entity_name,
                        req.entity_id,
                        version,
                        &*e.event_name,
                        e.schema_version,
                        e.event_created_at.as_millis(),
                        &e.body,
                        metadata.as_deref(),
                        // Stored as the same 64 bits in a signed column.
                        e.checked_schema.map(|h| h as i64),
                        at,
                    ])
                })?;
                places.push(EventPlace::new(
                    from_sql_int(tx.last_insert_rowid())?,
                    recorded_at,
                ));
            }
            appends.push(AppendOutcome::new(
                after + (req.events.len() - skip) as u64,
                places,
            ));
        }
    }
    for (d, revision) in unit.documents().iter().zip(&revisions) {
        match (d.op, revision) {
            (DocumentOp::Put(body), Some(revision)) => {
                tx.prepare_cached(PUT_DOCUMENT)?.execute(params![
                    d.collection,
                    d.key,
                    to_sql_int(*revision)?,
                    body,
                    at
                ])?;
            }
            _ => {
                tx.prepare_cached(DELETE_DOCUMENT)?
                    .execute(params![d.collection, d.key])?;
            }
        }
    }
    Ok(CommitOutcome::new(recorded_at, appends, revisions))
}

/// Checks each append against its stream and finds what of it is stored already.
fn plan_appends(
    tx: &Connection,
    ctx: &Ctx,
    unit: &UnitOfWork<'_>,
    careful: bool,
    mut first: Option<Option<i64>>,
) -> Result<Vec<Plan>, Failure> {
    let mut plans = Vec::with_capacity(unit.appends().len());
    let mut version = None;
    for req in unit.appends() {
        let actual: Option<i64> = match first.take() {
            Some(known) => known,
            None => {
                let version = match &mut version {
                    Some(statement) => statement,
                    None => version.insert(tx.prepare_cached(STREAM_VERSION)?),
                };
                version
                    .query_row(params![req.entity_name, req.entity_id], |row| row.get(0))
                    .optional()?
            }
        };
        let actual = actual.map_or(Ok(0), from_sql_int)?;
        // The common case costs one index lookup: the stream is where the writer expected it,
        // and (unless a unique constraint fires) none of its event ids is stored.
        if !careful && req.expected.matches(actual) {
            plans.push(Plan::Write {
                after: actual,
                skip: 0,
                stored: Vec::new(),
            });
            continue;
        }
        let settled = settle(req, |id| lookup(tx, ctx, req, id)).map_err(Failure::Refused)?;
        plans.push(plan(req, settled, actual).map_err(Failure::Refused)?);
    }
    Ok(plans)
}

/// What is stored under an event id.
fn lookup(
    tx: &Connection,
    ctx: &Ctx,
    req: &AppendRequest<'_>,
    id: &EventId,
) -> Result<Option<Prior<'static>>, Error> {
    let fail = |e| {
        ctx.error(
            format_args!("cannot append to {} {:?}", req.entity_name, req.entity_id),
            e,
        )
    };
    let mut by_id = tx.prepare_cached(EVENT_BY_ID).map_err(fail)?;
    id.with_str(|id| {
        by_id
            .query_row([id], |row| {
                Ok(Prior {
                    entity_name: Cow::Owned(row.get(1)?),
                    entity_id: Cow::Owned(row.get(2)?),
                    version: from_sql_int(row.get(3)?)?,
                    event_name: Cow::Owned(row.get(4)?),
                    body: Cow::Owned(row.get(5)?),
                    place: EventPlace::new(
                        from_sql_int(row.get(0)?)?,
                        Timestamp::from_millis(row.get(6)?),
                    ),
                })
            })
            .optional()
    })
    .map_err(fail)
}

/// Commits several units in one transaction: a unit that is refused (a conflict, a reused id)
/// fails alone, and the others commit together, with one sync of the log for all of them.
/// Returns one result per unit, in order.
///
/// The first attempt writes the units one after the other without savepoints: every check of
/// a unit comes before its first write, so a refused unit has written nothing. Only when a
/// write itself fails (a unique constraint that marks a retry, a full disk) is the whole
/// transaction rolled back and the group written again with each unit in a savepoint of its
/// own, so that the failing unit is rolled back alone. Two statements per unit saved in the
/// common case, a third of the writer's own work in a group.
pub(super) fn commit_group(
    conn: &mut Connection,
    ctx: &Ctx,
    units: &[UnitOfWork<'_>],
) -> Vec<Result<CommitOutcome, Error>> {
    let deadline = Instant::now() + ctx.options.busy_timeout;
    let mut isolation = Isolation::Trusting;
    loop {
        match group_once(conn, ctx, units, isolation) {
            Ok(Some(results)) => return results,
            Ok(None) => isolation = Isolation::Savepoints,
            Err(e) if is_busy(&e) && Instant::now() < deadline => std::thread::sleep(BUSY_PAUSE),
            Err(e) => return each_unit(ctx, units, e),
        }
    }
}

/// How the units of a group are kept from each other's failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isolation {
    /// No savepoints: a refused unit wrote nothing; a unit whose write fails ends the attempt.
    Trusting,
    /// Each unit in a savepoint of its own, rolled back alone when it fails.
    Savepoints,
}

/// One SQLite failure of a whole group, as each unit's own error: the same kind and reason,
/// each saying what its unit was (an error is not `Clone`, and a caller wants its own
/// entity named).
fn each_unit(
    ctx: &Ctx,
    units: &[UnitOfWork<'_>],
    e: rusqlite::Error,
) -> Vec<Result<CommitOutcome, Error>> {
    let Some(first) = units.first() else {
        return Vec::new();
    };
    let head = describe(first);
    let failed = ctx.error(&head, e);
    let (kind, reason) = match &failed {
        Error::Storage(s) => (
            s.kind(),
            s.context()
                .strip_prefix(head.as_str())
                .unwrap_or("")
                .to_owned(),
        ),
        _ => (crate::StorageErrorKind::Other, String::new()),
    };
    let mut out = vec![Err(failed)];
    for unit in &units[1..] {
        out.push(Err(StorageError::new(
            kind,
            format!("{}{reason}", describe(unit)),
        )
        .into()));
    }
    out
}

/// One attempt at a group; `Ok(None)` when a unit's write failed without savepoints (the
/// transaction is rolled back, and the group must be written again with them).
fn group_once(
    conn: &mut Connection,
    ctx: &Ctx,
    units: &[UnitOfWork<'_>],
    isolation: Isolation,
) -> rusqlite::Result<Option<Vec<Result<CommitOutcome, Error>>>> {
    let mut tx = Tx::begin(conn)?;
    let recorded_at = commit_time(&tx)?;
    let mut results = Vec::with_capacity(units.len());
    for unit in units {
        let metadata = match encode_metadata(unit) {
            Ok(m) => m,
            Err(e) => {
                results.push(Err(e));
                continue;
            }
        };
        if isolation == Isolation::Trusting {
            let changes = tx.total_changes();
            match apply(&tx, ctx, unit, &metadata, false, recorded_at, None) {
                Ok(outcome) => results.push(Ok(outcome)),
                // Refused before its first write (checked, not assumed: a refusal after a
                // write would leave that write in the group).
                Err(Failure::Refused(error)) if tx.total_changes() == changes => {
                    results.push(Err(error));
                }
                Err(Failure::Sql(e)) if is_busy(&e) => return Err(e),
                // Dropping the transaction rolls it back.
                Err(_) => return Ok(None),
            }
            continue;
        }
        let mut careful = false;
        loop {
            // A savepoint rolls back when dropped without `commit`.
            let sp = tx.savepoint()?;
            match apply(&sp, ctx, unit, &metadata, careful, recorded_at, None) {
                Ok(outcome) => {
                    sp.commit()?;
                    results.push(Ok(outcome));
                    break;
                }
                Err(Failure::Sql(e)) if is_unique_violation(&e) && !careful => careful = true,
                // Busy or I/O trouble: the whole group is retried or fails.
                Err(Failure::Sql(e)) if is_busy(&e) => return Err(e),
                Err(Failure::Sql(e)) => {
                    drop(sp);
                    results.push(Err(ctx.error(describe(unit), e)));
                    break;
                }
                Err(Failure::Refused(error)) => {
                    drop(sp);
                    results.push(Err(error));
                    break;
                }
            }
        }
    }
    match tx.commit() {
        Ok(()) => Ok(Some(results)),
        Err(e) if is_busy(&e) => Err(e),
        Err(e) => {
            // Nothing of the group is stored; the units refused on their own keep their errors.
            Ok(Some(
                results
                    .into_iter()
                    .zip(each_unit(ctx, units, e))
                    .map(|(result, failed)| result.and(failed))
                    .collect(),
            ))
        }
    }
}
