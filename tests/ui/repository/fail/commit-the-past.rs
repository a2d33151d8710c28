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
    pub fn update_name(&self, name: String) -> UserEvent {
        UserEvent::NameUpdated { name }
    }
}

async fn rewrite_history(repo: &Repository<User, MemoryStorage>) -> Result<(), ventyd::Error> {
    // Time travel gives a read-only entity: the past cannot be mutated or committed.
    let mut past = repo.find_one_at("user-1", 1).await?.expect("stored");
    past.update_name("Ada".into())?;
    repo.commit(&mut past).await?;
    Ok(())
}

fn main() {
    let _ = rewrite_history;
}
