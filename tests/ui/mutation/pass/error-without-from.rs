use ventyd::prelude::*;

#[event(entity = "user")]
#[derive(Debug, Clone)]
pub enum UserEvent {
    #[event(initial)]
    Created {
        email: String,
    },
    NameUpdated {
        name: String,
    },
}

#[derive(Aggregate, Debug, Clone)]
#[aggregate(event = UserEvent)]
pub struct User {
    email: String,
    name: Option<String>,
}

impl Reducer for User {
    fn init(created: &UserCreated) -> Self {
        User {
            email: created.email.clone(),
            name: None,
        }
    }
    fn apply(&mut self, event: &UserEvent) {
        match event {
            UserEvent::Created { email } => self.email = email.clone(),
            UserEvent::NameUpdated { name } => self.name = Some(name.clone()),
        }
    }
}

// A business error with no variant for ventyd's errors, and no `From<ventyd::Error>`.
#[derive(Debug, PartialEq)]
pub struct NameTaken;

#[mutations]
impl User {
    #[mutation]
    pub fn update_name(&self, name: String) -> Result<UserEvent, NameTaken> {
        if self.name.as_deref() == Some(name.as_str()) {
            return Err(NameTaken);
        }
        Ok(UserEvent::NameUpdated { name })
    }
}

fn main() {
    let mut user = Entity::<User>::create(UserCreated {
        email: "ada@example.com".into(),
    })
    .unwrap();
    user.update_name("Ada".into()).unwrap();
    match user.update_name("Ada".into()) {
        Err(MutationError::Rejected(NameTaken)) => {}
        other => panic!("{other:?}"),
    }
}
