//! The storage conformance suite (`ventyd::testing`) against every adapter: one test per case
//! and adapter (`memory::a_document_round_trips`, `sqlite_file::readers_never_see_half_a_batch`),
//! plus `<adapter>::all_cases_on_one_shared_store`, which runs every case at once on one store.

use std::sync::atomic::{AtomicUsize, Ordering};

use ventyd::SqliteStorage;
use ventyd::storage::Forward;

ventyd::storage_conformance!(memory, async { ventyd::MemoryStorage::new() });

ventyd::storage_conformance!(sqlite_memory, async {
    SqliteStorage::in_memory()
        .await
        .expect("opening an in-memory SQLite store")
});

ventyd::storage_conformance!(sqlite_file, TempSqlite::open(1));

// Two stores opened on one file and used in turn, call by call: as two processes sharing a
// database, each must see what the other committed, their writes must not collide, and a log
// cursor one of them handed out must resume on the other (they are one store).
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
}

/// Every call goes to the next store in turn.
impl Forward for TempSqlite {
    type Inner = SqliteStorage;

    fn inner(&self) -> &SqliteStorage {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        &self.stores[n % self.stores.len()]
    }
}
