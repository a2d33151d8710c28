//! The SQLite store: files and schema, bad input, locks, two processes writing at once, and a
//! writer killed in the middle of its commits.
//!
//! The process tests run this test binary again as a child (`child_writer`, ignored unless
//! asked for) with its role and database file in environment variables.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use ventyd::prelude::*;
use ventyd::storage::sqlite::{SCHEMA_VERSION, SqliteOptions, Synchronous, rusqlite};
use ventyd::storage::{AppendRequest, ExpectedVersion, NewEvent, ReadRange, Snapshot};
use ventyd::{Error, IdGenerator, SqliteStorage, Timestamp, UuidV7};

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

// ---- files and schema ----

#[test]
fn reopening_a_file_finds_events_metadata_and_snapshots() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        let repo = Repository::<User, _>::new(SqliteStorage::open(&path).await.unwrap());
        let mut user = repo.create(alice()).unwrap();
        user.update_name("Alice Cooper".into()).unwrap();
        user.tag_all(vec!["a".into(), "b".into()]).unwrap();
        repo.commit_with(&mut user, Metadata::new().actor("admin").with("ip", "::1"))
            .await
            .unwrap();
        let snapshot = Snapshot {
            entity_name: "user".into(),
            entity_id: user.entity_id().into(),
            version: 4,
            schema_hash: "h1".into(),
            state: r#"{"email":"alice@example.com"}"#.into(),
            created_at: Timestamp::from_millis(1_700_000_000_123),
        };
        repo.storage().write_snapshot(&snapshot).await.unwrap();
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
        let metadata = after[3].metadata.as_deref().expect("metadata");
        assert_eq!(metadata.actor.as_deref(), Some("admin"));
        assert_eq!(metadata.extra["ip"], "::1");
        assert_eq!(
            store
                .read_snapshot("user", user.entity_id())
                .await
                .unwrap()
                .as_ref(),
            Some(&snapshot)
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
            .append(AppendRequest::new(
                "counter",
                "c",
                ExpectedVersion::NoStream,
                &counter(1),
            ))
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
        // STRICT: a body that is not text is refused by SQLite itself.
        let err = conn
            .execute("UPDATE events SET body = x'00ff'", [])
            .unwrap_err();
        assert!(err.to_string().contains("cannot store BLOB"), "{err}");
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for table in ["checkpoints", "events", "snapshots", "ventyd_meta", "views"] {
            assert!(
                tables.iter().any(|t| t == table),
                "{tables:?} lacks {table}"
            );
        }
    });
}

#[test]
fn opening_again_and_at_once_migrates_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("twice.db");
    // Several stores open a new file at the same moment, each on its own thread and runtime.
    let openers: Vec<_> = (0..4)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || {
                rt().block_on(async {
                    let store = SqliteStorage::open(&path).await.unwrap();
                    store
                        .append(AppendRequest::new(
                            "counter",
                            &UuidV7.event_id().to_string(),
                            ExpectedVersion::NoStream,
                            &counter(1),
                        ))
                        .await
                        .unwrap();
                })
            })
        })
        .collect();
    for opener in openers {
        opener.join().unwrap();
    }
    rt().block_on(async {
        let store = SqliteStorage::open(&path).await.unwrap();
        assert_eq!(store.read_all(1, 100).await.unwrap().len(), 4);
    });
    let version: i64 = raw(&path)
        .query_row(
            "SELECT value FROM ventyd_meta WHERE key = 'schema_version'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(version, i64::from(SCHEMA_VERSION));
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
            &storage_message(&err),
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
            &storage_message(&err),
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
        store
            .append(AppendRequest::new(
                "counter",
                "big",
                ExpectedVersion::NoStream,
                &events,
            ))
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
            &storage_message(&err),
            &[&path.display().to_string(), "corrupt"],
        );
    });
}

