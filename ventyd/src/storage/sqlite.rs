//! The SQLite store: the embedded default, one file in WAL mode (feature `sqlite`, on by default).
//!
//! ```
//! use ventyd::storage::{AppendRequest, ExpectedVersion, NewEvent, ReadRange, Storage};
//! use ventyd::{IdGenerator, SqliteStorage, Timestamp, UuidV7};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let store = SqliteStorage::open(dir.path().join("events.db")).await?;
//! let event = NewEvent {
//!     event_created_at: Timestamp::from_millis(1_700_000_000_000),
//!     ..NewEvent::new(UuidV7.event_id(), "user:created", r#"{"email":"a@example.com"}"#)
//! };
//! let events = [event];
//! let request = AppendRequest::new("user", "42", ExpectedVersion::NoStream, &events);
//! assert_eq!(store.append(request).await?.version, 1);
//! assert_eq!(store.read_stream("user", "42", ReadRange::ALL).await?.len(), 1);
//! # Ok::<(), ventyd::Error>(())
//! # }).unwrap();
//! ```
//!
//! # Schema
//!
//! The tables are created and migrated by the store itself when it opens a file. The schema
//! version lives in a `ventyd_meta` table rather than in `PRAGMA user_version`: the header field
//! belongs to whoever owns the file, and many migration tools use it, so an application that keeps
//! its own tables in the same file would fight ventyd over it. Migrations run in one
//! `BEGIN IMMEDIATE` transaction that re-reads the version under the write lock, so two processes
//! opening a new file at once migrate it once; a file whose version is newer than this build knows
//! is refused, naming the file, before anything in it is changed.
//!
//! All tables are `STRICT`, so a column holds the type it declares or the write fails.
//!
//! - `events`: `position INTEGER PRIMARY KEY AUTOINCREMENT` (the global position; AUTOINCREMENT
//!   so a position is never handed out twice), `event_id BLOB UNIQUE` (the 16 bytes of the
//!   UUID: half the size of its text in the table and in its index, and v7 ids still sort by
//!   time), `entity_name`, `entity_id`, `version`, `event_name`, `schema_version`,
//!   `created_at`, `body` (JSON text), `metadata` (JSON text or `NULL`) and `checked_schema`
//!   (the fingerprint of the schema the body passed before it was stored, or `NULL`), with
//!   `UNIQUE (entity_name, entity_id, version)`, whose index serves reads by entity too.
//!   `created_at` is `INTEGER` milliseconds since the Unix epoch: it is exactly what a
//!   [`Timestamp`] holds (millisecond precision, so nothing is rounded), it needs no parsing
//!   when 10,000 events are loaded, and it compares and indexes as a number. To read it as
//!   text in the `sqlite3` shell: `strftime('%Y-%m-%dT%H:%M:%fZ', created_at / 1000.0,
//!   'unixepoch')`. Bodies are not checked with `json_valid` in SQL: ventyd validates every
//!   body before storing it and decodes it strictly when loading, so a SQL check would parse
//!   each body a third time on the write path.
//! - `snapshots`: one row per entity (`entity_name`, `entity_id` primary key) with `version`,
//!   `schema_hash`, `state` (JSON text) and `created_at`.
//! - `views` and `checkpoints`: created empty, for inline views and projection checkpoints.
//!
//! # Pragmas
//!
//! `journal_mode=WAL` (readers never wait for the writer), `synchronous=FULL` by default,
//! `busy_timeout` (5 s by default) and `foreign_keys=ON`. With `FULL`, SQLite syncs the WAL on
//! every commit, so a commit that returned is never lost, not even on power loss. With
//! [`Synchronous::Normal`] the sync happens only at checkpoints: commits are many times faster
//! and the file is never corrupted, but the last commits before a power loss or an OS crash
//! (not a process crash) may be rolled back. Choose it where the events can be recovered
//! from elsewhere.
//!
//! # Concurrency
//!
//! Within a process, appends and snapshot writes go through one writer connection behind an
//! async mutex, so concurrent commits queue as tasks, not as blocked threads. Reads use
//! read-only connections (up to [`SqliteOptions::readers`], opened as needed, behind an async
//! semaphore) and, in WAL mode, never wait for writes. An in-memory store has one connection
//! for everything. Between processes SQLite's file lock arbitrates: every write runs in
//! `BEGIN IMMEDIATE`, which takes the write lock before the stream's version is read, so the
//! expected-version check and the inserts see the same stream. A writer waits for the lock up
//! to the busy timeout (and retries the rare `SQLITE_BUSY` that SQLite returns without
//! waiting); past it, the error says that the database is locked and names the file. A
//! unique-constraint failure is explained rather than passed on: a retried append returns its
//! stored outcome, a version clash becomes [`Error::Concurrency`] with the version re-read,
//! a reused event id is named.
//!
//! The expected-version check comes first and the event-id lookup only after a refusal: a
//! retried append either finds the stream moved (its own events are there) or hits the unique
//! event id, and in both cases the stored events are then compared with the request. A
//! successful append therefore reads one index entry (the stream's last version) and inserts.
//!
//! # Blocking work
//!
//! SQLite calls block. They never run on a tokio worker while it is a worker:
//!
//! - on the multi-threaded runtime (what `#[tokio::main]` starts) they run in
//!   `block_in_place`: tokio first hands the worker's queued tasks to another thread, then the
//!   call runs on the current thread, so no thread has to be woken to run it or to report back;
//! - on a current-thread runtime, which has no other thread to hand its tasks to, they run on
//!   tokio's blocking pool (`spawn_blocking`);
//! - outside tokio they run on the calling thread.
//!
//! Measured with `benches/sqlite.rs` (single-event commits with `synchronous=NORMAL`, where the
//! hand-off is not hidden behind an fsync; rusqlite alone: 28.6 µs): `block_in_place` 30.8 µs;
//! `spawn_blocking` from a worker of the multi-threaded runtime 88.8 µs; `spawn_blocking` from a
//! current-thread runtime 43 µs; a dedicated SQLite thread fed by a channel 68 µs from a
//! current-thread runtime. Each hand-off costs a thread wake-up in each direction (tens of
//! microseconds on the virtual machine measured), more than the commit itself. With
//! `synchronous=FULL` the fsync dominates and every form stays near the baseline.
//!
//! [`Storage::read_stream`] and [`Storage::read_all`] build `Arc<StoredEvent>`s on the thread
//! that reads them, like the memory store's. [`Storage::visit_stream`], which repositories load
//! entities with, hands each row to the visitor as a borrowed [`EventRef`] instead, so an event
//! is decoded straight from SQLite's row buffer and nothing is copied that the entity does not
//! keep. On the multi-threaded runtime an append borrows its request too (`block_in_place` needs
//! no `'static` data); elsewhere the request is copied for the blocking pool.
//!
//! # Errors
//!
//! Every failure is a [`StorageError`] that says what was being done and
//! names the file and, where there is one, the entity: a file that is not a database or is
//! corrupt, a path that cannot be created, a read-only database, a lock held past the timeout.
//! A failed append writes nothing: the transaction is rolled back before the error is returned.

