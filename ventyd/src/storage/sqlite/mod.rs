//! The SQLite store: the embedded default, one file in WAL mode (feature `sqlite`, on by default).
//!
//! ```
//! use ventyd::storage::{AppendRequest, NewEvent, ReadRange, Storage};
//! use ventyd::{ExpectedVersion, IdGenerator, SqliteStorage, Timestamp, UuidV7};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let store = SqliteStorage::open(dir.path().join("events.db")).await?;
//! let event = NewEvent::new(UuidV7.event_id(), "user:created", r#"{"email":"a@example.com"}"#)
//!     .created_at(Timestamp::from_millis(1_700_000_000_000));
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
//! opening a new file at once migrate it once; a file whose version is newer than this build knows,
//! whose recorded version is damaged, or that holds someone else's tables of ventyd's names (in
//! any case: `EVENTS` too) is refused, naming the file, before anything in it is changed (not
//! even the switch to WAL).
//!
//! All tables are `STRICT`, so a column holds the type it declares or the write fails.
//!
//! - `events`: `position INTEGER PRIMARY KEY AUTOINCREMENT` (the global position; AUTOINCREMENT
//!   so a position is never handed out twice), `event_id TEXT UNIQUE` (any non-empty text,
//!   compared byte for byte; ventyd writes its UUIDs as a person sees them and ventyd prints
//!   them, lowercase with hyphens, so v7 ids still sort by time), `entity_name`, `entity_id`, `version`, `event_name`, `schema_version`,
//!   `created_at` (the writer's time), `body` (JSON text), `metadata` (JSON text or `NULL`),
//!   `checked_schema` (the fingerprint of the schema the body passed before it was stored, or
//!   `NULL`) and `recorded_at` (the store's commit time), with
//!   `UNIQUE (entity_name, entity_id, version)`, whose index serves reads by entity too.
//!   Times are `INTEGER` milliseconds since the Unix epoch: exactly what a [`Timestamp`](crate::Timestamp) holds
//!   (millisecond precision, so nothing is rounded), no parsing when 10,000 events are loaded,
//!   and they compare and index as numbers. The view `events_readable` shows them as RFC 3339
//!   text, computed only when it is read (`docs/adapters.md` has a worked `sqlite3` session). A
//!   foreign client that inserts an event without `recorded_at` gets its own clock's time. Bodies are not
//!   checked with `json_valid` in SQL: ventyd validates every body before storing it and
//!   decodes it strictly when loading, so a SQL check would parse each body a third time on the
//!   write path.
//! - `documents`: `(collection, key)` primary key, `revision`, `body` (JSON text) and
//!   `updated_at` (the commit time of the last write).
//! - `ventyd_meta`: the schema version and the store's identity (`store_id`, a random number
//!   picked when the file was created), which the store's log cursors carry so that a cursor of
//!   another file is refused.
//!
//! Schema version 2 added `recorded_at` (events stored before get their creation time) and
//! `documents`, which replaced the `snapshots`, `views` and `checkpoints` tables of version 1
//! (snapshot rows move to the `ventyd.snapshots/<entity>` collections). A version-1 file is
//! migrated in place the first time this build opens it. Schema version 3 stores event ids as
//! text (the table is built again, positions and the position counter kept) and adds the view
//! `events_readable`. Schema version 4 takes event ids of any non-empty text (another writer's,
//! as Ventyd's `generateId` may make them), where version 3 allowed only a UUID's text; the table
//! is built again the same way.
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
//! Within a process, a file store's commits go to one **writer thread**, which owns the turn
//! to write. Callers queue their unit of work and wait for the answer asynchronously: a
//! caller's timeout or a dropped future ends the wait at once, even while another process
//! holds the file's lock, because the thread, not the caller's worker, waits out the busy
//! timeout. A commit whose caller stopped waiting may still complete (it may already have been
//! written when the caller gave up, and the caller cannot know); a retry of it is safe, because
//! the store recognises events it already holds.
//!
//! With [`Synchronous::Normal`], a **lone commit** (no other commit of the store in flight in
//! this process) skips the queue when the file's write lock is free at that moment, and
//! commits inline on the caller's thread: such a commit takes about as long as the hand-off to
//! the thread and back would, like any short piece of work between two awaits. It never waits
//! for the lock there: the connection's busy timeout is zero for the try, and when another
//! process holds the lock, nothing is written and the unit goes to the queue. So a caller's
//! timeout still ends every wait for a lock, and a single committer pays no thread hand-off.
//! With `FULL` every commit goes to the queue: the sync of the log is many times longer than a
//! hand-off, the runtime stays free meanwhile, and other commits join the group. (Commits
//! never use `block_in_place`, which panics inside a `LocalSet`.)
//!
//! The writer **group-commits**: it takes the first waiting unit and every unit queued behind
//! it, and writes them in one transaction, one unit after the other, so a conflict fails only
//! its own unit and every caller gets its own outcome (a unit's checks all come before its
//! first write; when a write itself fails, the group is rolled back and written again with a
//! savepoint per unit, so the failing unit is rolled back alone). With `synchronous=FULL` one
//! sync of the write-ahead log then serves the whole group. (An in-memory store, and a file
//! opened with no readers, share one connection for reads and writes behind an async lock
//! instead, and commit one unit per transaction, on tokio's blocking pool.)
//!
//! Reads use read-only connections (up to [`SqliteOptions::readers`], opened as needed, behind
//! an async semaphore) and, in WAL mode, never wait for writes. Between processes SQLite's file
//! lock arbitrates: every write runs in `BEGIN IMMEDIATE`, which takes the write lock before
//! the stream's version is read, so the expected-version check and the inserts see the same
//! stream. The writer waits for the lock up to the busy timeout (and retries the rare
//! `SQLITE_BUSY` that SQLite returns without waiting); past it, the error says that the
//! database is locked and names the file. A
//! unique-constraint failure is explained rather than passed on: a retried append returns its
//! stored outcome, a version clash becomes [`Error::Concurrency`] with the version re-read,
//! a reused event id is named.
//!
//! The expected-version check comes first and the event-id lookups only after a refusal: a
//! retried append either finds the stream moved (its own events are there) or hits the unique
//! event id, and in both cases the stored events are then compared with the request. A
//! successful append therefore reads one index entry (the stream's last version), the newest
//! commit time (one step down the right edge of the table) and inserts.
//!
//! A page of the log and the head it reports are read in one read transaction. Commits are
//! serialized by the file's write lock and positions are handed out inside them, so positions
//! increase in commit order and a cursor is a position.
//!
//! # Blocking work
//!
//! SQLite calls block. Commits run on the writer thread or, alone with `NORMAL`, inline
//! (above). Reads, and opening a file, run on tokio's blocking pool (`spawn_blocking`; outside
//! tokio, on the calling thread), so a long read never holds up the runtime's other tasks.
//! They used to run in `block_in_place` on the multi-threaded runtime, which saves the hand-off
//! but panics inside a `LocalSet`, and nothing tells beforehand whether it will.
//!
//! A hand-off to another thread costs a thread wake-up in each direction (tens of microseconds
//! on the virtual machine measured, sometimes a hundred: with `synchronous=NORMAL` a commit
//! through rusqlite alone took 28.6 µs, `block_in_place` 30.8 µs, a dedicated thread fed by a
//! channel 68 µs), more than a commit without a sync. See `docs/benchmarks.md` for what each
//! path costs against raw rusqlite, one committer and eight.
//!
//! Every connection turns on SQLite's query planner stability guarantee
//! (`SQLITE_DBCONFIG_ENABLE_QPSG`): without it, a statement that compares a column with a
//! parameter is compiled again each time it comes back out of rusqlite's statement cache
//! (SQLite expires it when its parameters are cleared), which cost a sixth of the writer's
//! time in a group commit. Each of ventyd's queries has one right plan, its key's index.
//!
//! [`Storage::read_stream`] and [`Storage::read_log`] build `Arc<StoredEvent>`s on the thread
//! that reads them, like the memory store's. [`Storage::visit_stream`], which repositories load
//! entities with, hands each row to the visitor as a borrowed [`EventRef`](crate::storage::EventRef) instead, so an event
//! is decoded straight from SQLite's row buffer and nothing is copied that the entity does not
//! keep.
//!
//! # Errors
//!
//! Every failure is a [`StorageError`] of the kind that fits (busy,
//! unavailable, corrupt, unsupported, invalid request) that says what was being done and names
//! the file and, where there is one, the entity: a file that is not a database or is corrupt, a
//! path that cannot be created, a read-only database, a lock held past the timeout. A failed
//! commit writes nothing: the transaction is rolled back before the error is returned.
//!
//! The driver (rusqlite) is not part of ventyd's API: a ventyd file is plain SQLite, which any
//! client opens (the `sqlite3` shell, another driver); write events only through the store,
//! which keeps versions gapless and positions in commit order.

