//! Test helpers and the storage conformance suite (placeholder while it is being written).