use std::fmt;
use std::panic;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::types::Type;
use rusqlite::{
    Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params,
};
use tokio::runtime::RuntimeFlavor;
use tokio::sync::Semaphore;
use uuid::Uuid;

/// The SQLite driver this store is built on, for raw access to a ventyd file with the same
/// driver version (ad-hoc queries, backups, maintenance). Write events only through the store:
/// it is what keeps versions gapless and positions in commit order.
pub use rusqlite;

use super::{
    AppendOutcome, AppendRequest, EventRef, EventVisitor, ExpectedVersion, NewEvent, ReadRange,
    Snapshot, Storage, StoredEvent,
};
use crate::envelope::Metadata;
use crate::error::{Error, StorageError};
use crate::time::Timestamp;

/// The schema version this build writes; files with a later one are refused.
pub const SCHEMA_VERSION: u32 = 1;

/// The migrations, in order: `MIGRATIONS[n]` takes a file from schema version `n` to `n + 1`.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [r#"
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
"#];

/// The tables migration 1 creates; a file that has one of them without ventyd's version is
/// someone else's, and is left alone.
const OWN_TABLES: [&str; 5] = ["ventyd_meta", "events", "snapshots", "views", "checkpoints"];

const INSERT_EVENT: &str = "INSERT INTO events \
    (event_id, entity_name, entity_id, version, event_name, schema_version, created_at, body, metadata, \
    checked_schema) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

const STREAM_VERSION: &str = "SELECT version FROM events \
    WHERE entity_name = ?1 AND entity_id = ?2 ORDER BY version DESC LIMIT 1";

const READ_STREAM: &str = "SELECT position, event_id, event_name, version, schema_version, \
    created_at, metadata, body, checked_schema FROM events \
    WHERE entity_name = ?1 AND entity_id = ?2 AND version >= ?3 AND version <= ?4 \
    ORDER BY version";

const READ_ALL: &str = "SELECT position, event_id, event_name, version, schema_version, \
    created_at, metadata, body, checked_schema, entity_name, entity_id FROM events \
    WHERE position >= ?1 ORDER BY position LIMIT ?2";

const EVENT_BY_ID: &str = "SELECT position, entity_name, entity_id, version, event_name, body \
    FROM events WHERE event_id = ?1";

const READ_SNAPSHOT: &str = "SELECT version, schema_hash, state, created_at FROM snapshots \
    WHERE entity_name = ?1 AND entity_id = ?2";

/// Inserts a snapshot unless one of a later version is stored (an equal version replaces it,
/// as in the memory store).
const UPSERT_SNAPSHOT: &str = "INSERT INTO snapshots \
    (entity_name, entity_id, version, schema_hash, state, created_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
    ON CONFLICT (entity_name, entity_id) DO UPDATE SET \
    version = excluded.version, schema_hash = excluded.schema_hash, \
    state = excluded.state, created_at = excluded.created_at \
    WHERE excluded.version >= snapshots.version";

/// How long to pause before retrying a write that SQLite refused with `SQLITE_BUSY` without
/// waiting for the busy timeout.
const BUSY_PAUSE: Duration = Duration::from_millis(2);

/// How SQLite syncs commits to disk (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Synchronous {
    /// Sync the write-ahead log on every commit: a commit that returned survives a power loss.
    #[default]
    Full,
    /// Sync only at checkpoints: much faster commits, never a corrupt file, but the last
    /// commits before a power loss or an OS crash may be lost (a crash of the process alone
    /// loses nothing).
    Normal,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// Options for [`SqliteStorage::open_with`].
///
/// ```
/// use std::time::Duration;
/// use ventyd::storage::sqlite::{SqliteOptions, Synchronous};
///
/// let options = SqliteOptions::new()
///     .busy_timeout(Duration::from_secs(1))
///     .synchronous(Synchronous::Normal);
/// assert_eq!(options.get_busy_timeout(), Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SqliteOptions {
    busy_timeout: Duration,
    synchronous: Synchronous,
    readers: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            busy_timeout: Duration::from_secs(5),
            synchronous: Synchronous::Full,
            readers: 4,
        }
    }
}

