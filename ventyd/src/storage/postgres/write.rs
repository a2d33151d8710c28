//! Committing a unit of work: one transaction that takes its place in the log, checks every
//! expectation, recognises retries, and writes the events and documents.

use std::borrow::Cow;

use tokio_postgres::Transaction;

use super::error::{Stage, is_transient, is_unique_violation, pg_error};
use super::wire::{Jsonb, PgTime, Xid8};
use super::{Conn, Ctx};
use crate::error::{Error, StorageError, StorageErrorKind};
use crate::event_id::EventId;
use crate::storage::{
    AppendOutcome, CommitOutcome, DocumentOp, EventPlace, Plan, Prior, UnitOfWork, check_guards,
    first_recorded, is_replay, plan, settle,
};

/// How many times a commit is tried again after another writer took a version or an id in the
/// middle of it (each try re-reads what it checks, so the loop ends in a conflict or a commit;
/// the bound only stops a pathological livelock).
const MAX_ATTEMPTS: usize = 64;

/// Why one attempt stopped before its end (the transaction is rolled back).
enum Failure {
    /// The unit is refused: a conflict, a reused event id.
    Refused(Error),
    /// A unique index fired: another writer took a version or an id; try again, carefully.
    Raced,
    /// A deadlock or serialization failure: try again.
    Transient(tokio_postgres::Error),
    /// Anything else, at `stage`.
    Pg(Stage, tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        if is_unique_violation(&e) {
            Failure::Raced
        } else if is_transient(&e) {
            Failure::Transient(e)
        } else {
            Failure::Pg(Stage::Before, e)
        }
    }
}

