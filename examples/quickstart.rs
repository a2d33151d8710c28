//! The Ventyd quickstart in Rust: create a user, rename it, commit, load it back, and print its
//! state and its events.
//!
//! Run it with `cargo run --example quickstart`. It keeps its events in `quickstart.db`, a SQLite
//! file in the current directory: run it twice and the second run finds the first run's user.

use ventyd::CreateOptions;
use ventyd::prelude::*;

/// Every change to a user is one of these events, stored forever.
#[event(entity = "user")] // event names: "user:created", "user:name_updated", "user:removed"
#[derive(Debug, Clone, PartialEq)]
pub enum UserEvent {
    /// The first event of every user; `User::create` takes its body, `UserCreated`.
    #[event(initial)]
    Created {
        #[schemars(email)]
        email: String,
        name: Option<String>,
    },
    NameUpdated {
        #[schemars(length(min = 1, max = 100))]
        name: String,
    },
    #[event(rename = "removed")]
    Deleted { reason: String },
}

/// The current state of a user: what folding its events gives.
#[derive(Aggregate, Debug, Clone)]
#[aggregate(event = UserEvent)] // the entity name comes from the event enum
pub struct User {
    pub email: String,
    pub name: Option<String>,
    pub deleted: bool,
}

/// The reducer: a pure fold, and an exhaustive `match` the compiler checks.
impl Reducer for User {
    fn init(created: &UserCreated) -> Self {
        User {
            email: created.email.clone(),
            name: created.name.clone(),
            deleted: false,
        }
    }

    fn apply(&mut self, event: &UserEvent) {
        match event {
            // `init` handles the initial event; `apply` never sees it.
            UserEvent::Created { .. } => {}
            UserEvent::NameUpdated { name } => self.name = Some(name.clone()),
            UserEvent::Deleted { .. } => self.deleted = true,
        }
    }
}

/// Why a mutation refused to act. It needs no variant for ventyd's own errors: a mutation
/// returns `MutationError<UserError>`, which holds either.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("user is deleted")]
    Deleted,
}

/// Business rules: each mutation decides from the state which events happen.
#[mutations] // generates the `UserMutations` trait, implemented for `Entity<User>`
impl User {
    /// Renames the user.
    #[mutation]
    pub fn update_name(&self, name: String) -> Result<UserEvent, UserError> {
        if self.deleted {
            return Err(UserError::Deleted);
        }
        Ok(UserEvent::NameUpdated { name })
    }

    /// Deletes the user.
    #[mutation]
    pub fn delete(&self, reason: String) -> Result<UserEvent, UserError> {
        if self.deleted {
            return Err(UserError::Deleted);
        }
        Ok(UserEvent::Deleted { reason })
    }
}

/// Where the quickstart keeps its events: a SQLite file in the current directory.
const DATABASE: &str = "quickstart.db";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The embedded default store: one file, created with its tables on first use.
    let fresh = !std::path::Path::new(DATABASE).exists();
    let repo = Repository::<User, _>::new(SqliteStorage::open(DATABASE).await?);

    let mut user = match repo.find_one("alice").await? {
        Some(user) => {
            println!(
                "{DATABASE} already holds user alice from an earlier run, at version {}; \
                 renaming her again (delete the file to start fresh)",
                user.version()
            );
            user
        }
        None => {
            if fresh {
                println!("created {DATABASE}: no earlier data, starting fresh");
            }
            // Create: the only way in is the initial event's body.
            repo.create_with(
                UserCreated {
                    email: "alice@example.com".into(),
                    name: None,
                },
                CreateOptions::default().entity_id("alice"),
            )?
        }
    };

    // Mutate: validated against the schema, applied at once, queued.
    let name = format!("Alice Cooper {}", user.version());
    user.update_name(name)?;
    println!(
        "user {} has {} queued events",
        user.entity_id(),
        user.queued_events().len()
    );

    // A body that breaks its schema is refused, and the entity is unchanged.
    if let Err(e) = user.update_name(String::new()) {
        println!("refused: {e}");
    }

    // Commit: the queue is stored atomically and cleared once the store confirms it.
    let committed = repo
        .commit_with(&mut user, Metadata::new().actor("quickstart"))
        .await?;
    println!(
        "committed {} events, now at version {}",
        committed.events, committed.version
    );

    // Load: replay the events into the state.
    let loaded = repo
        .find_one(user.entity_id())
        .await?
        .expect("the user was just committed");
    println!("\nloaded state: {:?}", loaded.state());
    println!("version: {}", loaded.version());
    println!("events:");
    for envelope in loaded.events() {
        println!(
            "  v{} {} at {} by {}: {}",
            envelope.version(),
            envelope.event_name(),
            envelope.event_created_at(),
            envelope.metadata().actor.as_deref().unwrap_or("-"),
            serde_json::to_string(envelope.event())?
        );
    }
    println!(
        "\nthe first event as stored (Ventyd's JSON shape):\n{}",
        serde_json::to_string_pretty(loaded.events().next().expect("one event"))?
    );

    // Time travel: the user as she was after her first event.
    let first = repo
        .find_one_at(user.entity_id(), 1)
        .await?
        .expect("version 1 exists");
    println!("\nat version 1 she was: {:?}", first.state());
    Ok(())
}
