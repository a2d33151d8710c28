//! The PostgreSQL store: the conformance suite, the log order with a transaction held open,
//! and bad input (a malformed URL, a server that is not there, someone else's tables, a schema
//! from a newer ventyd).
//!
//! Needs a server: `VENTYD_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1/test`. Without it
//! every test here passes at once with a notice, unless `VENTYD_REQUIRE_POSTGRES=1` (set by CI),
//! which makes a missing server fail. Tests share the database: the conformance cases use stream
//! ids of their own in one schema (`VENTYD_TEST_POSTGRES_SCHEMA`, `ventyd_test` by default), and
//! the tests of opening a database make schemas of their own and drop them.

mod common;

#[allow(unused_imports)]
use common::rt;
use ventyd::storage::postgres::{PostgresOptions, PostgresStorage};

/// The server's URL, or `None` (with a notice) when no server is configured; panics when CI
/// requires one.
fn url() -> Option<String> {
    match std::env::var("VENTYD_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("VENTYD_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!(
                    "VENTYD_REQUIRE_POSTGRES=1 but VENTYD_TEST_POSTGRES_URL is not set: start PostgreSQL and set it (see .ci/run)"
                );
            }
            eprintln!(
                "skipped: set VENTYD_TEST_POSTGRES_URL=postgres://USER@HOST/DATABASE to run the PostgreSQL tests"
            );
            None
        }
    }
}

/// The schema the conformance cases share.
fn shared_schema() -> String {
    std::env::var("VENTYD_TEST_POSTGRES_SCHEMA").unwrap_or_else(|_| "ventyd_test".to_owned())
}

async fn shared_store() -> PostgresStorage {
    let url = url().expect("checked by only_if");
    PostgresStorage::connect_with(&url, PostgresOptions::default().schema(shared_schema()))
        .await
        .expect("connecting to the test database")
}

ventyd::storage_conformance!(postgres, shared_store(), only_if: url().is_some());