#[test]
fn a_database_with_foreign_tables_of_the_same_names_is_left_alone() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("foreign.db");
        raw(&path)
            .execute_batch("CREATE TABLE events (id INTEGER PRIMARY KEY, what TEXT);")
            .unwrap();
        let err = SqliteStorage::open(&path).await.unwrap_err();
        assert_mentions(
            &storage_message(&err),
            &[&path.display().to_string(), "events", "did not create"],
        );
    });
}

/// As root, permission bits do not stop a process, so this test uses paths that cannot be
/// created by anyone (a missing directory, a directory itself), and checks a read-only file and
/// directory only where the permission bits are in force.
#[test]
fn unwritable_paths_are_clear_errors() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();

        let missing = dir.path().join("no-such-dir").join("app.db");
        let err = SqliteStorage::open(&missing).await.unwrap_err();
        assert_mentions(
            &storage_message(&err),
            &[&missing.display().to_string(), "cannot open or create"],
        );
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
                &storage_message(&err),
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
        assert_mentions(
            &storage_message(&err),
            &[
                &path.display().to_string(),
                "locked",
                "busy timeout",
                user.entity_id(),
            ],
        );
        assert!(user.has_uncommitted(), "the queue is kept for a retry");
        // WAL: readers are not held up by the lock.
        let loaded = repo.find_one(user.entity_id()).await.unwrap().unwrap();
        assert_eq!(loaded.version(), 1);
        // A snapshot write waits for the same lock and fails the same way.
        let snapshot = Snapshot {
            entity_name: "user".into(),
            entity_id: user.entity_id().into(),
            version: 1,
            schema_hash: "h".into(),
            state: "{}".into(),
            created_at: Timestamp::now(),
        };
        let err = repo.storage().write_snapshot(&snapshot).await.unwrap_err();
        assert_mentions(&storage_message(&err), &["locked", "snapshot"]);

        holder.execute_batch("ROLLBACK").unwrap();
        assert_eq!(
            count_events(&path),
            1,
            "nothing of the failed commit is stored"
        );
        assert!(
            repo.storage()
                .read_snapshot("user", user.entity_id())
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
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            holder.execute_batch("COMMIT").unwrap();
        });
        store
            .append(AppendRequest::new(
                "counter",
                "c",
                ExpectedVersion::NoStream,
                &counter(3),
            ))
            .await
            .unwrap();
        release.join().unwrap();
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
    });
}

#[test]
fn metadata_that_is_not_json_is_a_storage_error_naming_entity_version_and_file() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad-metadata.db");
        let store = SqliteStorage::open(&path).await.unwrap();
        store
            .append(AppendRequest::new(
                "counter",
                "m",
                ExpectedVersion::NoStream,
                &counter(2),
            ))
            .await
            .unwrap();
        raw(&path)
            .execute("UPDATE events SET metadata = '{oops' WHERE version = 2", [])
            .unwrap();
        let err = store
            .read_stream("counter", "m", ReadRange::ALL)
            .await
            .unwrap_err();
        assert_mentions(
            &storage_message(&err),
            &[
                "counter \"m\"",
                "version 2",
                "metadata",
                &path.display().to_string(),
            ],
        );
        let err = store.read_all(1, 10).await.unwrap_err();
        assert_mentions(&storage_message(&err), &["version 2", "metadata"]);
    });
}

// ---- the storage contract, as this adapter implements it ----

