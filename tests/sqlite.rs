//! The SQLite store: files and schema, migrating an older file, bad input and corrupt rows,
//! the store's identity and clock, locks, a foreign client reading the file, two processes
//! writing at once, and a writer killed in the middle of its commits.
//!
//! The process tests run this test binary again as a child (`child_writer`, ignored unless
//! asked for) with its role and database file in environment variables.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::*;
use ventyd::prelude::*;
use ventyd::storage::sqlite::{SCHEMA_VERSION, SqliteOptions, Synchronous};
use ventyd::storage::{
    AppendOutcome, AppendRequest, DocumentRange, DocumentWrite, LogCursor, LogEntry, LogFilter,
    LogRequest, NewEvent, ReadRange, StoredEvent, UnitOfWork,
};
use ventyd::{
    Error, ExpectedRevision, ExpectedVersion, IdGenerator, SqliteStorage, StorageErrorKind,
    Timestamp, UuidV7,
};

const ROLE_VAR: &str = "VENTYD_SQLITE_CHILD_ROLE";
const DB_VAR: &str = "VENTYD_SQLITE_CHILD_DB";

fn event(name: &str, body: impl Into<String>) -> NewEvent {
    NewEvent::new(UuidV7.event_id(), name.to_owned(), body)
}

fn counter(n: usize) -> Vec<NewEvent> {
    (0..n)
        .map(|i| event("counter:added", format!(r#"{{"n":{i}}}"#)))
        .collect()
}

/// The message of a storage error; any other error fails the test.
fn storage_message(err: &Error) -> String {
    match err {
        Error::Storage(_) => err.to_string(),
        other => panic!("expected a storage error, got {other:?}"),
    }
}

/// The message of a storage error of `kind`; any other error fails the test.
fn storage_error_of(kind: StorageErrorKind, err: &Error) -> String {
    let message = storage_message(err);
    assert_eq!(err.storage_kind(), Some(kind), "{message}");
    message
}

fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "{message:?} lacks {part:?}");
    }
}

fn raw(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).expect("raw connection")
}

fn count_events(path: &Path) -> i64 {
    raw(path)
        .query_row("SELECT count(*) FROM events", [], |row| row.get(0))
        .expect("count")
}

fn meta(path: &Path, key: &str) -> Option<i64> {
    use rusqlite::OptionalExtension;
    raw(path)
        .query_row(
            "SELECT value FROM ventyd_meta WHERE key = ?1",
            [key],
            |row| row.get(0),
        )
        .optional()
        .expect("ventyd_meta")
}

/// The tables of the file, without SQLite's own (`sqlite_sequence`).
fn tables(path: &Path) -> Vec<String> {
    raw(path)
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             ORDER BY name",
        )
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Every row of every table and the schema's SQL, as text: to check that opening a file again
/// changes nothing in it.
fn dump(path: &Path) -> Vec<String> {
    let conn = raw(path);
    let mut out = Vec::new();
    for query in [
        "SELECT type, name, sql FROM sqlite_schema ORDER BY type, name",
        "SELECT * FROM events ORDER BY position",
        "SELECT * FROM documents ORDER BY collection, key",
        "SELECT * FROM ventyd_meta ORDER BY key",
    ] {
        let mut stmt = conn.prepare(query).unwrap();
        let columns = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            let cells: Vec<String> = (0..columns)
                .map(|i| format!("{:?}", row.get_ref(i).unwrap()))
                .collect();
            out.push(cells.join(" | "));
        }
    }
    out
}

async fn append(
    store: &SqliteStorage,
    entity_name: &str,
    entity_id: &str,
    expected: ExpectedVersion,
    events: &[NewEvent],
) -> Result<AppendOutcome, Error> {
    store
        .append(AppendRequest::new(entity_name, entity_id, expected, events))
        .await
}

/// The whole log, read in pages of `limit` from the start: every entry, good or corrupt.
async fn whole_log(store: &SqliteStorage, limit: usize) -> Vec<LogEntry> {
    let mut cursor = LogCursor::START;
    let mut entries = Vec::new();
    loop {
        let page = store
            .read_log(&LogRequest::new(cursor, limit))
            .await
            .unwrap();
        assert!(
            page.entries.len() <= limit,
            "a page holds at most the limit"
        );
        if let Some(last) = page.entries.last() {
            assert_eq!(
                page.cursor, last.cursor,
                "the page resumes after its last entry"
            );
        }
        let done = page.at_head;
        assert!(
            done || !page.entries.is_empty(),
            "a page that is not at the head moves on"
        );
        cursor = page.cursor;
        entries.extend(page.entries);
        if done {
            return entries;
        }
    }
}

/// The whole log as events; a corrupt row fails the test.
async fn log_events(store: &SqliteStorage) -> Vec<Arc<StoredEvent>> {
    whole_log(store, 1000)
        .await
        .into_iter()
        .map(|e| match e.event {
            Ok(event) => event,
            Err(corrupt) => panic!("a corrupt row in the log: {}", corrupt.error),
        })
        .collect()
}

// ---- files and schema ----

#[test]
fn reopening_a_file_finds_events_metadata_and_documents() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        let repo = Repository::<User, _>::new(SqliteStorage::open(&path).await.unwrap());
        let mut user = repo.create(alice()).unwrap();
        user.update_name("Alice Cooper".into()).unwrap();
        user.tag_all(vec!["a".into(), "b".into()]).unwrap();
        let snapshot = r#"{"version":4,"schemaHash":"h1","state":{"email":"alice@example.com"}}"#;
        let key = user.entity_id().to_owned();
        let committed = repo
            .batch()
            .entity(&mut user)
            .put_document(
                "ventyd.snapshots/user",
                key,
                ExpectedRevision::Absent,
                snapshot,
            )
            .metadata(Metadata::new().actor("admin").with("ip", "::1"))
            .commit()
            .await
            .unwrap();
        assert_eq!(committed.documents, [Some(1)]);
        let before = repo
            .storage()
            .read_stream("user", user.entity_id(), ReadRange::ALL)
            .await
            .unwrap();
        assert_eq!(repo.storage().path(), Some(path.as_path()));
        drop(repo);

        let store = SqliteStorage::open(&path).await.unwrap();
        let after = store
            .read_stream("user", user.entity_id(), ReadRange::ALL)
            .await
            .unwrap();
        assert_eq!(before, after, "every field reads back as written");
        assert_eq!(after.len(), 4);
        assert_eq!(
            after.iter().map(|e| e.position).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert!(
            after.iter().all(|e| e.recorded_at == committed.recorded_at),
            "every event of the commit has its commit time"
        );
        let metadata = after[3].metadata.as_deref().expect("metadata");
        assert_eq!(metadata.actor.as_deref(), Some("admin"));
        assert_eq!(metadata.extra["ip"], "::1");
        let document = store
            .read_document("ventyd.snapshots/user", user.entity_id())
            .await
            .unwrap()
            .expect("the document is stored");
        assert_eq!(
            (
                document.revision,
                document.body.as_str(),
                document.updated_at
            ),
            (1, snapshot, committed.recorded_at)
        );

        let repo = Repository::<User, _>::new(store);
        let loaded = repo.find_one(user.entity_id()).await.unwrap().unwrap();
        assert_eq!(loaded.state(), user.state());
        assert_eq!(loaded.version(), 4);
        let original: Vec<_> = user.events().cloned().collect();
        let reloaded: Vec<_> = loaded.events().cloned().collect();
        assert_eq!(original, reloaded);
    });
}

#[test]
fn the_file_is_in_wal_mode_with_strict_tables() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wal.db");
        let store = SqliteStorage::open(&path).await.unwrap();
        store
            .commit(
                &UnitOfWork::new()
                    .append(AppendRequest::new(
                        "counter",
                        "c",
                        ExpectedVersion::NoStream,
                        &counter(1),
                    ))
                    .document(DocumentWrite::put(
                        "totals",
                        "c",
                        ExpectedRevision::Absent,
                        r#"{"total":1}"#,
                    )),
            )
            .await
            .unwrap();
        let conn = raw(&path);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        assert!(
            Path::new(&format!("{}-wal", path.display())).exists(),
            "the write-ahead log is beside the file"
        );
        // STRICT: a body that is not text is refused by SQLite itself, in both tables.
        for table in ["events", "documents"] {
            let err = conn
                .execute(&format!("UPDATE {table} SET body = x'00ff'"), [])
                .unwrap_err();
            assert!(
                err.to_string().contains("cannot store BLOB"),
                "{table}: {err}"
            );
        }
        let err = conn
            .execute("UPDATE events SET recorded_at = 'soon'", [])
            .unwrap_err();
        assert!(err.to_string().contains("cannot store TEXT"), "{err}");
        assert_eq!(tables(&path), ["documents", "events", "ventyd_meta"]);
        assert_eq!(
            meta(&path, "schema_version"),
            Some(i64::from(SCHEMA_VERSION))
        );
        assert_ne!(
            meta(&path, "store_id").unwrap_or(0),
            0,
            "the store has an identity"
        );
    });
}

/// Opens `path` from four threads at the same moment, each with its own runtime, and appends
/// one event from each; returns the log cursor each one read after its append.
fn open_at_once(path: &Path) -> Vec<LogCursor> {
    let start = Arc::new(Barrier::new(4));
    let openers: Vec<_> = (0..4)
        .map(|_| {
            let (path, start) = (path.to_path_buf(), start.clone());
            std::thread::spawn(move || {
                rt().block_on(async {
                    start.wait();
                    let store = SqliteStorage::open(&path).await.unwrap();
                    append(
                        &store,
                        "counter",
                        &UuidV7.event_id().to_string(),
                        ExpectedVersion::NoStream,
                        &counter(1),
                    )
                    .await
                    .unwrap();
                    let page = store
                        .read_log(&LogRequest::new(LogCursor::START, 1))
                        .await
                        .unwrap();
                    page.cursor
                })
            })
        })
        .collect();
    openers
        .into_iter()
        .map(|opener| opener.join().unwrap())
        .collect()
}

#[test]
fn opening_a_new_file_again_and_at_once_migrates_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("twice.db");
    let cursors = open_at_once(&path);
    // One migration, one identity: the first page's cursor is the same from every store.
    assert!(cursors.windows(2).all(|w| w[0] == w[1]), "{cursors:?}");
    rt().block_on(async {
        let store = SqliteStorage::open(&path).await.unwrap();
        assert_eq!(log_events(&store).await.len(), 4);
    });
    assert_eq!(
        meta(&path, "schema_version"),
        Some(i64::from(SCHEMA_VERSION))
    );
}

#[test]
fn a_file_from_a_newer_ventyd_is_refused_and_left_alone() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("newer.db");
        drop(SqliteStorage::open(&path).await.unwrap());
        raw(&path)
            .execute(
                "UPDATE ventyd_meta SET value = ?1 WHERE key = 'schema_version'",
                [SCHEMA_VERSION + 1],
            )
            .unwrap();
        let before = std::fs::read(&path).unwrap();
        let err = SqliteStorage::open(&path).await.unwrap_err();
        assert_mentions(
            &storage_error_of(StorageErrorKind::Unsupported, &err),
            &[
                &path.display().to_string(),
                "newer ventyd",
                &format!("version {}", SCHEMA_VERSION + 1),
            ],
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "the file is unchanged"
        );
    });
}

#[test]
fn a_file_of_random_bytes_is_not_a_database_and_is_left_alone() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("random.bin");
        // Bytes from a simple generator: anything but a SQLite header.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let bytes: Vec<u8> = (0..8192)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(&path, &bytes).unwrap();
        let err = SqliteStorage::open(&path).await.unwrap_err();
        assert_mentions(
            &storage_error_of(StorageErrorKind::Corrupt, &err),
            &[&path.display().to_string(), "not a SQLite database"],
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "the file is unchanged"
        );
        assert!(!Path::new(&format!("{}-wal", path.display())).exists());
    });
}

