//! What a write expects to find: the version of a stream, the revision of a document.
//!
//! These live on the ground floor because both the storage seam and the error type name them.

use std::fmt;

/// What an append expects the stream's current version to be (optimistic concurrency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExpectedVersion {
    /// No check: append after whatever is there.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must be at exactly this version (`Exact(0)` means the same as `NoStream`).
    Exact(u64),
}

impl ExpectedVersion {
    /// Does a stream at `actual` (0 = absent) satisfy this expectation?
    ///
    /// ```
    /// use ventyd::ExpectedVersion;
    ///
    /// assert!(ExpectedVersion::NoStream.matches(0));
    /// assert!(!ExpectedVersion::Exact(2).matches(3));
    /// assert!(ExpectedVersion::Any.matches(7));
    /// ```
    pub fn matches(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(v) => actual == v,
        }
    }

    /// The expectation an entity at committed version `version` commits with.
    pub fn after(version: u64) -> Self {
        if version == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(version)
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

/// What a document write expects the document's current revision to be (compare-and-set).
///
/// A document's revision is 1 when it is first written and grows by one with every write; a
/// deleted document is absent again, and writing it anew starts over at revision 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExpectedRevision {
    /// No check: write whatever is there.
    Any,
    /// The document must not exist.
    Absent,
    /// The document must exist at exactly this revision.
    Exact(u64),
}

impl ExpectedRevision {
    /// Does a document at `actual` (`None` = absent) satisfy this expectation?
    ///
    /// ```
    /// use ventyd::ExpectedRevision;
    ///
    /// assert!(ExpectedRevision::Absent.matches(None));
    /// assert!(ExpectedRevision::Exact(3).matches(Some(3)));
    /// assert!(!ExpectedRevision::Exact(3).matches(None));
    /// ```
    pub fn matches(self, actual: Option<u64>) -> bool {
        match self {
            ExpectedRevision::Any => true,
            ExpectedRevision::Absent => actual.is_none(),
            ExpectedRevision::Exact(r) => actual == Some(r),
        }
    }

    /// The expectation for a document last read at `revision` (`None`: it was absent).
    pub fn after(revision: Option<u64>) -> Self {
        match revision {
            Some(r) => ExpectedRevision::Exact(r),
            None => ExpectedRevision::Absent,
        }
    }
}

impl fmt::Display for ExpectedRevision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedRevision::Any => f.write_str("any revision"),
            ExpectedRevision::Absent => f.write_str("no document"),
            ExpectedRevision::Exact(r) => write!(f, "revision {r}"),
        }
    }
}
