//! The writer thread's own tests: group commit keeps units apart, every caller gets its own
//! outcome, and a caller's timeout ends its wait while the file is locked.

use std::time::{Duration, Instant};

use super::{SqliteOptions, SqliteStorage, Synchronous};
use crate::id::{IdGenerator, UuidV7};
use crate::record::NewEvent;
use crate::storage::{AppendRequest, LogCursor, LogRequest, ReadRange, Storage};
use crate::version::ExpectedVersion;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn event(n: usize) -> NewEvent {
    NewEvent::new(UuidV7.event_id(), "t:n", format!(r#"{{"n":{n}}}"#))
}

#[test]
fn concurrent_commits_are_grouped_and_each_caller_gets_its_own_outcome() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let store = SqliteStorage::open(dir.path().join("g.db")).await.unwrap();
        let mut tasks = Vec::new();
        for t in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let id = format!("s{t}");
                for i in 0..25u64 {
                    let events = [event(i as usize)];
                    let expected = ExpectedVersion::after(i);
                    let out = store
                        .append(AppendRequest::new("t", &id, expected, &events))
                        .await
                        .unwrap();
                    assert_eq!(out.version, i + 1, "each caller gets its own outcome");
                    // A stale append in the same groups fails alone.
                    let stale = [event(99)];
                    let err = store
                        .append(AppendRequest::new("t", &id, expected, &stale))
                        .await
                        .unwrap_err();
                    assert!(err.is_concurrency(), "{err:?}");
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        for t in 0..8 {
            let events = store
                .read_stream("t", &format!("s{t}"), ReadRange::ALL)
                .await
                .unwrap();
            let ns: Vec<_> = events.iter().map(|e| e.version).collect();
            assert_eq!(ns, (1..=25).collect::<Vec<_>>());
            assert!(events.iter().all(|e| !e.body.contains("99")));
        }
        let page = store
            .read_log(&LogRequest::new(LogCursor::START, 1_000))
            .await
            .unwrap();
        assert_eq!(page.events().count(), 200);
        let times: Vec<_> = page.events().map(|e| e.recorded_at).collect();
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "commit times never decrease"
        );
    });
}

/// A lone commit with `synchronous=NORMAL` is first tried inline, on the caller's thread, on
/// either runtime; with `FULL` it goes to the writer thread. The four cases cover both paths.
fn both_runtimes_and_sync_modes() -> Vec<(&'static str, tokio::runtime::Runtime, Synchronous)> {
    let current = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    };
    vec![
        ("multi-thread, FULL", runtime(), Synchronous::Full),
        ("multi-thread, NORMAL", runtime(), Synchronous::Normal),
        ("current-thread, FULL", current(), Synchronous::Full),
        ("current-thread, NORMAL", current(), Synchronous::Normal),
    ]
}

#[test]
fn a_timeout_ends_the_wait_for_a_locked_file() {
    for (case, rt, sync) in both_runtimes_and_sync_modes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locked.db");
        rt.block_on(async {
            let options = SqliteOptions::new()
                .busy_timeout(Duration::from_secs(2))
                .synchronous(sync);
            let store = SqliteStorage::open_with(&path, options).await.unwrap();
            // Another connection (as another process would) holds the write lock.
            let other = rusqlite::Connection::open(&path).unwrap();
            other.execute_batch("BEGIN IMMEDIATE").unwrap();

            let events = [event(1)];
            let started = Instant::now();
            let result = tokio::time::timeout(
                Duration::from_millis(100),
                store.append(AppendRequest::new(
                    "t",
                    "x",
                    ExpectedVersion::NoStream,
                    &events,
                )),
            )
            .await;
            let waited = started.elapsed();
            assert!(
                result.is_err(),
                "{case}: the commit cannot finish while the file is locked"
            );
            assert!(
                waited < Duration::from_millis(1_000),
                "{case}: the timeout ended the wait after {waited:?}, not the 2 s busy timeout"
            );

            // The cancelled commit still completes once the lock is free; its retry is safe.
            other.execute_batch("COMMIT").unwrap();
            let out = store
                .append(AppendRequest::new(
                    "t",
                    "x",
                    ExpectedVersion::NoStream,
                    &events,
                ))
                .await
                .unwrap();
            assert_eq!(out.version, 1, "{case}");
            let stored = store.read_stream("t", "x", ReadRange::ALL).await.unwrap();
            assert_eq!(stored.len(), 1, "{case}: stored once");
        });
    }
}

