use ventyd::prelude::*;

#[event(entity = "user")]
#[derive(Debug, Clone)]
pub enum UserEvent<T> {
    #[event(initial)]
    Created { payload: T },
}

fn main() {}
