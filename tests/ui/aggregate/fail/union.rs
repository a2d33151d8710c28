use ventyd::prelude::*;

#[event(entity = "user")]
#[derive(Debug, Clone)]
pub enum UserEvent {
    #[event(initial)]
    Created { email: String },
}

#[derive(Aggregate, Clone, Copy)]
#[aggregate(event = UserEvent)]
pub union User {
    id: u64,
    bits: [u8; 8],
}

fn main() {}