impl SqliteOptions {
    /// The defaults: a busy timeout of 5 seconds, [`Synchronous::Full`] and 4 readers.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long a write waits for another connection or process to release the database
    /// before failing with a "database is locked" error.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// How commits are synced to disk; see [`Synchronous`].
    pub fn synchronous(mut self, synchronous: Synchronous) -> Self {
        self.synchronous = synchronous;
        self
    }

    /// How many read-only connections serve reads in parallel (4 by default), each opened when
    /// reads first need it. With 0, reads use the writer's connection and wait for writes.
    pub fn readers(mut self, readers: usize) -> Self {
        self.readers = readers;
        self
    }

    /// The busy timeout.
    pub fn get_busy_timeout(&self) -> Duration {
        self.busy_timeout
    }

    /// The sync mode.
    pub fn get_synchronous(&self) -> Synchronous {
        self.synchronous
    }

    /// The number of readers.
    pub fn get_readers(&self) -> usize {
        self.readers
    }
}

/// An event store in a SQLite file (WAL mode), or in memory for tests.
///
/// Clones share the same connections; dropping the last one closes the file, which checkpoints
/// the write-ahead log into it (a moment of blocking I/O, so drop it outside latency-critical
/// code). See the [module docs](self) for the schema, the pragmas and how concurrent writers
/// (threads or processes) are kept apart.
///
/// ```
/// use ventyd::prelude::*;
/// use ventyd::SqliteStorage;
/// # #[event(entity = "user")]
/// # #[derive(Debug, Clone)]
/// # pub enum UserEvent { #[event(initial)] Created { email: String } }
/// # #[derive(Aggregate, Debug, Clone)]
/// # #[aggregate(event = UserEvent)]
/// # pub struct User { email: String }
/// # impl Reducer for User {
/// #     fn init(c: &UserCreated) -> Self { User { email: c.email.clone() } }
/// #     fn apply(&mut self, _: &UserEvent) {}
/// # }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("app.db");
/// let repo = Repository::<User, _>::new(SqliteStorage::open(&path).await?);
/// let mut user = repo.create(UserCreated { email: "a@example.com".into() })?;
/// repo.commit(&mut user).await?;
/// drop(repo);
///
/// // Another run of the program finds the user in the file.
/// let repo = Repository::<User, _>::new(SqliteStorage::open(&path).await?);
/// let loaded = repo.find_one(user.entity_id()).await?.expect("stored");
/// assert_eq!(loaded.state().email, "a@example.com");
/// # Ok::<(), ventyd::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct SqliteStorage {
    shared: Arc<Shared>,
}

/// What the store knows about its file: enough to name it in errors.
struct Ctx {
    /// The file, or `None` in memory.
    path: Option<PathBuf>,
    /// The file as error messages name it.
    label: String,
    options: SqliteOptions,
}

impl Ctx {
    /// A storage error for a failed SQLite call while doing `action`, naming the file and
    /// saying what the SQLite error means for the user.
    fn error(&self, action: impl fmt::Display, e: rusqlite::Error) -> Error {
        sql_error(&self.label, self.options.busy_timeout, action, e)
    }
}

struct Shared {
    ctx: Ctx,
    /// `None` in memory, where reads use the writer's connection. Declared before `writer` so
    /// that the readers close first and the writer, closing last, checkpoints the log into the
    /// file and removes the -wal and -shm files.
    readers: Option<Arc<Readers>>,
    /// The one connection that writes; the async lock queues writers as tasks, not threads.
    writer: Arc<tokio::sync::Mutex<Connection>>,
}

/// Read-only connections, opened as reads need them, at most one per permit.
struct Readers {
    idle: StdMutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl Readers {
    fn take(&self, ctx: &Ctx) -> Result<Connection, Error> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        match idle {
            Some(conn) => Ok(conn),
            None => open_reader(ctx),
        }
    }

    fn give_back(&self, conn: Connection) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(conn);
    }
}

impl fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStorage")
            .field("path", &self.shared.ctx.label)
            .field("options", &self.shared.ctx.options)
            .finish_non_exhaustive()
    }
}

impl SqliteStorage {
    /// Opens the database file at `path`, creating it if it does not exist, with the default
    /// [`SqliteOptions`]: WAL mode, `synchronous=FULL`, a busy timeout of 5 seconds.
    ///
    /// The tables are created or migrated as needed. Fails, naming the file, when it is not a
    /// SQLite database or is corrupt, when it cannot be created or written, when it was written
    /// by a newer ventyd, or when it stays locked by another process past the busy timeout.
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteStorage, Error> {
        Self::open_with(path, SqliteOptions::default()).await
    }