use std::fmt;
use std::panic;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex, PoisonError};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use super::{
    AppendOutcome, AppendRequest, CommitOutcome, Document, DocumentPage, DocumentRange,
    EventVisitor, LogPage, LogRequest, ReadRange, Storage, UnitOfWork,
};
use crate::error::{Error, StorageError};

mod error;
mod options;
mod read;
mod schema;
mod write;
mod writer;

#[cfg(test)]
mod tests;

pub use options::{SqliteOptions, Synchronous};
pub use schema::SCHEMA_VERSION;

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
pub(crate) struct Ctx {
    /// The file, or `None` in memory.
    path: Option<PathBuf>,
    /// The file as error messages name it.
    label: String,
    options: SqliteOptions,
    /// The store's identity in its log cursors.
    origin: u64,
}

impl Ctx {
    /// A storage error for a failed SQLite call while doing `action`, naming the file and
    /// saying what the SQLite error means for the user.
    fn error(&self, action: impl fmt::Display, e: rusqlite::Error) -> Error {
        error::sql_error(&self.label, self.options.busy_timeout, action, e)
    }
}

struct Shared {
    ctx: Arc<Ctx>,
    /// `None` in memory, where reads use the writer's connection. Declared before `writer` so
    /// that the readers close first and the writer, closing last, checkpoints the log into the
    /// file and removes the -wal and -shm files.
    readers: Option<Arc<Readers>>,
    /// The one connection that writes.
    writer: WriterSide,
}

