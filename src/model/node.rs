//! This server's node id: the prefix of every handle it hands out (`<node>.<random part>`), so
//! that a proxy in front of several servers can send each request to the node that holds its
//! session by matching a prefix, without reading the body. One node per process: the first
//! runtime started sets it.

use std::sync::OnceLock;

static NODE: OnceLock<String> = OnceLock::new();

/// Longest node id (a DNS label).
pub const MAX_LEN: usize = 63;

/// This process's node id; empty before a runtime has set it.
pub fn id() -> &'static str {
    NODE.get().map_or("", String::as_str)
}

/// Makes `id` this process's node id, unless one is set already; returns the one in force.
pub fn set(id: &str) -> &'static str {
    NODE.get_or_init(|| id.to_owned())
}

/// Refuses a node id a proxy cannot match or a header cannot carry, saying what is wrong.
pub fn check(id: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if id.is_empty() || id.len() > MAX_LEN {
        return Err(format!("node id {id:?} must be 1 to {MAX_LEN} characters"));
    }
    if let Some(bad) = id.chars().find(|&c| !ok_char(c)) {
        return Err(format!(
            "node id {id:?} has {bad:?}: only lowercase letters, digits and '-' (a DNS label), so a \
             proxy can match it and a header can carry it"
        ));
    }
    if id.starts_with('-') || id.ends_with('-') {
        return Err(format!(
            "node id {id:?} must start and end with a letter or digit"
        ));
    }
    Ok(())
}

/// The default node id: the host name's first label, lowercased, with characters a node id
/// cannot have replaced by '-' (under Kubernetes the host name is the pod name).
pub fn default_id() -> String {
    let host = hostname().unwrap_or_default();
    let label = host.split('.').next().unwrap_or("").to_ascii_lowercase();
    let mut id: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(MAX_LEN)
        .collect();
    id = id.trim_matches('-').to_owned();
    if id.is_empty() {
        "node".into()
    } else {
        id
    }
}

fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for its length; gethostname NUL-terminates within it or fails.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8(buf[..end].to_vec()).ok()
}

/// Splits a handle into its node prefix (when it has one that could be a node id) and the
/// rest.
pub fn split(handle: &str) -> (Option<&str>, &str) {
    match handle.split_once('.') {
        Some((node, rest)) if check(node).is_ok() => (Some(node), rest),
        _ => (None, handle),
    }
}

/// `rest` with this node's prefix, as handed out to clients.
pub fn prefixed(rest: impl std::fmt::Display) -> String {
    match id() {
        "" => rest.to_string(),
        node => format!("{node}.{rest}"),
    }
}

/// The node another node's handle names, when it is not this one.
pub fn elsewhere(handle: &str) -> Option<&str> {
    let (node, _) = split(handle.trim());
    node.filter(|n| !id().is_empty() && *n != id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_are_dns_labels() {
        assert!(check("n1").is_ok() && check("stablehand-0").is_ok());
        for bad in ["", "N1", "a.b", "-a", "a-", "a_b", &"x".repeat(64)] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
        assert!(check("a_b").unwrap_err().contains("'_'"));
        assert_eq!(check(&default_id()), Ok(()));
    }

    #[test]
    fn handles_split_at_a_valid_prefix_only() {
        assert_eq!(split("n1.abc"), (Some("n1"), "abc"));
        assert_eq!(split("abc"), (None, "abc"));
        assert_eq!(split("N1.abc"), (None, "N1.abc"));
    }
}
