//! The core API's second cut: values that must come back exactly, entities that cannot be
//! created twice, and what a Ventyd user reaches for.

mod common;

use common::rt;
use ventyd::prelude::*;

/// A domain with a float, to check that every stored value loads exactly.
mod gauge {
    use ventyd::prelude::*;

    #[event(entity = "gauge")]
    #[derive(Debug, Clone, PartialEq)]
    pub enum GaugeEvent {
        #[event(initial)]
        Installed {
            reading: f64,
        },
        Read {
            reading: f64,
        },
    }

    #[derive(Aggregate, Debug, Clone, PartialEq)]
    #[aggregate(event = GaugeEvent)]
    pub struct Gauge {
        pub readings: Vec<f64>,
    }

    impl Reducer for Gauge {
        fn init(installed: &GaugeInstalled) -> Self {
            Gauge {
                readings: vec![installed.reading],
            }
        }

        fn apply(&mut self, event: &GaugeEvent) {
            match event {
                GaugeEvent::Installed { reading } | GaugeEvent::Read { reading } => {
                    self.readings.push(*reading)
                }
            }
        }
    }

    #[mutations]
    impl Gauge {
        /// Records a reading.
        #[mutation]
        pub fn read(&self, reading: f64) -> GaugeEvent {
            GaugeEvent::Read { reading }
        }

        /// Wrongly returns the initial event again.
        #[mutation]
        pub fn reinstall(&self, reading: f64) -> GaugeEvent {
            GaugeEvent::Installed { reading }
        }

        /// Wrongly returns a reading and then the initial event again.
        #[mutation]
        pub fn read_then_reinstall(&self, reading: f64) -> Vec<GaugeEvent> {
            vec![
                GaugeEvent::Read { reading },
                GaugeEvent::Installed { reading },
            ]
        }

        /// Wrongly dispatches a reading and then the initial event again.
        #[mutation]
        pub fn dispatch_reinstall(
            d: &mut Dispatch<Self>,
            reading: f64,
        ) -> Result<(), ventyd::Error> {
            d.dispatch(GaugeEvent::Read { reading })?;
            d.dispatch(GaugeEvent::Installed { reading })
        }
    }
}

/// Finite doubles spread over every exponent and mantissa (SplitMix64 bit patterns), plus the
/// values that are hard to print exactly.
fn doubles(n: usize) -> Vec<f64> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut out = vec![
        0.1,
        1.0 / 3.0,
        f64::MIN_POSITIVE,
        f64::MAX,
        f64::MIN,
        f64::EPSILON,
        5e-324,
        2.225_073_858_507_201e-308,
        -0.0,
        9_007_199_254_740_993.0,
    ];
    while out.len() < n {
        let x = f64::from_bits(next());
        if x.is_finite() {
            out.push(x);
        }
    }
    out
}

async fn floats_load_exactly<S: ventyd::storage::Storage>(store: S) {
    use gauge::*;
    let repo = Repository::<Gauge, _>::new(store);
    let values = doubles(2_000);
    let mut gauge = repo
        .create(GaugeInstalled { reading: values[0] })
        .expect("create");
    for &v in &values[1..] {
        gauge.read(v).expect("read");
    }
    repo.commit(&mut gauge).await.expect("commit");
    let loaded = repo
        .find_one(gauge.entity_id())
        .await
        .expect("load")
        .expect("stored");
    let differ: Vec<_> = values
        .iter()
        .zip(&loaded.state().readings)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .map(|(a, b)| format!("{a:e} came back as {b:e}"))
        .collect();
    assert!(
        differ.is_empty(),
        "{} of {} values changed: {:?}",
        differ.len(),
        values.len(),
        &differ[..differ.len().min(5)]
    );
    assert_eq!(loaded.state().readings.len(), values.len());
}

#[test]
fn every_float_loads_exactly_as_it_was_committed_from_memory() {
    rt().block_on(floats_load_exactly(MemoryStorage::new()));
}

#[test]
fn every_float_loads_exactly_as_it_was_committed_from_sqlite() {
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStorage::open(dir.path().join("floats.db"))
            .await
            .unwrap();
        floats_load_exactly(store).await;
    });
}

#[test]
fn the_readme_names_the_minimum_rust_version_that_cargo_checks() {
    let root = env!("CARGO_MANIFEST_DIR");
    let manifest = std::fs::read_to_string(format!("{root}/Cargo.toml")).unwrap();
    let version = manifest
        .lines()
        .find_map(|line| line.strip_prefix("rust-version = "))
        .expect("the workspace sets rust-version")
        .trim_matches('"');
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let said = format!("Rust ({version} or newer)");
    assert!(
        readme.contains(&said),
        "README.md must say {said:?}, as Cargo.toml's rust-version"
    );
}

