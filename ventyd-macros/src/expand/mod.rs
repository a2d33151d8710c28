//! Expansion: turns a checked model and its plan into tokens. Nothing here can fail; a case
//! that cannot be expanded is a check that is missing.

pub mod aggregate;
pub mod body;
pub mod event;
pub mod fields;
pub mod mutation;
