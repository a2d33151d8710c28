//! A store chosen at run time: [`AnyStorage`], from a value or from a URL.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::{
    CommitOutcome, Document, DocumentPage, DocumentRange, EventRef, EventVisitor, LogPage,
    LogRequest, MemoryStorage, ReadRange, Storage, UnitOfWork,
};
use crate::error::{Error, StorageError, StorageErrorKind};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

/// A visitor whose type is forgotten on the way through a `dyn` store and recovered after.
trait AnyVisitor: EventVisitor {
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}

impl<V: EventVisitor> AnyVisitor for V {
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

impl EventVisitor for Box<dyn AnyVisitor> {
    fn visit(&mut self, event: EventRef<'_>) -> Result<(), Error> {
        (**self).visit(event)
    }

    fn expect(&mut self, events: usize) {
        (**self).expect(events)
    }
}

/// The object-safe form of [`Storage`], with boxed futures.
trait DynStorage: Send + Sync + 'static {
    fn commit<'a>(&'a self, unit: &'a UnitOfWork<'a>) -> BoxFuture<'a, CommitOutcome>;
    fn visit_stream<'a>(
        &'a self,
        entity_name: &'a str,
        entity_id: &'a str,
        range: ReadRange,
        visitor: Box<dyn AnyVisitor>,
    ) -> BoxFuture<'a, Box<dyn AnyVisitor>>;
    fn read_log<'a>(&'a self, request: &'a LogRequest) -> BoxFuture<'a, LogPage>;
    fn read_document<'a>(
        &'a self,
        collection: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Option<Document>>;
    fn list_documents<'a>(&'a self, range: &'a DocumentRange) -> BoxFuture<'a, DocumentPage>;
}

impl<S: Storage> DynStorage for S {
    fn commit<'a>(&'a self, unit: &'a UnitOfWork<'a>) -> BoxFuture<'a, CommitOutcome> {
        Box::pin(Storage::commit(self, unit))
    }

    fn visit_stream<'a>(
        &'a self,
        entity_name: &'a str,
        entity_id: &'a str,
        range: ReadRange,
        visitor: Box<dyn AnyVisitor>,
    ) -> BoxFuture<'a, Box<dyn AnyVisitor>> {
        Box::pin(Storage::visit_stream(
            self,
            entity_name,
            entity_id,
            range,
            visitor,
        ))
    }

    fn read_log<'a>(&'a self, request: &'a LogRequest) -> BoxFuture<'a, LogPage> {
        Box::pin(Storage::read_log(self, request))
    }

    fn read_document<'a>(
        &'a self,
        collection: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Option<Document>> {
        Box::pin(Storage::read_document(self, collection, key))
    }

    fn list_documents<'a>(&'a self, range: &'a DocumentRange) -> BoxFuture<'a, DocumentPage> {
        Box::pin(Storage::list_documents(self, range))
    }
}

/// Any store, chosen at run time: an application can pick its store from configuration without
/// carrying a type parameter everywhere (the idea of sqlx's `Any` driver). Clones share the
/// store. Each call costs one boxed future more than calling the store directly.
///
/// ```
/// use ventyd::prelude::*;
/// use ventyd::storage::AnyStorage;
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
/// let url = std::env::var("EVENTS_URL").unwrap_or_else(|_| "sqlite::memory:".to_owned());
/// let repo = Repository::<User, _>::new(AnyStorage::open(&url).await?);
/// let mut user = repo.create(UserCreated { email: "a@example.com".into() })?;
/// repo.commit(&mut user).await?;
/// assert!(repo.find_one(user.entity_id()).await?.is_some());
/// # Ok::<(), ventyd::Error>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct AnyStorage {
    inner: Arc<dyn DynStorage>,
    label: Arc<str>,
}

impl fmt::Debug for AnyStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AnyStorage").field(&self.label).finish()
    }
}

impl AnyStorage {
    /// Wraps a store.
    pub fn new<S: Storage>(store: S) -> Self {
        AnyStorage {
            inner: Arc::new(store),
            label: std::any::type_name::<S>().into(),
        }
    }