#[test]
fn a_truncated_database_is_reported_as_corrupt() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("truncated.db");
        let store = SqliteStorage::open(&path).await.unwrap();
        let events: Vec<NewEvent> = (0..500)
            .map(|i| {
                event(
                    "counter:added",
                    format!(r#"{{"n":{i},"pad":"{}"}}"#, "x".repeat(200)),
                )
            })
            .collect();
        append(&store, "counter", "big", ExpectedVersion::NoStream, &events)
            .await
            .unwrap();
        // Closing the last connection checkpoints the log into the file and removes it.
        drop(store);
        assert!(!Path::new(&format!("{}-wal", path.display())).exists());
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(3 * 4096).unwrap();
        drop(file);
        let err = SqliteStorage::open(&path).await.unwrap_err();
        assert_mentions(
            &storage_error_of(StorageErrorKind::Corrupt, &err),
            &[&path.display().to_string(), "corrupt"],
        );
    });
}

#[test]
fn a_database_with_foreign_tables_of_the_same_names_is_left_alone() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        for (file, sql, names) in [
            (
                "foreign-events.db",
                "CREATE TABLE events (id INTEGER PRIMARY KEY, what TEXT);",
                &["events"][..],
            ),
            (
                "foreign-documents.db",
                "CREATE TABLE documents (id INTEGER PRIMARY KEY); \
                 CREATE TABLE snapshots (id INTEGER PRIMARY KEY);",
                &["documents", "snapshots"][..],
            ),
        ] {
            let path = dir.path().join(file);
            raw(&path).execute_batch(sql).unwrap();
            let before = dump_schema(&path);
            let err = SqliteStorage::open(&path).await.unwrap_err();
            let message = storage_error_of(StorageErrorKind::InvalidRequest, &err);
            assert_mentions(&message, &[&path.display().to_string(), "did not create"]);
            assert_mentions(&message, names);
            assert_eq!(
                dump_schema(&path),
                before,
                "the file's tables are unchanged"
            );
        }

        // An application's own tables beside ventyd's are fine, and stay as they are.
        let path = dir.path().join("shared-with-app.db");
        raw(&path)
            .execute_batch(
                "CREATE TABLE app_users (id INTEGER PRIMARY KEY, name TEXT); \
                 INSERT INTO app_users (name) VALUES ('kept');",
            )
            .unwrap();
        let store = SqliteStorage::open(&path).await.unwrap();
        append(
            &store,
            "counter",
            "c",
            ExpectedVersion::NoStream,
            &counter(1),
        )
        .await
        .unwrap();
        let name: String = raw(&path)
            .query_row("SELECT name FROM app_users", [], |row| row.get(0))
            .unwrap();
        assert_eq!(name, "kept");
        assert_eq!(
            tables(&path),
            ["app_users", "documents", "events", "ventyd_meta"]
        );
    });
}

/// The file at `path` and the -wal, -shm and -journal files SQLite would put beside it.
fn beside(path: &Path) -> Vec<PathBuf> {
    ["-wal", "-shm", "-journal"]
        .iter()
        .map(|suffix| PathBuf::from(format!("{}{suffix}", path.display())))
        .collect()
}

#[test]
fn a_refused_file_with_foreign_tables_is_left_byte_identical_whatever_their_case() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        for (file, sql, names) in [
            (
                "foreign-events.db",
                "CREATE TABLE events (id INTEGER PRIMARY KEY, what TEXT); \
                 INSERT INTO events (what) VALUES ('theirs');",
                &["events"][..],
            ),
            (
                "foreign-upper.db",
                "CREATE TABLE EVENTS (id INTEGER PRIMARY KEY, what TEXT);",
                &["EVENTS"][..],
            ),
            (
                "foreign-mixed.db",
                "CREATE TABLE Documents (id INTEGER PRIMARY KEY); \
                 CREATE INDEX Ventyd_Meta ON Documents (id);",
                &["Documents", "Ventyd_Meta"][..],
            ),
        ] {
            let path = dir.path().join(file);
            let conn = raw(&path);
            let mode: String = conn
                .query_row("PRAGMA journal_mode", [], |row| row.get(0))
                .unwrap();
            assert_eq!(mode, "delete", "the fixture is in rollback-journal mode");
            conn.execute_batch(sql).unwrap();
            drop(conn);
            let before = std::fs::read(&path).unwrap();
            let err = SqliteStorage::open(&path).await.unwrap_err();
            let message = storage_error_of(StorageErrorKind::InvalidRequest, &err);
            assert_mentions(&message, &[&path.display().to_string(), "did not create"]);
            assert_mentions(&message, names);
            assert!(
                std::fs::read(&path).unwrap() == before,
                "{file}: the refused file is not byte-identical"
            );
            for other in beside(&path) {
                assert!(!other.exists(), "{} is left behind", other.display());
            }
        }
    });
}

#[test]
fn a_path_that_starts_with_file_is_a_plain_path_not_a_uri() {
    rt().block_on(async {
        // Absolute: the name of the file is "file:x.db".
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file:x.db");
        let store = SqliteStorage::open(&path).await.unwrap();
        append(
            &store,
            "counter",
            "c",
            ExpectedVersion::NoStream,
            &counter(2),
        )
        .await
        .unwrap();
        drop(store);
        assert_eq!(count_events(&path), 2);

        // Relative, in a directory of the working directory whose name starts with "file:":
        // as a URI this would be a database in memory (and, with other parameters, one
        // without locking). As a path it is a file named "x.db?mode=memory".
        let cwd_dir = tempfile::Builder::new()
            .prefix("file:ventyd-test-")
            .tempdir_in(".")
            .unwrap();
        let relative = PathBuf::from(cwd_dir.path().file_name().unwrap()).join("x.db?mode=memory");
        assert!(relative.to_str().unwrap().starts_with("file:"));
        let store = SqliteStorage::open(&relative).await.unwrap();
        assert_eq!(store.path(), Some(relative.as_path()));
        append(
            &store,
            "counter",
            "c",
            ExpectedVersion::NoStream,
            &counter(3),
        )
        .await
        .unwrap();
        // Read through the store's read connections, which open the same path.
        let read = store
            .read_stream("counter", "c", ReadRange::ALL)
            .await
            .unwrap();
        assert_eq!(read.len(), 3);
        drop(store);
        let literal = cwd_dir.path().join("x.db?mode=memory");
        assert!(literal.is_file(), "{} was not created", literal.display());
        assert_eq!(count_events(&literal), 3);
        let store = SqliteStorage::open(&relative).await.unwrap();
        let read = store
            .read_stream("counter", "c", ReadRange::ALL)
            .await
            .unwrap();
        assert_eq!(read.len(), 3, "a second open finds the file's events");
    });
}

#[test]
fn a_ventyd_meta_without_its_schema_version_is_reported_as_damaged() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        for (file, damage) in [
            (
                "deleted.db",
                "DELETE FROM ventyd_meta WHERE key = 'schema_version'",
            ),
            (
                "negative.db",
                "UPDATE ventyd_meta SET value = -3 WHERE key = 'schema_version'",
            ),
        ] {
            let path = dir.path().join(file);
            drop(SqliteStorage::open(&path).await.unwrap());
            assert_eq!(raw(&path).execute(damage, []).unwrap(), 1);
            let before = std::fs::read(&path).unwrap();
            let err = SqliteStorage::open(&path).await.unwrap_err();
            let message = storage_error_of(StorageErrorKind::Corrupt, &err);
            assert_mentions(
                &message,
                &[
                    &path.display().to_string(),
                    "ventyd_meta",
                    "schema version",
                    "damaged",
                    "backup",
                ],
            );
            assert!(!message.contains("newer"), "{message}");
            assert!(
                std::fs::read(&path).unwrap() == before,
                "the file is unchanged"
            );
        }
    });
}

#[test]
fn an_empty_path_is_refused_as_empty() {
    rt().block_on(async {
        let err = SqliteStorage::open("").await.unwrap_err();
        let message = storage_error_of(StorageErrorKind::InvalidRequest, &err);
        assert_mentions(&message, &["path is empty", "in_memory"]);
        assert!(!message.contains("network"), "{message}");
    });
}

/// Damages `column` of the second event of `user` (position 3) with text that is not UTF-8,
/// and checks that loading the entity, reading its stream and reading the log each name the
/// entity, the version and the column in words.
fn a_column_that_is_not_utf8(column: &str) {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("bad-{column}.db"));
        let store = SqliteStorage::open(&path).await.unwrap();
        let repo = Repository::<User, _>::new(store.clone());
        let mut first = repo.create(alice()).unwrap();
        repo.commit(&mut first).await.unwrap();
        let mut user = repo.create(alice()).unwrap();
        user.update_name("Alice Cooper".into()).unwrap();
        repo.commit_with(&mut user, ventyd::Metadata::new().actor("test"))
            .await
            .unwrap();
        let id = user.entity_id().to_owned();
        let changed = raw(&path)
            .execute(
                &format!(
                    "UPDATE events SET {column} = CAST(x'ff' AS TEXT) \
                     WHERE entity_id = ?1 AND version = 2"
                ),
                [&id],
            )
            .unwrap();
        assert_eq!(changed, 1);
        let words = [
            &format!("user {id:?}")[..],
            "version 2",
            "position 3",
            column,
            "not valid UTF-8",
            &path.display().to_string(),
        ];

        let err = repo.find_one(&id).await.unwrap_err();
        let message = storage_error_of(StorageErrorKind::Corrupt, &err);
        assert_mentions(&message, &words);
        assert!(!message.contains("index"), "{message}");

        let err = store
            .read_stream("user", &id, ReadRange::ALL)
            .await
            .unwrap_err();
        let message = storage_error_of(StorageErrorKind::Corrupt, &err);
        assert_mentions(&message, &words);
        assert!(!message.contains("index"), "{message}");

        let log = whole_log(&store, 10).await;
        assert_eq!(log.len(), 3);
        let corrupt = log[2].event.as_ref().expect_err("the damaged row");
        assert_eq!(corrupt.position, 3);
        assert_eq!(corrupt.error.kind(), StorageErrorKind::Corrupt);
        let message = corrupt.error.to_string();
        assert_mentions(&message, &words);
        assert!(!message.contains("index"), "{message}");
    });
}

#[test]
fn a_body_that_is_not_utf8_is_named_with_its_entity_and_version() {
    a_column_that_is_not_utf8("body");
}

#[test]
fn an_event_name_that_is_not_utf8_is_named_with_its_entity_and_version() {
    a_column_that_is_not_utf8("event_name");
}

#[test]
fn metadata_that_is_not_utf8_is_named_with_its_entity_and_version() {
    a_column_that_is_not_utf8("metadata");
}

#[test]
fn an_event_id_that_is_not_utf8_is_named_with_its_entity_and_version() {
    // Any text is an id, but bytes that are not UTF-8 are not text.
    a_column_that_is_not_utf8("event_id");
}