#[test]
fn a_mutation_cannot_create_an_entity_again() {
    use gauge::*;
    let mut gauge = Entity::<Gauge>::create(GaugeInstalled { reading: 1.0 }).unwrap();
    let before = gauge.clone();
    let check = |err: ventyd::Error, gauge: &Entity<Gauge>| {
        assert!(
            matches!(
                err,
                ventyd::Error::InitialAgain {
                    entity_name: "gauge",
                    event_name: "gauge:installed",
                    ..
                }
            ),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains(gauge.entity_id()), "{message}");
        assert!(message.contains("exists already"), "{message}");
        // Nothing was applied or queued.
        assert_eq!(gauge.state(), before.state());
        assert_eq!(gauge.version(), 1);
        assert_eq!(gauge.queued_events().len(), 1);
    };
    let err = gauge.reinstall(2.0).unwrap_err();
    check(err, &gauge);
    let err = gauge.read_then_reinstall(2.0).unwrap_err();
    check(err, &gauge);
    let err = gauge.dispatch_reinstall(2.0).unwrap_err();
    check(err, &gauge);
    // The entity still works.
    gauge.read(3.0).unwrap();
    assert_eq!(gauge.state().readings, vec![1.0, 3.0]);
}

/// A domain whose `coded` event has a `pattern` that is not a valid regex.
mod badly_patterned {
    use ventyd::prelude::*;

    #[event(entity = "tag")]
    #[derive(Debug, Clone, PartialEq)]
    pub enum TagEvent {
        #[event(initial)]
        Made { label: String },
        Coded {
            #[schemars(regex(pattern = "(unclosed"))]
            code: String,
        },
    }

    #[derive(Aggregate, Debug, Clone, PartialEq)]
    #[aggregate(event = TagEvent)]
    pub struct Tag {
        pub label: String,
        pub code: Option<String>,
    }

    impl Reducer for Tag {
        fn init(made: &TagMade) -> Self {
            Tag {
                label: made.label.clone(),
                code: None,
            }
        }

        fn apply(&mut self, event: &TagEvent) {
            match event {
                TagEvent::Made { label } => self.label = label.clone(),
                TagEvent::Coded { code } => self.code = Some(code.clone()),
            }
        }
    }

    #[mutations]
    impl Tag {
        /// Gives the tag a code.
        #[mutation]
        pub fn code(&self, code: String) -> TagEvent {
            TagEvent::Coded { code }
        }
    }
}

fn is_schema_error(err: &ventyd::Error) -> bool {
    matches!(err, ventyd::Error::Schema(s) if s.event_name == "tag:coded" && s.entity_name == "tag")
}

#[test]
fn a_schema_that_does_not_compile_is_an_error_at_every_use_not_a_panic() {
    use badly_patterned::*;
    use ventyd::Event;
    // The check a user runs in a test names the event and the problem.
    let err = TagEvent::schemas().check().unwrap_err();
    assert!(is_schema_error(&err), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("\"tag:coded\""), "{message}");
    assert!(message.contains("does not compile"), "{message}");
    assert!(message.contains("(unclosed"), "{message}");
    assert!(
        TagEvent::schemas()
            .by_name("tag:made")
            .unwrap()
            .check()
            .is_ok(),
        "the other events keep their schemas"
    );

    // Every use of the broken schema is the same error, and changes nothing.
    let mut tag = Entity::<Tag>::create(TagMade {
        label: "blue".into(),
    })
    .unwrap();
    for _ in 0..3 {
        let err = tag.code("b1".into()).unwrap_err();
        assert!(is_schema_error(&err), "{err:?}");
        assert_eq!(tag.version(), 1);
        assert_eq!(tag.state().code, None);
    }
}

