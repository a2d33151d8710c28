//! Both mutation forms, every deciding return type, generics, patterns and `Self` in signatures,
//! called from another module through the generated trait.
mod domain {
    use ventyd::prelude::*;

    #[event(entity = "user")]
    #[derive(Debug, Clone, PartialEq)]
    pub enum UserEvent {
        #[event(initial)]
        Created {
            email: String,
        },
        NameUpdated {
            name: String,
        },
        Tagged {
            tag: String,
        },
        #[event(rename = "removed")]
        Deleted {},
    }

    #[derive(Aggregate, Debug, Clone, Default)]
    #[aggregate(event = UserEvent)]
    pub struct User {
        pub email: String,
        pub name: Option<String>,
        pub tags: Vec<String>,
        pub deleted: bool,
    }

    impl Reducer for User {
        fn init(created: &UserCreated) -> Self {
            User {
                email: created.email.clone(),
                ..User::default()
            }
        }
        fn apply(&mut self, event: &UserEvent) {
            match event {
                UserEvent::Created { email } => self.email = email.clone(),
                UserEvent::NameUpdated { name } => self.name = Some(name.clone()),
                UserEvent::Tagged { tag } => self.tags.push(tag.clone()),
                UserEvent::Deleted {} => self.deleted = true,
            }
        }
    }

    #[derive(Debug, thiserror::Error)]
    pub enum UserError {
        #[error("the user is deleted")]
        Deleted,
        #[error("at most {0} tags")]
        TooManyTags(usize),
        #[error(transparent)]
        Ventyd(#[from] ventyd::Error),
    }

    #[mutations]
    impl User {
        /// Renames the user.
        #[mutation]
        pub fn update_name(&self, name: impl Into<String>) -> Result<UserEvent, UserError> {
            if self.deleted {
                return Err(UserError::Deleted);
            }
            Ok(UserEvent::NameUpdated { name: name.into() })
        }

        /// Tags the user, once per tag; infallible, so the entity method returns
        /// `Result<(), ventyd::Error>`.
        #[mutation]
        pub fn tag_all(&self, tags: Vec<String>) -> Vec<UserEvent> {
            tags.into_iter()
                .map(|tag| UserEvent::Tagged { tag })
                .collect()
        }

        /// Deletes the user unless already deleted.
        #[mutation]
        pub fn delete(&self) -> Option<UserEvent> {
            (!self.deleted).then_some(UserEvent::Deleted {})
        }

        /// Two events at once, from a tuple pattern and a generic argument.
        #[mutation]
        pub fn rename_and_tag<T: ToString>(&self, (name, tag): (String, T)) -> [UserEvent; 2] {
            [
                UserEvent::NameUpdated { name },
                UserEvent::Tagged {
                    tag: tag.to_string(),
                },
            ]
        }

        /// Dispatching: each tag sees the state the previous one produced.
        #[mutation]
        pub fn tag_up_to(
            dispatch: &mut Dispatch<Self>,
            mut tags: Vec<String>,
            limit: usize,
        ) -> Result<usize, UserError> {
            tags.sort();
            for tag in tags {
                if dispatch.state().tags.len() >= limit {
                    return Err(UserError::TooManyTags(limit));
                }
                dispatch.dispatch(UserEvent::Tagged { tag })?;
            }
            Ok(dispatch.state().tags.len())
        }

        /// `Self` in a signature means the aggregate.
        #[mutation]
        pub fn copy_name_from(&self, other: &Self) -> Option<UserEvent> {
            other
                .name
                .clone()
                .map(|name| UserEvent::NameUpdated { name })
        }

        /// Not a mutation: left as it is.
        pub fn is_tagged(&self) -> bool {
            !self.tags.is_empty()
        }
    }
}

use domain::{User, UserCreated, UserError, UserMutations};
use ventyd::{Entity, MutationError};

fn main() -> Result<(), UserError> {
    let mut user = Entity::<User>::create(UserCreated {
        email: "ada@example.com".into(),
    })?;
    // A deciding mutation's error is `MutationError<UserError>`; a business error that has a
    // variant for ventyd's errors anyway takes it back with `flatten`.
    user.update_name("Ada").map_err(MutationError::flatten)?;
    user.tag_all(vec!["a".into()])?;
    user.rename_and_tag(("Ada L.".into(), 7))?;
    assert_eq!(user.state().name.as_deref(), Some("Ada L."));
    assert!(user.state().is_tagged());

    // Dispatching: the third tag breaks the limit, and the whole call is undone.
    assert!(matches!(
        user.tag_up_to(vec!["x".into(), "y".into()], 3),
        Err(UserError::TooManyTags(3))
    ));
    assert_eq!(user.state().tags, ["a", "7"]);
    assert_eq!(user.tag_up_to(vec!["x".into()], 3)?, 3);

    let other = User {
        name: Some("Grace".into()),
        ..User::default()
    };
    user.copy_name_from(&other)?;
    assert_eq!(user.state().name.as_deref(), Some("Grace"));

    user.delete()?;
    user.delete()?; // `None`: nothing happens
    assert!(matches!(
        user.update_name("Bob"),
        Err(MutationError::Rejected(UserError::Deleted))
    ));
    assert_eq!(user.queued_events().count(), 8);
    Ok(())
}
