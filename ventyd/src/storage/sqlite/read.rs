//! Reading: a stream's events lent row by row, the log by cursor, documents.

use std::sync::Arc;

use rusqlite::types::{FromSql, ValueRef};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::Ctx;
use super::error::{from_sql_int, to_sql_int};
use crate::error::{BoxError, Error, StorageError, StorageErrorKind};
use crate::event_id::EventId;
use crate::metadata::MetadataCache;
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

/// Why a row could not be turned into an event: which column, and what is wrong with it.
struct RowError {
    /// The column, as the table names it.
    column: &'static str,
    /// What is wrong, to follow "its {column}": "is not valid UTF-8".
    problem: String,
    source: Option<BoxError>,
}

impl RowError {
    fn new(column: &'static str, problem: impl Into<String>) -> Self {
        RowError {
            column,
            problem: problem.into(),
            source: None,
        }
    }

    fn caused_by(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// A value SQLite or rusqlite could not hand over as the type the column should hold.
    fn sql(column: &'static str, e: rusqlite::Error) -> Self {
        let problem = match &e {
            rusqlite::Error::IntegralValueOutOfRange(_, n) => {
                format!("holds {n}, which is out of range")
            }
            rusqlite::Error::InvalidColumnType(_, _, t) => {
                format!("holds a value of the wrong type ({t})")
            }
            rusqlite::Error::FromSqlConversionFailure(_, _, inner) => {
                format!("holds a value that cannot be converted ({inner})")
            }
            rusqlite::Error::Utf8Error(..) => "is not valid UTF-8".to_owned(),
            other => format!("cannot be read ({other})"),
        };
        RowError::new(column, problem).caused_by(e)
    }
}

/// Column `i`, named `column`, as text.
fn text<'r>(row: &'r Row<'_>, i: usize, column: &'static str) -> Result<&'r str, RowError> {
    match row.get_ref(i).map_err(|e| RowError::sql(column, e))? {
        ValueRef::Text(bytes) => std::str::from_utf8(bytes)
            .map_err(|e| RowError::new(column, "is not valid UTF-8").caused_by(e)),
        other => Err(RowError::new(
            column,
            format!("holds a value of the wrong type ({})", other.data_type()),
        )),
    }
}

/// Column `i`, named `column`, as `T`.
fn value<T: FromSql>(row: &Row<'_>, i: usize, column: &'static str) -> Result<T, RowError> {
    row.get(i).map_err(|e| RowError::sql(column, e))
}

/// Column `i`, named `column`, as a count that is never negative (a position, a version).
fn count(row: &Row<'_>, i: usize, column: &'static str) -> Result<u64, RowError> {
    let n: i64 = value(row, i, column)?;
    u64::try_from(n).map_err(|_| RowError::new(column, format!("holds {n}, which is out of range")))
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
    let metadata_text = match row.get_ref(6).map_err(|e| RowError::sql("metadata", e))? {
        ValueRef::Null => None,
        _ => Some(text(row, 6, "metadata")?),
    };
    let metadata = metadata
        .get(metadata_text)
        .map_err(|e| RowError::new("metadata", "is not valid JSON").caused_by(e))?;
    let event_id = match row.get_ref(1).map_err(|e| RowError::sql("event_id", e))? {
        // A UUID in ventyd's spelling is parsed from the bytes, without a UTF-8 check first.
        ValueRef::Text(bytes) => EventId::from_utf8(bytes)
            .ok_or_else(|| RowError::new("event_id", "is not valid UTF-8"))?
            .map_err(|e| RowError::new("event_id", e.to_string()))?,
        other => {
            return Err(RowError::new(
                "event_id",
                format!(
                    "holds a value of the wrong type ({}), not text",
                    other.data_type()
                ),
            ));
        }
    };
    let event = EventRef {
        position: count(row, 0, "position")?,
        event_id: &event_id,
        event_name: text(row, 2, "event_name")?,
        entity_name,
        entity_id,
        version: count(row, 3, "version")?,
        schema_version: value(row, 4, "schema_version")?,
        event_created_at: Timestamp::from_millis(value(row, 5, "created_at")?),
        recorded_at: Timestamp::from_millis(value(row, 9, "recorded_at")?),
        metadata: metadata.as_ref(),
        body: text(row, 7, "body")?,
        // Stored as the same 64 bits in a signed column.
        checked_schema: value::<Option<i64>>(row, 8, "checked_schema")?.map(|h| h as u64),
    };
    Ok(sink(event))
}

