//! The `repl` kind: a persistent Python namespace behind JSON lines and nonce-tagged markers.
//!
//! The session runs the configured interpreter (`commands.repl`, or the session's own
//! `command`, e.g. a virtualenv's python) as `<argv> -u -c <driver>`, where the driver is
//! `driver.py`, shipped inside the crate. The driver keeps private copies of fds 0-2,
//! points fd 0 at /dev/null, and runs every exec in one fresh `__main__` module, so `import`,
//! `def` and `class` persist between execs and pickle finds the code's classes by name.
//!
//! ## Protocol
//!
//! Runtime → driver, one JSON object per line on stdin (each preceded by an empty line, so a
//! stray partial line from `send` cannot swallow it):
//!
//! - `{"op":"hello","token":T}` — start-up; answered once Python is ready.
//! - `{"op":"exec","token":T,"code":"…","interactive":false}` — runs a code block.
//! - `{"op":"snapshot","token":T,"limit":N}` — serialises the namespace (see below).
//! - `{"op":"restore","token":T,"data":"<base64>","budget_ms":N}` — loads a snapshot; sent
//!   instead of `hello` when a resumed session has one.
//!
//! Driver → runtime: the code's own output goes to fds 1 and 2 unbuffered, as it is produced
//! (so timeouts and `session_read` work as for the shell). When a request is done, the driver
//! flushes Python's streams and writes `T\n` on stderr, then `T <json>\n` on stdout. T is
//! `__PY_` and 128 random bits, fresh per request and unknown to the code (the driver reads the
//! request line before the code runs), so output cannot end an exec by accident; output
//! without a trailing newline stays intact because bytes that might start a marker are held
//! back. The JSON is `{"status":0|1|130,"value":"<repr>"|null,"error":{type,message,traceback}|null}`
//! for an exec, or the op's report.
//!
//! ## Semantics
//!
//! - `value` is the `repr` of a last expression statement, as IPython shows it: not for
//!   `None`, an assignment or a trailing `;`. Top-level `await` works.
//! - An exception (a `SyntaxError` included) is `error`, with the traceback cut to the code's
//!   own frames (`File "<exec-N>"`, source lines shown); the traceback is also written to
//!   stderr, as Python does, so a timed-out exec's failure can be read by cursor. The
//!   session lives on.
//! - `exit_code` is 0 when the code ran to the end, 1 when it raised, 130 when it was
//!   interrupted; `None` while it runs on after a timeout.
//! - SIGINT during an exec raises `KeyboardInterrupt` in the code (error type
//!   `KeyboardInterrupt`); between execs it is ignored, and one that arrives after the exec's
//!   line was read but before the code started interrupts the code as it starts.
//! - `exit()` / `quit()` end the session like the shell's `exit 3`: the process exits with
//!   that code and the result has `session_ended`. `sys.exit()` / `raise SystemExit` are
//!   errors (type `SystemExit`), as in IPython. Closing stdin ends the session too.
//! - Non-interactive execs read /dev/null (`input()` raises `EOFError`); with `interactive`,
//!   `sys.stdin` reads what `send` writes. A send outside an interactive exec is ignored
//!   (the driver notes it on stderr).
//!
//! ## Namespace snapshots
//!
//! `snapshot` pickles each name separately with dill when the interpreter can import it, else
//! pickle, and names what it could not keep (generators, sockets, …, and with plain pickle
//! the functions and classes the code defined) in `skipped` with a reason each. Modules are
//! kept by name and re-imported; functions and classes defined in the session are saved
//! once and referred to by name from other values, so instances keep their class identity.
//! The working directory and `sys.path` are kept too. The blob goes to the store (see
//! `snapshot.rs` here), and a resumed session restores it before it reports Ready.
//!
//! Kind-specific operations travel as exec inputs that start with [`OP_PREFIX`] (see
//! [`snapshot_input`], [`restore_input`]), so they queue behind a running exec like any
//! other; their report is returned in `ExecResult::result`. A restore is accepted only before
//! start-up: the session hands it to `begin_exec` before `startup`, which then sends it in
//! place of `hello`.

pub mod snapshot;

use super::token::{self, find, partial_start};
use serde::Serialize;
use serde_json::{json, Map, Value};
use tracing::{debug, info, warn};

use super::{Completion, Driver, Marker, Stream};
use crate::session::messages::{ExecError, ExecResult};
use crate::{Error, Result};