    /// Like [`open`](Self::open), with a chosen busy timeout, sync mode and number of readers.
    pub async fn open_with(
        path: impl AsRef<Path>,
        options: SqliteOptions,
    ) -> Result<SqliteStorage, Error> {
        let path = path.as_ref().to_path_buf();
        let ctx = Ctx {
            label: path.display().to_string(),
            path: Some(path),
            options,
        };
        let (ctx, conn) = blocking(move || open_file(&ctx).map(|conn| (ctx, conn))).await??;
        let readers = (options.readers > 0).then(|| {
            Arc::new(Readers {
                idle: StdMutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(options.readers)),
            })
        });
        Ok(SqliteStorage::new(ctx, conn, readers))
    }

    /// A private database in memory, gone when the last clone is dropped. For tests: it behaves
    /// like a file (same schema, same checks) but is not durable, and reads and writes share its
    /// one connection.
    pub async fn in_memory() -> Result<SqliteStorage, Error> {
        let ctx = Ctx {
            label: ":memory:".to_owned(),
            path: None,
            options: SqliteOptions::default(),
        };
        let (ctx, conn) = blocking(move || open_memory(&ctx).map(|conn| (ctx, conn))).await??;
        Ok(SqliteStorage::new(ctx, conn, None))
    }

    fn new(ctx: Ctx, writer: Connection, readers: Option<Arc<Readers>>) -> Self {
        SqliteStorage {
            shared: Arc::new(Shared {
                ctx,
                readers,
                writer: Arc::new(tokio::sync::Mutex::new(writer)),
            }),
        }
    }

    /// The database file; `None` for an in-memory store.
    pub fn path(&self) -> Option<&Path> {
        self.shared.ctx.path.as_deref()
    }

    /// The options the store was opened with.
    pub fn options(&self) -> SqliteOptions {
        self.shared.ctx.options
    }

    /// Runs `f` on the writer connection, after the writes queued before it.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection, &Ctx) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        // The guard moves into the blocking work, so a caller that stops waiting cannot release
        // the connection in the middle of a write.
        let mut conn = self.shared.writer.clone().lock_owned().await;
        let shared = self.shared.clone();
        blocking(move || f(&mut conn, &shared.ctx)).await?
    }

    /// Runs `f` on a read connection (the writer's in memory).
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &Ctx) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let Some(readers) = &self.shared.readers else {
            return self.write(move |conn, ctx| f(conn, ctx)).await;
        };
        // Waiting for a permit is asynchronous: a burst of reads queues as tasks, not threads.
        let permit = readers
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| StorageError::with_source("the SQLite readers are closed", e))?;
        let (readers, shared) = (readers.clone(), self.shared.clone());
        blocking(move || {
            let _permit = permit;
            let conn = readers.take(&shared.ctx)?;
            let result = f(&conn, &shared.ctx);
            readers.give_back(conn);
            result
        })
        .await?
    }
}

/// Runs blocking SQLite work without holding up the async runtime.
///
/// - On tokio's multi-threaded runtime (what `#[tokio::main]` starts), with `block_in_place`:
///   tokio first hands the worker's other tasks to another thread, then the work runs right
///   here. Nothing waits for a thread to wake up, so a commit costs what SQLite costs.
/// - On a current-thread runtime, which has no other worker to hand its tasks to, on tokio's
///   blocking pool (`spawn_blocking`).
/// - Outside tokio, on the calling thread.
fn on_multi_thread_runtime() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|handle| handle.runtime_flavor() == RuntimeFlavor::MultiThread)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            Ok(tokio::task::block_in_place(f))
        }
        Ok(handle) => match handle.spawn_blocking(f).await {
            Ok(value) => Ok(value),
            Err(e) if e.is_panic() => panic::resume_unwind(e.into_panic()),
            Err(e) => Err(StorageError::with_source(
                "the SQLite work was cancelled because the runtime is shutting down",
                e,
            )
            .into()),
        },
        Err(_) => Ok(f()),
    }
}

fn open_reader(ctx: &Ctx) -> Result<Connection, Error> {
    let path = ctx.path.as_deref().unwrap_or(Path::new(""));
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .and_then(|conn| {
        conn.busy_timeout(ctx.options.busy_timeout)?;
        Ok(conn)
    })
    .map_err(|e| ctx.error("cannot open a read connection", e))
}

fn sql_error(
    label: &str,
    timeout: Duration,
    action: impl fmt::Display,
    e: rusqlite::Error,
) -> Error {
    let context = match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => format!(
            "{action}: the database {label} is locked by another connection or process, still after the busy timeout of {} ms; retry later or raise SqliteOptions::busy_timeout",
            timeout.as_millis()
        ),
        Some(ErrorCode::NotADatabase) => format!(
            "{action}: {label} is not a SQLite database (another kind of file, or its header is corrupt)"
        ),
        Some(ErrorCode::DatabaseCorrupt) => {
            format!("{action}: the database {label} is corrupt ({e}); restore it from a backup")
        }
        Some(ErrorCode::ReadOnly) => format!(
            "{action}: the database {label} is read-only; the process needs write access to the file, its -wal and -shm files and its directory"
        ),
        Some(ErrorCode::CannotOpen) => format!(
            "{action}: cannot open or create {label}; check that its directory exists and that this process may write there"
        ),
        Some(ErrorCode::PermissionDenied) => {
            format!("{action}: permission denied on {label}")
        }
        Some(ErrorCode::DiskFull) => format!("{action}: the disk holding {label} is full"),
        Some(ErrorCode::SystemIoFailure) => format!("{action}: I/O error on {label} ({e})"),
        _ => format!("{action} in {label}: {e}"),
    };
    StorageError::with_source(context, e).into()
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error(),
        Some(rusqlite::ffi::Error { extended_code, .. })
            if *extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || *extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

/// Runs `attempt` again while SQLite answers `SQLITE_BUSY` without having waited out the busy
/// timeout (it does so where waiting could deadlock, or during WAL recovery), until the timeout
/// has passed since the first attempt.
fn retry_busy<T>(
    timeout: Duration,
    mut attempt: impl FnMut() -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        match attempt() {
            Err(e) if is_busy(&e) && Instant::now() < deadline => std::thread::sleep(BUSY_PAUSE),
            other => return other,
        }
    }
}