/// Commits `unit` on `conn`.
pub(super) async fn commit(
    conn: &mut Conn,
    ctx: &Ctx,
    unit: &UnitOfWork<'_>,
) -> Result<CommitOutcome, Error> {
    let metadata = encode_metadata(unit)?;
    let mut careful = false;
    let mut last_transient = None;
    for _ in 0..MAX_ATTEMPTS {
        match commit_once(conn, ctx, unit, &metadata, careful).await {
            Ok(outcome) => return Ok(outcome),
            Err(Failure::Refused(e)) => return Err(e),
            Err(Failure::Raced) => careful = true,
            Err(Failure::Transient(e)) => last_transient = Some(e),
            Err(Failure::Pg(stage, e)) => {
                return Err(pg_error(&ctx.label, describe(unit), stage, e));
            }
        }
    }
    Err(match last_transient {
        Some(e) => pg_error(&ctx.label, describe(unit), Stage::Before, e),
        None => StorageError::new(
            StorageErrorKind::Busy,
            format!("{}: other writers kept taking the same versions or ids for {MAX_ATTEMPTS} attempts (PostgreSQL database {}); retrying later may succeed", describe(unit), ctx.label),
        )
        .into(),
    })
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

/// The metadata of each event as JSON text, per append.
fn encode_metadata(unit: &UnitOfWork<'_>) -> Result<Vec<Vec<Option<String>>>, Error> {
    unit.appends()
        .iter()
        .map(|req| {
            req.events
                .iter()
                .map(|e| {
                    e.metadata
                        .as_ref()
                        .map(|m| {
                            serde_json::to_string(&**m).map_err(|err| {
                                Error::from(StorageError::with_source(
                                    format!(
                                        "cannot encode the metadata of {} {:?} as JSON",
                                        req.entity_name, req.entity_id
                                    ),
                                    err,
                                ))
                            })
                        })
                        .transpose()
                })
                .collect()
        })
        .collect()
}

async fn commit_once(
    conn: &mut Conn,
    ctx: &Ctx,
    unit: &UnitOfWork<'_>,
    metadata: &[Vec<Option<String>>],
    careful: bool,
) -> Result<CommitOutcome, Failure> {
    let s = &ctx.statements;
    let n: usize = unit.appends().iter().map(|a| a.events.len()).sum();
    let tx = conn.transaction().await?;
    let begin = tx.prepare_cached(&s.begin).await?;
    let row = tx
        .query_one(&begin, &[&(ctx.origin as i64), &(n as i32)])
        .await?;
    let _tx_id: Xid8 = row.try_get(0)?;
    let recorded_at: PgTime = row.try_get(1)?;
    let recorded_at = recorded_at.0;
    let positions: Vec<i64> = row.try_get(2)?;

    // Plans: what is stored already (looked up only on a careful attempt, after a unique index
    // fired: the first attempt trusts the expected versions), and each stream's version.
    let version = tx.prepare_cached(&s.stream_version).await?;
    let by_id = tx.prepare_cached(&s.event_by_id).await?;
    let mut plans = Vec::with_capacity(unit.appends().len());
    for req in unit.appends() {
        let settled = if careful && !req.events.is_empty() {
            let mut priors = Vec::with_capacity(req.events.len());
            for e in req.events {
                priors.push((e.event_id.clone(), lookup(&tx, &by_id, &e.event_id).await?));
            }
            settle(req, |id| {
                Ok(priors
                    .iter()
                    .find(|(i, _)| i == id)
                    .and_then(|(_, p)| p.clone()))
            })
            .map_err(Failure::Refused)?
        } else {
            crate::storage::Settled::Fresh
        };
        let actual: Option<i64> = tx
            .query_opt(&version, &[&req.entity_name, &req.entity_id])
            .await?
            .map(|row| row.get(0));
        let actual = actual.map_or(0, |v| v as u64);
        plans.push(plan(req, settled, actual).map_err(Failure::Refused)?);
    }
    let replay = is_replay(unit, &plans);
    check_guards(unit, &plans, replay).map_err(Failure::Refused)?;

    let mut revisions = Vec::with_capacity(unit.documents().len());
    if !unit.documents().is_empty() {
        let revision = tx.prepare_cached(&s.document_revision).await?;
        for d in unit.documents() {
            let current: Option<i64> = tx
                .query_opt(&revision, &[&d.collection, &d.key])
                .await?
                .map(|row| row.get(0));
            let current = current.map(|r| r as u64);
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
        // Nothing to write: the whole unit was stored by an earlier attempt. The transaction
        // ends without a commit (its positions are a gap, as positions may have).
        let recorded_at = first_recorded(&plans).unwrap_or(recorded_at);
        let appends = plans.into_iter().map(Plan::into_unwritten).collect();
        drop(tx);
        return Ok(CommitOutcome::new(recorded_at, appends, revisions));
    }

    let insert = tx.prepare_cached(&s.insert_events).await?;
    let mut next_position = positions.iter();
    let mut appends = Vec::with_capacity(plans.len());
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
        let events = &req.events[skip..];
        if events.is_empty() {
            appends.push(AppendOutcome::new(after, places));
            continue;
        }
        let mut pos = Vec::with_capacity(events.len());
        for _ in events {
            pos.push(*next_position.next().expect("one position per event"));
        }
        let ids: Vec<String> = events.iter().map(|e| e.event_id.to_string()).collect();
        let versions: Vec<i64> = (0..events.len())
            .map(|i| (after + i as u64 + 1) as i64)
            .collect();
        let names: Vec<&str> = events.iter().map(|e| &*e.event_name).collect();
        let schema_versions: Vec<i64> =
            events.iter().map(|e| i64::from(e.schema_version)).collect();
        let created: Vec<PgTime> = events.iter().map(|e| PgTime(e.event_created_at)).collect();
        let bodies: Vec<Jsonb<'_>> = events.iter().map(|e| Jsonb(&e.body)).collect();
        let metas: Vec<Option<Jsonb<'_>>> = metadata[skip..]
            .iter()
            .map(|m| m.as_deref().map(Jsonb))
            .collect();
        let checked: Vec<Option<i64>> = events
            .iter()
            .map(|e| e.checked_schema.map(|h| h as i64))
            .collect();
        tx.execute(
            &insert,
            &[
                &req.entity_name,
                &req.entity_id,
                &PgTime(recorded_at),
                &pos,
                &ids,
                &versions,
                &names,
                &schema_versions,
                &created,
                &bodies,
                &metas,
                &checked,
            ],
        )
        .await?;
        places.extend(pos.iter().map(|p| EventPlace::new(*p as u64, recorded_at)));
        appends.push(AppendOutcome::new(after + events.len() as u64, places));
    }

    if !unit.documents().is_empty() {
        let put = tx.prepare_cached(&s.put_document).await?;
        let delete = tx.prepare_cached(&s.delete_document).await?;
        for (d, revision) in unit.documents().iter().zip(&revisions) {
            match d.op {
                DocumentOp::Put(body) => {
                    let revision = revision.expect("a put has a next revision") as i64;
                    tx.execute(
                        &put,
                        &[
                            &d.collection,
                            &d.key,
                            &revision,
                            &Jsonb(body),
                            &PgTime(recorded_at),
                        ],
                    )
                    .await?;
                }
                DocumentOp::Delete => {
                    tx.execute(&delete, &[&d.collection, &d.key]).await?;
                }
            }
        }
    }

    tx.commit().await.map_err(|e| match e.code() {
        // The server answered: the transaction did not commit.
        Some(_) => Failure::from(e),
        None => Failure::Pg(Stage::Committing, e),
    })?;
    Ok(CommitOutcome::new(recorded_at, appends, revisions))
}

/// What is stored under an event id.
async fn lookup(
    tx: &Transaction<'_>,
    by_id: &tokio_postgres::Statement,
    id: &EventId,
) -> Result<Option<Prior<'static>>, Failure> {
    let row = tx.query_opt(by_id, &[&id.to_string()]).await?;
    let Some(row) = row else { return Ok(None) };
    let body: super::wire::JsonText<'_> = row.try_get(5)?;
    let recorded: PgTime = row.try_get(6)?;
    let position: i64 = row.try_get(0)?;
    let version: i64 = row.try_get(3)?;
    Ok(Some(Prior {
        entity_name: Cow::Owned(row.try_get(1)?),
        entity_id: Cow::Owned(row.try_get(2)?),
        version: version as u64,
        event_name: Cow::Owned(row.try_get(4)?),
        body: Cow::Owned(body.0.to_owned()),
        place: EventPlace::new(position as u64, recorded.0),
    }))
}

