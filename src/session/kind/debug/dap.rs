//! The `debug` kind's wire: Debug Adapter Protocol messages framed with `Content-Length`
//! headers on the adapter's stdout. Each complete message becomes a [`Marker::Dap`]; what the
//! messages mean is the session's debugger (`mod.rs` here). The adapter's own stderr is
//! not the program's: it goes to the server log, and its tail explains a failed start or an
//! adapter that died (the program's output arrives as DAP `output` events).

use super::super::{Completion, Driver, Kind, Marker, Stream};
use crate::{Error, Result};

/// Largest message accepted from an adapter.
const MAX_MESSAGE: usize = 64 * 1024 * 1024;
/// Largest framing buffer kept between messages.
const IDLE_BUFFER: usize = 8 * 1024;
/// Stderr bytes kept to explain a failed start.
const NOISE_CAP: usize = 2048;

/// Frames `message` for the adapter's stdin.
pub(crate) fn frame(message: &serde_json::Value) -> Vec<u8> {
    let body = serde_json::to_vec(message).expect("values serialise");
    let mut out = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(&body);
    out
}

/// Splits the adapter's stdout into messages.
#[derive(Debug, Default)]
pub(crate) struct DapDriver {
    buf: Vec<u8>,
    noise: Vec<u8>,
}

impl DapDriver {
    /// The next complete message in the buffer, if any. Garbage before a header is skipped
    /// (and logged); a body that is not JSON is dropped.
    fn next_message(&mut self) -> Option<serde_json::Value> {
        loop {
            let header_end = find(&self.buf, b"\r\n\r\n")?;
            let length = content_length(&self.buf[..header_end]);
            let Some(length) = length.filter(|&n| n <= MAX_MESSAGE) else {
                tracing::warn!(
                    header = %String::from_utf8_lossy(&self.buf[..header_end]),
                    "debug adapter sent a header without a usable Content-Length; skipped"
                );
                self.buf.drain(..header_end + 4);
                continue;
            };
            let start = header_end + 4;
            if self.buf.len() < start + length {
                return None;
            }
            let parsed = serde_json::from_slice(&self.buf[start..start + length]);
            self.buf.drain(..start + length);
            match parsed {
                Ok(v) => return Some(v),
                Err(e) => {
                    tracing::warn!(error = %e, "debug adapter sent a message that is not JSON; skipped")
                }
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The `Content-Length` value among header lines.
fn content_length(header: &[u8]) -> Option<usize> {
    String::from_utf8_lossy(header)
        .split("\r\n")
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
}

impl Driver for DapDriver {
    fn startup(&mut self) -> Option<Vec<u8>> {
        None // the debugger runs its own launch sequence
    }

    fn begin_exec(&mut self, _input: &str, _interactive: bool) -> Result<Vec<u8>> {
        Err(Error::Unsupported {
            op: "exec (a debug session runs with debug_continue, debug_step and debug_evaluate)",
            kind: Kind::Debug,
        })
    }

    fn completion(&self) -> Completion {
        Completion::StdoutMarker
    }

    fn feed(&mut self, stream: Stream, bytes: &[u8], _out: &mut dyn FnMut(&[u8])) -> Vec<Marker> {
        if stream == Stream::Stderr {
            tracing::debug!(stderr = %String::from_utf8_lossy(bytes).trim_end(), "debug adapter");
            let keep = bytes.len().min(NOISE_CAP);
            self.noise.extend_from_slice(&bytes[bytes.len() - keep..]);
            let excess = self.noise.len().saturating_sub(NOISE_CAP);
            self.noise.drain(..excess);
            return Vec::new();
        }
        self.buf.extend_from_slice(bytes);
        let mut markers = Vec::new();
        while let Some(message) = self.next_message() {
            markers.push(Marker::Dap(message));
        }
        if self.buf.is_empty() && self.buf.capacity() > IDLE_BUFFER {
            self.buf = Vec::new(); // an idle session keeps no large buffer
        }
        markers
    }

    fn flush(&mut self, stream: Stream, _out: &mut dyn FnMut(&[u8])) {
        if stream == Stream::Stdout && !self.buf.is_empty() {
            tracing::debug!(
                bytes = self.buf.len(),
                "debug adapter ended mid-message; dropped"
            );
            self.buf.clear();
        }
    }

    fn startup_noise(&self) -> String {
        let text = String::from_utf8_lossy(&self.noise).trim().to_owned();
        if text.contains("No module named") && text.contains("debugpy") {
            format!("{text} (install debugpy into the interpreter the session runs: python3 -m pip install debugpy)")
        } else {
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn feed_all(d: &mut DapDriver, chunks: &[&[u8]]) -> Vec<serde_json::Value> {
        let mut got = Vec::new();
        for c in chunks {
            for m in d.feed(Stream::Stdout, c, &mut |_| panic!("no output on stdout")) {
                match m {
                    Marker::Dap(v) => got.push(v),
                    other => panic!("unexpected marker {other:?}"),
                }
            }
        }
        got
    }

    #[test]
    fn messages_split_across_reads_and_joined_in_one_read_are_found() {
        let a = frame(&json!({"seq": 1, "type": "event", "event": "initialized"}));
        let b = frame(&json!({"seq": 2, "type": "response", "request_seq": 1, "success": true}));
        let mut both = a.clone();
        both.extend_from_slice(&b);
        let mut d = DapDriver::default();
        assert_eq!(feed_all(&mut d, &[&both]).len(), 2);
        // Byte by byte: nothing until the last byte of each message.
        let chunks: Vec<&[u8]> = both.chunks(1).collect();
        let got = feed_all(&mut d, &chunks);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1]["request_seq"], 1);
    }

    #[test]
    fn garbage_and_bad_bodies_are_skipped_without_losing_the_next_message() {
        let mut bytes = b"Content-Type: x\r\n\r\n".to_vec();
        bytes.extend_from_slice(b"Content-Length: 3\r\n\r\nnot");
        bytes.extend_from_slice(&frame(&json!({"seq": 9})));
        let mut d = DapDriver::default();
        let got = feed_all(&mut d, &[&bytes]);
        assert_eq!(got, vec![json!({"seq": 9})]);
    }

    #[test]
    fn adapter_stderr_stays_out_of_the_program_log_and_explains_a_missing_debugpy() {
        let mut d = DapDriver::default();
        let mut logged = Vec::new();
        d.feed(
            Stream::Stderr,
            b"/usr/bin/python3: No module named debugpy\n",
            &mut |b| logged.extend_from_slice(b),
        );
        assert!(
            logged.is_empty(),
            "the adapter's stderr is not program output"
        );
        assert!(d.startup_noise().contains("pip install debugpy"));
    }
}