// ---- opening and migrating ----

fn open_file(ctx: &Ctx) -> Result<Connection, Error> {
    let label = &ctx.label;
    let options = ctx.options;
    let path = ctx.path.as_deref().unwrap_or(Path::new(""));
    let fail = |e| ctx.error("cannot open", e);
    // No SQLITE_OPEN_URI: a path is a path, even one that starts with "file:".
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(fail)?;
    conn.busy_timeout(options.busy_timeout).map_err(fail)?;
    // SQLite quietly opens a file it may not write read-only; say so now, not at the first
    // append.
    if conn.is_readonly(rusqlite::MAIN_DB).map_err(fail)? {
        return Err(StorageError::msg(format!(
            "cannot open: the database {label} is read-only; the process needs write access to the file and its directory"
        ))
        .into());
    }
    // The version is checked before anything is written, so that a file this build must not
    // touch (not a database, or from a newer ventyd) is left exactly as it was.
    let found = retry_busy(options.busy_timeout, || schema_version(&conn)).map_err(fail)?;
    check_not_newer(found, label)?;

    let mode: String = retry_busy(options.busy_timeout, || {
        conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
    })
    .map_err(fail)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StorageError::msg(format!(
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

fn open_memory(ctx: &Ctx) -> Result<Connection, Error> {
    let fail = |e| ctx.error("cannot open", e);
    let conn = Connection::open_in_memory().map_err(fail)?;
    conn.execute_batch("PRAGMA foreign_keys = ON;")
        .map_err(fail)?;
    migrate(&conn, &ctx.label, ctx.options.busy_timeout)?;
    Ok(conn)
}

/// The schema version recorded in the file; 0 for a file without ventyd's tables.
fn schema_version(conn: &Connection) -> rusqlite::Result<u32> {
    let has_meta: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'ventyd_meta')",
        [],
        |row| row.get(0),
    )?;
    if !has_meta {
        return Ok(0);
    }
    let version: Option<i64> = conn
        .query_row(
            "SELECT value FROM ventyd_meta WHERE key = 'schema_version'",
            [],
            |row| row.get(0),
        )
        .optional()?;
    // A meta table without a version (or with a nonsensical one) cannot come from any ventyd;
    // treating it as "too new" refuses the file without touching it.
    Ok(version.map_or(u32::MAX, |v| u32::try_from(v).unwrap_or(u32::MAX)))
}

fn check_not_newer(found: u32, label: &str) -> Result<(), Error> {
    if found > SCHEMA_VERSION {
        let found = if found == u32::MAX {
            "an unknown version".to_owned()
        } else {
            format!("version {found}")
        };
        return Err(StorageError::msg(format!(
            "cannot open: the database {label} was written by a newer ventyd (schema {found}; this build knows up to version {SCHEMA_VERSION}); upgrade ventyd to open it"
        ))
        .into());
    }
    Ok(())
}

/// Brings the schema to [`SCHEMA_VERSION`] in one transaction. The version is read again under
/// the write lock, so a migration another process ran in the meantime is not run twice.
fn migrate(conn: &Connection, label: &str, timeout: Duration) -> Result<(), Error> {
    let fail = |e| sql_error(label, timeout, "cannot migrate the schema", e);
    let tx = retry_busy(timeout, || {
        Transaction::new_unchecked(conn, TransactionBehavior::Immediate)
    })
    .map_err(fail)?;
    let found = schema_version(&tx).map_err(fail)?;
    check_not_newer(found, label)?;
    if found == 0 {
        let mut taken = Vec::new();
        for name in OWN_TABLES {
            let exists: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE name = ?1)",
                    [name],
                    |row| row.get(0),
                )
                .map_err(fail)?;
            if exists {
                taken.push(name);
            }
        }
        if !taken.is_empty() {
            return Err(StorageError::msg(format!(
                "cannot open: the database {label} already has tables or indexes named {} that ventyd did not create; use a separate file for ventyd",
                taken.join(", ")
            ))
            .into());
        }
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

// ---- appending ----

/// An append request copied so that it can move to the blocking pool.
struct OwnedAppend {
    entity_name: String,
    entity_id: String,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
    snapshot: Option<Snapshot>,
}

impl OwnedAppend {
    fn new(req: &AppendRequest<'_>) -> Self {
        OwnedAppend {
            entity_name: req.entity_name.to_owned(),
            entity_id: req.entity_id.to_owned(),
            expected: req.expected,
            events: req.events.to_vec(),
            snapshot: req.snapshot.cloned(),
        }
    }

    fn request(&self) -> AppendRequest<'_> {
        AppendRequest {
            entity_name: &self.entity_name,
            entity_id: &self.entity_id,
            expected: self.expected,
            events: &self.events,
            snapshot: self.snapshot.as_ref(),
        }
    }
}

/// Why one attempt at an append stopped before its commit (the transaction is rolled back).
enum Failure {
    /// The stream is not at the expected version.
    Version(u64),
    /// The request itself is refused (its snapshot does not fit the append).
    Refused(Error),
    /// SQLite failed, a unique constraint included.
    Sql(rusqlite::Error),
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Failure::Sql(e)
    }
}

