//! The output log of one stream: append-only, addressed by absolute byte cursors, capped.
//!
//! The log keeps the first `cap / 2` bytes ever written (the head) and the most recent
//! `cap - cap / 2` bytes (the tail); bytes in between are dropped and counted. Storage is a
//! queue of blocks, so memory follows what is held, not the cap.

use std::collections::VecDeque;

/// Largest block the tail is stored in.
const MAX_BLOCK: usize = 64 * 1024;
/// Smallest block allocated for new output.
const MIN_BLOCK: usize = 256;

/// An append-only, capped byte log with absolute cursors.
#[derive(Debug)]
pub struct OutputLog {
    /// Cursor of the first byte this log could hold (non-zero for a resumed session, whose
    /// earlier output lives in the store's transcript).
    base: u64,
    head: Vec<u8>,
    head_cap: usize,
    tail: VecDeque<Vec<u8>>,
    tail_len: usize,
    tail_cap: usize,
    total: u64,
}

/// Bytes copied out of a log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Slice {
    /// The bytes, in cursor order, with any dropped range left out.
    pub data: Vec<u8>,
    /// Cursor just past the last byte considered.
    pub next: u64,
    /// How many bytes in the requested range were no longer held.
    pub dropped: u64,
}

impl OutputLog {
    /// A log that holds at most `cap` bytes (at least 2).
    pub fn new(cap: usize) -> Self {
        Self::starting_at(cap, 0)
    }

    /// A log whose cursors continue from `base`: bytes before it read as dropped.
    pub fn starting_at(cap: usize, base: u64) -> Self {
        let cap = cap.max(2);
        Self {
            base,
            head: Vec::new(),
            head_cap: cap / 2,
            tail: VecDeque::new(),
            tail_len: 0,
            tail_cap: cap - cap / 2,
            total: base,
        }
    }

    /// Cursor one past the last byte ever appended.
    pub fn end(&self) -> u64 {
        self.total
    }

    /// The most recent byte, if any is held.
    pub fn last_byte(&self) -> Option<u8> {
        match self.tail.back() {
            Some(block) => block.last().copied(),
            None => self.head.last().copied(),
        }
    }

    /// Size of the head, which is also the per-exec head budget.
    pub fn head_cap(&self) -> usize {
        self.head_cap
    }

    /// Size of the tail window.
    pub fn tail_cap(&self) -> usize {
        self.tail_cap
    }

    /// Cursor of the first byte of the tail.
    fn tail_start(&self) -> u64 {
        self.total - self.tail_len as u64
    }

    /// Total bytes dropped so far (between head and tail).
    pub fn dropped(&self) -> u64 {
        self.tail_start() - self.head.len() as u64 - self.base
    }

    /// Appends `bytes`. Bytes evicted from the tail are first shown to `on_evict` with their
    /// cursor, so a caller can keep what it still needs.
    pub fn append(&mut self, mut bytes: &[u8], mut on_evict: impl FnMut(u64, &[u8])) {
        if bytes.is_empty() {
            return;
        }
        if self.head.len() < self.head_cap && self.tail_len == 0 {
            let n = bytes.len().min(self.head_cap - self.head.len());
            self.head.extend_from_slice(&bytes[..n]);
            self.total += n as u64;
            bytes = &bytes[n..];
        }
        if bytes.len() > self.tail_cap {
            // Only the last tail_cap bytes can survive: evict the whole current tail and the
            // front of `bytes` without storing them.
            let skip = bytes.len() - self.tail_cap;
            self.evict(self.tail_len, &mut on_evict);
            on_evict(self.total, &bytes[..skip]);
            self.total += skip as u64;
            bytes = &bytes[skip..];
        }
        let overflow = (self.tail_len + bytes.len()).saturating_sub(self.tail_cap);
        self.evict(overflow, &mut on_evict);
        self.push_tail(bytes);
    }