#[test]
fn a_document_body_that_is_not_utf8_is_named_with_its_key() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad-document.db");
        let store = SqliteStorage::open(&path).await.unwrap();
        for key in ["n-1", "n-2"] {
            store
                .commit(&UnitOfWork::new().document(DocumentWrite::put(
                    "notes",
                    key,
                    ExpectedRevision::Absent,
                    r#"{"text":"hello"}"#,
                )))
                .await
                .unwrap();
        }
        let changed = raw(&path)
            .execute(
                "UPDATE documents SET body = CAST(x'ff' AS TEXT) WHERE key = 'n-2'",
                [],
            )
            .unwrap();
        assert_eq!(changed, 1);
        let words = [
            "\"notes\"",
            "\"n-2\"",
            "body",
            "not valid UTF-8",
            &path.display().to_string(),
        ];
        let err = store.read_document("notes", "n-2").await.unwrap_err();
        let message = storage_error_of(StorageErrorKind::Corrupt, &err);
        assert_mentions(&message, &words);
        assert!(!message.contains("index"), "{message}");
        let err = store
            .list_documents(&DocumentRange::new("notes", 10))
            .await
            .unwrap_err();
        let message = storage_error_of(StorageErrorKind::Corrupt, &err);
        assert_mentions(&message, &words);
        assert!(!message.contains("index"), "{message}");
        assert!(store.read_document("notes", "n-1").await.unwrap().is_some());
    });
}

fn dump_schema(path: &Path) -> Vec<(String, String)> {
    raw(path)
        .prepare("SELECT name, sql FROM sqlite_schema ORDER BY name")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// As root, permission bits do not stop a process, so this test uses paths that cannot be
/// created by anyone (a missing directory, a directory itself), and checks a read-only file and
/// directory with `chattr +i` where it runs as root.
#[test]
fn unwritable_paths_are_clear_errors() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();

        let missing = dir.path().join("no-such-dir").join("app.db");
        let err = SqliteStorage::open(&missing).await.unwrap_err();
        assert_mentions(
            &storage_error_of(StorageErrorKind::Unavailable, &err),
            &[&missing.display().to_string(), "cannot open or create"],
        );
        assert!(err.is_retryable());
        assert!(!missing.parent().unwrap().exists());

        let err = SqliteStorage::open(dir.path()).await.unwrap_err();
        assert_mentions(&storage_message(&err), &[&dir.path().display().to_string()]);

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let locked_dir = dir.path().join("read-only");
            std::fs::create_dir(&locked_dir).unwrap();
            let path = locked_dir.join("app.db");
            drop(SqliteStorage::open(&path).await.unwrap());
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
            std::fs::set_permissions(&locked_dir, std::fs::Permissions::from_mode(0o555)).unwrap();
            // Root ignores file modes; there the file and its directory are made immutable
            // (`chattr +i`, which binds root too) for the length of the check.
            let privileged = std::fs::File::create(locked_dir.join("probe")).is_ok();
            let _immutable = privileged.then(|| Immutable::set(&[&path, &locked_dir]));
            let err = SqliteStorage::open(&path).await.unwrap_err();
            assert_mentions(
                &storage_error_of(StorageErrorKind::Unavailable, &err),
                &[&path.display().to_string(), "read-only"],
            );
            drop(_immutable);
            std::fs::set_permissions(&locked_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    });
}

/// Files made immutable with `chattr +i` until dropped: a read-only file that even root cannot
/// write. Fails loudly where `chattr` is missing or not permitted, rather than skipping.
#[cfg(unix)]
struct Immutable(Vec<std::path::PathBuf>);

#[cfg(unix)]
impl Immutable {
    fn set(paths: &[&std::path::Path]) -> Immutable {
        let paths: Vec<_> = paths.iter().map(|p| p.to_path_buf()).collect();
        let status = std::process::Command::new("chattr")
            .arg("+i")
            .args(&paths)
            .status()
            .expect("running as root: `chattr` (e2fsprogs) is needed to make a file read-only");
        assert!(status.success(), "chattr +i failed on {paths:?}");
        Immutable(paths)
    }
}

#[cfg(unix)]
impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .args(&self.0)
            .status();
    }
}

// ---- migrating a file of schema version 1 ----

/// The schema an older ventyd (schema version 1) created: the first migration of
/// `ventyd/src/storage/sqlite/schema.rs`, copied here as the fixture of what such a build wrote.
const SCHEMA_V1: &str = r#"
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
"#;

/// 2020-09-13T12:26:40Z, when the old build wrote the first event.
const V1_EPOCH: i64 = 1_600_000_000_000;

/// The events of the version-1 fixture, in log order: (entity id, version, name, body,
/// created_at).
fn v1_events() -> Vec<(&'static str, i64, &'static str, &'static str, i64)> {
    vec![
        (
            "u-1",
            1,
            "user:created",
            r#"{"email":"old@example.com","name":null}"#,
            V1_EPOCH,
        ),
        (
            "u-2",
            1,
            "user:created",
            r#"{"email":"two@example.com","name":"Two"}"#,
            V1_EPOCH + 1_001,
        ),
        (
            "u-1",
            2,
            "user:name_updated",
            r#"{"name":"Old Name"}"#,
            V1_EPOCH + 2_002,
        ),
        ("u-1", 3, "user:tagged", r#"{"tag":"a"}"#, V1_EPOCH + 3_003),
    ]
}

/// Writes a file as a ventyd of schema version 1 left it: WAL mode, its tables, four events
/// of two users (one with metadata) and two snapshot rows (one whose state is not JSON).
fn write_v1_file(path: &Path) {
    let conn = raw(path);
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    conn.execute_batch(SCHEMA_V1).unwrap();
    conn.execute("INSERT INTO ventyd_meta VALUES ('schema_version', 1)", [])
        .unwrap();
    for (i, (id, version, name, body, created_at)) in v1_events().into_iter().enumerate() {
        let metadata = (i == 2).then_some(r#"{"actor":"old-admin"}"#);
        conn.execute(
            "INSERT INTO events (event_id, entity_name, entity_id, version, event_name, \
             schema_version, created_at, body, metadata, checked_schema) \
             VALUES (?1, 'user', ?2, ?3, ?4, 1, ?5, ?6, ?7, NULL)",
            rusqlite::params![
                &UuidV7.uuid().as_bytes()[..],
                id,
                version,
                name,
                created_at,
                body,
                metadata
            ],
        )
        .unwrap();
    }
    conn.execute(
        "INSERT INTO snapshots VALUES ('user', 'u-1', 3, 'abc123', ?1, ?2)",
        rusqlite::params![
            r#"{"email":"old@example.com","name":"Old Name","deleted":false,"tags":["a"]}"#,
            V1_EPOCH + 10_000
        ],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO snapshots VALUES ('user', 'u-2', 1, 'abc123', 'not json', ?1)",
        [V1_EPOCH + 20_000],
    )
    .unwrap();
}

#[test]
fn the_migration_to_text_ids_keeps_the_position_counter() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counter.db");
        write_v1_file(&path);
        // Positions 5 to 10 were handed out once and rolled back: they must never come again.
        raw(&path)
            .execute(
                "UPDATE sqlite_sequence SET seq = 10 WHERE name = 'events'",
                [],
            )
            .unwrap();
        let store = SqliteStorage::open(&path).await.unwrap();
        let repo = Repository::<User, _>::new(store);
        let mut one = repo.find_one("u-1").await.unwrap().unwrap();
        one.update_name("After".into()).unwrap();
        let committed = repo.commit(&mut one).await.unwrap();
        assert_eq!(committed.last_position, Some(11));
    });
}

#[test]
fn a_version_1_file_is_migrated_in_place() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.db");
        write_v1_file(&path);
        assert_eq!(
            tables(&path),
            ["checkpoints", "events", "snapshots", "ventyd_meta", "views"]
        );

        let store = SqliteStorage::open(&path).await.unwrap();
        assert_eq!(tables(&path), ["documents", "events", "ventyd_meta"]);
        assert_eq!(meta(&path, "schema_version"), Some(i64::from(SCHEMA_VERSION)));
        let store_id = meta(&path, "store_id").expect("a store identity");
        assert_ne!(store_id, 0);
        // The ids of schema 1 and 2 (16 bytes) are the text of the UUID now.
        {
            let conn = raw(&path);
            let mut stmt = conn
                .prepare("SELECT typeof(event_id), event_id FROM events ORDER BY position")
                .unwrap();
            let ids: Vec<(String, String)> = stmt
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(ids.len(), 4);
            for (kind, id) in ids {
                assert_eq!(kind, "text");
                let parsed = ventyd::Uuid::parse_str(&id).unwrap();
                assert_eq!(parsed.to_string(), id, "lowercase, with hyphens");
            }
        }

        // The old events load, and their commit time is their creation time.
        let log = log_events(&store).await;
        let expected = v1_events();
        assert_eq!(log.len(), expected.len());
        for (i, (e, (id, version, name, body, created_at))) in log.iter().zip(&expected).enumerate()
        {
            assert_eq!(e.position, i as u64 + 1);
            assert_eq!(
                (e.entity_id.as_str(), e.version, e.event_name.as_str()),
                (*id, *version as u64, *name)
            );
            assert_eq!(e.body, *body);
            assert_eq!(e.event_created_at, Timestamp::from_millis(*created_at));
            assert_eq!(e.recorded_at, e.event_created_at, "position {}", e.position);
        }
        assert_eq!(
            log[2].metadata.as_deref().and_then(|m| m.actor.as_deref()),
            Some("old-admin")
        );
        let repo = Repository::<User, _>::new(store.clone());
        let one = repo.find_one("u-1").await.unwrap().expect("u-1 loads");
        assert_eq!(one.version(), 3);
        assert_eq!(
            one.state(),
            &User {
                email: "old@example.com".into(),
                name: Some("Old Name".into()),
                deleted: false,
                tags: vec!["a".into()],
            }
        );
        let two = repo.find_one("u-2").await.unwrap().expect("u-2 loads");
        assert_eq!(two.state().name.as_deref(), Some("Two"));

        // The snapshot rows are documents of `ventyd.snapshots/user`.
        let snapshot = store
            .read_document("ventyd.snapshots/user", "u-1")
            .await
            .unwrap()
            .expect("the snapshot is a document");
        assert_eq!(snapshot.revision, 1);
        assert_eq!(snapshot.updated_at, Timestamp::from_millis(V1_EPOCH + 10_000));
        let body: serde_json::Value = serde_json::from_str(&snapshot.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "version": 3,
                "schemaHash": "abc123",
                "state": {"email": "old@example.com", "name": "Old Name", "deleted": false, "tags": ["a"]},
            })
        );
        let page = store
            .list_documents(&DocumentRange::new("ventyd.snapshots/user", 10))
            .await
            .unwrap();
        assert_eq!(
            page.documents.iter().map(|d| d.key.as_str()).collect::<Vec<_>>(),
            ["u-1", "u-2"]
        );
        let not_json: serde_json::Value = serde_json::from_str(&page.documents[1].body).unwrap();
        assert_eq!(
            not_json["state"], "not json",
            "a state that is not JSON is kept as a string"
        );

        // A new commit gets a fresh commit time, after the old ones.
        let before_commit = Timestamp::now();
        let mut one = one;
        one.update_name("New Name".into()).unwrap();
        let committed = repo.commit(&mut one).await.unwrap();
        let recorded_at = committed.recorded_at.expect("a commit time");
        assert!(recorded_at >= before_commit, "{recorded_at} < {before_commit}");
        let log = log_events(&store).await;
        assert_eq!(log.len(), 5);
        assert_eq!((log[4].position, log[4].recorded_at), (5, recorded_at));
        assert!(log.windows(2).all(|w| w[0].recorded_at <= w[1].recorded_at));
        let cursor = store
            .read_log(&LogRequest::new(LogCursor::START, 2))
            .await
            .unwrap()
            .cursor;
        drop((repo, store));

        // Opening the file again changes nothing in it.
        let migrated = dump(&path);
        let store = SqliteStorage::open(&path).await.unwrap();
        drop(store);
        assert_eq!(dump(&path), migrated, "the second open changed the file");
        assert_eq!(meta(&path, "store_id"), Some(store_id));
        let store = SqliteStorage::open(&path).await.unwrap();
        let page = store.read_log(&LogRequest::new(cursor, 10)).await.unwrap();
        assert_eq!(
            page.events().map(|e| e.position).collect::<Vec<_>>(),
            [3, 4, 5],
            "a cursor read after the migration resumes after reopening"
        );
    });
}

