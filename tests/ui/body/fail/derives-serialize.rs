use ventyd::prelude::*;

#[body]
#[derive(Debug, Clone, serde::Serialize)]
pub struct Address {
    pub street: String,
}

fn main() {}
