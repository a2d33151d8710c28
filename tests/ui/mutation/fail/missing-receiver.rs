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

#[mutations]
impl User {
    #[mutation]
    pub fn update_name(user: &User, name: String) -> UserEvent {
        let _ = user;
        UserEvent::NameUpdated { name }
    }
}

fn main() {}