/// The Python program run by every `repl` session.
pub(crate) const DRIVER_SOURCE: &str = include_str!("driver.py");

/// Exec inputs that start with this are kind operations, not code.
pub(crate) const OP_PREFIX: &str = "\0stablehand:";

const PREFIX: &[u8] = b"__PY_";
/// Prefix plus 32 hex digits.
const TOKEN_LEN: usize = PREFIX.len() + 32;
/// A marker line longer than this is not ours (a snapshot's base64 is the longest).
const MAX_LINE: usize = 256 << 20;
/// Start-up noise kept for error messages.
const NOISE_KEEP: usize = 2048;

type Token = [u8; TOKEN_LEN];

/// What the armed request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Hello,
    Exec,
    Snapshot,
    Restore,
}

/// Driver state for one REPL session.
#[derive(Debug)]
pub(crate) struct ReplDriver {
    token: Option<Token>,
    /// The armed request (or the last one, until the next begins).
    op: Op,
    /// Before Ready: output is start-up noise and markers are not reported.
    starting: bool,
    /// `startup` was called.
    started: bool,
    done: [bool; 2],
    /// Per stream: bytes that might start a marker, or a found token and its line so far.
    held: [Vec<u8>; 2],
    /// Per stream: `held` starts with the token and the newline is still to come.
    collecting: [bool; 2],
    /// The stdout marker's payload while starting (logged at Ready).
    startup_payload: Option<Value>,
    /// A restore request to send in place of `hello`.
    restore: Option<Map<String, Value>>,
    /// The session a restore is for (for logs).
    restore_session: Option<String>,
    noise: Vec<u8>,
}

impl Default for ReplDriver {
    fn default() -> Self {
        Self {
            token: None,
            op: Op::Hello,
            starting: true,
            started: false,
            done: [false, false],
            held: Default::default(),
            collecting: [false, false],
            startup_payload: None,
            restore: None,
            restore_session: None,
            noise: Vec::new(),
        }
    }
}

#[derive(Serialize)]
struct ExecLine<'a> {
    op: &'static str,
    token: &'a str,
    code: &'a str,
    interactive: bool,
}

impl ReplDriver {
    fn arm(&mut self, op: Op) -> Token {
        let token = new_token();
        self.token = Some(token);
        self.op = op;
        self.done = [false, false];
        self.held = Default::default();
        self.collecting = [false, false];
        token
    }

    /// Sends bytes to `out`, or to the start-up noise buffer before Ready.
    fn emit(&mut self, bytes: &[u8], out: &mut dyn FnMut(&[u8])) {
        if bytes.is_empty() {
            return;
        }
        if self.starting {
            self.noise.extend_from_slice(bytes);
            let excess = self.noise.len().saturating_sub(NOISE_KEEP);
            self.noise.drain(..excess);
        } else {
            out(bytes);
        }
    }

    /// An operation input (after [`OP_PREFIX`]).
    fn begin_op(&mut self, spec: &str) -> Result<Vec<u8>> {
        let mut req: Map<String, Value> = serde_json::from_str(spec)
            .map_err(|e| Error::invalid("input", format!("malformed repl operation: {e}")))?;
        match req.get("op").and_then(Value::as_str) {
            Some("snapshot") => {
                let token = self.arm(Op::Snapshot);
                req.insert("token".into(), token_value(&token));
                Ok(frame(&Value::Object(req)))
            }
            Some("restore") if !self.started => {
                self.restore = Some(req);
                Ok(Vec::new())
            }
            Some("restore") => Err(Error::invalid(
                "input",
                "a namespace restore runs only while a resumed session starts",
            )),
            other => Err(Error::invalid(
                "input",
                format!("unknown repl operation {other:?}"),
            )),
        }
    }

    /// Consumes bytes of one stream while its marker is expected.
    fn scan(
        &mut self,
        stream: Stream,
        token: Token,
        bytes: &[u8],
        out: &mut dyn FnMut(&[u8]),
    ) -> Vec<Marker> {
        let i = stream.index();
        if self.collecting[i] {
            let Some(nl) = bytes.iter().position(|&b| b == b'\n') else {
                if self.held[i].len() + bytes.len() > MAX_LINE {
                    // Not a marker after all; give the bytes back as output.
                    let held = std::mem::take(&mut self.held[i]);
                    self.collecting[i] = false;
                    self.emit(&held, out);
                    self.emit(bytes, out);
                } else {
                    self.held[i].extend_from_slice(bytes);
                }
                return Vec::new();
            };
            self.held[i].extend_from_slice(&bytes[..nl]);
            return self.complete(stream, &bytes[nl + 1..], out);
        }
        let joined = token::take_joined(&mut self.held[i], bytes);
        let buf: &[u8] = &joined;
        let Some(at) = find(buf, &token) else {
            let keep = partial_start(buf, &token);
            self.emit(&buf[..keep], out);
            self.held[i] = buf[keep..].to_vec();
            return Vec::new();
        };
        self.emit(&buf[..at], out);
        let after = &buf[at + TOKEN_LEN..];
        self.collecting[i] = true;
        self.held[i] = token.to_vec();
        let rest = after.to_vec();
        self.scan(stream, token, &rest, out)
    }

