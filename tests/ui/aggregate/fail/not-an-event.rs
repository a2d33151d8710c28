use ventyd::prelude::*;

#[derive(Debug, Clone)]
pub enum UserEvent {
    Created { email: String },
}

#[derive(Aggregate, Debug, Clone)]
#[aggregate(event = UserEvent)]
pub struct User {
    email: String,
}

fn main() {}