/// Who holds the connection that writes.
enum WriterSide {
    /// A file with readers: the writer thread, which group-commits.
    Thread(writer::Writer),
    /// In memory, or a file without readers (reads share the writer's connection): the
    /// connection behind an async lock, which queues writers as tasks, not threads.
    Shared(Arc<tokio::sync::Mutex<Connection>>),
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
    /// by a newer ventyd or its recorded schema version is damaged, or when it stays locked by
    /// another process past the busy timeout; an empty path is refused as such.
    ///
    /// `path` is always the path of a file: one that starts with `file:` is not read as a
    /// SQLite URI, and `:memory:` is a file of that name (for a store in memory, use
    /// [`in_memory`](Self::in_memory)).
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteStorage, Error> {
        Self::open_with(path, SqliteOptions::default()).await
    }

    /// Like [`open`](Self::open), with a chosen busy timeout, sync mode and number of readers.
    pub async fn open_with(
        path: impl AsRef<Path>,
        options: SqliteOptions,
    ) -> Result<SqliteStorage, Error> {
        let path = path.as_ref().to_path_buf();
        // SQLite would open a private temporary database for an empty name.
        if path.as_os_str().is_empty() {
            return Err(StorageError::invalid(
                "cannot open a SQLite store: the path is empty; give the path of the database file, or use SqliteStorage::in_memory() for a store in memory",
            )
            .into());
        }
        let ctx = Ctx {
            label: path.display().to_string(),
            path: Some(path),
            options,
            origin: 0,
        };
        let (ctx, conn) = off_the_runtime(move || open(ctx, schema::open_file)).await??;
        let readers = (options.readers > 0).then(|| {
            Arc::new(Readers {
                idle: StdMutex::new(Vec::new()),
                permits: Arc::new(Semaphore::new(options.readers)),
            })
        });
        SqliteStorage::new(ctx, conn, readers)
    }

    /// A private database in memory, gone when the last clone is dropped. For tests: it behaves
    /// like a file (same schema, same checks) but is not durable, and reads and writes share its
    /// one connection.
    pub async fn in_memory() -> Result<SqliteStorage, Error> {
        let ctx = Ctx {
            label: ":memory:".to_owned(),
            path: None,
            options: SqliteOptions::default(),
            origin: 0,
        };
        let (ctx, conn) = off_the_runtime(move || open(ctx, schema::open_memory)).await??;
        SqliteStorage::new(ctx, conn, None)
    }

    fn new(ctx: Ctx, conn: Connection, readers: Option<Arc<Readers>>) -> Result<Self, Error> {
        let ctx = Arc::new(ctx);
        let writer = match readers {
            Some(_) => WriterSide::Thread(writer::Writer::start(conn, ctx.clone())?),
            None => WriterSide::Shared(Arc::new(tokio::sync::Mutex::new(conn))),
        };
        Ok(SqliteStorage {
            shared: Arc::new(Shared {
                ctx,
                readers,
                writer,
            }),
        })
    }

    /// The database file; `None` for an in-memory store.
    pub fn path(&self) -> Option<&Path> {
        self.shared.ctx.path.as_deref()
    }

    /// The options the store was opened with.
    pub fn options(&self) -> SqliteOptions {
        self.shared.ctx.options
    }