    /// A whole marker line is in `held`; `rest` follows it.
    fn complete(&mut self, stream: Stream, rest: &[u8], out: &mut dyn FnMut(&[u8])) -> Vec<Marker> {
        let i = stream.index();
        let line = std::mem::take(&mut self.held[i]);
        self.collecting[i] = false;
        self.done[i] = true;
        let marker = match stream {
            Stream::Stderr => Marker::ExecStderr,
            Stream::Stdout => Marker::Result(parse_payload(&line[TOKEN_LEN..])),
        };
        let mut markers = Vec::with_capacity(2);
        if self.starting {
            if let Marker::Result(payload) = marker {
                self.startup_payload = Some(payload);
            }
        } else {
            markers.push(marker);
        }
        if self.done == [true, true] {
            self.token = None;
            if self.starting {
                self.starting = false;
                self.noise = Vec::new();
                self.log_startup();
                markers.push(Marker::Ready);
            }
        }
        // Anything after the marker is output written outside the exec (a thread's).
        self.emit(rest, out);
        markers
    }

    fn log_startup(&mut self) {
        let Some(p) = self.startup_payload.take() else {
            return;
        };
        match self.op {
            Op::Restore => {
                let session = self.restore_session.take().unwrap_or_default();
                if let Some(e) = p.get("error").and_then(parse_error) {
                    warn!(session = %session, error = %format!("{}: {}", e.kind, e.message),
                        "the namespace snapshot could not be restored; the session starts empty");
                    return;
                }
                let restored = p
                    .get("restored")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                let skipped = p.get("reasons").cloned().unwrap_or(Value::Null);
                if skipped.as_object().is_some_and(|m| !m.is_empty()) {
                    warn!(session = %session, restored, %skipped, "namespace restored in part");
                } else {
                    info!(session = %session, restored, "namespace restored");
                }
            }
            _ => {
                let python = p.get("python").cloned().unwrap_or_default();
                debug!(%python, "repl ready");
            }
        }
    }
}

impl Driver for ReplDriver {
    fn prepare_argv(&self, argv: &mut Vec<String>) {
        argv.extend(["-u".to_owned(), "-c".to_owned(), DRIVER_SOURCE.to_owned()]);
    }

    fn startup(&mut self) -> Option<Vec<u8>> {
        self.started = true;
        let line = match self.restore.take() {
            Some(mut req) => {
                let token = self.arm(Op::Restore);
                self.restore_session = req
                    .remove("session")
                    .and_then(|v| v.as_str().map(str::to_owned));
                req.insert("token".into(), token_value(&token));
                frame(&Value::Object(req))
            }
            None => {
                let token = self.arm(Op::Hello);
                frame(&json!({"op": "hello", "token": token_value(&token)}))
            }
        };
        self.starting = true;
        Some(line)
    }

    fn begin_exec(&mut self, input: &str, interactive: bool) -> Result<Vec<u8>> {
        if let Some(spec) = input.strip_prefix(OP_PREFIX) {
            return self.begin_op(spec);
        }
        let token = self.arm(Op::Exec);
        let token = std::str::from_utf8(&token).expect("tokens are ASCII");
        let line = ExecLine {
            op: "exec",
            token,
            code: input,
            interactive,
        };
        let mut bytes = Vec::with_capacity(input.len() + 96);
        bytes.push(b'\n');
        serde_json::to_writer(&mut bytes, &line).expect("serialising to memory cannot fail");
        bytes.push(b'\n');
        Ok(bytes)
    }

    fn completion(&self) -> Completion {
        Completion::Markers
    }