// ---- migrating a file of schema version 3 ----

/// The events table and view a ventyd of schema version 3 created (the third migration of
/// `ventyd/src/storage/sqlite/schema.rs`, copied as the fixture of what such a build wrote), with
/// the tables of versions 1 and 2 that it kept.
const SCHEMA_V3: &str = r#"
CREATE TABLE ventyd_meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE documents (
    collection TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    revision   INTEGER NOT NULL CHECK (revision >= 1),
    body       TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (collection, key)
) STRICT, WITHOUT ROWID;

CREATE TABLE events (
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
    recorded_at     INTEGER NOT NULL
        DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    UNIQUE (entity_name, entity_id, version)
) STRICT;

CREATE VIEW events_readable AS
SELECT position, event_id, entity_name, entity_id, version, event_name, schema_version,
       strftime('%Y-%m-%dT%H:%M:%fZ', created_at / 1000.0, 'unixepoch') AS created_at,
       strftime('%Y-%m-%dT%H:%M:%fZ', recorded_at / 1000.0, 'unixepoch') AS recorded_at,
       body, metadata, checked_schema
FROM events;

INSERT INTO ventyd_meta VALUES ('schema_version', 3), ('store_id', 77);
"#;

#[test]
fn a_version_3_file_takes_event_ids_of_any_text_after_its_migration() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v3.db");
        let ids = [UuidV7.event_id(), UuidV7.event_id()];
        {
            let conn = raw(&path);
            conn.execute_batch(SCHEMA_V3).unwrap();
            for (i, (id, body)) in ids
                .iter()
                .zip([r#"{"email":"v3@example.com"}"#, r#"{"name":"Three"}"#])
                .enumerate()
            {
                let name = ["user:created", "user:name_updated"][i];
                conn.execute(
                    "INSERT INTO events (event_id, entity_name, entity_id, version, event_name, \
                     schema_version, created_at, body, recorded_at) \
                     VALUES (?1, 'user', 'u-3', ?2, ?3, 1, ?4, ?5, ?4)",
                    rusqlite::params![
                        id.to_string(),
                        i as i64 + 1,
                        name,
                        V1_EPOCH + i as i64,
                        body
                    ],
                )
                .unwrap();
            }
            // Positions 3 to 20 were handed out and rolled back.
            conn.execute(
                "UPDATE sqlite_sequence SET seq = 20 WHERE name = 'events'",
                [],
            )
            .unwrap();
            // The fixture is what version 3 enforced: an id that is not a UUID's text is refused.
            let refused = conn.execute(
                "INSERT INTO events (event_id, entity_name, entity_id, version, event_name, \
                 schema_version, created_at, body) \
                 VALUES ('evt_1', 'user', 'u-4', 1, 'user:created', 1, 0, '{}')",
                [],
            );
            assert!(refused.is_err(), "the v3 fixture lacks its CHECK");
        }

        let store = SqliteStorage::open(&path).await.unwrap();
        assert_eq!(
            meta(&path, "schema_version"),
            Some(i64::from(SCHEMA_VERSION))
        );
        assert_eq!(
            meta(&path, "store_id"),
            Some(77),
            "the store keeps its identity"
        );

        // The old events keep their positions and ids, and load.
        let log = log_events(&store).await;
        assert_eq!(
            log.iter()
                .map(|e| (e.position, e.event_id.clone()))
                .collect::<Vec<_>>(),
            [(1, ids[0].clone()), (2, ids[1].clone())]
        );
        let repo = Repository::<User, _>::new(store.clone());
        let mut user = repo.find_one("u-3").await.unwrap().expect("u-3 loads");
        assert_eq!(user.state().name.as_deref(), Some("Three"));

        // A foreign client writes an event whose id is not a UUID, with plain SQL; ventyd
        // reads it, and the position counter did not go back.
        raw(&path)
            .execute(
                "INSERT INTO events (event_id, entity_name, entity_id, version, event_name, \
                 schema_version, created_at, body) \
                 VALUES ('evt_V1StGXR8_Z5jdHi6B', 'user', 'u-3', 3, 'user:name_updated', 1, \
                 1700000000000, '{\"name\":\"Foreign\"}')",
                [],
            )
            .unwrap();
        let log = log_events(&store).await;
        assert_eq!(log[2].position, 21);
        assert_eq!(log[2].event_id.to_string(), "evt_V1StGXR8_Z5jdHi6B");
        assert_eq!(log[2].event_id.as_uuid(), None);
        user = repo.find_one("u-3").await.unwrap().unwrap();
        assert_eq!(user.state().name.as_deref(), Some("Foreign"));
        assert_eq!(
            user.events().last().unwrap().event_id().to_string(),
            "evt_V1StGXR8_Z5jdHi6B"
        );
        user.update_name("Native".into()).unwrap();
        let committed = repo.commit(&mut user).await.unwrap();
        assert_eq!(committed.last_position, Some(22));

        // The view is back, over the new table; an empty id is still refused.
        let conn = raw(&path);
        let readable: String = conn
            .query_row(
                "SELECT event_id FROM events_readable WHERE position = 21",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(readable, "evt_V1StGXR8_Z5jdHi6B");
        let empty = conn.execute(
            "INSERT INTO events (event_id, entity_name, entity_id, version, event_name, \
             schema_version, created_at, body) \
             VALUES ('', 'user', 'u-5', 1, 'user:created', 1, 0, '{}')",
            [],
        );
        assert!(empty.is_err(), "an empty event id was stored");
        assert_eq!(tables(&path), ["documents", "events", "ventyd_meta"]);
    });
}

#[test]
fn a_version_1_file_opened_at_once_is_migrated_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1-at-once.db");
    write_v1_file(&path);
    let cursors = open_at_once(&path);
    assert!(cursors.windows(2).all(|w| w[0] == w[1]), "{cursors:?}");
    assert_eq!(tables(&path), ["documents", "events", "ventyd_meta"]);
    assert_eq!(
        meta(&path, "schema_version"),
        Some(i64::from(SCHEMA_VERSION))
    );
    let snapshots: i64 = raw(&path)
        .query_row(
            "SELECT count(*) FROM documents WHERE collection = 'ventyd.snapshots/user'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(snapshots, 2, "each snapshot row moved once");
    rt().block_on(async {
        let store = SqliteStorage::open(&path).await.unwrap();
        let log = log_events(&store).await;
        assert_eq!(log.len(), 4 + 4);
        for e in &log[..4] {
            assert_eq!(e.recorded_at, e.event_created_at);
        }
    });
}

// ---- locks ----

#[test]
fn a_database_locked_past_the_busy_timeout_is_a_clear_error_and_nothing_is_written() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locked.db");
        let timeout = Duration::from_millis(300);
        let store = SqliteStorage::open_with(&path, SqliteOptions::new().busy_timeout(timeout))
            .await
            .unwrap();
        let repo = Repository::<User, _>::new(store);
        let mut user = repo.create(alice()).unwrap();
        repo.commit(&mut user).await.unwrap();

        let holder = raw(&path);
        holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
        user.update_name("Blocked".into()).unwrap();
        let started = Instant::now();
        let err = repo.commit(&mut user).await.unwrap_err();
        assert!(
            started.elapsed() >= timeout,
            "gave up after {:?}",
            started.elapsed()
        );
        let message = storage_error_of(StorageErrorKind::Busy, &err);
        assert_mentions(
            &message,
            &[
                &path.display().to_string(),
                "locked",
                "busy timeout",
                user.entity_id(),
            ],
        );
        assert_eq!(message.matches("store busy").count(), 1, "{message}");
        assert!(err.is_retryable());
        assert!(user.has_uncommitted(), "the queue is kept for a retry");
        // WAL: readers are not held up by the lock.
        let loaded = repo.find_one(user.entity_id()).await.unwrap().unwrap();
        assert_eq!(loaded.version(), 1);
        assert!(
            repo.storage()
                .read_document("notes", "n-1")
                .await
                .unwrap()
                .is_none()
        );
        // A document write goes through the same commit, waits for the same lock and fails the
        // same way.
        let started = Instant::now();
        let err = repo
            .storage()
            .commit(&UnitOfWork::new().document(DocumentWrite::put(
                "notes",
                "n-1",
                ExpectedRevision::Absent,
                r#"{"text":"hello"}"#,
            )))
            .await
            .unwrap_err();
        assert!(
            started.elapsed() >= timeout,
            "gave up after {:?}",
            started.elapsed()
        );
        let message = storage_error_of(StorageErrorKind::Busy, &err);
        assert_mentions(
            &message,
            &[
                &path.display().to_string(),
                "locked",
                "busy timeout",
                "document",
            ],
        );
        assert_eq!(message.matches("store busy").count(), 1, "{message}");

        holder.execute_batch("ROLLBACK").unwrap();
        assert_eq!(
            count_events(&path),
            1,
            "nothing of the failed commit is stored"
        );
        assert!(
            repo.storage()
                .read_document("notes", "n-1")
                .await
                .unwrap()
                .is_none()
        );
        let committed = repo.commit(&mut user).await.unwrap();
        assert_eq!(
            committed.version, 2,
            "the retry after the lock is gone succeeds"
        );
    });
}

#[test]
fn a_writer_waits_for_a_short_lock_instead_of_failing() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wait.db");
        let store = SqliteStorage::open(&path).await.unwrap();
        let holder = raw(&path);
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        // The lock is held from before the append starts until a while after: the append can
        // only succeed by waiting for it. (The pause is how long the lock is held, not a way to
        // order the two threads.)
        let hold = Duration::from_millis(200);
        let (go, started) = std::sync::mpsc::channel::<()>();
        let release = std::thread::spawn(move || {
            started.recv().unwrap();
            std::thread::sleep(hold);
            // Taken before the lock goes: the append cannot finish before this instant.
            let releasing = Instant::now();
            holder.execute_batch("COMMIT").unwrap();
            releasing
        });
        let begun = Instant::now();
        go.send(()).unwrap();
        append(
            &store,
            "counter",
            "c",
            ExpectedVersion::NoStream,
            &counter(3),
        )
        .await
        .unwrap();
        let finished = Instant::now();
        let releasing = release.join().unwrap();
        assert!(
            finished >= releasing,
            "the append finished before the lock was released"
        );
        assert!(finished - begun >= hold);
        assert_eq!(count_events(&path), 3);
    });
}

// ---- bad rows ----

#[test]
fn a_body_that_is_not_json_is_a_decode_error_naming_entity_and_version() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad-body.db");
        let repo = Repository::<User, _>::new(SqliteStorage::open(&path).await.unwrap());
        let mut user = repo.create(alice()).unwrap();
        user.update_name("Alice Cooper".into()).unwrap();
        user.tag_all(vec!["x".into()]).unwrap();
        repo.commit(&mut user).await.unwrap();

        let changed = raw(&path)
            .execute(
                "UPDATE events SET body = 'not json {' WHERE entity_id = ?1 AND version = 2",
                [user.entity_id()],
            )
            .unwrap();
        assert_eq!(changed, 1);

        for validate in [
            ventyd::LoadValidation::Always,
            ventyd::LoadValidation::Unverified,
            ventyd::LoadValidation::Never,
        ] {
            let repo = Repository::<User, _>::new(repo.storage().clone()).load_validation(validate);
            let err = repo.find_one(user.entity_id()).await.unwrap_err();
            let Error::Decode(decode) = &err else {
                panic!("expected a decode error, got {err:?}");
            };
            assert_eq!(decode.version, 2);
            assert_eq!(decode.entity_id, user.entity_id());
            assert_mentions(
                &err.to_string(),
                &["user:name_updated", "version 2", "user", user.entity_id()],
            );
        }
        // Time travel to before the bad row still works.
        let early = repo
            .find_one_at(user.entity_id(), 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(early.version(), 1);
        // The store itself has nothing against the row: its body is text. The log hands it out
        // as it is, for the reader to decode.
        let log = log_events(repo.storage()).await;
        assert_eq!(log[1].body, "not json {");
    });
}