    fn push_tail(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let fits = self.tail.back().is_some_and(|b| {
            b.len() + bytes.len() <= MAX_BLOCK && b.capacity() - b.len() >= bytes.len()
        });
        if fits {
            self.tail
                .back_mut()
                .expect("checked")
                .extend_from_slice(bytes);
        } else {
            let prev = self.tail.back().map_or(0, Vec::len);
            let cap = bytes.len().max((prev * 2).clamp(MIN_BLOCK, MAX_BLOCK));
            let mut block = Vec::with_capacity(cap);
            block.extend_from_slice(bytes);
            self.tail.push_back(block);
        }
        self.tail_len += bytes.len();
        self.total += bytes.len() as u64;
    }

    fn evict(&mut self, mut n: usize, on_evict: &mut impl FnMut(u64, &[u8])) {
        while n > 0 {
            let start = self.tail_start();
            let front = self.tail.front_mut().expect("tail_len counts held bytes");
            if front.len() <= n {
                on_evict(start, front);
                n -= front.len();
                self.tail_len -= front.len();
                self.tail.pop_front();
            } else {
                on_evict(start, &front[..n]);
                front.drain(..n);
                self.tail_len -= n;
                n = 0;
            }
        }
    }

    /// The held ranges of cursors: the head, then the tail (either may be empty).
    pub fn held(&self) -> [(u64, u64); 2] {
        [
            (self.base, self.base + self.head.len() as u64),
            (self.tail_start(), self.total),
        ]
    }

    /// Releases spare capacity; called when a session goes idle.
    pub fn shrink(&mut self) {
        self.head.shrink_to_fit();
        if let Some(last) = self.tail.back_mut() {
            last.shrink_to_fit();
        }
    }

    /// Copies the held bytes of `[from, to)` into `out`; returns how many were copied.
    pub fn copy_range(&self, from: u64, to: u64, out: &mut Vec<u8>) -> u64 {
        let mut copied = copy_overlap(self.base, &self.head, from, to, out);
        let mut pos = self.tail_start();
        for block in &self.tail {
            if pos >= to {
                break;
            }
            copied += copy_overlap(pos, block, from, to, out);
            pos += block.len() as u64;
        }
        copied
    }

    /// Like [`OutputLog::copy_range`], but bytes evicted from the log that `extra` holds
    /// (starting at cursor `extra_at`) fill the gap.
    pub fn copy_range_with(
        &self,
        from: u64,
        to: u64,
        extra_at: u64,
        extra: &[u8],
        out: &mut Vec<u8>,
    ) -> u64 {
        let head_end = self.base + self.head.len() as u64;
        let mut copied = self.copy_range(from, to.min(head_end), out);
        copied += copy_overlap(
            extra_at,
            extra,
            from.max(head_end),
            to.min(self.tail_start()),
            out,
        );
        copied + self.copy_range(from.max(self.tail_start()), to, out)
    }

    /// Reads up to `max` bytes from `cursor`. A cursor inside the dropped range moves to the
    /// first held byte after it and the skipped amount is reported in `dropped`.
    pub fn read(&self, cursor: u64, max: usize) -> Slice {
        let cursor = cursor.min(self.total);
        let head_end = self.base + self.head.len() as u64;
        let start = if cursor < self.base {
            self.base
        } else if cursor >= head_end && cursor < self.tail_start() {
            self.tail_start()
        } else {
            cursor
        };
        let end = start.saturating_add(max as u64).min(self.total);
        let mut data = Vec::with_capacity((end - start) as usize);
        self.copy_range(start, end, &mut data);
        let end = utf8_boundary(&data, end, self.total);
        data.truncate((end - start) as usize);
        Slice {
            data,
            next: end,
            dropped: start - cursor,
        }
    }
}

/// Copies the part of `block` (which starts at cursor `at`) that lies in `[from, to)`.
pub(crate) fn copy_overlap(at: u64, block: &[u8], from: u64, to: u64, out: &mut Vec<u8>) -> u64 {
    let lo = from.max(at);
    let hi = to.min(at + block.len() as u64);
    if lo >= hi {
        return 0;
    }
    out.extend_from_slice(&block[(lo - at) as usize..(hi - at) as usize]);
    hi - lo
}