    fn feed(&mut self, stream: Stream, bytes: &[u8], out: &mut dyn FnMut(&[u8])) -> Vec<Marker> {
        match self.token.filter(|_| !self.done[stream.index()]) {
            Some(token) => self.scan(stream, token, bytes, out),
            None => {
                self.emit(bytes, out);
                Vec::new()
            }
        }
    }

    fn flush(&mut self, stream: Stream, out: &mut dyn FnMut(&[u8])) {
        let held = std::mem::take(&mut self.held[stream.index()]);
        self.collecting[stream.index()] = false;
        self.emit(&held, out);
    }

    fn startup_noise(&self) -> String {
        String::from_utf8_lossy(&self.noise).trim().to_owned()
    }

    fn finish(&mut self, payload: Option<&Value>, result: &mut ExecResult) {
        let Some(p) = payload else { return };
        if let Some(status) = p.get("status").and_then(Value::as_i64) {
            result.exit_code = Some(status as i32);
        }
        result.error = p.get("error").and_then(parse_error);
        match self.op {
            Op::Exec => result.value = p.get("value").and_then(Value::as_str).map(str::to_owned),
            // An operation's report is for the session (snapshot.rs), not for display.
            Op::Snapshot | Op::Restore | Op::Hello => result.result = Some(p.clone()),
        }
    }
}

/// The exec input that asks for a namespace snapshot of at most `limit` pickled bytes.
pub(crate) fn snapshot_input(limit: u64) -> String {
    format!("{OP_PREFIX}{}", json!({"op": "snapshot", "limit": limit}))
}

/// The input that restores `blob` while a resumed session starts (given to `begin_exec`
/// before `startup`); the driver stops restoring after `budget_ms`.
pub(crate) fn restore_input(blob: &[u8], budget_ms: u64, session: &str) -> String {
    let req = json!({
        "op": "restore",
        "data": crate::codec::base64_encode(blob),
        "budget_ms": budget_ms,
        "session": session,
    });
    format!("{OP_PREFIX}{req}")
}

fn frame(req: &Value) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(128);
    bytes.push(b'\n');
    serde_json::to_writer(&mut bytes, req).expect("serialising to memory cannot fail");
    bytes.push(b'\n');
    bytes
}

fn token_value(token: &Token) -> Value {
    Value::String(String::from_utf8_lossy(token).into_owned())
}

/// The JSON after a stdout token (` {…}`); a line that does not parse is reported as an error.
fn parse_payload(trailer: &[u8]) -> Value {
    let text = trailer.strip_prefix(b" ").unwrap_or(trailer);
    serde_json::from_slice(text).unwrap_or_else(|e| {
        json!({
            "status": 1,
            "error": {
                "type": "ProtocolError",
                "message": format!("the repl driver's result did not parse: {e}"),
                "traceback": "",
            }
        })
    })
}

fn parse_error(v: &Value) -> Option<ExecError> {
    let o = v.as_object()?;
    let text = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    Some(ExecError {
        kind: text("type"),
        message: text("message"),
        traceback: text("traceback"),
    })
}

