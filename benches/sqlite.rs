//! The SQLite store beside a raw baseline, measured in the same run: the baseline runs the same
//! SQL through the same driver (rusqlite, bundled SQLite) with the same pragmas on a file with
//! the same schema, without ventyd (no async hand-off, no envelope, no validation).
//!
//! - commits of 1 and of 100 events, `synchronous=FULL` (the default) and `NORMAL`, each as
//!   `Storage::append`, as `Repository::commit` (the mutation that queues the events runs
//!   outside the timing) and as the baseline: `BEGIN IMMEDIATE`, read the stream's version,
//!   insert the rows, `COMMIT`;
//! - loading a 10,000-event entity: `Repository::find_one` trusting the store and validating on
//!   load, and the baseline: the same `SELECT`, each body decoded with serde into a hand-written
//!   event type, folded into the state, envelopes kept (as an entity keeps its history); and
//!   that baseline once more reading each event's commit time too (`recorded_at`), which ventyd
//!   hands out with every event.
//!
//! ventyd's calls run as tasks on a two-worker multi-threaded tokio runtime, where a server's
//! request handlers run; single-event appends are also shown from a current-thread runtime,
//! where the store must hand its work to tokio's blocking pool. Each side has its own file in
//! one temporary directory, and each routine times only its commit or load (criterion
//! `iter_custom`): building the events, and mutating the entity, happen outside the timing.
//! Breakdowns show the rows alone: read into owned strings by rusqlite, and read into
//! `StoredEvent`s by the store.
//!
//! Run: `cargo bench --bench sqlite` (or, quicker,
//! `cargo bench --bench sqlite -- --warm-up-time 1 --measurement-time 3`).

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use serde::Deserialize;
use ventyd::ExpectedVersion;
use ventyd::prelude::*;
use ventyd::storage::sqlite::{SqliteOptions, Synchronous};
use ventyd::storage::{AppendRequest, NewEvent, ReadRange};
use ventyd::{IdGenerator, SqliteStorage, Timestamp, Uuid, UuidV7};

mod common;

use common::*;

fn multi_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime")
}

fn options(sync: Synchronous) -> SqliteOptions {
    SqliteOptions::new().synchronous(sync)
}

fn sync_name(sync: Synchronous) -> &'static str {
    match sync {
        Synchronous::Full => "FULL",
        _ => "NORMAL",
    }
}

// ---- the raw baseline: the same SQL and pragmas through rusqlite, no ventyd ----

const RAW_STREAM_VERSION: &str = "SELECT version FROM events \
    WHERE entity_name = ?1 AND entity_id = ?2 ORDER BY version DESC LIMIT 1";

const RAW_INSERT: &str = "INSERT INTO events \
    (event_id, entity_name, entity_id, version, event_name, schema_version, created_at, body, metadata) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

const RAW_READ_STREAM: &str = "SELECT position, event_id, event_name, version, schema_version, \
    created_at, metadata, body FROM events \
    WHERE entity_name = ?1 AND entity_id = ?2 AND version >= ?3 AND version <= ?4 \
    ORDER BY version";

/// [`RAW_READ_STREAM`] with the commit time of each event, which every event carries since the
/// storage seam's second cut.
const RAW_READ_STREAM_WITH_TIMES: &str = "SELECT position, event_id, event_name, version, \
    schema_version, created_at, metadata, body, recorded_at FROM events \
    WHERE entity_name = ?1 AND entity_id = ?2 AND version >= ?3 AND version <= ?4 \
    ORDER BY version";

/// A connection to a file whose tables ventyd created, with ventyd's pragmas.
fn raw_connection(path: &Path, sync: Synchronous) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.busy_timeout(Duration::from_secs(5)).expect("timeout");
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .expect("wal");
    assert_eq!(mode, "wal");
    // ventyd's connections plan each statement once (see `ventyd::storage::sqlite`); so does the
    // baseline's, or its cached statements would be compiled again at every use.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .expect("qpsg");
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {}; PRAGMA foreign_keys = ON;",
        sync_name(sync)
    ))
    .expect("pragmas");
    conn
}

struct RawNew {
    event_id: Uuid,
    event_name: &'static str,
    created_at: i64,
    body: String,
}

