//! The fingerprints of `domain.rs` with `serde_json/preserve_order` on: the same golden values
//! as in the main test suite (`tests/schema.rs`), where the feature is off.

mod domain;

#[test]
fn preserve_order_is_on_in_this_build() {
    // With the feature, a map keeps insertion order; without it, keys come out sorted.
    let mut map = serde_json::Map::new();
    map.insert("b".into(), 1.into());
    map.insert("a".into(), 2.into());
    let keys: Vec<_> = map.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["b", "a"],
        "this crate must build serde_json with preserve_order"
    );
}

#[test]
fn fingerprints_do_not_depend_on_key_order() {
    domain::check();
}
