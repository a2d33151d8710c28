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
}

#[mutations]
impl User {
    #[mutation]
    pub fn update_name(&self, name: String) -> UserEvent {
        UserEvent::NameUpdated { name }
    }
}

fn main() {}