#[test]
fn metadata_that_is_not_json_is_a_storage_error_naming_entity_version_and_file() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad-metadata.db");
        let store = SqliteStorage::open(&path).await.unwrap();
        // Another stream first, so that the bad row's position (3) is not its version (2).
        append(
            &store,
            "counter",
            "first",
            ExpectedVersion::NoStream,
            &counter(1),
        )
        .await
        .unwrap();
        append(
            &store,
            "counter",
            "m",
            ExpectedVersion::NoStream,
            &counter(2),
        )
        .await
        .unwrap();
        raw(&path)
            .execute(
                "UPDATE events SET metadata = '{oops' WHERE entity_id = 'm' AND version = 2",
                [],
            )
            .unwrap();
        let err = store
            .read_stream("counter", "m", ReadRange::ALL)
            .await
            .unwrap_err();
        assert_mentions(
            &storage_error_of(StorageErrorKind::Corrupt, &err),
            &[
                "counter \"m\"",
                "version 2",
                "position 3",
                "metadata",
                &path.display().to_string(),
            ],
        );
        // Up to the version before it, the stream reads.
        let early = store
            .read_stream("counter", "m", ReadRange::up_to(1))
            .await
            .unwrap();
        assert_eq!(early.len(), 1);
        // In the log the row is reported in its place.
        let log = whole_log(&store, 10).await;
        assert_eq!(log.len(), 3);
        let corrupt = log[2].event.as_ref().expect_err("the bad row");
        assert_eq!(corrupt.position, 3);
        assert_eq!(corrupt.error.kind(), StorageErrorKind::Corrupt);
        assert_mentions(corrupt.error.context(), &["position 3", "metadata"]);
    });
}

/// Writes five events, damages the row at position 3 with `damage` (raw SQL, CHECK
/// constraints off, as a hand edit or a bug elsewhere could), and checks that the log stays
/// readable around it: read in pages of 2, entries 1, 2, 4 and 5 are events, the entry at
/// position 3 is a corrupt-row report naming the position and the file, and its cursor resumes
/// right after it.
fn one_corrupt_row_leaves_the_log_readable(damage: &str, mentions: &[&str]) {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corrupt-row.db");
        let store = SqliteStorage::open(&path).await.unwrap();
        for id in ["a", "b", "c", "d", "e"] {
            append(
                &store,
                "counter",
                id,
                ExpectedVersion::NoStream,
                &counter(1),
            )
            .await
            .unwrap();
        }
        let conn = raw(&path);
        conn.execute_batch("PRAGMA ignore_check_constraints = ON")
            .unwrap();
        assert_eq!(conn.execute(damage, []).unwrap(), 1, "{damage}");
        drop(conn);

        let mut pages = Vec::new();
        let mut cursor = LogCursor::START;
        loop {
            let page = store.read_log(&LogRequest::new(cursor, 2)).await.unwrap();
            cursor = page.cursor;
            let at_head = page.at_head;
            pages.push(page);
            if at_head {
                break;
            }
            assert!(pages.len() < 10, "the log does not end");
        }
        let positions: Vec<Vec<u64>> = pages
            .iter()
            .map(|p| p.entries.iter().map(LogEntry::position).collect())
            .collect();
        assert_eq!(positions[..3], [vec![1, 2], vec![3, 4], vec![5]]);
        assert!(pages.iter().skip(3).all(|p| p.entries.is_empty()));
        let entries: Vec<&LogEntry> = pages.iter().flat_map(|p| &p.entries).collect();
        for (entry, id) in entries.iter().zip(["a", "b", "", "d", "e"]) {
            if entry.position() == 3 {
                continue;
            }
            let e = entry.event.as_ref().expect("a readable event");
            assert_eq!((e.entity_id.as_str(), e.version), (id, 1));
        }
        let bad = entries[2];
        let corrupt = bad.event.as_ref().expect_err("the damaged row is reported");
        assert_eq!(corrupt.position, 3);
        assert_eq!(corrupt.error.kind(), StorageErrorKind::Corrupt);
        assert_mentions(
            corrupt.error.context(),
            &["position 3", &path.display().to_string()],
        );
        assert_mentions(&corrupt.error.to_string(), mentions);
        assert_eq!(pages[1].corrupt().count(), 1);
        assert_eq!(pages[1].events().count(), 1);

        // Resuming from the corrupt entry's cursor goes on right after it; from the cursor
        // before it, the reader meets it again.
        let after = store
            .read_log(&LogRequest::new(bad.cursor, 10))
            .await
            .unwrap();
        assert_eq!(
            after
                .entries
                .iter()
                .map(LogEntry::position)
                .collect::<Vec<_>>(),
            [4, 5]
        );
        assert!(after.entries.iter().all(|e| e.event.is_ok()));
        let again = store
            .read_log(&LogRequest::new(entries[1].cursor, 1))
            .await
            .unwrap();
        assert_eq!(again.entries.len(), 1);
        assert_eq!(again.entries[0].position(), 3);
        let err = again.into_events().unwrap_err();
        assert_eq!(err.storage_kind(), Some(StorageErrorKind::Corrupt));

        // The stream of the damaged row cannot be read, and says why (also a row whose version
        // was damaged below 1); the others can.
        let read = store.read_stream("counter", "c", ReadRange::ALL).await;
        assert_mentions(
            &storage_error_of(StorageErrorKind::Corrupt, &read.unwrap_err()),
            &["position 3", &path.display().to_string()],
        );
        for id in ["a", "b", "d", "e"] {
            let events = store
                .read_stream("counter", id, ReadRange::ALL)
                .await
                .unwrap();
            assert_eq!(events.len(), 1);
        }
    });
}

#[test]
fn a_row_with_metadata_that_is_not_json_leaves_the_log_readable() {
    one_corrupt_row_leaves_the_log_readable(
        "UPDATE events SET metadata = 'not json' WHERE position = 3",
        &["metadata", "not valid JSON"],
    );
}

#[test]
fn a_row_with_an_event_name_that_is_not_utf8_leaves_the_log_readable() {
    // STRICT refuses a BLOB in a TEXT column; a cast makes TEXT holding invalid UTF-8.
    one_corrupt_row_leaves_the_log_readable(
        "UPDATE events SET event_name = CAST(X'FFFE' AS TEXT) WHERE position = 3",
        &[
            "cannot be read",
            "counter \"c\"",
            "event_name",
            "not valid UTF-8",
        ],
    );
}

#[test]
fn a_row_with_a_negative_version_leaves_the_log_readable() {
    one_corrupt_row_leaves_the_log_readable(
        "UPDATE events SET version = -1 WHERE position = 3",
        &[
            "cannot be read",
            "counter \"c\"",
            "its version holds -1",
            "out of range",
        ],
    );
}

#[test]
fn a_row_with_a_schema_version_out_of_range_leaves_the_log_readable() {
    one_corrupt_row_leaves_the_log_readable(
        "UPDATE events SET schema_version = -5 WHERE position = 3",
        &[
            "cannot be read",
            "counter \"c\"",
            "schema_version holds -5",
            "out of range",
        ],
    );
}

#[test]
fn a_row_whose_event_id_is_empty_leaves_the_log_readable() {
    // Any non-empty text is an event id (another writer's, say); an empty one is not.
    one_corrupt_row_leaves_the_log_readable(
        "UPDATE events SET event_id = '' WHERE position = 3",
        &[
            "cannot be read",
            "counter \"c\"",
            "event_id",
            "must not be empty",
        ],
    );
}

// ---- the storage contract, as this adapter implements it ----

