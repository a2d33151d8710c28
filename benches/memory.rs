//! In-memory command round trips and schema validation, each beside a hand-written baseline
//! measured in the same run (ratios hold on a noisy machine; absolute times do not).
//!
//! Run: `cargo bench --bench memory`. Figures and their reading: `docs/benchmarks.md`.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use serde::{Deserialize, Serialize};
use ventyd::prelude::*;
use ventyd::{LoadValidation, MemoryStorage};

mod common;

use common::*;

/// A memory store holding one user with `n` events.
fn store_with(rt: &tokio::runtime::Runtime, n: usize) -> (MemoryStorage, String) {
    let repo = Repository::<User, _>::new(MemoryStorage::new());
    let mut user = repo.create(alice()).expect("create");
    for i in 1..n {
        user.update_name(format!("Name number {i}"))
            .expect("rename");
    }
    rt.block_on(repo.commit(&mut user)).expect("commit");
    let id = user.entity_id().to_owned();
    (repo.into_storage(), id)
}

// ---- the hand-written baseline: plain serde_json and a `match`, no ventyd ----

#[derive(Serialize, Deserialize)]
#[serde(tag = "eventName", content = "body")]
enum RawEvent {
    #[serde(rename = "user:created")]
    Created { email: String, name: Option<String> },
    #[serde(rename = "user:name_updated")]
    NameUpdated { name: String },
    #[serde(rename = "user:removed")]
    Deleted { reason: String },
}

#[derive(Default)]
struct RawUser {
    email: String,
    name: Option<String>,
    renames: u64,
    deleted: bool,
}

fn raw_fold(state: &mut RawUser, e: RawEvent) {
    match e {
        RawEvent::Created { email, name } => {
            state.email = email;
            state.name = name;
        }
        RawEvent::NameUpdated { name } => {
            state.name = Some(name);
            state.renames += 1;
        }
        RawEvent::Deleted { .. } => state.deleted = true,
    }
}

/// `n` stored events as JSON text, as the baseline's "store".
fn raw_store(n: usize) -> Vec<String> {
    let mut out = vec![
        serde_json::to_string(&RawEvent::Created {
            email: "alice@example.com".into(),
            name: None,
        })
        .expect("encode"),
    ];
    for i in 1..n {
        out.push(
            serde_json::to_string(&RawEvent::NameUpdated {
                name: format!("Name number {i}"),
            })
            .expect("encode"),
        );
    }
    out
}

/// Decode every event, fold, decide one new event, encode it and append it.
fn raw_round_trip(store: &mut Vec<String>) -> RawUser {
    let mut state = RawUser::default();
    for text in store.iter() {
        let e: RawEvent = serde_json::from_str(text).expect("decode");
        raw_fold(&mut state, e);
    }
    let new = RawEvent::NameUpdated {
        name: "Alice Cooper".into(),
    };
    store.push(serde_json::to_string(&new).expect("encode"));
    raw_fold(&mut state, new);
    state
}

fn round_trip(c: &mut Criterion) {
    let rt = rt();
    let mut g = c.benchmark_group("round_trip_100");
    g.bench_function("baseline: decode 100, fold, encode 1", |b| {
        let store = raw_store(100);
        b.iter_batched(
            || store.clone(),
            // The store is returned so that criterion drops it outside the timing, as below.
            |mut store| {
                black_box(raw_round_trip(&mut store));
                store
            },
            BatchSize::SmallInput,
        )
    });
    for (validation, name) in [
        (
            LoadValidation::Unverified,
            "ventyd: load 100, mutate 1, commit (default: check unverified bodies)",
        ),
        (
            LoadValidation::Always,
            "ventyd: load 100, mutate 1, commit (check every body)",
        ),
        (
            LoadValidation::Never,
            "ventyd: load 100, mutate 1, commit (trust the store)",
        ),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let (store, id) = store_with(&rt, 100);
                    (
                        Repository::<User, _>::new(store).load_validation(validation),
                        id,
                    )
                },
                |(repo, id)| {
                    let user = rt.block_on(async {
                        let mut user = repo.find_one(&id).await.expect("load").expect("exists");
                        user.update_name("Alice Cooper".into()).expect("rename");
                        repo.commit(&mut user).await.expect("commit");
                        user
                    });
                    (repo, user)
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();

    c.bench_function("create + 10 mutations + commit + load", |b| {
        b.iter_batched(
            || Repository::<User, _>::new(MemoryStorage::new()),
            |repo| {
                let loaded = rt.block_on(async {
                    let mut user = repo.create(alice()).expect("create");
                    for i in 0..10 {
                        user.update_name(format!("Name {i}")).expect("rename");
                    }
                    repo.commit(&mut user).await.expect("commit");
                    repo.find_one(user.entity_id())
                        .await
                        .expect("load")
                        .expect("exists")
                });
                (repo, loaded)
            },
            BatchSize::SmallInput,
        )
    });
}

fn validation(c: &mut Criterion) {
    let mut g = c.benchmark_group("validation");
    let entity = Entity::<User>::create_with(alice(), Default::default()).expect("create");
    g.bench_function("mutation (encode + validate + apply + queue)", |b| {
        b.iter_batched(
            || entity.clone(),
            |mut user| {
                user.update_name(black_box("Alice Cooper".into()))
                    .expect("rename");
                user
            },
            BatchSize::SmallInput,
        )
    });
    let schema = UserEvent::schemas()
        .by_name("user:name_updated")
        .expect("schema");
    let body = serde_json::json!({ "name": "Alice Cooper" });
    g.bench_function("schema validation of one body", |b| {
        b.iter(|| black_box(schema.validate(black_box(&body)).is_ok()))
    });
    g.bench_function("baseline: encode one body to a JSON value", |b| {
        let e = RawEvent::NameUpdated {
            name: "Alice Cooper".into(),
        };
        b.iter(|| black_box(serde_json::to_value(black_box(&e)).expect("encode")))
    });
    g.finish();
}

criterion_group!(benches, round_trip, validation);
criterion_main!(benches);