#[test]
fn expected_versions_replays_and_reused_ids() {
    rt().block_on(async {
        let store = SqliteStorage::in_memory().await.unwrap();
        let first = counter(2);
        let outcome = store
            .append(AppendRequest::new(
                "counter",
                "a",
                ExpectedVersion::NoStream,
                &first,
            ))
            .await
            .unwrap();
        assert_eq!(outcome.version, 2);
        assert_eq!(outcome.positions, [1, 2]);

        // A retry of the same events returns what was stored, whatever it expects.
        for expected in [
            ExpectedVersion::NoStream,
            ExpectedVersion::Any,
            ExpectedVersion::Exact(7),
        ] {
            let again = store
                .append(AppendRequest::new("counter", "a", expected, &first))
                .await
                .unwrap();
            assert_eq!(again, outcome);
        }

        let err = store
            .append(AppendRequest::new(
                "counter",
                "a",
                ExpectedVersion::Exact(1),
                &counter(1),
            ))
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
        let err = store
            .append(AppendRequest::new(
                "counter",
                "a",
                ExpectedVersion::Any,
                &changed,
            ))
            .await
            .unwrap_err();
        assert_mentions(&storage_message(&err), &["different content"]);
        let err = store
            .append(AppendRequest::new(
                "counter",
                "b",
                ExpectedVersion::NoStream,
                &first,
            ))
            .await
            .unwrap_err();
        assert_mentions(&storage_message(&err), &["another stream"]);

        // A stored id later in a new append, or an id twice in one append: nothing is stored.
        let mut reused = counter(2);
        reused[1].event_id = first[0].event_id;
        let err = store
            .append(AppendRequest::new(
                "counter",
                "c",
                ExpectedVersion::NoStream,
                &reused,
            ))
            .await
            .unwrap_err();
        assert_mentions(
            &storage_message(&err),
            &["already stored", &first[0].event_id.to_string()],
        );
        let mut twice = counter(2);
        twice[1].event_id = twice[0].event_id;
        let err = store
            .append(AppendRequest::new(
                "counter",
                "c",
                ExpectedVersion::NoStream,
                &twice,
            ))
            .await
            .unwrap_err();
        assert_mentions(&storage_message(&err), &["already stored"]);
        assert!(
            store
                .read_stream("counter", "c", ReadRange::ALL)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.read_all(1, 100).await.unwrap().len(), 2);

        // Any appends after whatever is there.
        let any = store
            .append(AppendRequest::new(
                "counter",
                "a",
                ExpectedVersion::Any,
                &counter(1),
            ))
            .await
            .unwrap();
        assert_eq!((any.version, any.positions.as_slice()), (3, &[3][..]));
    });
}

#[test]
fn reads_by_range_and_from_a_position() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStorage::open(dir.path().join("reads.db"))
            .await
            .unwrap();
        for (id, n) in [("a", 5), ("b", 3), ("a", 2)] {
            store
                .append(AppendRequest::new(
                    "counter",
                    id,
                    ExpectedVersion::Any,
                    &counter(n),
                ))
                .await
                .unwrap();
        }
        let versions = |events: Vec<Arc<ventyd::storage::StoredEvent>>| {
            events.iter().map(|e| e.version).collect::<Vec<_>>()
        };
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

        let all = store.read_all(1, 100).await.unwrap();
        assert_eq!(all.len(), 10);
        assert!(all.windows(2).all(|w| w[0].position < w[1].position));
        let page = store.read_all(4, 3).await.unwrap();
        assert_eq!(
            page.iter().map(|e| e.position).collect::<Vec<_>>(),
            [4, 5, 6]
        );
        assert_eq!(
            page.iter()
                .map(|e| (e.entity_id.as_str(), e.version))
                .collect::<Vec<_>>(),
            [("a", 4), ("a", 5), ("b", 1)]
        );
        assert!(store.read_all(11, 10).await.unwrap().is_empty());
        assert!(store.read_all(1, 0).await.unwrap().is_empty());
    });
}

