//! The tables, their migrations, and opening a file.

use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior};

use super::Ctx;
use super::error::{retry_busy, sql_error};
use crate::error::{Error, StorageError, StorageErrorKind};

/// The schema version this build writes; files with a later one are refused.
pub const SCHEMA_VERSION: u32 = 4;

/// The migrations, in order: `MIGRATIONS[n]` takes a file from schema version `n` to `n + 1`.
/// Each runs inside the one transaction that [`migrate`] opens.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    // 1: events, snapshots, and two tables reserved for views and checkpoints.
    r#"
CREATE TABLE ventyd_meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE events (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id       BLOB    NOT NULL UNIQUE CHECK (length(event_id) = 16),
    entity_name    TEXT    NOT NULL,
    entity_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL CHECK (version >= 1),
    event_name     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    body           TEXT    NOT NULL,
    metadata       TEXT,
    checked_schema INTEGER,
    UNIQUE (entity_name, entity_id, version)
) STRICT;

CREATE TABLE snapshots (
    entity_name TEXT    NOT NULL,
    entity_id   TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    schema_hash TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (entity_name, entity_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE views (
    view_name  TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    position   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (view_name, key)
) STRICT, WITHOUT ROWID;

CREATE TABLE checkpoints (
    projection TEXT PRIMARY KEY,
    position   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
"#,
    // 2: the store's commit time on every event; keyed documents (snapshots, view rows and
    // checkpoints are all documents now) in place of the three special tables; the store's
    // identity for its log cursors. Events stored before have no commit time of their own: they
    // get their creation time, the best there is.
    r#"
ALTER TABLE events ADD COLUMN recorded_at INTEGER NOT NULL DEFAULT 0;
UPDATE events SET recorded_at = created_at;

CREATE TABLE documents (
    collection TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    revision   INTEGER NOT NULL CHECK (revision >= 1),
    body       TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (collection, key)
) STRICT, WITHOUT ROWID;

INSERT INTO documents (collection, key, revision, body, updated_at)
SELECT 'ventyd.snapshots/' || entity_name, entity_id, 1,
       json_object('version', version, 'schemaHash', schema_hash,
                   'state', CASE WHEN json_valid(state) THEN json(state) ELSE state END),
       created_at
FROM snapshots;

DROP TABLE snapshots;
DROP TABLE views;
DROP TABLE checkpoints;

INSERT INTO ventyd_meta (key, value) VALUES ('store_id', random() | 1);
"#,
    // 3: a layout a person can read with the `sqlite3` shell and write with plain SQL: event
    // ids as the text of the UUID (`0190f3a4-...`, lowercase with hyphens, as ventyd prints
    // them: one spelling per id, so that the unique index catches a repeat) instead of its 16
    // bytes, and the view `events_readable` with the times as RFC 3339 text. SQLite cannot change a column's type in place, so the table is built
    // again, positions and the AUTOINCREMENT counter kept (a position is never handed out twice).
    r#"
CREATE TABLE events_v3 (
    position        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT    NOT NULL UNIQUE
        CHECK (length(event_id) = 36 AND event_id = lower(event_id)),
    entity_name     TEXT    NOT NULL,
    entity_id       TEXT    NOT NULL,
    version         INTEGER NOT NULL CHECK (version >= 1),
    event_name      TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    body            TEXT    NOT NULL,
    metadata        TEXT,
    checked_schema  INTEGER,
    -- A foreign client that leaves the commit time out gets its own clock's, in milliseconds.
    recorded_at     INTEGER NOT NULL
        DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    UNIQUE (entity_name, entity_id, version)
) STRICT;

INSERT INTO events_v3 (position, event_id, entity_name, entity_id, version, event_name,
                       schema_version, created_at, body, metadata, checked_schema, recorded_at)
SELECT position,
       CASE WHEN typeof(event_id) = 'blob' AND length(event_id) = 16 THEN
           lower(substr(hex(event_id), 1, 8) || '-' || substr(hex(event_id), 9, 4) || '-' ||
                 substr(hex(event_id), 13, 4) || '-' || substr(hex(event_id), 17, 4) || '-' ||
                 substr(hex(event_id), 21, 12))
       ELSE event_id END,
       entity_name, entity_id, version, event_name, schema_version, created_at, body,
       metadata, checked_schema, recorded_at
FROM events ORDER BY position;

DELETE FROM sqlite_sequence WHERE name = 'events_v3';
INSERT INTO sqlite_sequence (name, seq) SELECT 'events_v3', seq FROM sqlite_sequence
    WHERE name = 'events';
DROP TABLE events;
ALTER TABLE events_v3 RENAME TO events;

-- The times as text, for people: computed only when this view is read. (Generated columns on
-- `events` would be computed at every insert: a tenth of a commit's work.)
CREATE VIEW events_readable AS
SELECT position, event_id, entity_name, entity_id, version, event_name, schema_version,
       strftime('%Y-%m-%dT%H:%M:%fZ', created_at / 1000.0, 'unixepoch') AS created_at,
       strftime('%Y-%m-%dT%H:%M:%fZ', recorded_at / 1000.0, 'unixepoch') AS recorded_at,
       body, metadata, checked_schema
FROM events;
"#, // 4: event ids as any non-empty text, as Ventyd's `generateId` may make them (a Ventyd
    // service sharing the file, a foreign client). The ids ventyd makes are still the UUID's
    // lowercase hyphenated text; an id is its text, byte for byte, as the unique index compares
    // it. Only the CHECK changes, and SQLite cannot change one in place: the table is built again
    // as in step 3, positions and the position counter kept, and the view with it.
    r#"
DROP VIEW events_readable;

CREATE TABLE events_v4 (
    position        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id        TEXT    NOT NULL UNIQUE CHECK (length(event_id) >= 1),
    entity_name     TEXT    NOT NULL,
    entity_id       TEXT    NOT NULL,
    version         INTEGER NOT NULL CHECK (version >= 1),
    event_name      TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    body            TEXT    NOT NULL,
    metadata        TEXT,
    checked_schema  INTEGER,
    -- A foreign client that leaves the commit time out gets its own clock's, in milliseconds.
    recorded_at     INTEGER NOT NULL
        DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    UNIQUE (entity_name, entity_id, version)
) STRICT;

INSERT INTO events_v4 (position, event_id, entity_name, entity_id, version, event_name,
                       schema_version, created_at, body, metadata, checked_schema, recorded_at)
SELECT position, event_id, entity_name, entity_id, version, event_name, schema_version,
       created_at, body, metadata, checked_schema, recorded_at
FROM events ORDER BY position;

DELETE FROM sqlite_sequence WHERE name = 'events_v4';
INSERT INTO sqlite_sequence (name, seq) SELECT 'events_v4', seq FROM sqlite_sequence
    WHERE name = 'events';
DROP TABLE events;
ALTER TABLE events_v4 RENAME TO events;

CREATE VIEW events_readable AS
SELECT position, event_id, entity_name, entity_id, version, event_name, schema_version,
       strftime('%Y-%m-%dT%H:%M:%fZ', created_at / 1000.0, 'unixepoch') AS created_at,
       strftime('%Y-%m-%dT%H:%M:%fZ', recorded_at / 1000.0, 'unixepoch') AS recorded_at,
       body, metadata, checked_schema
FROM events;
"#,
];

/// The tables ventyd creates; a file that has a table, index, view or trigger of one of these
/// names without ventyd's version is someone else's, and is left alone. SQLite compares names
/// without regard to ASCII case, so `EVENTS` is taken too.
const OWN_TABLES: [&str; 9] = [
    "ventyd_meta",
    "events",
    "snapshots",
    "views",
    "checkpoints",
    "documents",
    "events_readable",
    "events_v3",
    "events_v4",
];

/// The store's identity, which its log cursors carry.
pub(super) fn store_id(conn: &Connection, ctx: &Ctx) -> Result<u64, Error> {
    let id: Option<i64> = conn
        .query_row(
            "SELECT value FROM ventyd_meta WHERE key = 'store_id'",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(|e| ctx.error("cannot read the store's identity", e))?;
    match id {
        Some(id) if id != 0 => Ok(id as u64),
        _ => Err(StorageError::new(
            StorageErrorKind::Corrupt,
            format!(
                "the database {} has no store identity in ventyd_meta; it was changed by hand",
                ctx.label
            ),
        )
        .into()),
    }
}

/// The name to hand SQLite for `path`, so that it names that file and nothing else.
///
/// The bundled SQLite is built with URI file names on (`SQLITE_USE_URI`), whatever the open
/// flags say, so a name that starts with `file:` would be parsed as a URI, whose parameters can
/// make a database in memory or turn off locking; and `:memory:` is always a database in
/// memory. Such a (relative) path gets `./` in front, which names the same file.
pub(super) fn literal_path(path: &Path) -> Cow<'_, Path> {
    let name = path.as_os_str().as_encoded_bytes();
    if name.starts_with(b"file:") || name == b":memory:" {
        Cow::Owned(Path::new(".").join(path))
    } else {
        Cow::Borrowed(path)
    }
}

pub(super) fn open_file(ctx: &Ctx) -> Result<Connection, Error> {
    let label = &ctx.label;
    let options = ctx.options;
    let path = literal_path(ctx.path.as_deref().unwrap_or(Path::new("")));
    let fail = |e| ctx.error("cannot open", e);
    // No SQLITE_OPEN_URI, but that is not enough: see `literal_path`.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(&path, flags).map_err(fail)?;
    conn.busy_timeout(options.busy_timeout).map_err(fail)?;
    plan_once(&conn).map_err(fail)?;
    // SQLite quietly opens a file it may not write read-only; say so now, not at the first
    // append.
    if conn.is_readonly(rusqlite::MAIN_DB).map_err(fail)? {
        return Err(StorageError::new(StorageErrorKind::Unavailable, format!(
            "cannot open: the database {label} is read-only; the process needs write access to the file and its directory"
        ))
        .into());
    }
    // The version is checked before anything is written, so that a file this build must not
    // touch (not a database, or from a newer ventyd) is left exactly as it was.
    let found = retry_busy(options.busy_timeout, || schema_version(&conn)).map_err(fail)?;
    let found = check_version(found, label)?;
    if found == 0 {
        // Before the switch to WAL, which rewrites the file's header: a file of someone else's
        // is refused as it was found.
        let taken = retry_busy(options.busy_timeout, || foreign_names(&conn)).map_err(fail)?;
        refuse_foreign(&taken, label)?;
    }

    let mode: String = retry_busy(options.busy_timeout, || {
        conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
    })
    .map_err(fail)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StorageError::new(StorageErrorKind::Unsupported, format!(
            "cannot open: the database {label} cannot use write-ahead logging (journal mode stays {mode:?}); is it on a network file system?"
        ))
        .into());
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {}; PRAGMA foreign_keys = ON;",
        options.synchronous.pragma()
    ))
    .map_err(fail)?;
    if found < SCHEMA_VERSION {
        migrate(&conn, label, options.busy_timeout)?;
    }
    Ok(conn)
}

