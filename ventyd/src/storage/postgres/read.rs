//! Reading streams, the log and documents.

use std::sync::Arc;

use tokio_postgres::Row;

use super::error::{Stage, pg_error};
use super::wire::{JsonText, PgTime, Xid8};
use super::{Conn, Ctx};
use crate::error::{Error, StorageError, StorageErrorKind};
use crate::event_id::EventId;
use crate::metadata::MetadataCache;
use crate::record::{EventRef, EventVisitor};
use crate::storage::{
    CorruptEvent, Document, DocumentPage, DocumentRange, LogCursor, LogEntry, LogPage, LogRequest,
    ReadRange,
};

/// Hands the event of `row` (columns as in `Statements::read_stream`) to `sink`.
fn with_event<T>(
    row: &Row,
    entity_name: &str,
    entity_id: &str,
    metadata: &mut MetadataCache,
    sink: impl FnOnce(EventRef<'_>) -> T,
) -> Result<T, String> {
    let column = |name: &str, e: tokio_postgres::Error| format!("its {name} cannot be read: {e}");
    let position: i64 = row.try_get(0).map_err(|e| column("position", e))?;
    let id: &str = row.try_get(2).map_err(|e| column("event_id", e))?;
    let event_id = EventId::parse(id).map_err(|e| format!("its event_id: {e}"))?;
    let version: i64 = row.try_get(4).map_err(|e| column("version", e))?;
    let schema_version: i64 = row.try_get(5).map_err(|e| column("schema_version", e))?;
    let schema_version = u32::try_from(schema_version)
        .map_err(|_| format!("its schema_version holds {schema_version}, which is out of range"))?;
    let created: PgTime = row.try_get(6).map_err(|e| column("created_at", e))?;
    let recorded: PgTime = row.try_get(7).map_err(|e| column("recorded_at", e))?;
    let body: JsonText<'_> = row.try_get(8).map_err(|e| column("body", e))?;
    let meta: Option<JsonText<'_>> = row.try_get(9).map_err(|e| column("metadata", e))?;
    let metadata = metadata
        .get(meta.map(|m| m.0))
        .map_err(|e| format!("its metadata is not ventyd's metadata: {e}"))?;
    let checked: Option<i64> = row.try_get(10).map_err(|e| column("checked_schema", e))?;
    Ok(sink(EventRef {
        position: u64::try_from(position).map_err(|_| format!("its position holds {position}"))?,
        event_id: &event_id,
        event_name: row.try_get(3).map_err(|e| column("event_name", e))?,
        entity_name,
        entity_id,
        version: u64::try_from(version).map_err(|_| format!("its version holds {version}"))?,
        schema_version,
        event_created_at: created.0,
        recorded_at: recorded.0,
        metadata: metadata.as_ref(),
        body: body.0,
        // Stored as the same 64 bits in a signed column.
        checked_schema: checked.map(|h| h as u64),
    }))
}

/// The error for a row that cannot be read.
fn corrupt(ctx: &Ctx, stream: Option<(&str, &str)>, row: &Row, problem: &str) -> StorageError {
    let position: Option<i64> = row.try_get(0).ok();
    let version: Option<i64> = row.try_get(4).ok();
    let place = match (stream, version) {
        (Some((name, id)), Some(v)) => format!("the event of {name} {id:?} at version {v}"),
        _ => "an event".to_owned(),
    };
    StorageError::new(
        StorageErrorKind::Corrupt,
        format!(
            "{place} (position {}) in the PostgreSQL database {} cannot be read: {problem}",
            position.map_or_else(|| "?".to_owned(), |p| p.to_string()),
            ctx.label
        ),
    )
}

pub(super) async fn visit_stream<V: EventVisitor>(
    conn: &Conn,
    ctx: &Ctx,
    entity_name: &str,
    entity_id: &str,
    range: ReadRange,
    mut visitor: V,
) -> Result<V, Error> {
    let what = format_args!("cannot read {entity_name} {entity_id:?}").to_string();
    let fail = |e| pg_error(&ctx.label, &what, Stage::Before, e);
    let stmt = conn
        .prepare_cached(&ctx.statements.read_stream)
        .await
        .map_err(fail)?;
    let from = i64::try_from(range.from_version).unwrap_or(i64::MAX);
    let to = range
        .to_version
        .map_or(i64::MAX, |v| i64::try_from(v).unwrap_or(i64::MAX));
    let rows = conn
        .query(&stmt, &[&entity_name, &entity_id, &from, &to])
        .await
        .map_err(fail)?;
    visitor.expect(rows.len());
    let mut metadata = MetadataCache::default();
    for row in &rows {
        with_event(row, entity_name, entity_id, &mut metadata, |e| {
            visitor.visit(e)
        })
        .map_err(|problem| {
            Error::from(corrupt(ctx, Some((entity_name, entity_id)), row, &problem))
        })??;
    }
    Ok(visitor)
}

pub(super) async fn read_log(
    conn: &Conn,
    ctx: &Ctx,
    request: &LogRequest,
) -> Result<LogPage, Error> {
    request.check()?;
    let (after_tx, after_position) = request.after.parts_for(ctx.origin, &ctx.label)?;
    let fail = |e| pg_error(&ctx.label, "cannot read the log", Stage::Before, e);
    // Every transaction below the oldest one still running has ended: its events are all there
    // is of it, and every event still to come sorts after them.
    let xmin: Xid8 = conn
        .query_one("SELECT pg_snapshot_xmin(pg_current_snapshot())", &[])
        .await
        .map_err(fail)?
        .try_get(0)
        .map_err(fail)?;
    let stmt = conn
        .prepare_cached(&ctx.statements.read_log)
        .await
        .map_err(fail)?;
    let limit = i64::try_from(request.limit).unwrap_or(i64::MAX - 1) + 1;
    let all = request.filter.is_all();
    let rows = conn
        .query(
            &stmt,
            &[
                &Xid8(after_tx),
                &(after_position as i64),
                &xmin,
                &all,
                &request.filter.entity_names,
                &request.filter.event_names,
                &limit,
            ],
        )
        .await
        .map_err(fail)?;
    let more = rows.len() > request.limit;
    let mut entries = Vec::with_capacity(rows.len().min(request.limit));
    let mut metadata = MetadataCache::default();
    let cursor = |tx: u64, position: u64| LogCursor::from_parts(ctx.origin, tx, position);
    let mut last = (after_tx, after_position);
    for row in rows.iter().take(request.limit) {
        let position: i64 = row.try_get(0).map_err(fail)?;
        let tx: Xid8 = row.try_get(1).map_err(fail)?;
        last = (tx.0, position as u64);
        let stream: Result<(&str, &str), _> = row
            .try_get(11)
            .and_then(|n| row.try_get(12).map(|i| (n, i)));
        let event = match stream {
            Ok((name, id)) => with_event(row, name, id, &mut metadata, |e| Arc::new(e.to_stored()))
                .map_err(|p| corrupt(ctx, Some((name, id)), row, &p)),
            Err(e) => Err(corrupt(ctx, None, row, &e.to_string())),
        };
        let event = event.map_err(|e| CorruptEvent::new(position as u64, e));
        entries.push(LogEntry::new(cursor(last.0, last.1), event));
    }
    if more {
        return Ok(LogPage::new(entries, cursor(last.0, last.1), false));
    }
    // At the head: past everything that has ended, which also moves a filtered reader past the
    // events its filter skipped. (xmin, 0) sorts after every event of a transaction below xmin.
    let head = (xmin.0, 0).max((after_tx, after_position)).max(last);
    Ok(LogPage::new(entries, cursor(head.0, head.1), true))
}

pub(super) async fn read_document(
    conn: &Conn,
    ctx: &Ctx,
    collection: &str,
    key: &str,
) -> Result<Option<Document>, Error> {
    let what = format!("cannot read the document {collection:?} {key:?}");
    let fail = |e| pg_error(&ctx.label, &what, Stage::Before, e);
    let stmt = conn
        .prepare_cached(&ctx.statements.read_document)
        .await
        .map_err(fail)?;
    let Some(row) = conn
        .query_opt(&stmt, &[&collection, &key])
        .await
        .map_err(fail)?
    else {
        return Ok(None);
    };
    let revision: i64 = row.try_get(0).map_err(fail)?;
    let body: JsonText<'_> = row.try_get(1).map_err(fail)?;
    let updated: PgTime = row.try_get(2).map_err(fail)?;
    Ok(Some(Document::new(
        collection,
        key,
        revision as u64,
        body.0,
        updated.0,
    )))
}

pub(super) async fn list_documents(
    conn: &Conn,
    ctx: &Ctx,
    range: &DocumentRange,
) -> Result<DocumentPage, Error> {
    if range.limit == 0 {
        return Err(StorageError::invalid(
            "listing documents needs a limit of at least 1 per page",
        )
        .into());
    }
    let collection = range.collection.as_str();
    let what = format!("cannot list the documents of {collection:?}");
    let fail = |e| pg_error(&ctx.label, &what, Stage::Before, e);
    let stmt = conn
        .prepare_cached(&ctx.statements.list_documents)
        .await
        .map_err(fail)?;
    // One more than asked, to know whether another page follows.
    let limit = i64::try_from(range.limit).unwrap_or(i64::MAX - 1) + 1;
    let rows = conn
        .query(&stmt, &[&collection, &range.after.as_deref(), &limit])
        .await
        .map_err(fail)?;
    let mut documents = Vec::with_capacity(rows.len());
    for row in &rows {
        let key: &str = row.try_get(0).map_err(fail)?;
        let revision: i64 = row.try_get(1).map_err(fail)?;
        let body: JsonText<'_> = row.try_get(2).map_err(fail)?;
        let updated: PgTime = row.try_get(3).map_err(fail)?;
        documents.push(Document::new(
            collection,
            key,
            revision as u64,
            body.0,
            updated.0,
        ));
    }
    let next = if documents.len() > range.limit {
        documents.truncate(range.limit);
        documents.last().map(|d| d.key.clone())
    } else {
        None
    };
    Ok(DocumentPage::new(documents, next))
}
