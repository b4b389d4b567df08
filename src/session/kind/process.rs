//! The `process` kind: any program. Exec writes a line to stdin and returns the output that
//! follows it, once that output ends with a complete line; send and read give byte-level control.

use super::{Completion, Driver, Marker, Stream};
use crate::Result;

/// Driver for arbitrary programs: no framing, every byte is output.
#[derive(Debug, Default)]
pub(crate) struct ProcessDriver;

impl Driver for ProcessDriver {
    fn startup(&mut self) -> Option<Vec<u8>> {
        None
    }

    fn begin_exec(&mut self, input: &str, _interactive: bool) -> Result<Vec<u8>> {
        let mut line = Vec::with_capacity(input.len() + 1);
        line.extend_from_slice(input.as_bytes());
        if !input.ends_with('\n') {
            line.push(b'\n');
        }
        Ok(line)
    }

    fn completion(&self) -> Completion {
        Completion::FirstLine
    }

    fn feed(&mut self, _: Stream, bytes: &[u8], out: &mut dyn FnMut(&[u8])) -> Vec<Marker> {
        out(bytes);
        Vec::new()
    }

    fn flush(&mut self, _: Stream, _: &mut dyn FnMut(&[u8])) {}
}
