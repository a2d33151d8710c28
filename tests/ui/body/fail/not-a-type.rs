use ventyd::prelude::*;

#[body]
fn address() {}

fn main() {}
