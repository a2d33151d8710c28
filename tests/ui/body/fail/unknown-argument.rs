use ventyd::prelude::*;

#[body(rename_all = "camelCase")]
#[derive(Debug, Clone)]
pub struct Address {
    pub street: String,
}

fn main() {}