#[test]
fn a_snapshot_is_stored_with_its_events_or_not_at_all() {
    rt().block_on(async {
        let store = SqliteStorage::in_memory().await.unwrap();
        let snapshot = |version| Snapshot {
            entity_name: "counter".into(),
            entity_id: "s".into(),
            version,
            schema_hash: "h".into(),
            state: format!(r#"{{"total":{version}}}"#),
            created_at: Timestamp::from_millis(5),
        };
        let events = counter(3);
        let at3 = snapshot(3);
        store
            .append(
                AppendRequest::new("counter", "s", ExpectedVersion::NoStream, &events)
                    .with_snapshot(&at3),
            )
            .await
            .unwrap();
        assert_eq!(
            store.read_snapshot("counter", "s").await.unwrap(),
            Some(at3.clone())
        );

        // A snapshot that does not fit the append, or an append that conflicts: neither is stored.
        let at9 = snapshot(9);
        let more = counter(2);
        let err = store
            .append(
                AppendRequest::new("counter", "s", ExpectedVersion::Exact(3), &more)
                    .with_snapshot(&at9),
            )
            .await
            .unwrap_err();
        assert_mentions(&storage_message(&err), &["snapshot", "version 9"]);
        let at5 = snapshot(5);
        let err = store
            .append(
                AppendRequest::new("counter", "s", ExpectedVersion::Exact(2), &more)
                    .with_snapshot(&at5),
            )
            .await
            .unwrap_err();
        assert!(err.is_concurrency());
        assert_eq!(
            store
                .read_stream("counter", "s", ReadRange::ALL)
                .await
                .unwrap()
                .len(),
            3
        );
        assert_eq!(
            store.read_snapshot("counter", "s").await.unwrap(),
            Some(at3.clone())
        );

        // An older snapshot never replaces a newer one; a newer one does.
        store
            .append(
                AppendRequest::new("counter", "s", ExpectedVersion::Exact(3), &more)
                    .with_snapshot(&at5),
            )
            .await
            .unwrap();
        store.write_snapshot(&at3).await.unwrap();
        assert_eq!(
            store.read_snapshot("counter", "s").await.unwrap(),
            Some(at5.clone())
        );
        let at6 = snapshot(6);
        store.write_snapshot(&at6).await.unwrap();
        assert_eq!(
            store.read_snapshot("counter", "s").await.unwrap(),
            Some(at6)
        );
        assert!(
            store
                .read_snapshot("counter", "other")
                .await
                .unwrap()
                .is_none()
        );
    });
}

#[test]
fn in_memory_stores_are_private_to_their_clones() {
    rt().block_on(async {
        let a = SqliteStorage::in_memory().await.unwrap();
        let b = SqliteStorage::in_memory().await.unwrap();
        let a2 = a.clone();
        a.append(AppendRequest::new(
            "counter",
            "x",
            ExpectedVersion::NoStream,
            &counter(1),
        ))
        .await
        .unwrap();
        assert_eq!(a2.read_all(1, 10).await.unwrap().len(), 1);
        assert!(b.read_all(1, 10).await.unwrap().is_empty());
        assert_eq!(a.path(), None);
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
    let outcome = block_on(store.append(AppendRequest::new(
        "counter",
        "p",
        ExpectedVersion::NoStream,
        &counter(2),
    )))
    .unwrap();
    assert_eq!(outcome.version, 2);
    let events = block_on(store.read_stream("counter", "p", ReadRange::ALL)).unwrap();
    assert_eq!(events.len(), 2);
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
        store
            .append(AppendRequest::new(
                "counter",
                "r",
                ExpectedVersion::NoStream,
                &counter(3),
            ))
            .await
            .unwrap();
        assert_eq!(store.read_all(1, 10).await.unwrap().len(), 3);
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
        let repo = Arc::new(Repository::<User, _>::new(store));
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
        let log = store.read_all(1, 10 * PER_WRITER).await.unwrap();
        assert_eq!(log.len(), 2 * PER_WRITER);
        assert!(log.windows(2).all(|w| w[0].position < w[1].position));
        let writer = |e: &ventyd::storage::StoredEvent| e.body_value().unwrap()["writer"].clone();
        let switches = log
            .windows(2)
            .filter(|w| writer(&w[0]) != writer(&w[1]))
            .count();
        eprintln!("the global log switches writers {switches} times");
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
        let log = store.read_all(1, usize::MAX).await.unwrap();
        assert_eq!(log.len(), stored.len() * CRASH_BATCH);
        assert!(log.windows(2).all(|w| w[0].position < w[1].position));
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
