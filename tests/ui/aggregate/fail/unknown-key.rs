use ventyd::prelude::*;

#[event(entity = "user")]
#[derive(Debug, Clone)]
pub enum UserEvent {
    #[event(initial)]
    Created { email: String },
}

#[derive(Aggregate, Debug, Clone)]
#[aggregate(event = UserEvent, snapshot = 100)]
pub struct User {
    email: String,
}

fn main() {}
