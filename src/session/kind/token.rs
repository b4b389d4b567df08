//! End-marker tokens shared by the drivers that frame execs with nonces (shell, repl): a
//! prefix and 128 random bits in hex, and the byte searches that find them in output.

use std::borrow::Cow;

/// Length of the random part, in hex digits.
const HEX_DIGITS: usize = 32;

/// A fresh token: `prefix` followed by 128 random bits in lower-case hex. `N` must be
/// `prefix.len() + 32`.
pub(super) fn new_token<const N: usize>(prefix: &[u8]) -> [u8; N] {
    assert_eq!(N, prefix.len() + HEX_DIGITS, "token length");
    let mut random = [0u8; HEX_DIGITS / 2];
    getrandom::fill(&mut random).expect("the OS random source is available");
    let mut token = [0u8; N];
    token[..prefix.len()].copy_from_slice(prefix);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in random.iter().enumerate() {
        token[prefix.len() + 2 * i] = HEX[usize::from(b >> 4)];
        token[prefix.len() + 2 * i + 1] = HEX[usize::from(b & 15)];
    }
    token
}

/// The bytes held back from earlier reads followed by `bytes`, taking `held` (left empty);
/// borrowed when nothing was held, which is the common case.
pub(super) fn take_joined<'a>(held: &mut Vec<u8>, bytes: &'a [u8]) -> Cow<'a, [u8]> {
    if held.is_empty() {
        Cow::Borrowed(bytes)
    } else {
        let mut joined = std::mem::take(held);
        joined.extend_from_slice(bytes);
        Cow::Owned(joined)
    }
}

/// Position of `needle` in `hay`.
pub(super) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    let mut from = 0;
    while let Some(p) = hay[from..=hay.len() - needle.len()]
        .iter()
        .position(|&b| b == first)
    {
        let at = from + p;
        if &hay[at..at + needle.len()] == needle {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Start of the longest suffix of `buf` that is a proper prefix of `token` (or `buf.len()`):
/// bytes from there on must be held back, since they may begin a marker.
pub(super) fn partial_start(buf: &[u8], token: &[u8]) -> usize {
    let window = buf.len().saturating_sub(token.len() - 1);
    (window..buf.len())
        .find(|&k| token.starts_with(&buf[k..]))
        .unwrap_or(buf.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_the_prefix_and_32_fresh_hex_digits() {
        let a: [u8; 37] = new_token(b"__SH_");
        let b: [u8; 37] = new_token(b"__SH_");
        assert!(a.starts_with(b"__SH_") && a[5..].iter().all(u8::is_ascii_hexdigit));
        assert_ne!(a, b);
    }

    #[test]
    fn a_partial_token_at_the_end_is_held_back() {
        assert_eq!(find(b"xx__SH_ab", b"__SH_"), Some(2));
        assert_eq!(partial_start(b"output __S", b"__SH_0123"), 7);
        assert_eq!(partial_start(b"output", b"__SH_0123"), 6);
    }
}
