//! Workspace root package; see the `ventyd` crate.
