//! The PostgreSQL store (feature `postgres`): the production store, shared by many application
//! processes.
//!
//! ```no_run
//! use ventyd::storage::postgres::{PostgresOptions, PostgresStorage};
//!
//! # async fn run() -> Result<(), ventyd::Error> {
//! let store = PostgresStorage::connect("postgres://app@db.internal/events").await?;
//! // Or in a schema of its own, with at most 32 connections:
//! let store = PostgresStorage::connect_with(
//!     "postgres://app@db.internal/events",
//!     PostgresOptions::default().schema("billing").max_connections(32),
//! )
//! .await?;
//! # Ok(()) }
//! ```
//!
//! # The driver
//!
//! tokio-postgres with a deadpool pool: the driver that every Rust PostgreSQL stack builds on or
//! beside, with pipelining, binary parameters and cached prepared statements, and no TLS, macro or
//! runtime crates pulled in by ventyd (bring a TLS connector, or use a local socket or a private
//! network). `docs/adapters.md` has the figures that decided it against sqlx.
//!
//! # Tables
//!
//! All in one schema (`public` unless [`PostgresOptions::schema`] says otherwise), created and
//! migrated by ventyd in one transaction under an advisory lock, so processes starting at once
//! migrate once; a schema recorded by a newer ventyd, or holding tables of ventyd's names that
//! ventyd did not create, is refused before anything in it is changed.
//!
//! - `events`: `position` (identity), `tx_id xid8` (the writing transaction), `event_id text
//!   UNIQUE` (any non-empty text), `entity_name`, `entity_id`, `version` (`UNIQUE` with the
//!   stream, whose index serves entity reads), `event_name`, `schema_version`, `created_at` and
//!   `recorded_at` (`timestamptz`, milliseconds), `body` and `metadata` (`jsonb`) and
//!   `checked_schema`; indexes for the log order `(tx_id, position)`, by event name, by entity name
//!   and by commit time.
//! - `documents`: `(collection, key)` primary key (byte order), `revision`, `body jsonb`,
//!   `updated_at`.
//! - `ventyd_meta`: the schema version and the store's identity.
//!
//! # The log order
//!
//! Positions come from a sequence, so a transaction may take position 10 and commit after
//! another took 11: a reader that had seen 11 and resumed after it would never see 10. ventyd
//! reads the log in `(tx_id, position)` order and only below the oldest transaction still
//! running (`pg_snapshot_xmin(pg_current_snapshot())`): every event a reader is handed belongs to
//! a transaction that has ended, and every event still to come sorts after it. The price: a
//! transaction that stays open (in any database of the server) holds the log's head back until
//! it ends; commits themselves are not held back.
//!
//! Every commit takes its transaction id, its commit time and its positions in one moment, under
//! an advisory lock held for those microseconds only, so that ids, positions and commit times
//! follow one order: positions increase and commit times never decrease in log order. (A lock
//! held until commit would make every commit wait for the one before it to reach the disk.)
//!
//! # Bodies
//!
//! Bodies and metadata are `jsonb`: the server parses them and keeps its own text form (key
//! order, spacing), so a body reads back as the same JSON value, not the same text, and a retry
//! compares bodies as JSON values. `jsonb` refuses `\u0000`, which every store refuses
//! ([`UnitOfWork::check`](crate::storage::UnitOfWork::check)).

mod error;
mod read;
mod schema;
mod wire;
mod write;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use self::error::{Stage, pg_error, redact};
use self::write::Statements;
use crate::error::{Error, StorageError, StorageErrorKind};
use crate::record::EventVisitor;
use crate::storage::{
    CommitOutcome, DocumentPage, DocumentRange, LogPage, LogRequest, ReadRange, Storage, UnitOfWork,
};

pub use schema::SCHEMA_VERSION;

/// A pooled connection.
type Conn = deadpool_postgres::Object;

/// Options of [`PostgresStorage::connect_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// The schema that holds ventyd's tables (default `public`); created when missing.
    pub schema: String,
    /// The most connections the pool opens (default 16).
    pub max_connections: usize,
    /// How long to wait for a connection, from the pool or the server (default 10 s).
    pub connect_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            schema: "public".to_owned(),
            max_connections: 16,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl PostgresOptions {
    /// Keeps ventyd's tables in `schema`: lowercase ASCII letters, digits and `_`.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Sets the most connections the pool opens (at least 1).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Sets how long to wait for a connection.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}

/// What the store knows about its database: enough to name it in errors.
pub(crate) struct Ctx {
    /// The database as messages name it: `test on 127.0.0.1:5432 (schema "public")`.
    label: String,
    options: PostgresOptions,
    /// The schema name as SQL (quoted).
    schema_sql: String,
    /// The store's identity in its log cursors, and its position lock's key.
    origin: u64,
    statements: Statements,
}

/// An event store in a PostgreSQL database, shared by every process that connects to it.
///
/// Clones share one connection pool. See the [module docs](self) for the tables, the log order
/// and the driver.
#[derive(Clone)]
pub struct PostgresStorage {
    pool: Pool,
    ctx: Arc<Ctx>,
}

impl fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStorage")
            .field("database", &self.ctx.label)
            .field("options", &self.ctx.options)
            .finish_non_exhaustive()
    }
}

