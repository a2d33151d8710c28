use ventyd::prelude::*;

#[derive(Aggregate, Debug, Clone)]
pub struct User {
    email: String,
}

fn main() {}
