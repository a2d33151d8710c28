//! Reading: a stream's events lent row by row, the log by cursor, documents.

use std::sync::Arc;

use rusqlite::types::{Type, ValueRef};
use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use super::Ctx;
use super::error::{from_sql_int, to_sql_int};
use crate::error::{Error, StorageError, StorageErrorKind};
use crate::metadata::Metadata;
use crate::record::EventRef;
use crate::storage::{
    CorruptEvent, Document, DocumentPage, DocumentRange, LogCursor, LogEntry, LogPage, LogRequest,
    ReadRange,
};
use crate::time::Timestamp;

const READ_STREAM: &str = "SELECT position, event_id, event_name, version, schema_version, \
    created_at, metadata, body, checked_schema, recorded_at FROM events \
    WHERE entity_name = ?1 AND entity_id = ?2 AND version >= ?3 AND version <= ?4 \
    ORDER BY version";

/// The log after a position; `?3` and `?4` are JSON arrays of entity and event names (both
/// empty: every event).
const READ_LOG: &str = "SELECT position, event_id, event_name, version, schema_version, \
    created_at, metadata, body, checked_schema, recorded_at, entity_name, entity_id FROM events \
    WHERE position > ?1 AND (?5 OR entity_name IN (SELECT value FROM json_each(?3)) \
    OR event_name IN (SELECT value FROM json_each(?4))) ORDER BY position LIMIT ?2";

const LOG_HEAD: &str = "SELECT max(position) FROM events";

const READ_DOCUMENT: &str =
    "SELECT revision, body, updated_at FROM documents WHERE collection = ?1 AND key = ?2";

const LIST_DOCUMENTS: &str = "SELECT key, revision, body, updated_at FROM documents \
    WHERE collection = ?1 AND key > ?2 ORDER BY key LIMIT ?3";

const LIST_DOCUMENTS_FROM_START: &str = "SELECT key, revision, body, updated_at FROM documents \
    WHERE collection = ?1 ORDER BY key LIMIT ?2";

/// Reuses the parsed metadata of the previous row when the text is the same (every event of a
/// commit carries the same metadata).
#[derive(Default)]
struct MetadataCache {
    last: Option<(String, Arc<Metadata>)>,
}

impl MetadataCache {
    fn get(&mut self, text: Option<&str>) -> Result<Option<Arc<Metadata>>, serde_json::Error> {
        let Some(text) = text else {
            return Ok(None);
        };
        if let Some((held, parsed)) = &self.last
            && held == text
        {
            return Ok(Some(parsed.clone()));
        }
        let parsed = Arc::new(serde_json::from_str::<Metadata>(text)?);
        self.last = Some((text.to_owned(), parsed.clone()));
        Ok(Some(parsed))
    }
}

/// Why a row could not be turned into an event.
enum RowError {
    Sql(rusqlite::Error),
    Metadata(serde_json::Error),
}

impl From<rusqlite::Error> for RowError {
    fn from(e: rusqlite::Error) -> Self {
        RowError::Sql(e)
    }
}

fn text<'r>(row: &'r Row<'_>, i: usize) -> rusqlite::Result<&'r str> {
    row.get_ref(i)?
        .as_str()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, Type::Text, Box::new(e)))
}