fn append_blocking(
    conn: &mut Connection,
    ctx: &Ctx,
    req: AppendRequest<'_>,
) -> Result<AppendOutcome, Error> {
    let action = || format!("cannot append to {} {:?}", req.entity_name, req.entity_id);
    let metadata = encode_metadata(&req)?;
    let deadline = Instant::now() + ctx.options.busy_timeout;
    loop {
        match append_once(conn, &req, &metadata) {
            Ok(outcome) => return Ok(outcome),
            Err(Failure::Sql(e)) if is_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(BUSY_PAUSE);
            }
            Err(Failure::Sql(e)) if is_unique_violation(&e) => {
                return explain_clash(conn, ctx, &req, None);
            }
            Err(Failure::Sql(e)) => return Err(ctx.error(action(), e)),
            Err(Failure::Version(actual)) => {
                return explain_clash(conn, ctx, &req, Some(actual));
            }
            Err(Failure::Refused(error)) => {
                return match replay(conn, ctx, &req)? {
                    Some(outcome) => Ok(outcome),
                    None => Err(error),
                };
            }
        }
    }
}

/// The metadata of each event as JSON text. Events of one commit share one `Arc`, which is
/// encoded once.
fn encode_metadata(req: &AppendRequest<'_>) -> Result<Vec<Option<Arc<str>>>, Error> {
    let mut last: Option<(&Arc<Metadata>, Arc<str>)> = None;
    let mut out = Vec::with_capacity(req.events.len());
    for e in req.events {
        let Some(m) = &e.metadata else {
            out.push(None);
            continue;
        };
        match &last {
            Some((held, text)) if Arc::ptr_eq(held, m) => out.push(Some(text.clone())),
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
                out.push(Some(text.clone()));
                last = Some((m, text));
            }
        }
    }
    Ok(out)
}

fn append_once(
    conn: &mut Connection,
    req: &AppendRequest<'_>,
    metadata: &[Option<Arc<str>>],
) -> Result<AppendOutcome, Failure> {
    // IMMEDIATE takes the write lock before the version is read, so no other writer can get
    // between the check and the inserts.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let actual = stream_version(&tx, req.entity_name, req.entity_id)?;
    if !req.expected.matches(actual) {
        return Err(Failure::Version(actual));
    }
    req.check_snapshot(actual).map_err(Failure::Refused)?;
    let mut positions = Vec::with_capacity(req.events.len());
    {
        let mut insert = tx.prepare_cached(INSERT_EVENT)?;
        for (i, (e, metadata)) in req.events.iter().zip(metadata).enumerate() {
            let version = to_sql_int(actual + i as u64 + 1)?;
            insert.execute(params![
                &e.event_id.as_bytes()[..],
                req.entity_name,
                req.entity_id,
                version,
                &*e.event_name,
                e.schema_version,
                e.event_created_at.as_millis(),
                &e.body,
                metadata.as_deref(),
                e.checked_schema.map(|h| h as i64),
            ])?;
            positions.push(from_sql_int(tx.last_insert_rowid())?);
        }
    }
    if let Some(snapshot) = req.snapshot {
        upsert_snapshot(&tx, snapshot)?;
    }
    tx.commit()?;
    Ok(AppendOutcome {
        version: actual + req.events.len() as u64,
        positions,
    })
}

fn stream_version(conn: &Connection, entity_name: &str, entity_id: &str) -> rusqlite::Result<u64> {
    let version: Option<i64> = conn
        .prepare_cached(STREAM_VERSION)?
        .query_row(params![entity_name, entity_id], |row| row.get(0))
        .optional()?;
    version.map_or(Ok(0), from_sql_int)
}

fn upsert_snapshot(conn: &Connection, s: &Snapshot) -> rusqlite::Result<()> {
    conn.prepare_cached(UPSERT_SNAPSHOT)?.execute(params![
        s.entity_name,
        s.entity_id,
        to_sql_int(s.version)?,
        s.schema_hash,
        s.state,
        s.created_at.as_millis(),
    ])?;
    Ok(())
}

/// After a refused attempt (rolled back): a retry of an append that was stored returns the
/// stored outcome; otherwise the stream was not where the writer expected it (`actual` when
/// the check failed, re-read when a unique constraint fired), or an event id is reused.
fn explain_clash(
    conn: &Connection,
    ctx: &Ctx,
    req: &AppendRequest<'_>,
    actual: Option<u64>,
) -> Result<AppendOutcome, Error> {
    if let Some(outcome) = replay(conn, ctx, req)? {
        return Ok(outcome);
    }
    let action = || format!("cannot append to {} {:?}", req.entity_name, req.entity_id);
    let actual = match actual {
        Some(actual) => actual,
        None => {
            let mut by_id = conn
                .prepare_cached(EVENT_BY_ID)
                .map_err(|e| ctx.error(action(), e))?;
            for (i, e) in req.events.iter().enumerate() {
                let stored = by_id
                    .exists([&e.event_id.as_bytes()[..]])
                    .map_err(|err| ctx.error(action(), err))?;
                if stored || req.events[..i].iter().any(|o| o.event_id == e.event_id) {
                    return Err(StorageError::msg(format!(
                        "{}: event id {} is already stored; an event id may be used once",
                        action(),
                        e.event_id
                    ))
                    .into());
                }
            }
            // No id clashed, so the (entity, version) constraint did: another writer got in.
            stream_version(conn, req.entity_name, req.entity_id)
                .map_err(|e| ctx.error(action(), e))?
        }
    };
    Err(Error::Concurrency {
        entity_name: req.entity_name.to_owned(),
        entity_id: req.entity_id.to_owned(),
        expected: req.expected,
        actual,
    })
}

