//! Listing a collection: pages in key order (UTF-8 bytes), following `next`, without gaps or
//! repeats.

use super::*;
use crate::storage::{DocumentRange, DocumentWrite};

/// Listing a collection of 25 documents (one deleted), by pages of 1, 2, 4, 7, 24, 25 and
/// more, following each page's `next`, returns every document once, in key order, exactly as
/// reading it by key does, and no page holds more than its limit. A view is read and a
/// projection rebuilt this way.
pub async fn listing_pages_through_a_collection_in_key_order<S: Storage>(store: &S) {
    let collection = unique_name("listing");
    let mut keys: Vec<String> = (0..25).map(|i| format!("k-{i:02}")).collect();
    // Written in an order unlike key order, several per unit.
    let order = [
        13, 2, 24, 0, 7, 19, 5, 11, 22, 1, 16, 9, 3, 20, 14, 6, 23, 10, 18, 4, 12, 21, 8, 17, 15,
    ];
    for chunk in order.chunks(4) {
        let bodies: Vec<String> = chunk
            .iter()
            .map(|i| json!({ "i": i }).to_string())
            .collect();
        let mut unit = UnitOfWork::new();
        for (i, body) in chunk.iter().zip(&bodies) {
            unit.push_document(DocumentWrite::put(
                &collection,
                &keys[*i],
                ExpectedRevision::Absent,
                body,
            ));
        }
        commit_ok(store, "writing documents to list", &unit).await;
    }
    put_document(
        store,
        (&collection, "k-03"),
        ExpectedRevision::Exact(1),
        r#"{"i":3,"again":true}"#,
    )
    .await;
    let unit = UnitOfWork::new().document(DocumentWrite::delete(
        &collection,
        "k-07",
        ExpectedRevision::Exact(1),
    ));
    commit_ok(store, "deleting one document", &unit).await;
    keys.retain(|k| k != "k-07");

    let mut by_key = Vec::new();
    for key in &keys {
        by_key.push(
            read_document(store, &collection, key)
                .await
                .expect("a document written above"),
        );
    }
    for limit in [1, 2, 4, 7, 24, 25, LARGE, usize::MAX] {
        let listed = list_all(store, &format!("listing by {limit}"), &collection, limit).await;
        assert_eq!(
            listed, by_key,
            "listing by {limit} must return every document once, in key order, as reading it by key does"
        );
    }
}

/// Keys are listed in the byte order of their UTF-8 text, as the trait documents: upper case
/// before lower case, `é` after `z`, digits as text (`10` before `9`), whatever the database's
/// collation. A reader resuming after a key depends on every store agreeing on the order.
pub async fn listing_orders_keys_by_their_utf8_bytes<S: Storage>(store: &S) {
    let collection = unique_name("utf8-order");
    let keys = [
        "b", "B", "a", "A", "ä", "é", "e\u{301}", "z", "Z", "~", "0", "10", "9", "a b", "ab", "aB",
        "a\u{1}", "a-", "a_", "🦀", "ｚ", "Ω",
    ];
    let mut unit = UnitOfWork::new();
    for key in keys {
        unit.push_document(DocumentWrite::put(
            &collection,
            key,
            ExpectedRevision::Absent,
            "{}",
        ));
    }
    commit_ok(store, "writing documents with mixed keys", &unit).await;
    let mut sorted: Vec<&str> = keys.to_vec();
    sorted.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for limit in [3, LARGE] {
        let listed: Vec<String> = list_all(store, "mixed keys", &collection, limit)
            .await
            .into_iter()
            .map(|d| d.key)
            .collect();
        assert_eq!(
            listed, sorted,
            "listing by {limit} must order keys by their UTF-8 bytes"
        );
    }
}

/// Listing with a limit of 0 is refused (`InvalidRequest`): such a page could never move on.
pub async fn a_listing_limit_of_zero_is_refused<S: Storage>(store: &S) {
    let collection = unique_name("limit-zero");
    for written in [false, true] {
        if written {
            put_document(store, (&collection, "k"), ExpectedRevision::Absent, "{}").await;
        }
        match store
            .list_documents(&DocumentRange::new(&collection, 0))
            .await
        {
            Ok(page) => panic!("listing with a limit of 0 must be refused, got {page:?}"),
            Err(e) => assert_invalid("listing with a limit of 0", &e),
        }
    }
}