/// Moves `end` back so a page does not split a UTF-8 sequence that continues past it
/// (unless the page would become empty or the sequence is already complete).
fn utf8_boundary(data: &[u8], end: u64, total: u64) -> u64 {
    if end == total || data.is_empty() {
        return end;
    }
    // Look at the last up-to-3 bytes for the start of an unfinished sequence.
    for back in 1..=3.min(data.len()) {
        let b = data[data.len() - back];
        if b & 0xC0 == 0x80 {
            continue;
        }
        let need = match b {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        if need > back && data.len() > back {
            return end - back as u64;
        }
        break;
    }
    end
}

/// Bytes as text: valid UTF-8 as is, anything else with replacement characters and `true`.
pub(crate) fn lossy_text(bytes: Vec<u8>) -> (String, bool) {
    match String::from_utf8(bytes) {
        Ok(s) => (s, false),
        Err(e) => (String::from_utf8_lossy(e.as_bytes()).into_owned(), true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(log: &OutputLog) -> Slice {
        log.read(0, usize::MAX)
    }

    #[test]
    fn small_output_is_kept_whole() {
        let mut log = OutputLog::new(16);
        log.append(b"hello", |_, _| {});
        log.append(b" world", |_, _| {});
        assert_eq!(all(&log).data, b"hello world");
        assert_eq!(log.end(), 11);
        assert_eq!(log.dropped(), 0);
    }

    #[test]
    fn overflow_keeps_head_and_tail_and_counts_the_middle() {
        let mut log = OutputLog::new(8);
        let mut evicted = Vec::new();
        for chunk in [&b"abcdef"[..], b"ghij", b"klmnop"] {
            log.append(chunk, |pos, b| evicted.push((pos, b.to_vec())));
        }
        let s = all(&log);
        assert_eq!(s.data, b"abcdmnop");
        assert_eq!(log.dropped(), 8);
        assert_eq!(s.dropped, 0, "reading from 0 starts in the head");
        let flat: Vec<u8> = evicted.iter().flat_map(|(_, b)| b.clone()).collect();
        assert_eq!(flat, b"efghijkl");
        assert_eq!(evicted[0].0, 4);
    }

    #[test]
    fn a_cursor_in_the_dropped_range_skips_forward() {
        let mut log = OutputLog::new(8);
        log.append(b"0123456789abcdef", |_, _| {});
        let s = log.read(5, 100);
        assert_eq!(s.data, b"cdef");
        assert_eq!(s.dropped, 7);
        assert_eq!(s.next, 16);
    }

    #[test]
    fn pages_do_not_split_utf8() {
        let mut log = OutputLog::new(1024);
        log.append("aé".as_bytes(), |_, _| {});
        let s = log.read(0, 2);
        assert_eq!(s.data, b"a");
        assert_eq!(s.next, 1);
        let s = log.read(1, 2);
        assert_eq!(s.data, "é".as_bytes());
    }

    #[test]
    fn a_resumed_log_continues_its_cursors_and_reports_earlier_bytes_as_dropped() {
        let mut log = OutputLog::starting_at(8, 100);
        assert_eq!(log.end(), 100);
        log.append(b"0123456789", |_, _| {});
        assert_eq!(log.end(), 110);
        assert_eq!(log.dropped(), 2, "only the middle of the new bytes");
        let s = log.read(0, 100);
        assert_eq!(
            s.data,
            b"0123".iter().chain(b"6789").copied().collect::<Vec<_>>()
        );
        assert_eq!(
            s.dropped, 100,
            "the bytes before the resume are in the transcript"
        );
        let s = log.read(102, 100);
        assert_eq!(s.data, b"236789");
        assert_eq!(s.next, 110);
    }
}
