//! The storage conformance suite (`ventyd::testing`) against every adapter: one test per case
//! and adapter (`memory::snapshot_round_trips`, `sqlite_file::readers_never_see_half_a_batch`),
//! plus `<adapter>::all_cases_on_one_shared_store`, which runs every case at once on one store.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ventyd::storage::{AppendOutcome, AppendRequest, ReadRange, Snapshot, Storage, StoredEvent};
use ventyd::{Error, SqliteStorage};

ventyd::storage_conformance!(memory, async { ventyd::MemoryStorage::new() });

ventyd::storage_conformance!(sqlite_memory, async {
    SqliteStorage::in_memory()
        .await
        .expect("opening an in-memory SQLite store")
});

ventyd::storage_conformance!(sqlite_file, TempSqlite::open(1));

// Two stores opened on one file and used in turn, call by call: as two processes sharing a
// database, each must see what the other committed, and their writes must not collide.
ventyd::storage_conformance!(sqlite_two_handles, TempSqlite::open(2));

/// SQLite stores opened on one file in a temporary directory of its own, used in turn; the
/// directory is removed (after the stores close) when the test drops it.
struct TempSqlite {
    // Declared first so that they drop first: the stores close the file before the directory
    // goes.
    stores: Vec<SqliteStorage>,
    next: AtomicUsize,
    _dir: tempfile::TempDir,
}

impl TempSqlite {
    async fn open(handles: usize) -> TempSqlite {
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        let path = dir.path().join("events.db");
        let mut stores = Vec::new();
        for _ in 0..handles {
            stores.push(
                SqliteStorage::open(&path)
                    .await
                    .expect("opening a SQLite file store"),
            );
        }
        TempSqlite {
            stores,
            next: AtomicUsize::new(0),
            _dir: dir,
        }
    }

    /// The store to use for the next call.
    fn store(&self) -> &SqliteStorage {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        &self.stores[n % self.stores.len()]
    }
}

impl Storage for TempSqlite {
    async fn append(&self, request: AppendRequest<'_>) -> Result<AppendOutcome, Error> {
        self.store().append(request).await
    }

    async fn read_stream(
        &self,
        entity_name: &str,
        entity_id: &str,
        range: ReadRange,
    ) -> Result<Vec<Arc<StoredEvent>>, Error> {
        self.store()
            .read_stream(entity_name, entity_id, range)
            .await
    }

    async fn read_all(
        &self,
        from_position: u64,
        limit: usize,
    ) -> Result<Vec<Arc<StoredEvent>>, Error> {
        self.store().read_all(from_position, limit).await
    }

    async fn read_snapshot(
        &self,
        entity_name: &str,
        entity_id: &str,
    ) -> Result<Option<Snapshot>, Error> {
        self.store().read_snapshot(entity_name, entity_id).await
    }

    async fn write_snapshot(&self, snapshot: &Snapshot) -> Result<(), Error> {
        self.store().write_snapshot(snapshot).await
    }
}