#[test]
fn expected_versions_replays_and_reused_ids() {
    rt().block_on(async {
        let store = SqliteStorage::in_memory().await.unwrap();
        let first = counter(2);
        let outcome = append(&store, "counter", "a", ExpectedVersion::NoStream, &first)
            .await
            .unwrap();
        assert_eq!(outcome.version, 2);
        assert_eq!(outcome.positions(), [1, 2]);
        assert_eq!(outcome.events[0].recorded_at, outcome.events[1].recorded_at);

        // A retry of the same events returns what was stored, whatever it expects.
        for expected in [
            ExpectedVersion::NoStream,
            ExpectedVersion::Any,
            ExpectedVersion::Exact(7),
        ] {
            let again = append(&store, "counter", "a", expected, &first)
                .await
                .unwrap();
            assert_eq!(again, outcome);
        }

        let err = append(
            &store,
            "counter",
            "a",
            ExpectedVersion::Exact(1),
            &counter(1),
        )
        .await
        .unwrap_err();
        let Error::Concurrency {
            expected,
            actual,
            entity_id,
            ..
        } = &err
        else {
            panic!("expected a conflict, got {err:?}");
        };
        assert_eq!(
            (*expected, *actual, entity_id.as_str()),
            (ExpectedVersion::Exact(1), 2, "a")
        );

        // The same id with another body, or in another stream, is refused.
        let mut changed = first.clone();
        changed[1].body = r#"{"n":99}"#.into();
        let err = append(&store, "counter", "a", ExpectedVersion::Any, &changed)
            .await
            .unwrap_err();
        assert_mentions(
            &storage_error_of(StorageErrorKind::InvalidRequest, &err),
            &["different content", &first[1].event_id.to_string()],
        );
        let err = append(&store, "counter", "b", ExpectedVersion::NoStream, &first)
            .await
            .unwrap_err();
        assert_mentions(
            &storage_error_of(StorageErrorKind::InvalidRequest, &err),
            &["already stored in counter \"a\"", "counter \"b\""],
        );

        // A stored id later in a new append, or an id twice in one append: nothing is stored.
        let mut reused = counter(2);
        reused[1].event_id = first[0].event_id.clone();
        let err = append(&store, "counter", "c", ExpectedVersion::NoStream, &reused)
            .await
            .unwrap_err();
        assert_mentions(
            &storage_error_of(StorageErrorKind::InvalidRequest, &err),
            &["already stored", &first[0].event_id.to_string()],
        );
        let mut twice = counter(2);
        twice[1].event_id = twice[0].event_id.clone();
        let err = append(&store, "counter", "c", ExpectedVersion::NoStream, &twice)
            .await
            .unwrap_err();
        assert_mentions(
            &storage_error_of(StorageErrorKind::InvalidRequest, &err),
            &["appears twice", &twice[0].event_id.to_string()],
        );
        assert!(
            store
                .read_stream("counter", "c", ReadRange::ALL)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(log_events(&store).await.len(), 2);

        // A retry whose entity queued more events after the lost outcome: the stored ones are
        // recognised and only the rest is appended.
        let mut longer = first.clone();
        longer.extend(counter(1));
        let extended = append(&store, "counter", "a", ExpectedVersion::NoStream, &longer)
            .await
            .unwrap();
        assert_eq!(extended.version, 3);
        assert_eq!(extended.positions(), [1, 2, 3]);
        assert_eq!(extended.events[..2], outcome.events[..]);

        // Any appends after whatever is there.
        let any = append(&store, "counter", "a", ExpectedVersion::Any, &counter(1))
            .await
            .unwrap();
        assert_eq!((any.version, any.positions()), (4, vec![4]));
    });
}

#[test]
fn reads_by_range_and_the_log_by_cursor() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStorage::open(dir.path().join("reads.db"))
            .await
            .unwrap();
        for (id, n) in [("a", 5), ("b", 3), ("a", 2)] {
            append(&store, "counter", id, ExpectedVersion::Any, &counter(n))
                .await
                .unwrap();
        }
        let versions =
            |events: Vec<Arc<StoredEvent>>| events.iter().map(|e| e.version).collect::<Vec<_>>();
        let range = |from, to| ReadRange {
            from_version: from,
            to_version: to,
        };
        let read = |r| store.read_stream("counter", "a", r);
        assert_eq!(
            versions(read(ReadRange::ALL).await.unwrap()),
            [1, 2, 3, 4, 5, 6, 7]
        );
        assert_eq!(versions(read(range(3, Some(5))).await.unwrap()), [3, 4, 5]);
        assert_eq!(versions(read(range(6, None)).await.unwrap()), [6, 7]);
        assert_eq!(versions(read(ReadRange::up_to(2)).await.unwrap()), [1, 2]);
        assert!(read(range(5, Some(4))).await.unwrap().is_empty());
        assert!(read(range(u64::MAX, None)).await.unwrap().is_empty());
        assert!(
            store
                .read_stream("counter", "zzz", ReadRange::ALL)
                .await
                .unwrap()
                .is_empty()
        );

        let all = store
            .read_log(&LogRequest::new(LogCursor::START, 100))
            .await
            .unwrap();
        assert!(all.at_head);
        assert_eq!(all.entries.len(), 10);
        assert_eq!(all.cursor, all.entries[9].cursor);
        assert!(
            all.entries
                .windows(2)
                .all(|w| w[0].position() < w[1].position())
        );

        // A page of 3 after position 3.
        let page = store
            .read_log(&LogRequest::new(all.entries[2].cursor, 3))
            .await
            .unwrap();
        assert!(!page.at_head);
        assert_eq!(
            page.events()
                .map(|e| (e.position, e.entity_id.as_str(), e.version))
                .collect::<Vec<_>>(),
            [(4, "a", 4), (5, "a", 5), (6, "b", 1)]
        );
        let rest = store
            .read_log(&LogRequest::new(page.cursor, 10))
            .await
            .unwrap();
        assert!(rest.at_head);
        assert_eq!(
            rest.events().map(|e| e.position).collect::<Vec<_>>(),
            [7, 8, 9, 10]
        );
        // At the head: an empty page, and the cursor stays.
        let head = store
            .read_log(&LogRequest::new(rest.cursor, 10))
            .await
            .unwrap();
        assert!(head.at_head && head.entries.is_empty());
        assert_eq!(head.cursor, rest.cursor);
        // A page exactly up to the head says so.
        let exact = store
            .read_log(&LogRequest::new(page.cursor, 4))
            .await
            .unwrap();
        assert_eq!(exact.entries.len(), 4);
        assert!(exact.at_head);

        // A filtered read moves the cursor past what it skipped.
        let filtered = store
            .read_log(
                &LogRequest::new(LogCursor::START, 100)
                    .filter(LogFilter::all().entity_name("nobody")),
            )
            .await
            .unwrap();
        assert!(filtered.entries.is_empty() && filtered.at_head);
        let after = store
            .read_log(&LogRequest::new(filtered.cursor, 100))
            .await
            .unwrap();
        assert!(
            after.entries.is_empty(),
            "the filtered cursor is at the head"
        );
        let counters = store
            .read_log(
                &LogRequest::new(LogCursor::START, 2)
                    .filter(LogFilter::all().entity_name("counter")),
            )
            .await
            .unwrap();
        assert_eq!(counters.entries.len(), 2);

        let err = store
            .read_log(&LogRequest::new(LogCursor::START, 0))
            .await
            .unwrap_err();
        storage_error_of(StorageErrorKind::InvalidRequest, &err);
    });
}

#[test]
fn a_document_is_stored_with_its_events_or_not_at_all() {
    rt().block_on(async {
        let store = SqliteStorage::in_memory().await.unwrap();
        let collection = "ventyd.snapshots/counter";
        let snapshot =
            |version: u64| format!(r#"{{"version":{version},"state":{{"total":{version}}}}}"#);
        let events = counter(3);
        let at3 = snapshot(3);
        let unit = UnitOfWork::new()
            .append(AppendRequest::new(
                "counter",
                "s",
                ExpectedVersion::NoStream,
                &events,
            ))
            .document(DocumentWrite::put(
                collection,
                "s",
                ExpectedRevision::Absent,
                &at3,
            ));
        let outcome = store.commit(&unit).await.unwrap();
        assert_eq!(outcome.documents, [Some(1)]);
        assert_eq!(outcome.appends[0].version, 3);
        let stored = store.read_document(collection, "s").await.unwrap().unwrap();
        assert_eq!(
            (stored.revision, stored.body.as_str(), stored.updated_at),
            (1, at3.as_str(), outcome.recorded_at)
        );

        // A document at another revision, or an append that conflicts: neither is stored.
        let more = counter(2);
        let at5 = snapshot(5);
        // Two more events and the snapshot at 5, expecting the stream and the document at
        // `version` and `revision`.
        let unit = |version: u64, revision: u64| {
            UnitOfWork::new()
                .append(AppendRequest::new(
                    "counter",
                    "s",
                    ExpectedVersion::Exact(version),
                    &more,
                ))
                .document(DocumentWrite::put(
                    collection,
                    "s",
                    ExpectedRevision::Exact(revision),
                    &at5,
                ))
        };
        let err = store.commit(&unit(3, 4)).await.unwrap_err();
        let Error::DocumentConflict {
            key,
            expected,
            actual,
            ..
        } = &err
        else {
            panic!("expected a document conflict, got {err:?}");
        };
        assert_eq!(
            (key.as_str(), *expected, *actual),
            ("s", ExpectedRevision::Exact(4), Some(1))
        );
        let err = store.commit(&unit(2, 1)).await.unwrap_err();
        assert!(err.is_concurrency(), "{err:?}");
        let read_s = || store.read_stream("counter", "s", ReadRange::ALL);
        assert_eq!(read_s().await.unwrap().len(), 3);
        assert_eq!(
            store.read_document(collection, "s").await.unwrap(),
            Some(stored.clone())
        );

        // Both fit: both are stored; a retry of the same unit stores nothing again.
        let unit = unit(3, 1);
        let outcome = store.commit(&unit).await.unwrap();
        assert_eq!(outcome.documents, [Some(2)]);
        let retried = store.commit(&unit).await.unwrap();
        assert_eq!(retried, outcome, "the retry reports the stored outcome");
        assert_eq!(read_s().await.unwrap().len(), 5);
        let stored = store.read_document(collection, "s").await.unwrap().unwrap();
        assert_eq!((stored.revision, stored.body.as_str()), (2, at5.as_str()));

        // Documents on their own: written, listed in key order and paged, deleted; the log is
        // untouched.
        let unit = UnitOfWork::new()
            .document(DocumentWrite::put(
                "totals",
                "c",
                ExpectedRevision::Absent,
                "{}",
            ))
            .document(DocumentWrite::put(
                "totals",
                "a",
                ExpectedRevision::Any,
                "{}",
            ))
            .document(DocumentWrite::put(
                "totals",
                "b",
                ExpectedRevision::Absent,
                "{}",
            ));
        assert_eq!(
            store.commit(&unit).await.unwrap().documents,
            [Some(1), Some(1), Some(1)]
        );
        let page = store
            .list_documents(&DocumentRange::new("totals", 2))
            .await
            .unwrap();
        let keys = |p: &ventyd::storage::DocumentPage| {
            p.documents
                .iter()
                .map(|d| d.key.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            (keys(&page), page.next.as_deref()),
            (vec!["a".into(), "b".into()], Some("b"))
        );
        let page = store
            .list_documents(&DocumentRange::new("totals", 2).after("b"))
            .await
            .unwrap();
        assert_eq!((keys(&page), page.next), (vec!["c".to_owned()], None));
        let deleted = store
            .commit(&UnitOfWork::new().document(DocumentWrite::delete(
                collection,
                "s",
                ExpectedRevision::Exact(2),
            )))
            .await
            .unwrap();
        assert_eq!(deleted.documents, [None]);
        assert!(
            store
                .read_document(collection, "s")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .read_document(collection, "other")
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(log_events(&store).await.len(), 5);
    });
}

#[test]
fn in_memory_stores_are_private_to_their_clones() {
    rt().block_on(async {
        let a = SqliteStorage::in_memory().await.unwrap();
        let b = SqliteStorage::in_memory().await.unwrap();
        let a2 = a.clone();
        append(&a, "counter", "x", ExpectedVersion::NoStream, &counter(1))
            .await
            .unwrap();
        assert_eq!(log_events(&a2).await.len(), 1);
        assert!(log_events(&b).await.is_empty());
        assert_eq!(a.path(), None);
        // Each has its own identity: a cursor of one is refused by the other.
        let cursor = a
            .read_log(&LogRequest::new(LogCursor::START, 1))
            .await
            .unwrap()
            .cursor;
        a2.read_log(&LogRequest::new(cursor, 1)).await.unwrap();
        let err = b.read_log(&LogRequest::new(cursor, 1)).await.unwrap_err();
        assert_mentions(
            &storage_error_of(StorageErrorKind::InvalidRequest, &err),
            &["another store", ":memory:"],
        );
    });
}

/// A minimal executor with no tokio in it: polls, and parks the thread until woken.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => return v,
            std::task::Poll::Pending => std::thread::park(),
        }
    }
}

#[test]
fn works_without_a_tokio_runtime() {
    assert!(tokio::runtime::Handle::try_current().is_err());
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions::new()
        .synchronous(Synchronous::Normal)
        .readers(1);
    let store = block_on(SqliteStorage::open_with(
        dir.path().join("plain.db"),
        options,
    ))
    .unwrap();
    assert_eq!(store.options().get_synchronous(), Synchronous::Normal);
    let events = counter(2);
    let outcome = block_on(
        store.commit(
            &UnitOfWork::new()
                .append(AppendRequest::new(
                    "counter",
                    "p",
                    ExpectedVersion::NoStream,
                    &events,
                ))
                .document(DocumentWrite::put(
                    "totals",
                    "p",
                    ExpectedRevision::Absent,
                    "{}",
                )),
        ),
    )
    .unwrap();
    assert_eq!(outcome.appends[0].version, 2);
    let events = block_on(store.read_stream("counter", "p", ReadRange::ALL)).unwrap();
    assert_eq!(events.len(), 2);
    let page = block_on(store.read_log(&LogRequest::new(LogCursor::START, 10))).unwrap();
    assert_eq!(page.entries.len(), 2);
    let document = block_on(store.read_document("totals", "p")).unwrap();
    assert_eq!(document.map(|d| d.revision), Some(1));
}