    /// Runs `f` on the shared writer connection (in memory, or a file without readers), after
    /// the work queued before it, on tokio's blocking pool, so that a caller's wait (for the
    /// lock, for the busy timeout) can be cancelled.
    async fn write<T: Send + 'static>(
        &self,
        writer: &Arc<tokio::sync::Mutex<Connection>>,
        f: impl FnOnce(&mut Connection, &Ctx) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        // The guard moves into the blocking work, so a caller that stops waiting cannot release
        // the connection in the middle of a write.
        let mut conn = writer.clone().lock_owned().await;
        let ctx = self.shared.ctx.clone();
        off_the_runtime(move || f(&mut conn, &ctx)).await?
    }

    /// Runs `f` on a read connection (the writer's in memory).
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, &Ctx) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let (Some(readers), WriterSide::Thread(_)) = (&self.shared.readers, &self.shared.writer)
        else {
            let WriterSide::Shared(writer) = &self.shared.writer else {
                unreachable!("a store without readers has a shared writer connection")
            };
            return self.write(writer, move |conn, ctx| f(conn, ctx)).await;
        };
        // Waiting for a permit is asynchronous: a burst of reads queues as tasks, not threads.
        let permit = readers
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| StorageError::with_source("the SQLite readers are closed", e))?;
        let (readers, shared) = (readers.clone(), self.shared.clone());
        off_the_runtime(move || {
            let _permit = permit;
            let conn = readers.take(&shared.ctx)?;
            let result = f(&conn, &shared.ctx);
            readers.give_back(conn);
            result
        })
        .await?
    }
}

/// Opens the writer connection with `open` and reads the store's identity.
fn open(
    mut ctx: Ctx,
    open: fn(&Ctx) -> Result<Connection, Error>,
) -> Result<(Ctx, Connection), Error> {
    let conn = open(&ctx)?;
    ctx.origin = schema::store_id(&conn, &ctx)?;
    Ok((ctx, conn))
}

/// Runs blocking work on tokio's blocking pool (outside tokio: right here), so that the caller
/// waits asynchronously and can stop waiting. The work itself runs to its end.
async fn off_the_runtime<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    match tokio::runtime::Handle::try_current() {
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
    let path = schema::literal_path(ctx.path.as_deref().unwrap_or(Path::new("")));
    Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .and_then(|conn| {
        conn.busy_timeout(ctx.options.busy_timeout)?;
        schema::plan_once(&conn)?;
        Ok(conn)
    })
    .map_err(|e| ctx.error("cannot open a read connection", e))
}

impl Storage for SqliteStorage {
    async fn commit(&self, unit: &UnitOfWork<'_>) -> Result<CommitOutcome, Error> {
        unit.check()?;
        match &self.shared.writer {
            WriterSide::Thread(writer) => writer.commit(unit).await,
            WriterSide::Shared(writer) => {
                let owned = write::OwnedUnit::new(unit);
                self.write(writer, move |conn, ctx| {
                    write::commit_blocking(conn, ctx, &owned.unit())
                })
                .await
            }
        }
    }

    async fn append(&self, request: AppendRequest<'_>) -> Result<AppendOutcome, Error> {
        let mut outcome = self.commit(&UnitOfWork::single(request)).await?;
        outcome.appends.pop().ok_or_else(|| {
            StorageError::msg(format!(
                "the SQLite store reported no outcome for the append to {} {:?}",
                request.entity_name, request.entity_id
            ))
            .into()
        })
    }

    async fn visit_stream<V: EventVisitor>(
        &self,
        entity_name: &str,
        entity_id: &str,
        range: ReadRange,
        visitor: V,
    ) -> Result<V, Error> {
        let (entity_name, entity_id) = (entity_name.to_owned(), entity_id.to_owned());
        // The visitor moves into the blocking read and comes back with what it built: each
        // event is decoded straight from SQLite's row buffer.
        self.read(move |conn, ctx| {
            let mut visitor = visitor;
            read::visit_stream(conn, ctx, &entity_name, &entity_id, range, |e| {
                visitor.visit(e)
            })?;
            Ok(visitor)
        })
        .await
    }

    async fn read_log(&self, request: &LogRequest) -> Result<LogPage, Error> {
        request.check()?;
        let request = request.clone();
        self.read(move |conn, ctx| read::read_log(conn, ctx, ctx.origin, &request))
            .await
    }

    async fn read_document(&self, collection: &str, key: &str) -> Result<Option<Document>, Error> {
        let (collection, key) = (collection.to_owned(), key.to_owned());
        self.read(move |conn, ctx| read::read_document(conn, ctx, &collection, &key))
            .await
    }

    async fn list_documents(&self, range: &DocumentRange) -> Result<DocumentPage, Error> {
        let range = range.clone();
        self.read(move |conn, ctx| read::list_documents(conn, ctx, &range))
            .await
    }
}
