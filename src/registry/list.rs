//! Listing sessions straight from the index: newest first, filtered, paged by cursor.

use serde::{Deserialize, Serialize};

use super::Index;
use crate::ids::Owner;
use crate::session::{Kind, SessionSummary, StateKind};
use crate::{Error, Result};

/// Largest page a list may ask for.
pub const MAX_LIMIT: usize = 1000;

/// Arguments of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ListRequest {
    /// Only sessions in this state.
    pub state: Option<StateKind>,
    /// Only sessions of this kind.
    pub kind: Option<Kind>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One page of sessions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ListResult {
    /// Newest first.
    pub sessions: Vec<SessionSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Lists `owner`'s sessions.
pub fn list(index: &Index, owner: &Owner, req: &ListRequest) -> Result<ListResult> {
    let limit = req.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(Error::invalid(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}, got {limit}"),
        ));
    }
    let before = match &req.cursor {
        None => u64::MAX,
        Some(c) => c.parse::<u64>().map_err(|_| {
            Error::invalid("cursor", format!("{c:?} is not a cursor returned by list"))
        })?,
    };
    let mut rows: Vec<_> = index
        .all()
        .into_iter()
        .filter(|s| &s.owner == owner && s.seq < before)
        .filter(|s| req.kind.is_none_or(|k| s.kind == k))
        .filter(|s| req.state.is_none_or(|st| s.state() == st))
        .collect();
    rows.sort_unstable_by_key(|s| std::cmp::Reverse(s.seq));
    let next_cursor = (rows.len() > limit).then(|| rows[limit - 1].seq.to_string());
    rows.truncate(limit);
    Ok(ListResult {
        sessions: rows.iter().map(|s| s.summary()).collect(),
        next_cursor,
    })
}
