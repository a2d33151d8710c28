//! Keyed documents: what a unit of work writes beside events, read back by key or listed by
//! collection.

use crate::time::Timestamp;

/// A stored document.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Document {
    /// The collection.
    pub collection: String,
    /// The key within the collection.
    pub key: String,
    /// 1 when first written, one more with every write.
    pub revision: u64,
    /// The body, as JSON text.
    pub body: String,
    /// The store's commit time of the last write.
    pub updated_at: Timestamp,
}

impl Document {
    /// A document.
    pub fn new(
        collection: impl Into<String>,
        key: impl Into<String>,
        revision: u64,
        body: impl Into<String>,
        updated_at: Timestamp,
    ) -> Self {
        Document {
            collection: collection.into(),
            key: key.into(),
            revision,
            body: body.into(),
            updated_at,
        }
    }
}

/// Which documents of a collection to list: keys after `after`, in key order (byte order of the
/// UTF-8 key), at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DocumentRange {
    /// The collection.
    pub collection: String,
    /// Only keys greater than this one (`None`: from the first).
    pub after: Option<String>,
    /// The most documents a page holds; at least 1.
    pub limit: usize,
}

impl DocumentRange {
    /// The first `limit` documents of `collection`.
    pub fn new(collection: impl Into<String>, limit: usize) -> Self {
        DocumentRange {
            collection: collection.into(),
            after: None,
            limit,
        }
    }

    /// Only keys after `key` (what [`DocumentPage::next`] gives).
    pub fn after(mut self, key: impl Into<String>) -> Self {
        self.after = Some(key.into());
        self
    }
}

/// A page of documents in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DocumentPage {
    /// The documents.
    pub documents: Vec<Document>,
    /// The key to list after for the next page; `None` when this page is the last.
    pub next: Option<String>,
}

impl DocumentPage {
    /// A page.
    pub fn new(documents: Vec<Document>, next: Option<String>) -> Self {
        DocumentPage { documents, next }
    }
}