fn raw_events(n: usize) -> Vec<RawNew> {
    (0..n)
        .map(|i| RawNew {
            event_id: UuidV7.uuid(),
            event_name: "user:name_updated",
            created_at: Timestamp::now().as_millis(),
            body: format!(r#"{{"name":"Name number {i}"}}"#),
        })
        .collect()
}

/// `BEGIN IMMEDIATE`, the stream's version, the inserts, `COMMIT`: what an event store must do
/// at the least to append with an expected-version check.
fn raw_append(
    conn: &mut rusqlite::Connection,
    entity_id: &str,
    expected: u64,
    events: &[RawNew],
) -> u64 {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .expect("begin");
    let actual: u64 = tx
        .prepare_cached(RAW_STREAM_VERSION)
        .expect("prepare")
        .query_row(rusqlite::params!["user", entity_id], |row| {
            row.get::<_, i64>(0)
        })
        .map_or(0, |v| v as u64);
    assert_eq!(actual, expected, "the baseline checks its expected version");
    {
        let mut insert = tx.prepare_cached(RAW_INSERT).expect("prepare");
        for (i, e) in events.iter().enumerate() {
            insert
                .execute(rusqlite::params![
                    e.event_id
                        .hyphenated()
                        .encode_lower(&mut Uuid::encode_buffer()) as &str,
                    "user",
                    entity_id,
                    (actual + i as u64 + 1) as i64,
                    e.event_name,
                    1u32,
                    e.created_at,
                    &e.body,
                    None::<&str>,
                ])
                .expect("insert");
        }
    }
    tx.commit().expect("commit");
    actual + events.len() as u64
}

#[derive(Deserialize)]
struct RawCreated {
    email: String,
    name: Option<String>,
}

#[derive(Deserialize)]
struct RawNameUpdated {
    name: String,
}

#[derive(Deserialize)]
struct RawDeleted {
    reason: String,
}

enum RawEvent {
    Created(RawCreated),
    NameUpdated(RawNameUpdated),
    Deleted(RawDeleted),
}

#[allow(dead_code)]
struct RawEnvelope {
    position: i64,
    event_id: Uuid,
    version: i64,
    schema_version: u32,
    created_at: i64,
    metadata: Option<String>,
    recorded_at: Option<i64>,
    event: RawEvent,
}

#[derive(Default)]
struct RawUser {
    email: String,
    name: Option<String>,
    renames: u64,
    deleted: Option<String>,
}

fn raw_fold(state: &mut RawUser, e: &RawEvent) {
    match e {
        RawEvent::Created(c) => {
            state.email = c.email.clone();
            state.name = c.name.clone();
        }
        RawEvent::NameUpdated(u) => {
            state.name = Some(u.name.clone());
            state.renames += 1;
        }
        RawEvent::Deleted(d) => state.deleted = Some(d.reason.clone()),
    }
}

/// The same `SELECT` as the store, every body decoded with serde by its event name, folded, and
/// the envelopes kept; with `times`, each event's commit time is read and kept too.
fn raw_load(
    conn: &rusqlite::Connection,
    entity_id: &str,
    times: bool,
) -> (RawUser, Vec<RawEnvelope>) {
    let sql = if times {
        RAW_READ_STREAM_WITH_TIMES
    } else {
        RAW_READ_STREAM
    };
    let mut stmt = conn.prepare_cached(sql).expect("prepare");
    let mut rows = stmt
        .query(rusqlite::params!["user", entity_id, 1i64, i64::MAX])
        .expect("query");
    let mut state = RawUser::default();
    let mut history = Vec::new();
    while let Some(row) = rows.next().expect("row") {
        let name = row.get_ref(2).and_then(|v| Ok(v.as_str()?)).expect("name");
        let body = row.get_ref(7).and_then(|v| Ok(v.as_str()?)).expect("body");
        let event = match name {
            "user:created" => RawEvent::Created(serde_json::from_str(body).expect("decode")),
            "user:name_updated" => {
                RawEvent::NameUpdated(serde_json::from_str(body).expect("decode"))
            }
            "user:removed" => RawEvent::Deleted(serde_json::from_str(body).expect("decode")),
            other => panic!("unknown event {other}"),
        };
        raw_fold(&mut state, &event);
        history.push(RawEnvelope {
            position: row.get(0).expect("position"),
            event_id: row
                .get_ref(1)
                .and_then(|v| Ok(Uuid::try_parse(v.as_str()?).expect("a UUID")))
                .expect("id"),
            version: row.get(3).expect("version"),
            schema_version: row.get(4).expect("schema version"),
            created_at: row.get(5).expect("created at"),
            metadata: row.get(6).expect("metadata"),
            recorded_at: if times {
                row.get(8).expect("recorded at")
            } else {
                None
            },
            event,
        });
    }
    (state, history)
}

/// The same `SELECT`, each row copied into owned strings, nothing decoded: what reading into
/// `StoredEvent`s costs without ventyd.
fn raw_rows(conn: &rusqlite::Connection, entity_id: &str) -> Vec<(i64, Uuid, String, i64, String)> {
    let mut stmt = conn.prepare_cached(RAW_READ_STREAM).expect("prepare");
    stmt.query_map(
        rusqlite::params!["user", entity_id, 1i64, i64::MAX],
        |row| {
            Ok((
                row.get(0)?,
                Uuid::try_parse(row.get_ref(1)?.as_str()?).expect("a UUID"),
                row.get(2)?,
                row.get(3)?,
                row.get(7)?,
            ))
        },
    )
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

// ---- commits ----

fn new_events(n: usize) -> Vec<NewEvent> {
    (0..n)
        .map(|i| {
            NewEvent::new(
                UuidV7.event_id(),
                "user:name_updated",
                format!(r#"{{"name":"Name number {i}"}}"#),
            )
        })
        .collect()
}

/// Runs `f` as a task on the runtime's workers, where a server's request handlers run, and
/// waits for it.
fn on_worker<T: Send + 'static>(
    rt: &tokio::runtime::Runtime,
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    rt.block_on(async move { tokio::spawn(f).await.expect("task") })
}

/// Appends `n` events per iteration through `Storage::append`, timing only the append.
fn bench_append(
    b: &mut criterion::Bencher<'_>,
    rt: &tokio::runtime::Runtime,
    store: &SqliteStorage,
    version: &Arc<AtomicU64>,
    n: usize,
    worker: bool,
) {
    b.iter_custom(|iters| {
        let (store, version) = (store.clone(), version.clone());
        let run = async move {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let events = new_events(n);
                let expected = ExpectedVersion::after(version.load(Ordering::Relaxed));
                let request = AppendRequest::new("user", "bench", expected, black_box(&events));
                let start = Instant::now();
                let outcome = store.append(request).await.expect("append");
                spent += start.elapsed();
                version.store(outcome.version, Ordering::Relaxed);
            }
            spent
        };
        if worker {
            on_worker(rt, run)
        } else {
            rt.block_on(run)
        }
    })
}

fn commits(c: &mut Criterion) {
    let multi = multi_rt();
    let current = rt();
    for n in [1usize, 100] {
        for sync in [Synchronous::Full, Synchronous::Normal] {
            let mut g = c.benchmark_group(format!("sqlite_commit_{n}_{}", sync_name(sync)));
            let dir = tempfile::tempdir().expect("temp dir");
            let open = |name: &str| {
                current
                    .block_on(SqliteStorage::open_with(
                        dir.path().join(name),
                        options(sync),
                    ))
                    .expect("open")
            };

            // Criterion calls each routine several times (warm-up, samples); the stores and
            // the versions they are at live outside, so every call appends where the last left.
            let raw_path = dir.path().join("raw.db");
            drop(open("raw.db"));
            let mut conn = raw_connection(&raw_path, sync);
            let mut raw_version = 0;
            g.bench_function(format!("baseline: rusqlite append {n}"), |b| {
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        let events = raw_events(n);
                        let start = Instant::now();
                        raw_version =
                            raw_append(&mut conn, "bench", raw_version, black_box(&events));
                        spent += start.elapsed();
                    }
                    spent
                })
            });

            let store = open("append.db");
            let version = Arc::new(AtomicU64::new(0));
            g.bench_function(format!("ventyd: Storage::append {n}"), |b| {
                bench_append(b, &multi, &store, &version, n, true)
            });

            let repo = Arc::new(Repository::<User, _>::new(open("commit.db")));
            let mut user = repo.create(alice()).expect("create");
            multi.block_on(repo.commit(&mut user)).expect("commit");
            let user = Arc::new(std::sync::Mutex::new(Some(user)));
            let renames = Arc::new(AtomicU64::new(0));
            g.bench_function(format!("ventyd: Repository::commit {n}"), |b| {
                b.iter_custom(|iters| {
                    let (repo, user, renames) = (repo.clone(), user.clone(), renames.clone());
                    on_worker(&multi, async move {
                        let mut entity = user.lock().expect("user").take().expect("entity");
                        let mut spent = Duration::ZERO;
                        for _ in 0..iters {
                            // The mutations (encode, validate, apply, queue) are not timed.
                            for _ in 0..n {
                                let i = renames.fetch_add(1, Ordering::Relaxed);
                                entity
                                    .update_name(format!("Name number {i}"))
                                    .expect("rename");
                            }
                            let start = Instant::now();
                            black_box(repo.commit(&mut entity).await.expect("commit"));
                            spent += start.elapsed();
                        }
                        *user.lock().expect("user") = Some(entity);
                        spent
                    })
                })
            });

            if n == 1 {
                let store = open("current-thread.db");
                let version = Arc::new(AtomicU64::new(0));
                g.bench_function(
                    format!("ventyd: Storage::append {n}, current-thread runtime"),
                    |b| bench_append(b, &current, &store, &version, n, false),
                );
            }
            g.finish();
        }
    }
}