#[test]
fn a_lone_commit_that_finds_the_file_locked_waits_for_the_lock_on_the_thread() {
    for (case, rt, sync) in both_runtimes_and_sync_modes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wait.db");
        rt.block_on(async {
            let options = SqliteOptions::new().synchronous(sync);
            let store = SqliteStorage::open_with(&path, options).await.unwrap();
            for round in 0..2u64 {
                let other = rusqlite::Connection::open(&path).unwrap();
                other.execute_batch("BEGIN IMMEDIATE").unwrap();
                let hold = Duration::from_millis(150);
                let release = std::thread::spawn(move || {
                    std::thread::sleep(hold);
                    let releasing = Instant::now();
                    other.execute_batch("COMMIT").unwrap();
                    releasing
                });
                let events = [event(round as usize)];
                let out = store
                    .append(AppendRequest::new(
                        "t",
                        "w",
                        ExpectedVersion::after(round),
                        &events,
                    ))
                    .await
                    .unwrap();
                let finished = Instant::now();
                assert_eq!(out.version, round + 1, "{case}");
                assert!(
                    finished >= release.join().unwrap(),
                    "{case}: the commit finished before the lock was released"
                );
                // With the lock free, a lone commit goes through at once.
                let events = [event(10 + round as usize)];
                let out = store
                    .append(AppendRequest::new(
                        "t",
                        "free",
                        ExpectedVersion::after(round),
                        &events,
                    ))
                    .await
                    .unwrap();
                assert_eq!(out.version, round + 1, "{case}");
            }
        });
    }
}

#[test]
fn a_stored_prefix_is_recognised_and_only_the_rest_is_appended() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let store = SqliteStorage::open(dir.path().join("p.db")).await.unwrap();
        let first = [event(1), event(2)];
        let a = store
            .append(AppendRequest::new(
                "t",
                "p",
                ExpectedVersion::NoStream,
                &first,
            ))
            .await
            .unwrap();
        let more = [first[0].clone(), first[1].clone(), event(3)];
        for expected in [ExpectedVersion::NoStream, ExpectedVersion::Any] {
            let b = store
                .append(AppendRequest::new("t", "p", expected, &more))
                .await
                .unwrap();
            assert_eq!(b.version, 3);
            assert_eq!(
                b.events[..2],
                a.events[..],
                "the stored events keep their places"
            );
        }
        assert_eq!(
            store
                .read_stream("t", "p", ReadRange::ALL)
                .await
                .unwrap()
                .len(),
            3
        );
    });
}

