//! The storage seam: the [`Storage`] trait and its adapters.
//!
//! A store keeps one append-only **log** of events and a set of keyed **documents**.
//!
//! - Every event belongs to one **stream**, named by entity name and entity id, in which
//!   versions run 1, 2, 3, ... without gaps. Every event also has a **position** in the global
//!   log and the store's **commit time** (`recorded_at`), both assigned by the store when it
//!   commits the event and read back with it.
//! - A **document** is a JSON body under a collection and a key, with a revision that grows by
//!   one with every write: a snapshot, an inline-view row, a projection's checkpoint.
//!
//! Everything is written through one call, [`Storage::commit`], which takes a [`UnitOfWork`]:
//! appends to one or more streams (each with its [`ExpectedVersion`]) and document writes (each
//! with its [`ExpectedRevision`]), applied all together or not at all. A single-stream append
//! stays one line: [`Storage::append`].
//!
//! The log is read by **cursor** ([`Storage::read_log`]): a page of events, the [`LogCursor`]
//! to resume from, and whether the reader is at the head. See the trait's docs for the
//! guarantees every adapter gives, and `docs/adapters.md` for why the seam has this shape.
//!
//! An adapter implements five methods and proves its behaviour with the conformance suite that
//! every adapter here passes (`ventyd::storage_conformance!`, feature `testing`). A wrapper (a
//! spy, a metrics or tracing layer) implements [`Forward`] and overrides only what it changes;
//! [`AnyStorage`] picks a store at run time, from a value or a URL.

use std::future::Future;
use std::sync::Arc;

use crate::error::Error;

mod any;
mod document;
mod log;
mod memory;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
#[cfg(feature = "sqlite")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
pub mod sqlite;
mod unit;

pub use crate::record::{CollectEvents, EventRef, EventVisitor, NewEvent, StoredEvent};
pub use crate::version::{ExpectedRevision, ExpectedVersion};
pub use any::AnyStorage;
pub use document::{Document, DocumentPage, DocumentRange};
pub use log::{
    CorruptEvent, LogCursor, LogEntry, LogFilter, LogPage, LogRequest, ParseCursorError,
};
pub use memory::MemoryStorage;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStorage;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStorage;
#[cfg(feature = "postgres")]
pub(crate) use unit::Settled;
pub use unit::{
    AppendOutcome, AppendRequest, CommitOutcome, DocumentOp, DocumentWrite, EventPlace, UnitOfWork,
};
pub(crate) use unit::{Plan, Prior, check_guards, first_recorded, is_replay, plan, settle};

/// Which part of a stream to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadRange {
    /// The first version to read (1 = from the start).
    pub from_version: u64,
    /// The last version to read, inclusive; `None` = to the end.
    pub to_version: Option<u64>,
}

impl ReadRange {
    /// The whole stream.
    pub const ALL: ReadRange = ReadRange {
        from_version: 1,
        to_version: None,
    };

    /// Versions 1 to `version`, inclusive (time travel).
    pub fn up_to(version: u64) -> Self {
        ReadRange {
            from_version: 1,
            to_version: Some(version),
        }
    }

    /// Does `version` fall in the range?
    pub fn contains(&self, version: u64) -> bool {
        version >= self.from_version && self.to_version.is_none_or(|to| version <= to)
    }
}

impl Default for ReadRange {
    fn default() -> Self {
        ReadRange::ALL
    }
}