#[test]
fn reads_queue_on_the_writer_without_readers() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStorage::open_with(
            dir.path().join("no-readers.db"),
            SqliteOptions::new().readers(0),
        )
        .await
        .unwrap();
        let events = counter(3);
        store
            .commit(
                &UnitOfWork::new()
                    .append(AppendRequest::new(
                        "counter",
                        "r",
                        ExpectedVersion::NoStream,
                        &events,
                    ))
                    .document(DocumentWrite::put(
                        "totals",
                        "r",
                        ExpectedRevision::Absent,
                        "{}",
                    )),
            )
            .await
            .unwrap();
        assert_eq!(log_events(&store).await.len(), 3);
        assert_eq!(
            store
                .read_stream("counter", "r", ReadRange::ALL)
                .await
                .unwrap()
                .len(),
            3
        );
        assert!(store.read_document("totals", "r").await.unwrap().is_some());
        let page = store
            .list_documents(&DocumentRange::new("totals", 10))
            .await
            .unwrap();
        assert_eq!(page.documents.len(), 1);
    });
}

#[test]
fn concurrent_tasks_in_one_process_keep_versions_gapless() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStorage::open(dir.path().join("tasks.db"))
            .await
            .unwrap();
        let repo = Repository::<User, _>::new(store);
        let mut user = repo.create(alice()).unwrap();
        repo.commit(&mut user).await.unwrap();
        let id = user.entity_id().to_owned();
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let repo = repo.clone();
                let id = id.clone();
                tokio::spawn(async move {
                    for i in 0..5 {
                        repo.update(&id, 100, |u| u.update_name(format!("t{t} n{i}")))
                            .await
                            .unwrap()
                            .unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let loaded = repo.find_one(&id).await.unwrap().unwrap();
        assert_eq!(loaded.version(), 41);
        let log = log_events(repo.storage()).await;
        assert_eq!(log.len(), 41);
        assert!(log.windows(2).all(|w| w[0].recorded_at <= w[1].recorded_at));
    });
}

// ---- the store's identity and clock ----

#[test]
fn a_log_cursor_belongs_to_its_file() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (path_a, path_b) = (dir.path().join("a.db"), dir.path().join("b.db"));
        let a = SqliteStorage::open(&path_a).await.unwrap();
        let b = SqliteStorage::open(&path_b).await.unwrap();
        for store in [&a, &b] {
            append(
                store,
                "counter",
                "c",
                ExpectedVersion::NoStream,
                &counter(3),
            )
            .await
            .unwrap();
        }
        let id = |path: &Path| format!("{:016x}", meta(path, "store_id").unwrap() as u64);
        assert_ne!(id(&path_a), id(&path_b), "two files, two identities");
        let cursor = a
            .read_log(&LogRequest::new(LogCursor::START, 1))
            .await
            .unwrap()
            .cursor;

        // Another file's store refuses the cursor, naming both stores.
        let err = b.read_log(&LogRequest::new(cursor, 10)).await.unwrap_err();
        assert_mentions(
            &storage_error_of(StorageErrorKind::InvalidRequest, &err),
            &[
                &cursor.to_string(),
                &id(&path_a),
                &id(&path_b),
                &path_b.display().to_string(),
            ],
        );
        // The start of the log is everyone's.
        assert_eq!(
            b.read_log(&LogRequest::new(LogCursor::START, 10))
                .await
                .unwrap()
                .entries
                .len(),
            3
        );

        // A second handle on the same file takes it, and resumes right after it.
        let a2 = SqliteStorage::open(&path_a).await.unwrap();
        let page = a2.read_log(&LogRequest::new(cursor, 10)).await.unwrap();
        assert_eq!(
            page.events().map(|e| e.position).collect::<Vec<_>>(),
            [2, 3]
        );

        // Saved as text (a projection's checkpoint) and read back after the file was closed
        // and reopened, it still resumes in the same place.
        let saved = cursor.to_string();
        drop((a, a2));
        let reopened = SqliteStorage::open(&path_a).await.unwrap();
        append(
            &reopened,
            "counter",
            "c",
            ExpectedVersion::Exact(3),
            &counter(1),
        )
        .await
        .unwrap();
        let restored: LogCursor = saved.parse().unwrap();
        let page = reopened
            .read_log(&LogRequest::new(restored, 10))
            .await
            .unwrap();
        assert_eq!(
            page.events().map(|e| e.position).collect::<Vec<_>>(),
            [2, 3, 4]
        );
        // A damaged cursor does not parse.
        let mut damaged = saved.clone();
        damaged.replace_range(
            damaged.len() - 1..,
            if saved.ends_with('0') { "1" } else { "0" },
        );
        assert!(damaged.parse::<LogCursor>().is_err(), "{damaged}");
    });
}

#[test]
fn recorded_at_is_the_stores_clock_and_never_goes_back() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clock.db");
        let store = SqliteStorage::open(&path).await.unwrap();
        // 2001-01-01T00:00:00.000Z, by a writer whose clock is far behind.
        let y2001 = Timestamp::from_millis(978_307_200_000);
        let old = [event("counter:added", r#"{"n":0}"#).created_at(y2001)];
        let before = Timestamp::now();
        let outcome = append(&store, "counter", "c", ExpectedVersion::NoStream, &old)
            .await
            .unwrap();
        let after = Timestamp::now();
        let recorded_at = outcome.events[0].recorded_at;
        assert!(
            before <= recorded_at && recorded_at <= after,
            "{before} <= {recorded_at} <= {after}"
        );
        let stored = store
            .read_stream("counter", "c", ReadRange::ALL)
            .await
            .unwrap();
        assert_eq!(
            stored[0].event_created_at, y2001,
            "the writer's time is kept"
        );
        assert_eq!(stored[0].recorded_at, recorded_at);
        let (created, recorded): (i64, i64) = raw(&path)
            .query_row("SELECT created_at, recorded_at FROM events", [], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .unwrap();
        assert_eq!(
            (created, recorded),
            (y2001.as_millis(), recorded_at.as_millis())
        );

        // Every event of one commit, in every stream of it, has the same time.
        let (x, y) = (counter(2), counter(3));
        let outcome = store
            .commit(
                &UnitOfWork::new()
                    .append(AppendRequest::new(
                        "counter",
                        "x",
                        ExpectedVersion::NoStream,
                        &x,
                    ))
                    .append(AppendRequest::new(
                        "counter",
                        "y",
                        ExpectedVersion::NoStream,
                        &y,
                    ))
                    .document(DocumentWrite::put(
                        "totals",
                        "x",
                        ExpectedRevision::Absent,
                        "{}",
                    )),
            )
            .await
            .unwrap();
        let log = log_events(&store).await;
        assert_eq!(log.len(), 6);
        assert!(
            log[1..]
                .iter()
                .all(|e| e.recorded_at == outcome.recorded_at)
        );
        let document = store.read_document("totals", "x").await.unwrap().unwrap();
        assert_eq!(document.updated_at, outcome.recorded_at);

        // Another process whose clock runs an hour ahead committed last: this store's commits
        // take that time rather than go back.
        let ahead = Timestamp::from_millis(Timestamp::now().as_millis() + 3_600_000);
        raw(&path)
            .execute(
                "UPDATE events SET recorded_at = ?1 WHERE position = 6",
                [ahead.as_millis()],
            )
            .unwrap();
        let outcome = append(
            &store,
            "counter",
            "c",
            ExpectedVersion::Exact(1),
            &counter(1),
        )
        .await
        .unwrap();
        assert_eq!(outcome.events[0].recorded_at, ahead);
        let log = log_events(&store).await;
        assert!(log.windows(2).all(|w| w[0].recorded_at <= w[1].recorded_at));
        assert_eq!(log[6].recorded_at, ahead);
    });
}

// ---- a foreign client ----

/// The `sqlite3` shell, which these tests need (Debian: `apt-get install -y sqlite3`).
fn sqlite3_json(path: &Path, sql: &str) -> Vec<serde_json::Value> {
    let output = Command::new("sqlite3")
        .arg("-json")
        .arg(path)
        .arg(sql)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "the sqlite3 shell is needed for this test and could not be run ({e}); \
                 install it (apt-get install -y sqlite3)"
            )
        });
    assert!(
        output.status.success(),
        "sqlite3 failed on {sql:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("sqlite3 writes UTF-8");
    if text.trim().is_empty() {
        return Vec::new();
    }
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("sqlite3 -json wrote {text:?}: {e}"))
}

#[test]
fn the_sqlite3_shell_reads_what_ventyd_wrote() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.db");
        let repo = Repository::<User, _>::new(SqliteStorage::open(&path).await.unwrap());
        let mut user = repo.create(alice()).unwrap();
        user.update_name("Alice".into()).unwrap();
        repo.commit(&mut user).await.unwrap();
        for i in 0..10 {
            user.tag_all(vec![format!("t{i}")]).unwrap();
            let key = user.entity_id().to_owned();
            repo.batch()
                .entity(&mut user)
                .put_document(
                    "tag-counts",
                    key,
                    ExpectedRevision::Any,
                    format!(r#"{{"tags":{}}}"#, i + 1),
                )
                .commit()
                .await
                .unwrap();
        }
        let log = log_events(repo.storage()).await;
        assert_eq!(log.len(), 12);

        // Read while the store is open: the shell sees every commit, through the WAL.
        let rows = sqlite3_json(
            &path,
            "SELECT e.position, e.event_id, e.entity_name, e.entity_id, e.version, \
             e.event_name, e.body, json_extract(e.body, '$.tag') AS tag, e.recorded_at, \
             r.recorded_at AS recorded_text, r.created_at AS created_text \
             FROM events e JOIN events_readable r USING (position) ORDER BY position",
        );
        assert_eq!(rows.len(), log.len());
        for (row, e) in rows.iter().zip(&log) {
            assert_eq!(row["position"], e.position);
            // The id as a person sees it, and as ventyd prints it.
            assert_eq!(row["event_id"], e.event_id.to_string());
            assert_eq!(row["entity_name"], "user");
            assert_eq!(row["entity_id"], e.entity_id);
            assert_eq!(row["version"], e.version);
            assert_eq!(row["event_name"], e.event_name);
            assert_eq!(row["body"], e.body);
            assert_eq!(row["recorded_at"], e.recorded_at.as_millis());
            assert_eq!(row["recorded_text"], e.recorded_at.to_string(), "{row}");
            assert_eq!(row["created_text"], e.event_created_at.to_string(), "{row}");
        }
        assert_eq!(rows[2]["tag"], "t0");
        assert_eq!(rows[11]["tag"], "t9");

        // And a foreign client writes an event with plain SQL (an id of its own making, as in
        // docs/adapters.md; times in milliseconds), which ventyd then loads.
        let written = sqlite3_json(
            &path,
            "INSERT INTO events (event_id, entity_name, entity_id, version, event_name, \
             schema_version, created_at, body, recorded_at) \
             VALUES ('evt_V1StGXR8_Z5jdHi6B', 'user', 'from-the-shell', 1, \
             'user:created', 1, 1733270400000, '{\"email\":\"shell@example.com\"}', \
             1733270400000) RETURNING position",
        );
        let readable = sqlite3_json(
            &path,
            "SELECT created_at, recorded_at FROM events_readable \
             WHERE entity_id = 'from-the-shell'",
        );
        assert_eq!(readable[0]["created_at"], "2024-12-04T00:00:00.000Z");
        assert_eq!(readable[0]["recorded_at"], "2024-12-04T00:00:00.000Z");
        let from_shell = repo.find_one("from-the-shell").await.unwrap().unwrap();
        assert_eq!(from_shell.state().email, "shell@example.com");
        let first = from_shell.events().next().unwrap();
        assert_eq!(first.event_id().to_string(), "evt_V1StGXR8_Z5jdHi6B");
        assert_eq!(first.position(), written[0]["position"].as_u64());

        let documents = sqlite3_json(
            &path,
            "SELECT collection, key, revision, body, json_extract(body, '$.tags') AS tags, \
             strftime('%Y-%m-%dT%H:%M:%fZ', updated_at / 1000.0, 'unixepoch') AS updated_text \
             FROM documents",
        );
        let document = repo
            .storage()
            .read_document("tag-counts", user.entity_id())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            documents,
            [serde_json::json!({
                "collection": "tag-counts",
                "key": user.entity_id(),
                "revision": 10,
                "body": r#"{"tags":10}"#,
                "tags": 10,
                "updated_text": document.updated_at.to_string(),
            })]
        );
        assert_eq!(document.updated_at, log[11].recorded_at);

        // And after it is closed, from the file alone.
        drop(repo);
        assert!(!Path::new(&format!("{}-wal", path.display())).exists());
        let meta_rows = sqlite3_json(&path, "SELECT key, value FROM ventyd_meta ORDER BY key");
        assert_eq!(meta_rows.len(), 2);
        assert_eq!(meta_rows[0]["key"], "schema_version");
        assert_eq!(meta_rows[0]["value"], SCHEMA_VERSION);
        assert_eq!(meta_rows[1]["key"], "store_id");
        let count = sqlite3_json(&path, "SELECT count(*) AS n FROM events");
        assert_eq!(count[0]["n"], 13, "ventyd's 12 and the shell's one");
    });
}

