//! The user aggregate both benchmarks measure, as the quickstart defines it (less the
//! business rules), and a current-thread runtime.
#![allow(dead_code)]

use ventyd::prelude::*;

#[event(entity = "user")]
#[derive(Debug, Clone)]
pub enum UserEvent {
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

#[derive(Aggregate, Debug, Clone)]
#[aggregate(event = UserEvent)]
pub struct User {
    pub email: String,
    pub name: Option<String>,
    pub renames: u64,
    pub deleted: bool,
}

impl Reducer for User {
    fn init(c: &UserCreated) -> Self {
        User {
            email: c.email.clone(),
            name: c.name.clone(),
            renames: 0,
            deleted: false,
        }
    }

    fn apply(&mut self, event: &UserEvent) {
        match event {
            // `init` handles the initial event; `apply` never sees it.
            UserEvent::Created { .. } => {}
            UserEvent::NameUpdated { name } => {
                self.name = Some(name.clone());
                self.renames += 1;
            }
            UserEvent::Deleted { .. } => self.deleted = true,
        }
    }
}

#[mutations]
impl User {
    #[mutation]
    pub fn update_name(&self, name: String) -> UserEvent {
        UserEvent::NameUpdated { name }
    }
}

pub fn alice() -> UserCreated {
    UserCreated {
        email: "alice@example.com".into(),
        name: None,
    }
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}