/// An event store: an append-only log of events in streams, and keyed documents.
///
/// # What every adapter guarantees
///
/// **Commits.**
/// - [`commit`](Storage::commit) applies a whole [`UnitOfWork`] or nothing of it. It first
///   refuses a malformed unit ([`UnitOfWork::check`]). Each append's expected version and each
///   document write's expected revision are checked inside the same atomic step as the writes; a
///   mismatch fails the whole unit with [`Error::Concurrency`] (naming the stream, the expected
///   and the actual version) or [`Error::DocumentConflict`] (naming the document, the expected
///   and the actual revision).
/// - The store assigns each committed event its version, its position and its commit time
///   (`recorded_at`, by the store's clock, the same for every event of the commit, never
///   decreasing in log order), and reports them in the [`CommitOutcome`].
/// - **Retries are safe.** An append whose event ids are all stored already, in the same stream
///   at consecutive versions with the same names and bodies (bodies compare as JSON values), is
///   a retry of a commit that succeeded: it reports the stored outcome and stores nothing. When
///   only the first events of an append are stored that way (the entity queued more events
///   after a commit whose outcome was lost), only the rest are appended, right after the stored
///   ones; if another writer appended in between, it is a conflict, which a reload settles. A
///   unit whose every non-empty append is such a full retry is a retry as a whole: its document
///   writes and its appends of no events (guards on a stream's version) are not checked or
///   applied again, since they held when the unit was committed. A unit that appends anything
///   new is checked in full, documents included: a retry with one more event whose document
///   expectations no longer hold is a conflict, which a reload settles. An event id stored
///   anywhere else, or with other content, is refused
///   ([`InvalidRequest`](crate::StorageErrorKind::InvalidRequest)).
/// - The events of one unit get increasing positions in the order the unit holds them.
///
/// **Reads.**
/// - [`visit_stream`](Storage::visit_stream) lends one stream's events in version order.
/// - [`read_log`](Storage::read_log): a reader that resumes from any cursor it was given sees
///   every committed event after it exactly once, in commit order, even while other
///   transactions are in flight. Positions increase in commit order and may have gaps. A page
///   holds at most `limit` entries; a filtered page moves the cursor past the events it skipped.
///   A stored row that cannot be read is reported in its place in the page
///   ([`CorruptEvent`], with its position), and the rest of the log stays readable. A cursor of
///   another store, or a damaged one, is refused.
/// - [`read_document`](Storage::read_document) and [`list_documents`](Storage::list_documents)
///   read documents with their revisions; listing is in key order and paged.
///
/// **Errors** say their kind ([`StorageErrorKind`](crate::StorageErrorKind)), and
/// [`Error::is_retryable`] says when repeating the same call is safe.
pub trait Storage: Send + Sync + 'static {
    /// Commits a unit of work, atomically.
    fn commit(
        &self,
        unit: &UnitOfWork<'_>,
    ) -> impl Future<Output = Result<CommitOutcome, Error>> + Send;

    /// Reads one stream's events in version order into `visitor` and gives it back. A store that
    /// can lend its rows hands each event over without copying it.
    fn visit_stream<V: EventVisitor>(
        &self,
        entity_name: &str,
        entity_id: &str,
        range: ReadRange,
        visitor: V,
    ) -> impl Future<Output = Result<V, Error>> + Send;

    /// Reads a page of the global log after a cursor.
    fn read_log(&self, request: &LogRequest)
    -> impl Future<Output = Result<LogPage, Error>> + Send;

    /// One document, with its revision; `None` when there is none.
    fn read_document(
        &self,
        collection: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<Document>, Error>> + Send;

    /// A page of one collection's documents, in key order.
    fn list_documents(
        &self,
        range: &DocumentRange,
    ) -> impl Future<Output = Result<DocumentPage, Error>> + Send;

    /// Appends events to one stream, atomically: a unit of work of one append.
    ///
    /// ```
    /// use ventyd::storage::{AppendRequest, NewEvent, Storage};
    /// use ventyd::{ExpectedVersion, IdGenerator, MemoryStorage, UuidV7};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let store = MemoryStorage::new();
    /// let events = [NewEvent::new(UuidV7.event_id(), "user:created", r#"{"email":"a@example.com"}"#)];
    /// let outcome = store.append(AppendRequest::new("user", "42", ExpectedVersion::NoStream, &events)).await?;
    /// assert_eq!(outcome.version, 1);
    /// # Ok::<(), ventyd::Error>(())
    /// # }).unwrap();
    /// ```
    fn append(
        &self,
        request: AppendRequest<'_>,
    ) -> impl Future<Output = Result<AppendOutcome, Error>> + Send {
        async move {
            let mut outcome = self.commit(&UnitOfWork::single(request)).await?;
            outcome.appends.pop().ok_or_else(|| {
                crate::error::StorageError::msg(format!(
                    "the store reported no outcome for the append to {}",
                    request.stream()
                ))
                .into()
            })
        }
    }

    /// Reads one stream's events in version order, as shared owned copies.
    fn read_stream(
        &self,
        entity_name: &str,
        entity_id: &str,
        range: ReadRange,
    ) -> impl Future<Output = Result<Vec<Arc<StoredEvent>>, Error>> + Send {
        async move {
            let events = self
                .visit_stream(entity_name, entity_id, range, CollectEvents::default())
                .await?;
            Ok(events.0)
        }
    }
}