/// A row that cannot be read, as a corrupt-data error naming where it is: the entity (when
/// `entity` is given; a stream read names it in `what`), the version and position, the file,
/// and the column.
fn corrupt(
    ctx: &Ctx,
    what: &str,
    entity: Option<(&str, &str)>,
    row: &Row<'_>,
    e: RowError,
) -> StorageError {
    let of = entity.map_or(String::new(), |(name, id)| format!(" of {name} {id:?}"));
    let position = row.get::<_, i64>(0).ok();
    let version = row.get::<_, i64>(3).ok();
    let at = match (version, position) {
        (Some(v), Some(p)) => format!(" at version {v} (position {p})"),
        (None, Some(p)) => format!(" at position {p}"),
        _ => String::new(),
    };
    let error = StorageError::new(
        StorageErrorKind::Corrupt,
        format!(
            "{what}: the event{of}{at} in {} cannot be read: its {} {}",
            ctx.label, e.column, e.problem
        ),
    );
    match e.source {
        Some(source) => error.caused_by(source),
        None => error,
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
            .map_err(|e| Error::from(corrupt(ctx, &what(), None, row, e)))??;
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
            let entity = text(row, 10, "entity_name")
                .and_then(|name| text(row, 11, "entity_id").map(|id| (name, id)));
            let event = match entity {
                Ok((name, id)) => {
                    with_event(row, name, id, &mut metadata, |e| Arc::new(e.to_stored()))
                        .map_err(|e| corrupt(ctx, what, Some((name, id)), row, e))
                }
                Err(e) => Err(corrupt(ctx, what, None, row, e)),
            };
            let event = event.map_err(|e| CorruptEvent::new(position, e));
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

/// A document from `row`, whose columns from `first` on are `revision`, `body` and
/// `updated_at`.
fn document(
    row: &Row<'_>,
    collection: &str,
    key: &str,
    first: usize,
) -> Result<Document, RowError> {
    Ok(Document::new(
        collection,
        key,
        count(row, first, "revision")?,
        text(row, first + 1, "body")?,
        Timestamp::from_millis(value(row, first + 2, "updated_at")?),
    ))
}

/// A document row that cannot be read while doing `what`, as a corrupt-data error naming the
/// document (its key, when given), the file and the column.
fn corrupt_document(ctx: &Ctx, what: &str, key: Option<&str>, e: RowError) -> Error {
    let which = key.map_or(String::new(), |key| format!(" {key:?}"));
    let error = StorageError::new(
        StorageErrorKind::Corrupt,
        format!(
            "{what}: the document{which} in {} cannot be read: its {} {}",
            ctx.label, e.column, e.problem
        ),
    );
    match e.source {
        Some(source) => error.caused_by(source).into(),
        None => error.into(),
    }
}

pub(super) fn read_document(
    conn: &Connection,
    ctx: &Ctx,
    collection: &str,
    key: &str,
) -> Result<Option<Document>, Error> {
    let what = format!("cannot read document {key:?} of {collection:?}");
    let fail = |e| ctx.error(&what, e);
    let found = conn
        .prepare_cached(READ_DOCUMENT)
        .map_err(fail)?
        .query_row(params![collection, key], |row| {
            Ok(document(row, collection, key, 0))
        })
        .optional()
        .map_err(fail)?;
    found
        .transpose()
        .map_err(|e| corrupt_document(ctx, &what, None, e))
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
    let collection = range.collection.as_str();
    let what = format!("cannot list the documents of {collection:?}");
    let fail = |e| ctx.error(&what, e);
    // One more than asked, to know whether another page follows.
    let limit = i64::try_from(range.limit).unwrap_or(i64::MAX - 1) + 1;
    let read = |row: &Row<'_>| {
        Ok(match text(row, 0, "key") {
            Ok(key) => document(row, collection, key, 1)
                .map_err(|e| corrupt_document(ctx, &what, Some(key), e)),
            Err(e) => Err(corrupt_document(ctx, &what, None, e)),
        })
    };
    let rows = match &range.after {
        Some(after) => conn
            .prepare_cached(LIST_DOCUMENTS)
            .map_err(fail)?
            .query_map(params![collection, after, limit], read)
            .map_err(fail)?
            .collect::<rusqlite::Result<Vec<_>>>(),
        None => conn
            .prepare_cached(LIST_DOCUMENTS_FROM_START)
            .map_err(fail)?
            .query_map(params![collection, limit], read)
            .map_err(fail)?
            .collect::<rusqlite::Result<Vec<_>>>(),
    }
    .map_err(fail)?;
    let mut documents = rows.into_iter().collect::<Result<Vec<_>, Error>>()?;
    let next = if documents.len() > range.limit {
        documents.truncate(range.limit);
        documents.last().map(|d| d.key.clone())
    } else {
        None
    };
    Ok(DocumentPage::new(documents, next))
}