// ---- two processes ----

const STREAMS: usize = 3;
const PER_WRITER: usize = 300;
const CRASH_BATCH: usize = 20;

fn spawn_child(role: &str, path: &Path, stdout: Stdio) -> Child {
    Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "child_writer", "--nocapture", "--ignored"])
        .env(ROLE_VAR, role)
        .env(DB_VAR, path)
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the test binary as a child")
}

/// Waits for a child, killing it if it runs past `deadline`; returns its output.
fn finish(mut child: Child, deadline: Instant) -> (std::process::ExitStatus, String) {
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut out = String::new();
            for pipe in [
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn std::io::Read>),
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn std::io::Read>),
            ]
            .into_iter()
            .flatten()
            {
                let mut pipe = pipe;
                std::io::Read::read_to_string(&mut pipe, &mut out).ok();
            }
            return (status, out);
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            panic!("a child process ran past its deadline");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn two_processes_append_to_the_same_streams_without_losing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    // Each child writes little to its pipes, so waiting for one while the other runs cannot
    // block on a full pipe.
    let roles = ["writer-a", "writer-b"];
    let children: Vec<_> = roles
        .iter()
        .map(|role| (role, spawn_child(role, &path, Stdio::piped())))
        .collect();
    // Both children open the file, then start together, so that their appends overlap.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !roles.iter().all(|role| signal(&path, role).exists()) {
        assert!(Instant::now() < deadline, "the children did not get ready");
        std::thread::sleep(Duration::from_millis(2));
    }
    std::fs::write(signal(&path, "go"), b"").unwrap();
    for (role, child) in children {
        let (status, out) = finish(child, deadline);
        assert!(status.success(), "{role} failed:\n{out}");
        assert!(
            out.contains(&format!("{role}: done")),
            "{role} did not finish:\n{out}"
        );
        for line in out.lines().filter(|l| l.contains(": done")) {
            eprintln!("{line}");
        }
    }

    rt().block_on(async {
        let store = SqliteStorage::open(&path).await.unwrap();
        let mut seen = HashMap::new();
        let mut total = 0;
        for s in 0..STREAMS {
            let events = store
                .read_stream("counter", &format!("shared-{s}"), ReadRange::ALL)
                .await
                .unwrap();
            for (i, e) in events.iter().enumerate() {
                assert_eq!(e.version, i as u64 + 1, "versions are gapless");
                let body = e.body_value().unwrap();
                let key = (
                    body["writer"].as_str().unwrap().to_owned(),
                    body["seq"].as_u64().unwrap(),
                );
                assert!(seen.insert(key, s).is_none(), "an event is stored once");
            }
            total += events.len();
        }
        assert_eq!(total, 2 * PER_WRITER, "nothing lost, nothing doubled");
        let log = log_events(&store).await;
        assert_eq!(log.len(), 2 * PER_WRITER);
        assert!(log.windows(2).all(|w| w[0].position < w[1].position));
        // Commit times never decrease in log order, though two processes, each with its own
        // view of the clock, took turns committing.
        for w in log.windows(2) {
            assert!(
                w[0].recorded_at <= w[1].recorded_at,
                "position {} at {} comes before position {} at {}",
                w[0].position,
                w[0].recorded_at,
                w[1].position,
                w[1].recorded_at
            );
        }
        let writer = |e: &StoredEvent| e.body_value().unwrap()["writer"].clone();
        let switches = log
            .windows(2)
            .filter(|w| writer(&w[0]) != writer(&w[1]))
            .count();
        eprintln!("the global log switches writers {switches} times");
        assert!(switches > 0, "the two writers' commits did not interleave");
    });
}

/// A file beside the database through which the parent and its children signal each other.
fn signal(path: &Path, name: &str) -> PathBuf {
    PathBuf::from(format!("{}.{name}", path.display()))
}

/// Three times: a writer commits batches in a loop and is killed with SIGKILL at some point
/// of a commit; the file must reopen with every reported commit whole and nothing partial.
/// Each round's writer continues on the file the previous one left behind.
#[test]
fn a_writer_killed_mid_commit_leaves_only_whole_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    for round in 0..3u32 {
        let mut child = spawn_child("crasher", &path, Stdio::piped());
        let stdout = child.stdout.take().expect("stdout");
        let (lines, seen) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let wanted = 10 + 7 * round as usize;
        let mut reported = Vec::new();
        while reported.len() < wanted {
            let left = deadline.saturating_duration_since(Instant::now());
            match seen.recv_timeout(left) {
                Ok(line) => {
                    if let Some(n) = line.strip_prefix("committed ") {
                        reported.push(n.trim().parse::<usize>().expect("batch number"));
                    }
                }
                Err(_) => {
                    child.kill().ok();
                    let (_, out) = finish(child, Instant::now() + Duration::from_secs(5));
                    panic!("the writer stopped reporting commits ({reported:?}):\n{out}");
                }
            }
        }
        // Land the kill at different points of the next commit.
        std::thread::sleep(Duration::from_micros(150 * u64::from(round)));
        // SIGKILL on Unix: no destructor, no rollback, no checkpoint runs in the child.
        child.kill().expect("kill the writer");
        child.wait().expect("reap the writer");
        let last = *reported.last().expect("commits reported");

        let stored = check_whole_commits(&path);
        eprintln!("round {round}: commit {last} reported, {stored} whole commits stored");
        assert!(
            stored > last,
            "commits up to {last} were reported, {stored} are stored"
        );
    }
    let check: String = raw(&path)
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

/// Opens the crash test's file and checks it: gapless versions, every batch whole, batches
/// numbered 0, 1, 2, ... without a hole, positions increasing. Returns the number of batches.
fn check_whole_commits(path: &Path) -> usize {
    rt().block_on(async {
        let store = SqliteStorage::open(path).await.unwrap();
        let mut batches: BTreeMap<u64, usize> = BTreeMap::new();
        for s in 0..STREAMS {
            let events = store
                .read_stream("crash", &format!("stream-{s}"), ReadRange::ALL)
                .await
                .unwrap();
            for (i, e) in events.iter().enumerate() {
                assert_eq!(e.version, i as u64 + 1, "versions are gapless");
                let body = e.body_value().unwrap();
                *batches.entry(body["batch"].as_u64().unwrap()).or_default() += 1;
            }
        }
        for (batch, count) in &batches {
            assert_eq!(*count, CRASH_BATCH, "batch {batch} is partly stored");
        }
        let stored: Vec<u64> = batches.keys().copied().collect();
        assert!(
            stored.iter().enumerate().all(|(i, b)| *b == i as u64),
            "a commit is missing: {stored:?}"
        );
        let log = log_events(&store).await;
        assert_eq!(log.len(), stored.len() * CRASH_BATCH);
        assert!(log.windows(2).all(|w| w[0].position < w[1].position));
        // One commit time per commit, never decreasing, across the writers of every round.
        assert!(log.windows(2).all(|w| w[0].recorded_at <= w[1].recorded_at));
        for commit in log.chunks(CRASH_BATCH) {
            assert!(
                commit
                    .iter()
                    .all(|e| e.recorded_at == commit[0].recorded_at)
            );
        }
        stored.len()
    })
}

/// The child side of the process tests; does nothing unless started by one of them.
#[test]
#[ignore = "run as a child process by the process tests"]
fn child_writer() {
    let (Ok(role), Some(path)) = (std::env::var(ROLE_VAR), std::env::var_os(DB_VAR)) else {
        eprintln!("child_writer only runs as a child of the process tests");
        return;
    };
    let path = PathBuf::from(path);
    rt().block_on(async move {
        match role.as_str() {
            "crasher" => crash_writer(&path).await,
            writer => concurrent_writer(&path, writer).await,
        }
    });
}

/// Appends `PER_WRITER` events, one per commit, round-robin to shared streams; on a conflict it
/// takes the actual version and tries again. Any other error fails the child.
async fn concurrent_writer(path: &Path, role: &str) {
    let store = SqliteStorage::open(path)
        .await
        .unwrap_or_else(|e| panic!("{role}: {e}"));
    std::fs::write(signal(path, role), b"").unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    while !signal(path, "go").exists() {
        assert!(Instant::now() < until, "{role}: no go signal");
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut versions = [0u64; STREAMS];
    let mut conflicts = 0;
    for seq in 0..PER_WRITER {
        let s = seq % STREAMS;
        let stream = format!("shared-{s}");
        let events = [event(
            "counter:added",
            format!(r#"{{"writer":"{role}","seq":{seq}}}"#),
        )];
        loop {
            let request = AppendRequest::new(
                "counter",
                &stream,
                ExpectedVersion::after(versions[s]),
                &events,
            );
            match store.append(request).await {
                Ok(outcome) => {
                    versions[s] = outcome.version;
                    // A moment of other work between commits, as an application has, lets the
                    // other process take the lock in between.
                    std::thread::sleep(Duration::from_micros(200));
                    break;
                }
                Err(Error::Concurrency { actual, .. }) => {
                    conflicts += 1;
                    versions[s] = actual;
                }
                Err(other) => panic!("{role}: append {seq} failed: {other}"),
            }
        }
    }
    println!("{role}: done, {PER_WRITER} events, {conflicts} conflicts");
}

/// Commits batches of `CRASH_BATCH` events, each carrying its batch number, and reports each
/// commit on stdout, until it is killed (or gives up after a while, if nobody does).
async fn crash_writer(path: &Path) {
    let store = SqliteStorage::open(path).await.unwrap();
    // Continue where an earlier writer was killed.
    let mut versions = [0u64; STREAMS];
    for (s, version) in versions.iter_mut().enumerate() {
        *version = store
            .read_stream("crash", &format!("stream-{s}"), ReadRange::ALL)
            .await
            .unwrap()
            .len() as u64;
    }
    let first = versions.iter().sum::<u64>() as usize / CRASH_BATCH;
    let until = Instant::now() + Duration::from_secs(30);
    let pad = "x".repeat(300);
    for batch in first.. {
        if Instant::now() > until {
            break;
        }
        let s = batch % STREAMS;
        let events: Vec<NewEvent> = (0..CRASH_BATCH)
            .map(|i| {
                event(
                    "counter:added",
                    format!(r#"{{"batch":{batch},"i":{i},"pad":"{pad}"}}"#),
                )
            })
            .collect();
        let outcome = store
            .append(AppendRequest::new(
                "crash",
                &format!("stream-{s}"),
                ExpectedVersion::after(versions[s]),
                &events,
            ))
            .await
            .unwrap();
        versions[s] = outcome.version;
        println!("committed {batch}");
    }
}