/// The statements of a commit, for the store's schema.
pub(super) struct Statements {
    pub begin: String,
    pub stream_version: String,
    pub event_by_id: String,
    pub insert_events: String,
    pub document_revision: String,
    pub put_document: String,
    pub delete_document: String,
    pub read_stream: String,
    pub read_log: String,
    pub read_document: String,
    pub list_documents: String,
}

impl Statements {
    pub(super) fn new(s: &str) -> Self {
        const COLUMNS: &str = "position, tx_id, event_id, event_name, version, schema_version, \
            created_at, recorded_at, body, metadata, checked_schema";
        Statements {
            begin: format!("SELECT tx_id, recorded_at, positions FROM {s}.ventyd_begin($1, $2)"),
            stream_version: format!(
                "SELECT version FROM {s}.events WHERE entity_name = $1 AND entity_id = $2 \
                 ORDER BY version DESC LIMIT 1"
            ),
            event_by_id: format!(
                "SELECT position, entity_name, entity_id, version, event_name, body, recorded_at \
                 FROM {s}.events WHERE event_id = $1"
            ),
            insert_events: format!(
                "INSERT INTO {s}.events (position, event_id, entity_name, entity_id, version, \
                 event_name, schema_version, created_at, recorded_at, body, metadata, checked_schema) \
                 SELECT u.position, u.event_id, $1, $2, u.version, u.event_name, u.schema_version, \
                 u.created_at, $3, u.body, u.metadata, u.checked_schema \
                 FROM unnest($4::bigint[], $5::text[], $6::bigint[], $7::text[], $8::bigint[], \
                 $9::timestamptz[], $10::jsonb[], $11::jsonb[], $12::bigint[]) \
                 AS u(position, event_id, version, event_name, schema_version, created_at, body, \
                 metadata, checked_schema)"
            ),
            document_revision: format!(
                "SELECT revision FROM {s}.documents WHERE collection = $1 AND key = $2 FOR UPDATE"
            ),
            put_document: format!(
                "INSERT INTO {s}.documents (collection, key, revision, body, updated_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (collection, key) DO UPDATE SET \
                 revision = excluded.revision, body = excluded.body, updated_at = excluded.updated_at"
            ),
            delete_document: format!(
                "DELETE FROM {s}.documents WHERE collection = $1 AND key = $2"
            ),
            read_stream: format!(
                "SELECT {COLUMNS} FROM {s}.events WHERE entity_name = $1 AND entity_id = $2 \
                 AND version >= $3 AND version <= $4 ORDER BY version"
            ),
            read_log: format!(
                "SELECT {COLUMNS}, entity_name, entity_id FROM {s}.events \
                 WHERE (tx_id, position) > ($1, $2) AND tx_id < $3 \
                 AND ($4 OR entity_name = ANY($5) OR event_name = ANY($6)) \
                 ORDER BY tx_id, position LIMIT $7"
            ),
            read_document: format!(
                "SELECT revision, body, updated_at FROM {s}.documents WHERE collection = $1 AND key = $2"
            ),
            list_documents: format!(
                "SELECT key, revision, body, updated_at FROM {s}.documents \
                 WHERE collection = $1 AND ($2::text IS NULL OR key > $2) ORDER BY key LIMIT $3"
            ),
        }
    }
}