#[test]
fn a_stored_event_whose_schema_does_not_compile_fails_to_load_with_the_schema_error() {
    use badly_patterned::*;
    use ventyd::storage::{AppendRequest, NewEvent};
    use ventyd::{ExpectedVersion, IdGenerator};
    rt().block_on(async {
        let store = MemoryStorage::new();
        let events = [
            NewEvent::new(ventyd::UuidV7.event_id(), "tag:made", r#"{"label":"blue"}"#),
            NewEvent::new(ventyd::UuidV7.event_id(), "tag:coded", r#"{"code":"b1"}"#),
        ];
        store
            .append(AppendRequest::new(
                "tag",
                "t1",
                ExpectedVersion::NoStream,
                &events,
            ))
            .await
            .unwrap();
        let repo = Repository::<Tag, _>::new(store);
        for _ in 0..2 {
            let err = repo.find_one("t1").await.unwrap_err();
            assert!(is_schema_error(&err), "{err:?}");
        }
        // Trusting the store, nothing is checked, so the events load.
        let repo = Repository::<Tag, _>::new(repo.into_storage())
            .load_validation(ventyd::LoadValidation::Never);
        let tag = repo.find_one("t1").await.unwrap().unwrap();
        assert_eq!(tag.state().code.as_deref(), Some("b1"));
    });
}

/// A profile whose events have optional fields, as a Ventyd (TypeScript) service declares them
/// with valibot's `optional(string())`: the key is absent or a string, never `null`.
mod profile {
    use ventyd::prelude::*;

    #[event(entity = "profile")]
    #[derive(Debug, Clone, PartialEq)]
    pub enum ProfileEvent {
        #[event(initial)]
        Created {
            email: String,
            nickname: Option<String>,
        },
        Updated {
            nickname: Option<String>,
            bio: Option<String>,
        },
    }

    #[derive(Aggregate, Debug, Clone, PartialEq)]
    #[aggregate(event = ProfileEvent)]
    pub struct Profile {
        pub email: String,
        pub nickname: Option<String>,
        pub bio: Option<String>,
    }

    impl Reducer for Profile {
        fn init(c: &ProfileCreated) -> Self {
            Profile {
                email: c.email.clone(),
                nickname: c.nickname.clone(),
                bio: None,
            }
        }

        fn apply(&mut self, event: &ProfileEvent) {
            match event {
                ProfileEvent::Created { email, nickname } => {
                    self.email = email.clone();
                    self.nickname = nickname.clone();
                }
                ProfileEvent::Updated { nickname, bio } => {
                    self.nickname = nickname.clone();
                    self.bio = bio.clone();
                }
            }
        }
    }

    #[mutations]
    impl Profile {
        /// Sets both optional fields.
        #[mutation]
        pub fn update(&self, nickname: Option<String>, bio: Option<String>) -> ProfileEvent {
            ProfileEvent::Updated { nickname, bio }
        }
    }
}

/// What valibot's `object({ email: string(), nickname: optional(string()), ... })` accepts: each
/// optional key absent or a string; `null` is refused. Returns what is wrong.
fn ventyd_ts_accepts(
    body: &serde_json::Value,
    required: &[&str],
    optional: &[&str],
) -> Vec<String> {
    let mut wrong = Vec::new();
    let Some(map) = body.as_object() else {
        return vec![format!("{body} is not an object")];
    };
    for key in required {
        if !map.get(*key).is_some_and(serde_json::Value::is_string) {
            wrong.push(format!("{key} must be a string in {body}"));
        }
    }
    for key in optional {
        if let Some(value) = map.get(*key)
            && !value.is_string()
        {
            wrong.push(format!(
                "{key} must be absent or a string, not {value}, in {body}"
            ));
        }
    }
    wrong
}

#[test]
fn a_store_shared_with_ventyd_typescript_reads_its_bodies_and_gets_bodies_it_accepts() {
    use profile::*;
    use ventyd::storage::{AppendRequest, NewEvent, ReadRange};
    use ventyd::{ExpectedVersion, IdGenerator};
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStorage::open(dir.path().join("shared.db"))
            .await
            .unwrap();
        // What a TypeScript service wrote: `JSON.stringify` drops fields set to `undefined`, and
        // a `nullable` field may hold `null`.
        let written_by_ts = [
            ("profile:created", r#"{"email":"ada@example.com"}"#),
            ("profile:updated", r#"{"nickname":"ada","bio":null}"#),
            ("profile:updated", r#"{}"#),
            ("profile:updated", r#"{"bio":"Countess"}"#),
        ];
        let events: Vec<NewEvent> = written_by_ts
            .iter()
            .map(|(name, body)| NewEvent::new(ventyd::UuidV7.event_id(), *name, *body))
            .collect();
        store
            .append(AppendRequest::new(
                "profile",
                "p1",
                ExpectedVersion::NoStream,
                &events,
            ))
            .await
            .unwrap();

        let repo = Repository::<Profile, _>::new(store);
        let mut profile = repo.find_one("p1").await.unwrap().expect("stored");
        assert_eq!(
            profile.state(),
            &Profile {
                email: "ada@example.com".into(),
                nickname: None,
                bio: Some("Countess".into()),
            }
        );

        // What ventyd writes back, for an entity of its own and for the shared one.
        profile.update(Some("ada".into()), None).unwrap();
        profile.update(None, None).unwrap();
        repo.commit(&mut profile).await.unwrap();
        let mut own = repo
            .create(ProfileCreated {
                email: "grace@example.com".into(),
                nickname: None,
            })
            .unwrap();
        own.update(None, Some("Admiral".into())).unwrap();
        repo.commit(&mut own).await.unwrap();

        let store = repo.storage();
        let mut checked = 0;
        for (id, from) in [("p1", 5), (own.entity_id(), 1)] {
            for e in store
                .read_stream("profile", id, ReadRange::ALL)
                .await
                .unwrap()
            {
                if e.version < from {
                    continue;
                }
                let body: serde_json::Value = serde_json::from_str(&e.body).unwrap();
                let wrong = match &*e.event_name {
                    "profile:created" => ventyd_ts_accepts(&body, &["email"], &["nickname"]),
                    _ => ventyd_ts_accepts(&body, &[], &["nickname", "bio"]),
                };
                assert!(wrong.is_empty(), "{wrong:?}");
                checked += 1;
            }
        }
        assert_eq!(checked, 4);
        // Absent, exactly: not an empty string, not null.
        let p1 = store
            .read_stream("profile", "p1", ReadRange::ALL)
            .await
            .unwrap();
        assert_eq!(&*p1[4].body, r#"{"nickname":"ada"}"#);
        assert_eq!(&*p1[5].body, "{}");

        // And it all loads again, on both sides of the history.
        let again = repo.find_one("p1").await.unwrap().unwrap();
        assert_eq!(again.state(), profile.state());
        assert_eq!(again.state().nickname, None);
    });
}

/// Event enums with the separators Ventyd services use.
mod separators {
    use ventyd::prelude::*;

    macro_rules! domain {
        ($module:ident, $entity:literal, $separator:literal) => {
            pub mod $module {
                use ventyd::prelude::*;

                #[event(entity = $entity, separator = $separator)]
                #[derive(Debug, Clone, PartialEq)]
                pub enum NoteEvent {
                    #[event(initial)]
                    Written { text: String },
                    #[event(rename = "text-changed")]
                    Changed { text: String },
                }

                #[derive(Aggregate, Debug, Clone, PartialEq)]
                #[aggregate(event = NoteEvent)]
                pub struct Note {
                    pub text: String,
                }

                impl Reducer for Note {
                    fn init(w: &NoteWritten) -> Self {
                        Note {
                            text: w.text.clone(),
                        }
                    }

                    fn apply(&mut self, event: &NoteEvent) {
                        match event {
                            NoteEvent::Written { text } | NoteEvent::Changed { text } => {
                                self.text = text.clone()
                            }
                        }
                    }
                }

                #[mutations]
                impl Note {
                    /// Changes the text.
                    #[mutation]
                    pub fn change(&self, text: String) -> NoteEvent {
                        NoteEvent::Changed { text }
                    }
                }
            }
        };
    }

    domain!(dotted, "note", ".");
    domain!(slashed, "note", "/");
    domain!(doubled, "note", "::");
    domain!(dotted_entity, "crm.note", ":");

    /// Commits and loads a note of domain `A`, and returns the stored event names.
    pub async fn round_trip<A, S>(repo: &Repository<A, S>, entity: Entity<A>) -> Vec<String>
    where
        A: Reducer + PartialEq + std::fmt::Debug,
        S: ventyd::storage::Storage,
    {
        let mut entity = entity;
        repo.commit(&mut entity).await.unwrap();
        let loaded = repo.find_one(entity.entity_id()).await.unwrap().unwrap();
        assert_eq!(loaded.state(), entity.state());
        loaded.events().map(|e| e.event_name().to_owned()).collect()
    }
}

#[test]
fn every_separator_ventyd_allows_names_events_that_store_and_load() {
    use separators::*;
    use separators::{
        dotted::NoteMutations as _, dotted_entity::NoteMutations as _, doubled::NoteMutations as _,
        slashed::NoteMutations as _,
    };
    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStorage::open(dir.path().join("names.db"))
            .await
            .unwrap();

        let repo = Repository::<dotted::Note, _>::new(store.clone());
        let mut note = repo
            .create(dotted::NoteWritten { text: "a".into() })
            .unwrap();
        note.change("b".into()).unwrap();
        assert_eq!(
            round_trip(&repo, note).await,
            ["note.written", "note.text-changed"]
        );

        let repo = Repository::<slashed::Note, _>::new(store.clone());
        let mut note = repo
            .create(slashed::NoteWritten { text: "a".into() })
            .unwrap();
        note.change("b".into()).unwrap();
        assert_eq!(
            round_trip(&repo, note).await,
            ["note/written", "note/text-changed"]
        );

        let repo = Repository::<doubled::Note, _>::new(MemoryStorage::new());
        let mut note = repo
            .create(doubled::NoteWritten { text: "a".into() })
            .unwrap();
        note.change("b".into()).unwrap();
        assert_eq!(
            round_trip(&repo, note).await,
            ["note::written", "note::text-changed"]
        );

        let repo = Repository::<dotted_entity::Note, _>::new(store);
        let mut note = repo
            .create(dotted_entity::NoteWritten { text: "a".into() })
            .unwrap();
        note.change("b".into()).unwrap();
        assert_eq!(
            round_trip(&repo, note).await,
            ["crm.note:written", "crm.note:text-changed"]
        );
    });
}

// ---------------------------------------------------------------------------------------------
// Entities outside a repository: a chosen configuration, hydrate, mutable load, discard.

use common::{User, UserCreated, UserEvent, UserMutations as _, alice};
use ventyd::{
    CreateOptions, DecodeReason, EntityConfig, Envelope, FixedClock, SequentialIds, Timestamp,
};

fn decode_reason(err: &ventyd::Error) -> &DecodeReason {
    match err {
        ventyd::Error::Decode(d) => &d.reason,
        other => panic!("expected a decode error, got {other:?}"),
    }
}

#[test]
fn an_entity_made_outside_a_repository_uses_the_clock_ids_and_queue_limit_it_is_given() {
    let config = EntityConfig::default()
        .with_clock(FixedClock::new(Timestamp::from_millis(86_400_000)))
        .with_ids(SequentialIds::default())
        .with_queue_limit(3);
    let mut user = Entity::<User>::create_in(&config, alice(), CreateOptions::default()).unwrap();
    assert_eq!(user.entity_id(), "00000000-0000-7000-8000-000000000001");
    user.update_name("Ada".into()).unwrap();
    user.update_name("Ada L.".into()).unwrap();
    let times: Vec<_> = user.events().map(|e| e.event_created_at()).collect();
    assert_eq!(times, [Timestamp::from_millis(86_400_000); 3]);
    let ids: Vec<_> = user.events().map(|e| e.event_id().to_string()).collect();
    assert_eq!(
        ids,
        [
            "00000000-0000-7000-8000-000000000002",
            "00000000-0000-7000-8000-000000000003",
            "00000000-0000-7000-8000-000000000004"
        ]
    );
    let err = user.update_name("too many".into()).unwrap_err();
    assert!(
        matches!(
            err,
            ventyd::MutationError::Ventyd(ventyd::Error::QueueOverflow { limit: 3, .. })
        ),
        "{err:?}"
    );
    assert_eq!(user.version(), 3);
}

/// A committed user with three events, and the store that holds them.
async fn committed_user() -> (Repository<User, MemoryStorage>, Entity<User>) {
    let repo = Repository::<User, _>::new(MemoryStorage::new());
    let mut user = repo.create(alice()).unwrap();
    user.update_name("Ada".into()).unwrap();
    user.tag_all(vec!["vip".into()]).unwrap();
    repo.commit(&mut user).await.unwrap();
    (repo, user)
}

#[test]
fn hydrate_rebuilds_an_entity_from_its_envelopes_and_it_commits_on() {
    rt().block_on(async {
        let (repo, user) = committed_user().await;
        let envelopes: Vec<Envelope<UserEvent>> = user.events().cloned().collect();
        let mut rebuilt = Entity::<User>::hydrate(user.entity_id(), envelopes).unwrap();
        assert_eq!(rebuilt.state(), user.state());
        assert_eq!(rebuilt.version(), 3);
        assert_eq!(rebuilt.committed_version(), 3);
        assert!(!rebuilt.has_uncommitted());
        assert!(rebuilt.events().eq(user.events()));

        // Envelopes as JSON, the way another service hands them over, rebuild it too.
        let json = serde_json::to_string(&user.events().collect::<Vec<_>>()).unwrap();
        let parsed: Vec<Envelope<UserEvent>> = serde_json::from_str(&json).unwrap();
        let from_json = Entity::<User>::hydrate(user.entity_id(), parsed).unwrap();
        assert_eq!(from_json.state(), user.state());

        rebuilt.update_name("Ada Lovelace".into()).unwrap();
        repo.commit(&mut rebuilt).await.unwrap();
        let loaded = repo.find_one(user.entity_id()).await.unwrap().unwrap();
        assert_eq!(loaded.version(), 4);
        assert_eq!(loaded.state().name.as_deref(), Some("Ada Lovelace"));
    });
}

#[test]
fn hydrate_refuses_envelopes_that_are_not_one_entity_s_stream_and_names_what_is_wrong() {
    rt().block_on(async {
        let (_, user) = committed_user().await;
        let id = user.entity_id().to_owned();
        let json: Vec<serde_json::Value> = user
            .events()
            .map(|e| serde_json::to_value(e).unwrap())
            .collect();
        let parse = |values: Vec<serde_json::Value>| -> Vec<Envelope<UserEvent>> {
            values
                .into_iter()
                .map(|v| serde_json::from_value(v).unwrap())
                .collect()
        };
        let check =
            |values: Vec<serde_json::Value>, reason: fn(&DecodeReason) -> bool, words: &[&str]| {
                let err = Entity::<User>::hydrate(id.as_str(), parse(values)).unwrap_err();
                assert!(reason(decode_reason(&err)), "{err:?}");
                let message = err.to_string();
                for word in words {
                    assert!(message.contains(word), "{message:?} lacks {word:?}");
                }
            };

        check(
            Vec::new(),
            |r| matches!(r, DecodeReason::NoEvents),
            &[&id, "no events"],
        );
        check(
            json[1..].to_vec(),
            |r| matches!(r, DecodeReason::VersionGap { expected: 1 }),
            &[&id, "version 2", "user:name_updated"],
        );
        let mut renumbered = json.clone();
        renumbered[1]["version"] = 1.into();
        renumbered.remove(0);
        check(
            renumbered,
            |r| matches!(r, DecodeReason::NotInitial { .. }),
            &[&id, "version 1", "user:name_updated"],
        );
        let mut twice = json.clone();
        let mut again = json[0].clone();
        again["version"] = 4.into();
        twice.push(again);
        check(
            twice,
            |r| matches!(r, DecodeReason::InitialAgain),
            &[&id, "version 4", "user:created"],
        );
        let mut other = json.clone();
        other[2]["entityId"] = "someone-else".into();
        check(
            other,
            |r| matches!(r, DecodeReason::WrongStream),
            &[&id, "version 3", "user:tagged"],
        );
        let mut gap = json.clone();
        gap[2]["version"] = 5.into();
        check(
            gap,
            |r| matches!(r, DecodeReason::VersionGap { expected: 3 }),
            &[&id, "version 5"],
        );
    });
}

#[test]
fn a_mutable_load_from_a_known_state_commits_after_its_version_and_conflicts_when_wrong() {
    rt().block_on(async {
        let (repo, user) = committed_user().await;
        let known = user.state().clone();
        let mut restored =
            Entity::<User>::load_mutable(user.entity_id(), known.clone(), 3).unwrap();
        assert_eq!((restored.version(), restored.committed_version()), (3, 3));
        assert_eq!(restored.events().len(), 0, "no history before its version");
        restored.update_name("Restored".into()).unwrap();
        repo.commit(&mut restored).await.unwrap();
        let loaded = repo.find_one(user.entity_id()).await.unwrap().unwrap();
        assert_eq!(loaded.state(), restored.state());
        assert_eq!(loaded.version(), 4);

        // A state restored at the wrong version cannot overwrite anything: a conflict.
        let mut stale = Entity::<User>::load_mutable(user.entity_id(), known, 3).unwrap();
        stale.update_name("Stale".into()).unwrap();
        let err = repo.commit(&mut stale).await.unwrap_err();
        assert!(err.is_concurrency(), "{err:?}");
        assert_eq!(repo.storage().len(), 4);

        let err = Entity::<User>::load_mutable("u1", user.state().clone(), 0).unwrap_err();
        assert!(
            matches!(decode_reason(&err), DecodeReason::NoEvents),
            "{err:?}"
        );
        assert!(err.to_string().contains("version 0"), "{err}");
    });
}

#[test]
fn discarding_the_queue_puts_the_committed_state_back() {
    rt().block_on(async {
        let (repo, mut user) = committed_user().await;
        let committed = user.state().clone();
        user.update_name("Draft".into()).unwrap();
        user.tag_all(vec!["a".into(), "b".into()]).unwrap();
        assert_eq!(user.version(), 6);
        let dropped = user.discard_queued().unwrap();
        let names: Vec<_> = dropped.iter().map(|e| e.event_name()).collect();
        assert_eq!(names, ["user:name_updated", "user:tagged", "user:tagged"]);
        assert_eq!(user.state(), &committed);
        assert_eq!((user.version(), user.committed_version()), (3, 3));
        assert!(!user.has_uncommitted());
        assert!(user.discard_queued().unwrap().is_empty());
        // And it goes on from there.
        user.update_name("Final".into()).unwrap();
        repo.commit(&mut user).await.unwrap();
        assert_eq!(
            repo.find_one(user.entity_id())
                .await
                .unwrap()
                .unwrap()
                .state(),
            user.state()
        );

        // A restored entity folds its history onto the state it was restored from.
        let base = user.state().clone();
        let mut restored = Entity::<User>::load_mutable(user.entity_id(), base, 4).unwrap();
        restored.tag_all(vec!["x".into()]).unwrap();
        repo.commit(&mut restored).await.unwrap();
        let after_commit = restored.state().clone();
        restored.update_name("Draft".into()).unwrap();
        restored.discard_queued().unwrap();
        assert_eq!(restored.state(), &after_commit);
        assert_eq!(restored.version(), 5);

        // An entity whose creation is queued cannot discard it.
        let mut fresh = Entity::<User>::create(UserCreated {
            email: "b@example.com".into(),
            name: None,
        })
        .unwrap();
        let err = fresh.discard_queued().unwrap_err();
        assert!(
            matches!(err, ventyd::Error::NeverCommitted { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(fresh.entity_id()), "{err}");
        assert_eq!(fresh.version(), 1);
        assert!(fresh.has_uncommitted());
    });
}

// ---------------------------------------------------------------------------------------------
// The reducer and the envelope.

/// An account that keeps when it was closed, from the closing event's envelope.
mod account {
    use ventyd::prelude::*;
    use ventyd::{Envelope, Timestamp};

    #[event(entity = "account")]
    #[derive(Debug, Clone, PartialEq)]
    pub enum AccountEvent {
        #[event(initial)]
        Opened {
            owner: String,
        },
        Closed {
            reason: String,
        },
    }

    #[derive(Aggregate, Debug, Clone, PartialEq)]
    #[aggregate(event = AccountEvent)]
    pub struct Account {
        pub owner: String,
        pub opened_at: Option<Timestamp>,
        pub closed: bool,
        pub closed_at: Option<Timestamp>,
        pub closed_at_version: Option<u64>,
    }

    impl Reducer for Account {
        fn init(opened: &AccountOpened) -> Self {
            Account {
                owner: opened.owner.clone(),
                opened_at: None,
                closed: false,
                closed_at: None,
                closed_at_version: None,
            }
        }

        fn init_envelope(opened: &AccountOpened, envelope: &Envelope<AccountEvent>) -> Self {
            assert_eq!(envelope.version(), 1);
            assert_eq!(envelope.event().event_name(), "account:opened");
            Account {
                opened_at: Some(envelope.event_created_at()),
                ..Self::init(opened)
            }
        }

        fn apply(&mut self, event: &AccountEvent) {
            match event {
                AccountEvent::Opened { .. } => unreachable!("apply was given the initial event"),
                AccountEvent::Closed { .. } => self.closed = true,
            }
        }

        fn apply_envelope(&mut self, envelope: &Envelope<AccountEvent>) {
            self.apply(envelope.event());
            if let AccountEvent::Closed { .. } = envelope.event() {
                self.closed_at = Some(envelope.event_created_at());
                self.closed_at_version = Some(envelope.version());
            }
        }
    }

    #[mutations]
    impl Account {
        /// Closes the account.
        #[mutation]
        pub fn close(&self, reason: String) -> AccountEvent {
            AccountEvent::Closed { reason }
        }
    }
}

#[test]
fn a_reducer_reads_the_envelope_of_each_event_it_folds_wherever_the_event_comes_from() {
    use account::*;
    rt().block_on(async {
        let clock = FixedClock::new(Timestamp::from_millis(1_000_000));
        let repo = Repository::<Account, _>::with_config(
            MemoryStorage::new(),
            EntityConfig::default().with_clock(clock.clone()),
        );
        let mut account = repo
            .create(AccountOpened {
                owner: "Ada".into(),
            })
            .unwrap();
        clock.advance_millis(5_000);
        account.close("moved".into()).unwrap();
        assert_eq!(
            account.state().opened_at,
            Some(Timestamp::from_millis(1_000_000))
        );
        // Dispatched: the state has the closing event's time and version at once.
        let closed_at = Some(Timestamp::from_millis(1_005_000));
        assert_eq!(account.state().closed_at, closed_at);
        assert_eq!(account.state().closed_at_version, Some(2));
        repo.commit(&mut account).await.unwrap();

        // Loaded, hydrated, and after a discarded queue: the same.
        clock.advance_millis(60_000);
        let loaded = repo.find_one(account.entity_id()).await.unwrap().unwrap();
        assert_eq!(loaded.state(), account.state());
        let past = repo
            .find_one_at(account.entity_id(), 2)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(past.state().closed_at, closed_at);
        let hydrated =
            Entity::<Account>::hydrate(account.entity_id(), loaded.events().cloned()).unwrap();
        assert_eq!(hydrated.state(), account.state());
        let mut again = loaded.clone();
        again.close("twice".into()).unwrap();
        assert_eq!(again.state().closed_at_version, Some(3));
        again.discard_queued().unwrap();
        assert_eq!(again.state(), account.state());
    });
}

#[test]
fn legacy_ventyd_events_without_versions_hydrate_in_stream_order() {
    use ventyd::ReadonlyEntity;
    // As a TypeScript Ventyd service of an earlier release wrote them: no `version`, times with
    // offsets and microseconds, a field set to `undefined` dropped by `JSON.stringify`.
    let legacy = serde_json::json!([
        {"eventId": "0190f3a4-0000-7000-8000-000000000001", "eventName": "user:created",
         "eventCreatedAt": "2024-03-01T10:00:00.123456+01:00", "entityName": "user",
         "entityId": "legacy-1", "body": {"email": "old@example.com"}},
        {"eventId": "0190f3a4-0000-7000-8000-000000000002", "eventName": "user:name_updated",
         "eventCreatedAt": "2024-03-01T09:30:00Z", "entityName": "user",
         "entityId": "legacy-1", "body": {"name": "Old Timer"}},
        {"eventId": "0190f3a4-0000-7000-8000-000000000003", "eventName": "user:tagged",
         "eventCreatedAt": "2024-03-02T00:00:00.5-05:00", "entityName": "user",
         "entityId": "legacy-1", "body": {"tag": "og"}}
    ]);
    let envelopes: Vec<Envelope<UserEvent>> = serde_json::from_value(legacy.clone()).unwrap();
    assert!(envelopes.iter().all(|e| e.version() == 0));
    // Written back, a legacy envelope keeps its shape: no version is made up.
    let again = serde_json::to_value(&envelopes[1]).unwrap();
    assert!(again.get("version").is_none(), "{again}");
    assert_eq!(again["eventCreatedAt"], "2024-03-01T09:30:00.000Z");

    let user = Entity::<User>::hydrate("legacy-1", envelopes).unwrap();
    let versions: Vec<_> = user.events().map(|e| e.version()).collect();
    assert_eq!(versions, [1, 2, 3]);
    assert_eq!(user.state().name.as_deref(), Some("Old Timer"));
    assert_eq!(user.state().tags, ["og"]);
    assert_eq!(
        user.events().next().unwrap().event_created_at().to_string(),
        "2024-03-01T09:00:00.123Z"
    );
    let _: ReadonlyEntity<User> = user.into_readonly();

    // A version of 0 written out is not a legacy event but a mistake.
    let mut zero = legacy[0].clone();
    zero["version"] = 0.into();
    let err = serde_json::from_value::<Envelope<UserEvent>>(zero).unwrap_err();
    assert!(
        err.to_string().contains("version must be 1 or more"),
        "{err}"
    );
}

/// Ids as a Ventyd service's `generateId` might make them: a prefix and a counter, not UUIDs.
#[derive(Default)]
struct PrefixedIds(std::sync::atomic::AtomicU64);

impl ventyd::IdGenerator for PrefixedIds {
    fn entity_id(&self) -> String {
        format!(
            "usr_{}",
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        )
    }

    fn event_id(&self) -> ventyd::EventId {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        format!("evt_{n:04}_V1StGXR8").try_into().unwrap()
    }
}

#[test]
fn event_ids_ventyd_generates_as_any_text_load_commit_and_write_back_unchanged() {
    use ventyd::storage::ReadRange;
    use ventyd::{EventId, IdGenerator};
    // Envelopes as Ventyd writes them with a custom `generateId`: a nanoid, a ULID, an upper
    // case UUID (another id than its lowercase spelling).
    let ids = [
        "V1StGXR8_Z5jdHi6B-myT",
        "01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "0190F3A4-0000-7000-8000-0000000000AA",
    ];
    let json = serde_json::json!([
        {"eventId": ids[0], "eventName": "user:created", "eventCreatedAt": "2024-03-01T10:00:00Z",
         "entityName": "user", "entityId": "ts-1", "version": 1,
         "body": {"email": "ts@example.com"}},
        {"eventId": ids[1], "eventName": "user:name_updated",
         "eventCreatedAt": "2024-03-01T10:00:01Z", "entityName": "user", "entityId": "ts-1",
         "version": 2, "body": {"name": "From TS"}},
        {"eventId": ids[2], "eventName": "user:tagged", "eventCreatedAt": "2024-03-01T10:00:02Z",
         "entityName": "user", "entityId": "ts-1", "version": 3, "body": {"tag": "ts"}}
    ]);
    let envelopes: Vec<Envelope<UserEvent>> = serde_json::from_value(json.clone()).unwrap();
    for (e, id) in envelopes.iter().zip(ids) {
        assert_eq!(e.event_id().to_string(), id);
        assert_eq!(
            e.event_id().as_uuid(),
            None,
            "{id} is not ventyd's UUID spelling"
        );
        // Written back, the id is the text it was.
        assert_eq!(serde_json::to_value(e).unwrap()["eventId"], id);
    }
    let user = Entity::<User>::hydrate("ts-1", envelopes).unwrap();
    assert_eq!(user.state().tags, ["ts"]);

    rt().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStorage::open(dir.path().join("ids.db"))
            .await
            .unwrap();
        let repo = Repository::<User, _>::with_config(
            store,
            EntityConfig::default().with_ids(PrefixedIds::default()),
        );
        // An entity whose ids all come from the custom generator, and one created with a given id.
        let mut mine = repo.create(alice()).unwrap();
        mine.update_name("Ada".into()).unwrap();
        repo.commit(&mut mine).await.unwrap();
        let given = EventId::parse("evt_given by the caller").unwrap();
        let mut other = repo
            .create_with(alice(), CreateOptions::default().event_id(given.clone()))
            .unwrap();
        repo.commit(&mut other).await.unwrap();

        let loaded = repo.find_one(mine.entity_id()).await.unwrap().unwrap();
        assert_eq!(loaded.entity_id(), "usr_0");
        let loaded_ids: Vec<String> = loaded.events().map(|e| e.event_id().to_string()).collect();
        assert_eq!(loaded_ids, ["evt_0001_V1StGXR8", "evt_0002_V1StGXR8"]);
        let stored = repo
            .storage()
            .read_stream("user", other.entity_id(), ReadRange::ALL)
            .await
            .unwrap();
        assert_eq!(stored[0].event_id, given);
        let again = repo.find_one(other.entity_id()).await.unwrap().unwrap();
        assert_eq!(again.events().next().unwrap().event_id(), &given);
        assert_eq!(
            PrefixedIds::default().event_id().to_string(),
            "evt_0000_V1StGXR8"
        );
    });
}
