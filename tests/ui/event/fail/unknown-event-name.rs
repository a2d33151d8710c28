use ventyd::prelude::*;

#[event(entity = "user")]
#[derive(Debug, Clone)]
pub enum UserEvent {
    #[event(initial)]
    Created { email: String },
}

// A name that is not declared fails to compile, so a renamed event leaves no stale string behind.
const _: &str = ventyd::event_name!(UserEvent, "user:nope");

fn main() {}
