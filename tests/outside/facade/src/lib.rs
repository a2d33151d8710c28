//! A facade: a company crate that re-exports ventyd for its services.

pub use ventyd;