pub(super) fn open_memory(ctx: &Ctx) -> Result<Connection, Error> {
    let fail = |e| ctx.error("cannot open", e);
    let conn = Connection::open_in_memory().map_err(fail)?;
    plan_once(&conn).map_err(fail)?;
    conn.execute_batch("PRAGMA foreign_keys = ON;")
        .map_err(fail)?;
    migrate(&conn, &ctx.label, ctx.options.busy_timeout)?;
    Ok(conn)
}

/// Turns on SQLite's query planner stability guarantee, so that a cached statement is not
/// compiled again at each use (see "Blocking work" in the module docs), and makes room in the
/// statement cache for all of the store's statements.
pub(super) fn plan_once(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

/// What a file records of its schema version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recorded {
    /// No `ventyd_meta` table: a new file, or someone else's.
    Nothing,
    /// The version in `ventyd_meta`.
    Version(u32),
    /// A `ventyd_meta` table without a `schema_version` row.
    Missing,
    /// A `schema_version` that no ventyd writes (below 1, or past `u32`).
    Invalid(i64),
}

/// The schema version recorded in the file.
fn schema_version(conn: &Connection) -> rusqlite::Result<Recorded> {
    let has_meta: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'ventyd_meta')",
        [],
        |row| row.get(0),
    )?;
    if !has_meta {
        return Ok(Recorded::Nothing);
    }
    let version: Option<i64> = conn
        .query_row(
            "SELECT value FROM ventyd_meta WHERE key = 'schema_version'",
            [],
            |row| row.get(0),
        )
        .optional()?;
    Ok(match version {
        None => Recorded::Missing,
        Some(v) => match u32::try_from(v) {
            Ok(v) if v >= 1 => Recorded::Version(v),
            _ => Recorded::Invalid(v),
        },
    })
}

