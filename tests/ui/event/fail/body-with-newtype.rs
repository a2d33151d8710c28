use ventyd::prelude::*;

#[derive(
    Debug, Clone, serde::Serialize, serde::Deserialize, ventyd::__private::schemars::JsonSchema,
)]
#[schemars(crate = "ventyd::__private::schemars")]
pub struct Signup {
    email: String,
}

#[event(entity = "user")]
#[derive(Debug, Clone)]
pub enum UserEvent {
    #[event(initial, body = UserCreated)]
    Created(Signup),
}

fn main() {}