/// Hands one row (columns as in [`READ_STREAM`]) of the stream `entity_name`/`entity_id` to
/// `sink`, borrowed from SQLite's row buffer.
fn with_event<T>(
    row: &Row<'_>,
    entity_name: &str,
    entity_id: &str,
    metadata: &mut MetadataCache,
    sink: impl FnOnce(EventRef<'_>) -> T,
) -> Result<T, RowError> {
    let metadata_text = match row.get_ref(6)? {
        ValueRef::Null => None,
        _ => Some(text(row, 6)?),
    };
    let metadata = metadata.get(metadata_text).map_err(RowError::Metadata)?;
    let event = EventRef {
        position: from_sql_int(row.get(0)?)?,
        event_id: Uuid::from_bytes(row.get(1)?),
        event_name: text(row, 2)?,
        entity_name,
        entity_id,
        version: from_sql_int(row.get(3)?)?,
        schema_version: row.get(4)?,
        event_created_at: Timestamp::from_millis(row.get(5)?),
        recorded_at: Timestamp::from_millis(row.get(9)?),
        metadata: metadata.as_ref(),
        body: text(row, 7)?,
        // Stored as the same 64 bits in a signed column.
        checked_schema: row.get::<_, Option<i64>>(8)?.map(|h| h as u64),
    };
    Ok(sink(event))
}

/// A row that cannot be read, as a corrupt-data error naming where it is.
fn corrupt(ctx: &Ctx, what: &str, row: &Row<'_>, e: RowError) -> StorageError {
    let position = row.get::<_, i64>(0).ok();
    let version = row.get::<_, i64>(3).ok();
    let at = match (version, position) {
        (Some(v), Some(p)) => format!(" at version {v} (position {p})"),
        (None, Some(p)) => format!(" at position {p}"),
        _ => String::new(),
    };
    match e {
        RowError::Sql(e) => StorageError::new(
            StorageErrorKind::Corrupt,
            format!(
                "{what}: the event{at} in {} cannot be read ({e})",
                ctx.label
            ),
        )
        .caused_by(e),
        RowError::Metadata(e) => StorageError::new(
            StorageErrorKind::Corrupt,
            format!(
                "{what}: the metadata of the event{at} in {} is not valid JSON",
                ctx.label
            ),
        )
        .caused_by(e),
    }
}

/// Hands each event of one stream in `range` to `sink`, in version order.
pub(super) fn visit_stream(
    conn: &Connection,
    ctx: &Ctx,
    entity_name: &str,
    entity_id: &str,
    range: ReadRange,
    mut sink: impl FnMut(EventRef<'_>) -> Result<(), Error>,
) -> Result<(), Error> {
    let what = || format!("cannot read {entity_name} {entity_id:?}");
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    // From the start, the query has no lower bound, so that a row whose version was damaged
    // below 1 is reported as corrupt rather than left out without a word.
    let from = match range.from_version {
        0 | 1 => i64::MIN,
        v => clamp(v),
    };
    let to = range.to_version.map_or(i64::MAX, clamp);
    if from > to {
        return Ok(());
    }
    let mut stmt = conn
        .prepare_cached(READ_STREAM)
        .map_err(|e| ctx.error(what(), e))?;
    let mut rows = stmt
        .query(params![entity_name, entity_id, from, to])
        .map_err(|e| ctx.error(what(), e))?;
    let mut metadata = MetadataCache::default();
    while let Some(row) = rows.next().map_err(|e| ctx.error(what(), e))? {
        with_event(row, entity_name, entity_id, &mut metadata, &mut sink)
            .map_err(|e| Error::from(corrupt(ctx, &what(), row, e)))??;
    }
    Ok(())
}

/// A page of the log. The page and the head it reports come from one read transaction, so a
/// commit that lands between the two cannot be skipped.
pub(super) fn read_log(
    conn: &Connection,
    ctx: &Ctx,
    origin: u64,
    request: &LogRequest,
) -> Result<LogPage, Error> {
    request.check()?;
    let (after, _) = request.after.parts_for(origin, &ctx.label)?;
    let what = "cannot read the log";
    let fail = |e| ctx.error(what, e);
    let cursor = |position: u64| LogCursor::from_parts(origin, position, 0);
    let all = request.filter.is_all();
    let names = |list: &[String]| serde_json::to_string(list).unwrap_or_else(|_| "[]".into());
    let entity_names = names(&request.filter.entity_names);
    let event_names = names(&request.filter.event_names);
    let limit = i64::try_from(request.limit).unwrap_or(i64::MAX);

    conn.execute_batch("BEGIN").map_err(fail)?;
    let result = (|| {
        let mut stmt = conn.prepare_cached(READ_LOG).map_err(fail)?;
        let mut rows = stmt
            .query(params![
                to_sql_int(after).map_err(fail)?,
                limit,
                entity_names,
                event_names,
                all
            ])
            .map_err(fail)?;
        let mut entries = Vec::new();
        let mut metadata = MetadataCache::default();
        let mut last = after;
        while let Some(row) = rows.next().map_err(fail)? {
            let raw_position: i64 = row.get(0).map_err(fail)?;
            let position = from_sql_int(raw_position).map_err(fail)?;
            last = position;
            let event = (|| {
                let (name, id) = (text(row, 10)?, text(row, 11)?);
                with_event(row, name, id, &mut metadata, |e| Arc::new(e.to_stored()))
            })();
            let event = event.map_err(|e| CorruptEvent::new(position, corrupt(ctx, what, row, e)));
            entries.push(LogEntry::new(cursor(position), event));
        }
        drop(rows);
        let head: Option<i64> = conn
            .prepare_cached(LOG_HEAD)
            .and_then(|mut s| s.query_row([], |row| row.get(0)))
            .map_err(fail)?;
        let head = head.map_or(Ok(0), from_sql_int).map_err(fail)?;
        Ok(if entries.len() == request.limit {
            LogPage::new(entries, cursor(last), last >= head)
        } else {
            LogPage::new(entries, cursor(head.max(after)), true)
        })
    })();
    conn.execute_batch("COMMIT").map_err(fail)?;
    result
}

pub(super) fn read_document(
    conn: &Connection,
    ctx: &Ctx,
    collection: &str,
    key: &str,
) -> Result<Option<Document>, Error> {
    let fail = |e| {
        ctx.error(
            format_args!("cannot read document {key:?} of {collection:?}"),
            e,
        )
    };
    conn.prepare_cached(READ_DOCUMENT)
        .map_err(fail)?
        .query_row(params![collection, key], |row| {
            Ok(Document::new(
                collection,
                key,
                from_sql_int(row.get(0)?)?,
                text(row, 1)?,
                Timestamp::from_millis(row.get(2)?),
            ))
        })
        .optional()
        .map_err(fail)
}

pub(super) fn list_documents(
    conn: &Connection,
    ctx: &Ctx,
    range: &DocumentRange,
) -> Result<DocumentPage, Error> {
    if range.limit == 0 {
        return Err(StorageError::invalid(
            "listing documents needs a limit of at least 1 per page",
        )
        .into());
    }
    let fail = |e| {
        ctx.error(
            format_args!("cannot list the documents of {:?}", range.collection),
            e,
        )
    };
    // One more than asked, to know whether another page follows.
    let limit = i64::try_from(range.limit).unwrap_or(i64::MAX - 1) + 1;
    let read = |row: &Row<'_>| {
        Ok(Document::new(
            range.collection.as_str(),
            text(row, 0)?,
            from_sql_int(row.get(1)?)?,
            text(row, 2)?,
            Timestamp::from_millis(row.get(3)?),
        ))
    };
    let mut documents = match &range.after {
        Some(after) => conn
            .prepare_cached(LIST_DOCUMENTS)
            .map_err(fail)?
            .query_map(params![range.collection, after, limit], read)
            .map_err(fail)?
            .collect::<rusqlite::Result<Vec<_>>>(),
        None => conn
            .prepare_cached(LIST_DOCUMENTS_FROM_START)
            .map_err(fail)?
            .query_map(params![range.collection, limit], read)
            .map_err(fail)?
            .collect::<rusqlite::Result<Vec<_>>>(),
    }
    .map_err(fail)?;
    let next = if documents.len() > range.limit {
        documents.truncate(range.limit);
        documents.last().map(|d| d.key.clone())
    } else {
        None
    };
    Ok(DocumentPage::new(documents, next))
}