/// A store that wraps another and forwards to it: implement [`inner`](Forward::inner) and
/// override only the calls the wrapper changes (a spy that counts commits, a layer that records
/// metrics or injects faults). Every `Forward` is a [`Storage`].
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use ventyd::storage::{CommitOutcome, Forward, Storage, UnitOfWork};
/// use ventyd::{Error, MemoryStorage};
///
/// struct CountCommits {
///     inner: MemoryStorage,
///     commits: AtomicUsize,
/// }
///
/// impl Forward for CountCommits {
///     type Inner = MemoryStorage;
///     fn inner(&self) -> &MemoryStorage {
///         &self.inner
///     }
///     async fn commit(&self, unit: &UnitOfWork<'_>) -> Result<CommitOutcome, Error> {
///         self.commits.fetch_add(1, Ordering::Relaxed);
///         self.inner.commit(unit).await
///     }
/// }
///
/// fn takes_a_store(_: &impl Storage) {}
/// takes_a_store(&CountCommits { inner: MemoryStorage::new(), commits: AtomicUsize::new(0) });
/// ```
pub trait Forward: Send + Sync + 'static {
    /// The wrapped store.
    type Inner: Storage;

    /// The wrapped store, which every call not overridden goes to.
    fn inner(&self) -> &Self::Inner;

    /// See [`Storage::commit`].
    fn commit(
        &self,
        unit: &UnitOfWork<'_>,
    ) -> impl Future<Output = Result<CommitOutcome, Error>> + Send {
        self.inner().commit(unit)
    }

    /// See [`Storage::visit_stream`].
    fn visit_stream<V: EventVisitor>(
        &self,
        entity_name: &str,
        entity_id: &str,
        range: ReadRange,
        visitor: V,
    ) -> impl Future<Output = Result<V, Error>> + Send {
        self.inner()
            .visit_stream(entity_name, entity_id, range, visitor)
    }

    /// See [`Storage::read_log`].
    fn read_log(
        &self,
        request: &LogRequest,
    ) -> impl Future<Output = Result<LogPage, Error>> + Send {
        self.inner().read_log(request)
    }

    /// See [`Storage::read_document`].
    fn read_document(
        &self,
        collection: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<Document>, Error>> + Send {
        self.inner().read_document(collection, key)
    }

    /// See [`Storage::list_documents`].
    fn list_documents(
        &self,
        range: &DocumentRange,
    ) -> impl Future<Output = Result<DocumentPage, Error>> + Send {
        self.inner().list_documents(range)
    }
}

impl<F: Forward> Storage for F {
    fn commit(
        &self,
        unit: &UnitOfWork<'_>,
    ) -> impl Future<Output = Result<CommitOutcome, Error>> + Send {
        Forward::commit(self, unit)
    }

    fn visit_stream<V: EventVisitor>(
        &self,
        entity_name: &str,
        entity_id: &str,
        range: ReadRange,
        visitor: V,
    ) -> impl Future<Output = Result<V, Error>> + Send {
        Forward::visit_stream(self, entity_name, entity_id, range, visitor)
    }

    fn read_log(
        &self,
        request: &LogRequest,
    ) -> impl Future<Output = Result<LogPage, Error>> + Send {
        Forward::read_log(self, request)
    }

    fn read_document(
        &self,
        collection: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<Document>, Error>> + Send {
        Forward::read_document(self, collection, key)
    }

    fn list_documents(
        &self,
        range: &DocumentRange,
    ) -> impl Future<Output = Result<DocumentPage, Error>> + Send {
        Forward::list_documents(self, range)
    }
}

/// A shared store is a store.
impl<S: Storage> Forward for Arc<S> {
    type Inner = S;

    fn inner(&self) -> &S {
        self
    }
}