impl PostgresStorage {
    /// Connects to the database at `url` (`postgres://user@host:port/database`, or the
    /// `host=... dbname=...` form) with the default [`PostgresOptions`], and creates or migrates
    /// the tables.
    ///
    /// Fails, naming the database, when the URL is malformed, the server cannot be reached,
    /// authentication fails, the database does not exist, the schema was written by a newer
    /// ventyd, or it holds tables of ventyd's names that ventyd did not create. Messages never
    /// show the URL's password.
    pub async fn connect(url: &str) -> Result<PostgresStorage, Error> {
        Self::connect_with(url, PostgresOptions::default()).await
    }

    /// Like [`connect`](Self::connect), with a chosen schema, pool size and timeout.
    pub async fn connect_with(
        url: &str,
        options: PostgresOptions,
    ) -> Result<PostgresStorage, Error> {
        let schema_sql = schema::quoted_schema(&options.schema)?;
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            StorageError::invalid(format!(
                "{} is not a PostgreSQL URL ({e}); write postgres://USER@HOST:PORT/DATABASE",
                redact(url)
            ))
        })?;
        config.connect_timeout(options.connect_timeout);
        let label = label(&config, &options.schema);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| {
                StorageError::with_source(
                    format!("cannot set up the connection pool for {label}"),
                    e,
                )
            })?;
        let mut ctx = Ctx {
            statements: Statements::new(&schema_sql),
            label,
            options,
            schema_sql,
            origin: 0,
        };
        let mut conn = get(&pool, &ctx).await?;
        ctx.origin = schema::prepare(&mut conn, &ctx).await?;
        Ok(PostgresStorage {
            pool,
            ctx: Arc::new(ctx),
        })
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &PostgresOptions {
        &self.ctx.options
    }

    async fn conn(&self) -> Result<Conn, Error> {
        get(&self.pool, &self.ctx).await
    }
}

/// The database as messages name it.
fn label(config: &tokio_postgres::Config, schema: &str) -> String {
    use tokio_postgres::config::Host;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("{db:?} on {host}:{port} (schema {schema:?})")
}

/// A connection from the pool, or an error that says why there is none.
async fn get(pool: &Pool, ctx: &Ctx) -> Result<Conn, Error> {
    use deadpool_postgres::PoolError;
    pool.get().await.map_err(|e| match e {
        PoolError::Backend(e) => pg_error(&ctx.label, "cannot connect", Stage::Before, e),
        PoolError::Timeout(_) => StorageError::new(
            StorageErrorKind::Busy,
            format!(
                "cannot get a connection to the PostgreSQL database {} within {:?}: all {} are in use or the server does not answer",
                ctx.label, ctx.options.connect_timeout, ctx.options.max_connections
            ),
        )
        .into(),
        other => StorageError::with_source(
            format!("cannot get a connection to the PostgreSQL database {}", ctx.label),
            other,
        )
        .into(),
    })
}

impl Storage for PostgresStorage {
    async fn commit(&self, unit: &UnitOfWork<'_>) -> Result<CommitOutcome, Error> {
        unit.check()?;
        let mut conn = self.conn().await?;
        let result = write::commit(&mut conn, &self.ctx, unit).await;
        if let Err(Error::Storage(_)) = &result {
            // A connection that failed mid-commit is not handed out again: closing it rolls
            // back whatever it left open, and releases any lock it held.
            drop(deadpool_postgres::Object::take(conn));
        }
        result
    }

    async fn visit_stream<V: EventVisitor>(
        &self,
        entity_name: &str,
        entity_id: &str,
        range: ReadRange,
        visitor: V,
    ) -> Result<V, Error> {
        let conn = self.conn().await?;
        read::visit_stream(&conn, &self.ctx, entity_name, entity_id, range, visitor).await
    }

    async fn read_log(&self, request: &LogRequest) -> Result<LogPage, Error> {
        let conn = self.conn().await?;
        read::read_log(&conn, &self.ctx, request).await
    }

    async fn read_document(
        &self,
        collection: &str,
        key: &str,
    ) -> Result<Option<crate::storage::Document>, Error> {
        let conn = self.conn().await?;
        read::read_document(&conn, &self.ctx, collection, key).await
    }

    async fn list_documents(&self, range: &DocumentRange) -> Result<DocumentPage, Error> {
        let conn = self.conn().await?;
        read::list_documents(&conn, &self.ctx, range).await
    }
}
