use ventyd::prelude::*;

#[event(entity = "user")]
#[derive(Debug, Clone)]
pub struct UserCreated {
    email: String,
}

fn main() {}