/// The schema version of a file this build may open (0 for a file without ventyd's tables);
/// a file from a newer ventyd, or whose recorded version is damaged, is refused without being
/// touched.
fn check_version(found: Recorded, label: &str) -> Result<u32, Error> {
    let damaged = |what: String| {
        Err(StorageError::new(StorageErrorKind::Corrupt, format!(
            "cannot open: the ventyd_meta table of the database {label} {what}, so the file is damaged and ventyd cannot tell how to read it; restore it from a backup, or put back the row ('schema_version', N) with the version N of the ventyd that wrote it (this build writes version {SCHEMA_VERSION})"
        ))
        .into())
    };
    match found {
        Recorded::Nothing => Ok(0),
        Recorded::Version(v) if v <= SCHEMA_VERSION => Ok(v),
        Recorded::Version(v) => Err(StorageError::new(StorageErrorKind::Unsupported, format!(
            "cannot open: the database {label} was written by a newer ventyd (schema version {v}; this build knows up to version {SCHEMA_VERSION}); upgrade ventyd to open it"
        ))
        .into()),
        Recorded::Missing => damaged("has no schema version (its schema_version row was deleted)".to_owned()),
        Recorded::Invalid(v) => damaged(format!("holds schema version {v}, which no ventyd writes")),
    }
}