// ---- group commit ----

/// How many tasks commit at once in the group-commit benchmark.
const TASKS: usize = 8;

/// Eight tasks, each committing one event at a time to its own entity, with
/// `synchronous=FULL`: one iteration is one commit by each task (eight commits). The baseline
/// commits the same eight events through rusqlite, each in its own transaction, one after the
/// other on one connection (the fastest a per-transaction writer gets: connections of their
/// own would only wait for each other's lock).
fn group_commits(c: &mut Criterion) {
    let multi = multi_rt();
    let mut g = c.benchmark_group(format!("sqlite_group_commit_{TASKS}_tasks_FULL"));
    let dir = tempfile::tempdir().expect("temp dir");
    let raw_path = dir.path().join("raw.db");
    drop(
        multi
            .block_on(SqliteStorage::open_with(
                &raw_path,
                options(Synchronous::Full),
            ))
            .expect("open"),
    );
    let mut conn = raw_connection(&raw_path, Synchronous::Full);
    let mut raw_versions = [0u64; TASKS];
    g.bench_function(
        format!("baseline: rusqlite, {TASKS} commits one after another"),
        |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let events: Vec<_> = (0..TASKS).map(|_| raw_events(1)).collect();
                    let start = Instant::now();
                    for (t, events) in events.iter().enumerate() {
                        raw_versions[t] = raw_append(
                            &mut conn,
                            &format!("t{t}"),
                            raw_versions[t],
                            black_box(events),
                        );
                    }
                    spent += start.elapsed();
                }
                spent
            })
        },
    );

    let store = multi
        .block_on(SqliteStorage::open_with(
            dir.path().join("group.db"),
            options(Synchronous::Full),
        ))
        .expect("open");
    let versions: Arc<Vec<AtomicU64>> = Arc::new((0..TASKS).map(|_| AtomicU64::new(0)).collect());
    g.bench_function(
        format!("ventyd: {TASKS} tasks, Storage::append each"),
        |b| {
            b.iter_custom(|iters| {
                let (store, versions) = (store.clone(), versions.clone());
                multi.block_on(async move {
                    // The events are built before the clock starts, as the baseline's are.
                    let batches: Vec<Vec<Vec<NewEvent>>> = (0..TASKS)
                        .map(|_| (0..iters).map(|_| new_events(1)).collect())
                        .collect();
                    let start = Instant::now();
                    let tasks: Vec<_> = batches
                        .into_iter()
                        .enumerate()
                        .map(|(t, batches)| {
                            let (store, versions) = (store.clone(), versions.clone());
                            tokio::spawn(async move {
                                let id = format!("t{t}");
                                for events in batches {
                                    let expected =
                                        ExpectedVersion::after(versions[t].load(Ordering::Relaxed));
                                    let outcome = store
                                        .append(AppendRequest::new("user", &id, expected, &events))
                                        .await
                                        .expect("append");
                                    versions[t].store(outcome.version, Ordering::Relaxed);
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.expect("task");
                    }
                    start.elapsed()
                })
            })
        },
    );
    g.finish();
}

// ---- loading ----

const LOAD_EVENTS: usize = 10_000;

fn loads(c: &mut Criterion) {
    let rt = multi_rt();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("load.db");
    let store = rt
        .block_on(SqliteStorage::open_with(
            &path,
            options(Synchronous::Normal),
        ))
        .expect("open");
    let repo = Repository::<User, _>::new(store);
    let mut user = repo.create(alice()).expect("create");
    for chunk in 0..10 {
        let start = if chunk == 0 { 1 } else { 0 };
        for i in start..LOAD_EVENTS / 10 {
            user.update_name(format!("Name number {}", chunk * 1000 + i))
                .expect("rename");
        }
        rt.block_on(repo.commit(&mut user)).expect("commit");
    }
    assert_eq!(user.version(), LOAD_EVENTS as u64);
    let id: Arc<str> = user.entity_id().into();
    drop(user);
    let store = repo.into_storage();

    let mut g = c.benchmark_group(format!("sqlite_load_{LOAD_EVENTS}"));
    g.sample_size(30);
    g.bench_function("baseline: rusqlite SELECT + serde decode + fold", |b| {
        let conn = raw_connection(&path, Synchronous::Full);
        b.iter_with_large_drop(|| raw_load(&conn, black_box(&id), false))
    });
    // The same data as ventyd hands out: each event with its commit time.
    g.bench_function(
        "baseline, with commit times: rusqlite SELECT + serde decode + fold",
        |b| {
            let conn = raw_connection(&path, Synchronous::Full);
            b.iter_with_large_drop(|| raw_load(&conn, black_box(&id), true))
        },
    );
    // Breakdowns: the rows alone, through rusqlite and through the store.
    g.bench_function(
        "breakdown, baseline: rusqlite SELECT into owned rows",
        |b| {
            let conn = raw_connection(&path, Synchronous::Full);
            b.iter_with_large_drop(|| raw_rows(&conn, black_box(&id)))
        },
    );
    g.bench_function("breakdown, ventyd: Storage::read_stream", |b| {
        b.iter_custom(|iters| {
            let (store, id) = (store.clone(), id.clone());
            on_worker(&rt, async move {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let events = store
                        .read_stream("user", black_box(&id), ReadRange::ALL)
                        .await
                        .expect("read");
                    spent += start.elapsed();
                    drop(events);
                }
                spent
            })
        })
    });
    for (validate, name) in [
        (
            ventyd::LoadValidation::Unverified,
            "ventyd: find_one (default: check unverified bodies)",
        ),
        (
            ventyd::LoadValidation::Always,
            "ventyd: find_one (check every body)",
        ),
        (
            ventyd::LoadValidation::Never,
            "ventyd: find_one (trust the store)",
        ),
    ] {
        let repo = Arc::new(Repository::<User, _>::new(store.clone()).load_validation(validate));
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let (repo, id) = (repo.clone(), id.clone());
                on_worker(&rt, async move {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        let user = repo.find_one(black_box(&id)).await.expect("load");
                        spent += start.elapsed();
                        drop(black_box(user.expect("exists")));
                    }
                    spent
                })
            })
        });
    }
    // The machine is shared: the same baseline once more, last, shows how far its speed
    // drifted while the group ran (read the ratios against both).
    g.bench_function(
        "baseline again, last (drift check): rusqlite SELECT + serde decode + fold",
        |b| {
            let conn = raw_connection(&path, Synchronous::Full);
            b.iter_with_large_drop(|| raw_load(&conn, black_box(&id), false))
        },
    );
    g.finish();
}

criterion_group!(benches, commits, group_commits, loads);
criterion_main!(benches);