    /// Opens a store from a URL:
    ///
    /// | URL | store |
    /// |---|---|
    /// | `memory:` | a new [`MemoryStorage`] |
    /// | `sqlite::memory:` | `SqliteStorage::in_memory` (feature `sqlite`) |
    /// | `sqlite://PATH`, `sqlite:PATH` | `SqliteStorage::open_with` on `PATH` (`sqlite:///abs/app.db` is `/abs/app.db`, `sqlite://app.db` is `app.db` in the working directory) |
    ///
    /// A SQLite URL takes options after `?`, separated by `&`: `synchronous=full|normal`,
    /// `busy_timeout_ms=N`, `readers=N`. The path is taken as written (no percent-decoding).
    /// `postgres://` joins with the PostgreSQL store. An unknown scheme or option, or a feature
    /// not compiled in, is an error that names it; nothing is opened or created then.
    pub async fn open(url: &str) -> Result<AnyStorage, Error> {
        let (scheme, rest) = url.split_once(':').ok_or_else(|| {
            StorageError::invalid(format!(
                "{url:?} is not a store URL: expected \"memory:\", \"sqlite://PATH\" or \"sqlite::memory:\""
            ))
        })?;
        let store = match scheme {
            "memory" if rest.is_empty() || rest == "//" => AnyStorage::new(MemoryStorage::new()),
            "memory" => {
                return Err(StorageError::invalid(format!(
                    "{url:?}: a memory store takes nothing after \"memory:\""
                ))
                .into());
            }
            "sqlite" => open_sqlite(url, rest).await?,
            "postgres" | "postgresql" => {
                return Err(StorageError::new(
                    StorageErrorKind::Unsupported,
                    format!(
                        "cannot open {}: this build of ventyd has no PostgreSQL store",
                        redact(url)
                    ),
                )
                .into());
            }
            other => {
                return Err(StorageError::invalid(format!(
                    "unknown store URL scheme {other:?} in {}; ventyd opens \"memory:\", \"sqlite://PATH\" and \"sqlite::memory:\"",
                    redact(url)
                ))
                .into());
            }
        };
        Ok(AnyStorage {
            label: redact(url).into(),
            ..store
        })
    }

    /// What the store is: the URL it was opened from (without a password), or the type of the
    /// store it wraps.
    pub fn label(&self) -> &str {
        &self.label
    }
}

/// A URL without the password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let auth = &url[s + 3..at];
            match auth.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(feature = "sqlite")]
async fn open_sqlite(url: &str, rest: &str) -> Result<AnyStorage, Error> {
    use std::time::Duration;

    use super::sqlite::{SqliteOptions, SqliteStorage, Synchronous};

    if rest == ":memory:" {
        return Ok(AnyStorage::new(SqliteStorage::in_memory().await?));
    }
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() {
        return Err(StorageError::invalid(format!(
            "{url:?} names no file: write \"sqlite://PATH\" (or \"sqlite::memory:\")"
        ))
        .into());
    }
    let mut options = SqliteOptions::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let bad = |what: &str| {
            StorageError::invalid(format!("{url:?}: the option {key}={value:?} {what}"))
        };
        options = match key {
            "synchronous" => match value.to_ascii_lowercase().as_str() {
                "full" => options.synchronous(Synchronous::Full),
                "normal" => options.synchronous(Synchronous::Normal),
                _ => return Err(bad("must be \"full\" or \"normal\"").into()),
            },
            "busy_timeout_ms" => {
                let ms = value
                    .parse::<u64>()
                    .map_err(|_| bad("must be a number of milliseconds"))?;
                options.busy_timeout(Duration::from_millis(ms))
            }
            "readers" => {
                let n = value
                    .parse::<usize>()
                    .map_err(|_| bad("must be a number of connections"))?;
                options.readers(n)
            }
            _ => {
                return Err(StorageError::invalid(format!(
                    "{url:?}: unknown SQLite option {key:?}; known: synchronous, busy_timeout_ms, readers"
                ))
                .into());
            }
        };
    }
    Ok(AnyStorage::new(
        SqliteStorage::open_with(path, options).await?,
    ))
}

#[cfg(not(feature = "sqlite"))]
async fn open_sqlite(url: &str, _rest: &str) -> Result<AnyStorage, Error> {
    Err(StorageError::new(
        StorageErrorKind::Unsupported,
        format!(
            "cannot open {url:?}: this build of ventyd has no SQLite store (feature \"sqlite\")"
        ),
    )
    .into())
}

impl Storage for AnyStorage {
    async fn commit(&self, unit: &UnitOfWork<'_>) -> Result<CommitOutcome, Error> {
        self.inner.commit(unit).await
    }

    async fn visit_stream<V: EventVisitor>(
        &self,
        entity_name: &str,
        entity_id: &str,
        range: ReadRange,
        visitor: V,
    ) -> Result<V, Error> {
        let boxed: Box<dyn AnyVisitor> = Box::new(visitor);
        let back = self
            .inner
            .visit_stream(entity_name, entity_id, range, boxed)
            .await?;
        match back.into_any().downcast::<V>() {
            Ok(v) => Ok(*v),
            Err(_) => Err(StorageError::msg(format!(
                "the store {} gave back another visitor than it was lent",
                self.label
            ))
            .into()),
        }
    }

    async fn read_log(&self, request: &LogRequest) -> Result<LogPage, Error> {
        self.inner.read_log(request).await
    }

    async fn read_document(&self, collection: &str, key: &str) -> Result<Option<Document>, Error> {
        self.inner.read_document(collection, key).await
    }

    async fn list_documents(&self, range: &DocumentRange) -> Result<DocumentPage, Error> {
        self.inner.list_documents(range).await
    }
}