#[test]
fn a_unit_whose_write_fails_in_a_group_fails_alone_and_the_others_commit_once() {
    use super::write::{OwnedUnit, commit_group};
    use crate::storage::UnitOfWork;

    let ctx = super::Ctx {
        path: None,
        label: ":memory:".to_owned(),
        options: SqliteOptions::new(),
        origin: 0,
    };
    let mut conn = super::schema::open_memory(&ctx).unwrap();
    let taken = event(0);
    let first = [taken.clone()];
    let stored = commit_group(
        &mut conn,
        &ctx,
        &[UnitOfWork::new().append(AppendRequest::new(
            "t",
            "a",
            ExpectedVersion::NoStream,
            &first,
        ))],
    );
    assert!(stored[0].is_ok(), "{stored:?}");

    // b is fine; c reuses a's event id, which only its insert finds (its expected version
    // holds), after b was written in the same transaction; d expects a version its stream is
    // not at, which its checks find before it writes.
    let (b, d) = ([event(1)], [event(3)]);
    let reused = [event(2), taken.clone()];
    let units = [
        OwnedUnit::new(&UnitOfWork::new().append(AppendRequest::new(
            "t",
            "b",
            ExpectedVersion::NoStream,
            &b,
        ))),
        OwnedUnit::new(&UnitOfWork::new().append(AppendRequest::new(
            "t",
            "c",
            ExpectedVersion::NoStream,
            &reused,
        ))),
        OwnedUnit::new(&UnitOfWork::new().append(AppendRequest::new(
            "t",
            "d",
            ExpectedVersion::Exact(5),
            &d,
        ))),
    ];
    let units: Vec<_> = units.iter().map(OwnedUnit::unit).collect();
    let results = commit_group(&mut conn, &ctx, &units);
    assert_eq!(results.len(), 3);
    let b_outcome = results[0].as_ref().expect("b commits");
    assert_eq!(b_outcome.appends[0].version, 1);
    let c_error = results[1]
        .as_ref()
        .expect_err("c reuses a stored event id")
        .to_string();
    assert!(
        c_error.contains(&taken.event_id.to_string()) && c_error.contains("already stored"),
        "{c_error}"
    );
    assert!(
        results[2]
            .as_ref()
            .expect_err("d is at the wrong version")
            .is_concurrency(),
        "{:?}",
        results[2]
    );
    let rows = |stream: &str| -> Vec<(i64, String)> {
        let mut stmt = conn
            .prepare("SELECT version, body FROM events WHERE entity_id = ?1 ORDER BY version")
            .unwrap();
        stmt.query_map([stream], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(
        rows("b"),
        [(1, r#"{"n":1}"#.to_owned())],
        "b is stored once"
    );
    assert!(rows("c").is_empty(), "nothing of c is stored");
    assert!(rows("d").is_empty(), "nothing of d is stored");
    assert_eq!(rows("a").len(), 1);
}

#[test]
fn commits_and_reads_work_inside_a_local_set_and_on_the_blocking_pool() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let store = rt
        .block_on(SqliteStorage::open(dir.path().join("local.db")))
        .unwrap();
    // A `LocalSet` on the multi-threaded runtime, where `tokio::task::block_in_place` panics:
    // the store must not use it, for commits or for reads.
    let local = tokio::task::LocalSet::new();
    let in_local = store.clone();
    local.block_on(&rt, async move {
        for (i, expected) in [ExpectedVersion::NoStream, ExpectedVersion::after(1)]
            .into_iter()
            .enumerate()
        {
            let events = [event(i)];
            let out = in_local
                .append(AppendRequest::new("t", "local", expected, &events))
                .await
                .unwrap();
            assert_eq!(out.version, i as u64 + 1);
        }
        let read = in_local
            .read_stream("t", "local", ReadRange::ALL)
            .await
            .unwrap();
        assert_eq!(read.len(), 2);
    });
    // A thread of tokio's blocking pool, which has the runtime's handle but is no worker.
    let on_pool = store.clone();
    rt.block_on(async move {
        tokio::task::spawn_blocking(move || {
            tokio::runtime::Handle::current().block_on(async {
                let events = [event(3)];
                let out = on_pool
                    .append(AppendRequest::new(
                        "t",
                        "local",
                        ExpectedVersion::after(2),
                        &events,
                    ))
                    .await
                    .unwrap();
                assert_eq!(out.version, 3);
            })
        })
        .await
        .unwrap();
    });
}

#[test]
fn every_connection_plans_each_statement_once() {
    use rusqlite::config::DbConfig;

    let dir = tempfile::tempdir().unwrap();
    let ctx = super::Ctx {
        path: Some(dir.path().join("plans.db")),
        label: "plans.db".to_owned(),
        options: SqliteOptions::new(),
        origin: 0,
    };
    // Without the guarantee, a cached statement comparing a column with a parameter is
    // compiled again each time it leaves rusqlite's statement cache.
    let connections = [
        (
            "the writer of a file",
            super::schema::open_file(&ctx).unwrap(),
        ),
        ("a reader of a file", super::open_reader(&ctx).unwrap()),
        (
            "an in-memory store",
            super::schema::open_memory(&ctx).unwrap(),
        ),
    ];
    for (which, conn) in connections {
        assert!(
            conn.db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG)
                .unwrap(),
            "{which}: the query planner stability guarantee is off"
        );
    }
}

#[test]
fn a_path_sqlite_would_take_for_a_uri_or_memory_is_made_literal() {
    use std::path::Path;

    use super::schema::literal_path;
    for (given, handed) in [
        ("file:x.db", "./file:x.db"),
        (
            "file:x.db?mode=memory&nolock=1",
            "./file:x.db?mode=memory&nolock=1",
        ),
        (":memory:", "./:memory:"),
        ("/data/file:x.db", "/data/file:x.db"),
        ("data/file:x.db", "data/file:x.db"),
        ("files.db", "files.db"),
        ("./:memory:", "./:memory:"),
    ] {
        let path = literal_path(Path::new(given));
        assert_eq!(path.as_os_str(), handed, "{given}");
    }
}