/// The names in the file's schema (tables, indexes, views, triggers) that ventyd would create,
/// as the file spells them.
fn foreign_names(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM sqlite_schema ORDER BY name")?;
    let names = stmt.query_map([], |row| row.get::<_, String>(0))?;
    let mut taken = Vec::new();
    for name in names {
        let name = name?;
        if OWN_TABLES.iter().any(|own| own.eq_ignore_ascii_case(&name)) {
            taken.push(name);
        }
    }
    Ok(taken)
}

/// Refuses a file without ventyd's schema version that has `taken` names of ventyd's.
fn refuse_foreign(taken: &[String], label: &str) -> Result<(), Error> {
    if taken.is_empty() {
        return Ok(());
    }
    Err(StorageError::invalid(format!(
        "cannot open: the database {label} already has tables or indexes named {} that ventyd did not create; use a separate file for ventyd",
        taken.join(", ")
    ))
    .into())
}

/// Brings the schema to [`SCHEMA_VERSION`] in one transaction. The version is read again under
/// the write lock, so a migration another process ran in the meantime is not run twice.
fn migrate(conn: &Connection, label: &str, timeout: Duration) -> Result<(), Error> {
    let fail = |e| sql_error(label, timeout, "cannot migrate the schema", e);
    let tx = retry_busy(timeout, || {
        Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
    })
    .map_err(fail)?;
    let found = check_version(schema_version(&tx).map_err(fail)?, label)?;
    if found == 0 {
        // Again under the write lock: another process may have created them since the file
        // was opened.
        refuse_foreign(&foreign_names(&tx).map_err(fail)?, label)?;
    }
    for step in &MIGRATIONS[found as usize..] {
        tx.execute_batch(step).map_err(fail)?;
    }
    tx.execute(
        "INSERT INTO ventyd_meta (key, value) VALUES ('schema_version', ?1) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [SCHEMA_VERSION],
    )
    .map_err(fail)?;
    tx.commit().map_err(fail)
}