/// When the first event id of `req` is stored already, the append is a retry of one that
/// succeeded: it is accepted only when every event matches what is stored, in order, in the
/// same stream. `None` when the first id is not stored.
fn replay(
    conn: &Connection,
    ctx: &Ctx,
    req: &AppendRequest<'_>,
) -> Result<Option<AppendOutcome>, Error> {
    let Some(first) = req.events.first() else {
        return Ok(None);
    };
    let action = || format!("cannot append to {} {:?}", req.entity_name, req.entity_id);
    let mut by_id = conn
        .prepare_cached(EVENT_BY_ID)
        .map_err(|e| ctx.error(action(), e))?;
    let mut lookup = |id: Uuid| {
        by_id
            .query_row([&id.as_bytes()[..]], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, String>(5)?,
                ))
            })
            .optional()
            .map_err(|e| ctx.error(action(), e))
    };
    if lookup(first.event_id)?.is_none() {
        return Ok(None);
    }
    let mut positions = Vec::with_capacity(req.events.len());
    let mut first_version = None;
    let mut version = 0;
    for (i, e) in req.events.iter().enumerate() {
        let matches = lookup(e.event_id)?.filter(|(_, name, id, v, event_name, body)| {
            let v = u64::try_from(*v).unwrap_or(0);
            let expected_version = *first_version.get_or_insert(v) + i as u64;
            name == req.entity_name
                && id == req.entity_id
                && v == expected_version
                && event_name == &e.event_name
                && body == &e.body
        });
        let Some((position, _, _, v, _, _)) = matches else {
            return Err(StorageError::msg(format!(
                "event id {} of {} {:?} is already stored with different content or in another stream",
                e.event_id, req.entity_name, req.entity_id
            ))
            .into());
        };
        positions.push(u64::try_from(position).unwrap_or(0));
        version = u64::try_from(v).unwrap_or(0);
    }
    Ok(Some(AppendOutcome { version, positions }))
}

fn to_sql_int(n: u64) -> rusqlite::Result<i64> {
    i64::try_from(n).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn from_sql_int(n: i64) -> rusqlite::Result<u64> {
    u64::try_from(n).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(0, n))
}

// ---- reading ----

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

/// A read of events.
#[derive(Clone)]
enum Query {
    /// One stream's events in version order.
    Stream {
        entity_name: String,
        entity_id: String,
        range: ReadRange,
    },
    /// The global log in position order.
    All { from_position: u64, limit: usize },
}

impl Query {
    /// What the read is doing, for error messages.
    fn action(&self) -> String {
        match self {
            Query::Stream {
                entity_name,
                entity_id,
                ..
            } => format!("cannot read {entity_name} {entity_id:?}"),
            Query::All { from_position, .. } => {
                format!("cannot read the global log from position {from_position}")
            }
        }
    }

    /// The stream the query fixes, if any.
    fn stream(&self) -> Option<(&str, &str)> {
        match self {
            Query::Stream {
                entity_name,
                entity_id,
                ..
            } => Some((entity_name, entity_id)),
            Query::All { .. } => None,
        }
    }

    /// Runs the query and turns its rows into events. Metadata text that is not JSON is an
    /// error naming the entity, the version and the file.
    fn run(&self, conn: &Connection, ctx: &Ctx) -> Result<Vec<Arc<StoredEvent>>, Error> {
        let mut events = Vec::new();
        self.each(conn, ctx, |e| {
            events.push(Arc::new(e.to_stored()));
            Ok(())
        })?;
        Ok(events)
    }