fn new_token() -> Token {
    token::new_token(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(d: &mut ReplDriver, stream: Stream, chunks: &[&[u8]]) -> (Vec<u8>, Vec<Marker>) {
        let mut out = Vec::new();
        let mut markers = Vec::new();
        for c in chunks {
            markers.extend(d.feed(stream, c, &mut |b| out.extend_from_slice(b)));
        }
        (out, markers)
    }

    /// A driver past start-up with an exec armed, and its token.
    fn armed() -> (ReplDriver, String) {
        let mut d = ReplDriver::default();
        d.startup().unwrap();
        let t = String::from_utf8(d.token.unwrap().to_vec()).unwrap();
        feed_all(&mut d, Stream::Stderr, &[format!("{t}\n").as_bytes()]);
        let (_, m) = feed_all(&mut d, Stream::Stdout, &[format!("{t} {{}}\n").as_bytes()]);
        assert_eq!(m, vec![Marker::Ready]);
        d.begin_exec("1", false).unwrap();
        let t = String::from_utf8(d.token.unwrap().to_vec()).unwrap();
        (d, t)
    }

    #[test]
    fn exec_lines_are_json_with_the_token() {
        let (mut d, _) = armed();
        let bytes = d.begin_exec("print('a\"b')\nx = 1", true).unwrap();
        assert_eq!(bytes[0], b'\n');
        assert_eq!(*bytes.last().unwrap(), b'\n');
        let v: Value = serde_json::from_slice(&bytes[1..bytes.len() - 1]).unwrap();
        assert_eq!(v["op"], "exec");
        assert_eq!(v["code"], "print('a\"b')\nx = 1");
        assert_eq!(v["interactive"], true);
        assert_eq!(v["token"].as_str().unwrap().as_bytes(), &d.token.unwrap());
    }

    #[test]
    fn a_marker_split_across_reads_is_found_and_output_without_newline_survives() {
        let (mut d, t) = armed();
        let all = format!("no newline{t} {{\"value\":\"42\",\"status\":0}}\nlater");
        let chunks: Vec<&[u8]> = all.as_bytes().chunks(3).collect();
        let (out, m) = feed_all(&mut d, Stream::Stdout, &chunks);
        assert_eq!(out, b"no newlinelater");
        assert_eq!(m, vec![Marker::Result(json!({"value": "42", "status": 0}))]);
        let (out, m) = feed_all(&mut d, Stream::Stderr, &[format!("err{t}\n").as_bytes()]);
        assert_eq!(out, b"err");
        assert_eq!(m, vec![Marker::ExecStderr]);
        assert!(d.token.is_none());
        let mut r = ExecResult::default();
        d.finish(
            Some(&json!({"value": "42", "status": 0, "error": null})),
            &mut r,
        );
        assert_eq!(r.value.as_deref(), Some("42"));
        assert_eq!(r.exit_code, Some(0));
        assert!(r.error.is_none());
    }

    #[test]
    fn a_different_token_is_plain_output() {
        let (mut d, _) = armed();
        let other = String::from_utf8(new_token().to_vec()).unwrap();
        let text = format!("{other} {{}}\n");
        let (out, m) = feed_all(&mut d, Stream::Stdout, &[text.as_bytes()]);
        assert_eq!(out, text.as_bytes());
        assert!(m.is_empty());
    }

    #[test]
    fn held_bytes_are_released_by_flush() {
        let (mut d, t) = armed();
        let (out, _) = feed_all(
            &mut d,
            Stream::Stdout,
            &[format!("ab{}", &t[..10]).as_bytes()],
        );
        assert_eq!(out, b"ab");
        let mut rest = Vec::new();
        d.flush(Stream::Stdout, &mut |b| rest.extend_from_slice(b));
        assert_eq!(rest, &t.as_bytes()[..10]);
    }

    #[test]
    fn start_up_output_is_noise_and_the_two_markers_make_it_ready() {
        let mut d = ReplDriver::default();
        let hello = d.startup().unwrap();
        let v: Value = serde_json::from_slice(&hello[1..hello.len() - 1]).unwrap();
        assert_eq!(v["op"], "hello");
        let t = v["token"].as_str().unwrap().to_owned();
        let (out, m) = feed_all(&mut d, Stream::Stderr, &[format!("warn\n{t}\n").as_bytes()]);
        assert!(out.is_empty() && m.is_empty());
        assert_eq!(d.startup_noise(), "warn");
        let (_, m) = feed_all(&mut d, Stream::Stdout, &[format!("{t} {{}}\n").as_bytes()]);
        assert_eq!(m, vec![Marker::Ready]);
    }

    #[test]
    fn a_restore_given_before_start_up_replaces_hello() {
        let mut d = ReplDriver::default();
        let input = restore_input(b"\x80\x04blob", 1000, "s1");
        assert!(d.begin_exec(&input, false).unwrap().is_empty());
        let line = d.startup().unwrap();
        let v: Value = serde_json::from_slice(&line[1..line.len() - 1]).unwrap();
        assert_eq!(v["op"], "restore");
        assert_eq!(
            crate::codec::base64_decode(v["data"].as_str().unwrap()).unwrap(),
            b"\x80\x04blob"
        );
        assert!(v.get("session").is_none());
        let err = d.begin_exec(&input, false).unwrap_err();
        assert!(err.to_string().contains("only while"), "{err}");
    }

    #[test]
    fn snapshot_ops_report_their_payload_in_result() {
        let (mut d, _) = armed();
        let line = d.begin_exec(&snapshot_input(10), false).unwrap();
        let v: Value = serde_json::from_slice(&line[1..line.len() - 1]).unwrap();
        assert_eq!(v["op"], "snapshot");
        assert_eq!(v["limit"], 10);
        let mut r = ExecResult::default();
        let p = json!({"status": 0, "blob": "AA==", "skipped": ["g"]});
        d.finish(Some(&p), &mut r);
        assert_eq!(r.result, Some(p));
        assert!(r.value.is_none());
    }
}