    /// Runs the query and hands each row to `sink` as a borrowed event: nothing is copied out of
    /// SQLite's row buffer but what `sink` keeps.
    fn each(
        &self,
        conn: &Connection,
        ctx: &Ctx,
        sink: impl FnMut(EventRef<'_>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.try_each(conn, ctx, sink).map_err(|e| match e {
            RowError::Sql(e) => ctx.error(self.action(), e),
            RowError::Metadata(e) | RowError::Sink(e) => e,
        })
    }

    fn try_each(
        &self,
        conn: &Connection,
        ctx: &Ctx,
        mut sink: impl FnMut(EventRef<'_>) -> Result<(), Error>,
    ) -> Result<(), RowError> {
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let mut stmt;
        let mut rows = match self {
            Query::Stream {
                entity_name,
                entity_id,
                range,
            } => {
                let from = clamp(range.from_version);
                let to = range.to_version.map_or(i64::MAX, clamp);
                if from > to {
                    return Ok(());
                }
                stmt = conn.prepare_cached(READ_STREAM)?;
                stmt.query(params![entity_name, entity_id, from, to])?
            }
            Query::All {
                from_position,
                limit,
            } => {
                let limit = i64::try_from(*limit).unwrap_or(i64::MAX);
                stmt = conn.prepare_cached(READ_ALL)?;
                stmt.query(params![clamp(*from_position), limit])?
            }
        };
        let mut metadata = MetadataCache::default();
        while let Some(row) = rows.next()? {
            self.event(row, &mut metadata, ctx, &mut sink)?;
        }
        Ok(())
    }

    /// Hands one row of `READ_STREAM`, or of `READ_ALL` (whose columns 9 and 10 name the
    /// stream), to `sink`.
    fn event(
        &self,
        row: &rusqlite::Row<'_>,
        metadata: &mut MetadataCache,
        ctx: &Ctx,
        sink: &mut impl FnMut(EventRef<'_>) -> Result<(), Error>,
    ) -> Result<(), RowError> {
        let text = |i| -> rusqlite::Result<&str> {
            row.get_ref(i)?
                .as_str()
                .map_err(|e| rusqlite::Error::FromSqlConversionFailure(i, Type::Text, Box::new(e)))
        };
        let (entity_name, entity_id) = match self.stream() {
            Some(stream) => stream,
            None => (text(9)?, text(10)?),
        };
        let version = from_sql_int(row.get(3)?)?;
        let metadata_text = match row.get_ref(6)? {
            rusqlite::types::ValueRef::Null => None,
            _ => Some(text(6)?),
        };
        let metadata = metadata.get(metadata_text).map_err(|source| {
            RowError::Metadata(
                StorageError::with_source(
                    format!(
                        "{}: the metadata of {entity_name} {entity_id:?} at version {version} in {} is not valid JSON",
                        self.action(),
                        ctx.label
                    ),
                    source,
                )
                .into(),
            )
        })?;
        let event = EventRef {
            position: from_sql_int(row.get(0)?)?,
            event_id: Uuid::from_bytes(row.get(1)?),
            event_name: text(2)?,
            entity_name,
            entity_id,
            version,
            schema_version: row.get(4)?,
            event_created_at: Timestamp::from_millis(row.get(5)?),
            metadata: metadata.as_ref(),
            body: text(7)?,
            // Stored as the same 64 bits in a signed column.
            checked_schema: row.get::<_, Option<i64>>(8)?.map(|h| h as u64),
        };
        sink(event).map_err(RowError::Sink)
    }
}

/// Why rows could not be turned into events.
enum RowError {
    Sql(rusqlite::Error),
    Metadata(Error),
    /// The receiver of the events refused one (a visitor's decode error).
    Sink(Error),
}

impl From<rusqlite::Error> for RowError {
    fn from(e: rusqlite::Error) -> Self {
        RowError::Sql(e)
    }
}

fn read_snapshot_blocking(
    conn: &Connection,
    entity_name: &str,
    entity_id: &str,
) -> rusqlite::Result<Option<Snapshot>> {
    conn.prepare_cached(READ_SNAPSHOT)?
        .query_row(params![entity_name, entity_id], |row| {
            Ok(Snapshot {
                entity_name: entity_name.to_owned(),
                entity_id: entity_id.to_owned(),
                version: from_sql_int(row.get(0)?)?,
                schema_hash: row.get(1)?,
                state: row.get(2)?,
                created_at: Timestamp::from_millis(row.get(3)?),
            })
        })
        .optional()
}

impl SqliteStorage {
    /// Reads events with `query`.
    async fn read_events(&self, query: Query) -> Result<Vec<Arc<StoredEvent>>, Error> {
        self.read(move |conn, ctx| query.run(conn, ctx)).await
    }
}

impl Storage for SqliteStorage {
    async fn append(&self, request: AppendRequest<'_>) -> Result<AppendOutcome, Error> {
        if on_multi_thread_runtime() {
            // `block_in_place` runs the append right here, so it can borrow the request: the
            // events are written from the caller's memory, with no copy for another thread.
            // The call is synchronous, so a caller that stops waiting cannot interrupt it.
            let mut conn = self.shared.writer.lock().await;
            return tokio::task::block_in_place(|| {
                append_blocking(&mut conn, &self.shared.ctx, request)
            });
        }
        let owned = OwnedAppend::new(&request);
        self.write(move |conn, ctx| append_blocking(conn, ctx, owned.request()))
            .await
    }

    async fn read_stream(
        &self,
        entity_name: &str,
        entity_id: &str,
        range: ReadRange,
    ) -> Result<Vec<Arc<StoredEvent>>, Error> {
        self.read_events(Query::Stream {
            entity_name: entity_name.to_owned(),
            entity_id: entity_id.to_owned(),
            range,
        })
        .await
    }

    async fn visit_stream<V: EventVisitor>(
        &self,
        entity_name: &str,
        entity_id: &str,
        range: ReadRange,
        visitor: V,
    ) -> Result<V, Error> {
        let query = Query::Stream {
            entity_name: entity_name.to_owned(),
            entity_id: entity_id.to_owned(),
            range,
        };
        // The visitor moves into the blocking read and comes back with what it built: each
        // event is decoded straight from SQLite's row buffer.
        self.read(move |conn, ctx| {
            let mut visitor = visitor;
            query.each(conn, ctx, |e| visitor.visit(e))?;
            Ok(visitor)
        })
        .await
    }

    async fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<Arc<StoredEvent>>, Error> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.read_events(Query::All {
            from_position,
            limit,
        })
        .await
    }

    async fn read_snapshot(
        &self,
        entity_name: &str,
        entity_id: &str,
    ) -> Result<Option<Snapshot>, Error> {
        let entity_name = entity_name.to_owned();
        let entity_id = entity_id.to_owned();
        self.read(move |conn, ctx| {
            read_snapshot_blocking(conn, &entity_name, &entity_id).map_err(|e| {
                ctx.error(
                    format_args!("cannot read the snapshot of {entity_name} {entity_id:?}"),
                    e,
                )
            })
        })
        .await
    }

    async fn write_snapshot(&self, snapshot: &Snapshot) -> Result<(), Error> {
        let snapshot = snapshot.clone();
        self.write(move |conn, ctx| {
            // IMMEDIATE, like appends: a deferred write that finds the file changed since its
            // read began fails at once instead of waiting for the lock.
            retry_busy(ctx.options.busy_timeout, || {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                upsert_snapshot(&tx, &snapshot)?;
                tx.commit()
            })
            .map_err(|e| {
                ctx.error(
                    format_args!(
                        "cannot write the snapshot of {} {:?} at version {}",
                        snapshot.entity_name, snapshot.entity_id, snapshot.version
                    ),
                    e,
                )
            })
        })
        .await
    }
}
