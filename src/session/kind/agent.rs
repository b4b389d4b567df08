//! The `agent` kind: an agent CLI speaking JSON lines, such as
//! `claude -p --input-format stream-json --output-format stream-json --verbose`.
//!
//! **Input.** Each exec is one user message, written as one JSON line. An input that parses as
//! a JSON object is sent as it is (re-serialised compactly, so it is one line); any other
//! input is text and is wrapped in the user message Claude Code's `--input-format stream-json`
//! reads:
//!
//! ```json
//! {"type":"user","message":{"role":"user","content":[{"type":"text","text":"…"}]}}
//! ```
//!
//! (`content` may also be a plain string; the Agent SDK adds `"parent_tool_use_id":null` and a
//! `session_id` — callers who need those, or tool results, pass the whole object.) JSON
//! escapes newlines, so multi-line text is still one line; only empty input is refused.
//!
//! **Output.** Every byte the agent writes goes to the session's logs unchanged, so
//! `session_read` and the transcript see the raw lines. Each complete stdout line is parsed;
//! the line whose value at the session's turn-end pointer (`agent.turn_end_pointer`, default
//! `/type`) equals `agent.turn_end_value` (default `"result"`) ends the turn. stderr is passed
//! through and never ends a turn. A line longer than [`MAX_LINE`] is not parsed (it stays in
//! the log as text).
//!
//! **Result.** The turn's stdout lines become `messages` (JSON values; a line that is not JSON
//! becomes `{"type":"text","text":line}`, blank lines are skipped), up to and including the
//! turn-end line, which is also `result`. `usage` is the turn's token totals:
//!
//! - when the turn-end line has a `usage` object with `input_tokens` or `output_tokens`, those
//!   are the totals (Claude's `result` line carries the whole turn's usage, which the
//!   `assistant` lines before it already contributed to — adding both would count twice);
//! - otherwise the `usage` object of each message (its top-level `usage`, else
//!   `message.usage`) is summed, counting a `message.id` once (Claude repeats a message's
//!   usage on every line that carries one of its content blocks: the last one is kept);
//! - `None` when no line has usage. Only `input_tokens` and `output_tokens` are counted
//!   (cache read/creation tokens are not added to either).
//!
//! A turn that times out returns its messages so far (an unterminated last line is left out)
//! with no `result` and no error: the turn goes on, the session stays Busy until its turn-end
//! line arrives, `session_read` from `cursor` pages the rest, and the next exec queues behind
//! it. A child that exits mid-turn returns the partial messages with the error `AgentExited`.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::{Completion, Driver, Marker, Stream};
use crate::config::AgentProfile;
use crate::session::messages::{ExecError, ExecResult, Usage};
use crate::{Error, Result};

/// Longest stdout line that is parsed for the turn-end rule; longer lines are kept as text.
pub(crate) const MAX_LINE: usize = 16 * 1024 * 1024;

/// Capacity kept for the line buffer between lines.
const KEEP_CAPACITY: usize = 64 * 1024;

/// Driver for JSON-lines agent CLIs.
#[derive(Debug)]
pub(crate) struct AgentDriver {
    /// JSON pointer of the turn-end field.
    pointer: String,
    /// The value at `pointer` that ends a turn.
    value: Value,
    /// The incomplete last stdout line, kept for parsing (its bytes already went to the log).
    partial: Vec<u8>,
    /// The current stdout line outgrew [`MAX_LINE`]: skipped up to its newline.
    overlong: bool,
    /// The agent profile whose rule finds the agent's conversation id in its lines.
    capture: Option<AgentProfile>,
}

impl AgentDriver {
    /// A driver ending turns at lines whose value at `pointer` equals `value`.
    pub(crate) fn new(pointer: String, value: Value) -> Self {
        Self {
            pointer,
            value,
            partial: Vec::new(),
            overlong: false,
            capture: None,
        }
    }

    /// Also reports the conversation id `capture` finds in a line ([`Marker::Conversation`]).
    pub(crate) fn capturing(mut self, capture: Option<AgentProfile>) -> Self {
        self.capture = capture;
        self
    }

    /// True when `v` is a turn-end line.
    fn ends_turn(&self, v: &Value) -> bool {
        v.pointer(&self.pointer) == Some(&self.value)
    }

    /// One complete stdout line (without its `\n`): a marker when it ends the turn.
    fn check_line(&self, line: &[u8], markers: &mut Vec<Marker>) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        if let Ok(v) = serde_json::from_slice::<Value>(line) {
            if let Some(id) = self.capture.as_ref().and_then(|c| c.carries_id(&v)) {
                markers.push(Marker::Conversation(id));
            }
            if self.ends_turn(&v) {
                markers.push(Marker::Result(v));
            }
        }
    }

    /// Forgets the buffered line, releasing a large buffer.
    fn reset_partial(&mut self) {
        self.partial.clear();
        if self.partial.capacity() > KEEP_CAPACITY {
            self.partial = Vec::new();
        }
    }
}

impl Driver for AgentDriver {
    fn startup(&mut self) -> Option<Vec<u8>> {
        None
    }

    fn begin_exec(&mut self, input: &str, _interactive: bool) -> Result<Vec<u8>> {
        if !self.pointer.is_empty() && !self.pointer.starts_with('/') {
            return Err(Error::invalid(
                "agent",
                format!(
                    "turn_end_pointer {:?} is not a JSON pointer (it must be empty or start with '/'), so no turn could end",
                    self.pointer
                ),
            ));
        }
        if input.trim().is_empty() {
            return Err(Error::invalid(
                "input",
                "an agent turn needs a message: the input is empty",
            ));
        }
        let message = match serde_json::from_str::<Value>(input) {
            Ok(v @ Value::Object(_)) => v,
            _ => user_message(input),
        };
        let mut line = serde_json::to_vec(&message)
            .map_err(|e| Error::invalid("input", format!("cannot encode as JSON: {e}")))?;
        line.push(b'\n');
        Ok(line)
    }

    fn completion(&self) -> Completion {
        Completion::StdoutMarker
    }

    fn feed(&mut self, stream: Stream, bytes: &[u8], out: &mut dyn FnMut(&[u8])) -> Vec<Marker> {
        out(bytes);
        let mut markers = Vec::new();
        if stream == Stream::Stderr {
            return markers;
        }
        let mut rest = bytes;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let line = &rest[..nl];
            rest = &rest[nl + 1..];
            if self.overlong {
                self.overlong = false;
            } else if self.partial.is_empty() {
                if line.len() <= MAX_LINE {
                    self.check_line(line, &mut markers);
                }
            } else if self.partial.len() + line.len() <= MAX_LINE {
                let mut whole = std::mem::take(&mut self.partial);
                whole.extend_from_slice(line);
                self.check_line(&whole, &mut markers);
                self.partial = whole;
            }
            self.reset_partial();
        }
        if !rest.is_empty() && !self.overlong {
            if self.partial.len() + rest.len() > MAX_LINE {
                self.overlong = true;
                self.reset_partial();
            } else {
                self.partial.extend_from_slice(rest);
            }
        }
        markers
    }

    fn flush(&mut self, stream: Stream, _: &mut dyn FnMut(&[u8])) {
        // Nothing is held back from the log; an unterminated last line is judged by `finish`.
        if stream == Stream::Stdout {
            self.overlong = false;
            self.reset_partial();
        }
    }

    fn finish(&mut self, payload: Option<&Value>, result: &mut ExecResult) {
        let mut lines: Vec<&str> = result.stdout.split('\n').collect();
        // The text after the last newline: empty, or a line still being written.
        let unterminated = lines.pop().filter(|l| !l.trim().is_empty());
        if let Some(l) = unterminated {
            if !result.timed_out && payload.is_none() {
                lines.push(l); // the child is gone: its last words count
            }
        }
        let mut messages = Vec::new();
        let mut end = None;
        for line in lines {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim().is_empty() {
                continue;
            }
            let message = parse_line(line);
            let last = self.ends_turn(&message);
            messages.push(message);
            if last {
                end = Some(messages.len() - 1);
                break;
            }
        }
        let end_line = payload
            .cloned()
            .or_else(|| end.map(|i| messages[i].clone()));
        result.usage = turn_usage(&messages, end_line.as_ref());
        if end_line.is_none() && result.session_ended {
            let how = result
                .exit_code
                .map_or_else(String::new, |c| format!(" (exit code {c})"));
            result.error = Some(ExecError {
                kind: "AgentExited".into(),
                message: format!("the agent exited mid-turn{how}"),
                traceback: String::new(),
            });
        }
        result.result = end_line;
        result.messages = Some(messages);
    }
}

/// Claude Code's stream-json user message carrying `text`.
fn user_message(text: &str) -> Value {
    json!({
        "type": "user",
        "message": {"role": "user", "content": [{"type": "text", "text": text}]},
    })
}

/// One output line as a message: its JSON, or a text event when it is not JSON.
fn parse_line(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|_| json!({"type": "text", "text": line}))
}

/// The token counts of one message: its `usage`, else its `message.usage`.
fn usage_of(v: &Value) -> Option<Usage> {
    let u = v
        .get("usage")
        .filter(|u| u.is_object())
        .or_else(|| v.pointer("/message/usage"))?;
    let input = u.get("input_tokens").and_then(Value::as_u64);
    let output = u.get("output_tokens").and_then(Value::as_u64);
    if input.is_none() && output.is_none() {
        return None;
    }
    Some(Usage {
        input_tokens: input.unwrap_or(0),
        output_tokens: output.unwrap_or(0),
    })
}

/// The turn's totals (see the module doc for the rule).
fn turn_usage(messages: &[Value], end_line: Option<&Value>) -> Option<Usage> {
    if let Some(u) = end_line.and_then(usage_of) {
        return Some(u);
    }
    let mut by_id: HashMap<&str, Usage> = HashMap::new();
    let mut total: Option<Usage> = None;
    for m in messages {
        let Some(u) = usage_of(m) else { continue };
        match m.pointer("/message/id").and_then(Value::as_str) {
            Some(id) => {
                by_id.insert(id, u);
            }
            None => add(&mut total, u),
        }
    }
    for u in by_id.into_values() {
        add(&mut total, u);
    }
    total
}

fn add(total: &mut Option<Usage>, u: Usage) {
    let t = total.get_or_insert_with(Usage::default);
    t.input_tokens += u.input_tokens;
    t.output_tokens += u.output_tokens;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn driver() -> AgentDriver {
        AgentDriver::new("/type".into(), json!("result"))
    }

    fn feed(d: &mut AgentDriver, bytes: &[u8]) -> (Vec<Marker>, Vec<u8>) {
        let mut out = Vec::new();
        let markers = d.feed(Stream::Stdout, bytes, &mut |b| out.extend_from_slice(b));
        (markers, out)
    }

    #[test]
    fn text_is_wrapped_and_objects_pass_through() {
        let mut d = driver();
        let line = d.begin_exec("two\nlines \"quoted\"", false).unwrap();
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        assert_eq!(*line.last().unwrap(), b'\n');
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v, user_message("two\nlines \"quoted\""));
        assert_eq!(v["message"]["content"][0]["text"], "two\nlines \"quoted\"");

        let obj =
            "{\n \"type\": \"user\", \"message\": {\"role\": \"user\", \"content\": \"hi\"}\n}";
        let line = d.begin_exec(obj, false).unwrap();
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["message"]["content"], "hi");
        // JSON that is not an object is text.
        let v: Value = serde_json::from_slice(&d.begin_exec("42", false).unwrap()).unwrap();
        assert_eq!(v["message"]["content"][0]["text"], "42");
        assert!(d.begin_exec(" \n", false).is_err());
    }

    #[test]
    fn turn_end_is_found_across_chunks_and_every_byte_goes_out() {
        let mut d = driver();
        let (m, out) = feed(&mut d, b"{\"type\":\"assistant\"}\n{\"type\":\"res");
        assert!(m.is_empty());
        assert_eq!(out, b"{\"type\":\"assistant\"}\n{\"type\":\"res");
        let (m, out) = feed(&mut d, b"ult\",\"n\":1}\r\nnot json {\n");
        assert_eq!(m, vec![Marker::Result(json!({"type": "result", "n": 1}))]);
        assert_eq!(out, b"ult\",\"n\":1}\r\nnot json {\n");
        let (m, _) = feed(&mut d, b"{\"type\":\"result\"}\n");
        assert_eq!(m.len(), 1);
        let mut err = Vec::new();
        let m = d.feed(Stream::Stderr, b"{\"type\":\"result\"}\n", &mut |b| {
            err.extend_from_slice(b)
        });
        assert!(m.is_empty());
        assert_eq!(err, b"{\"type\":\"result\"}\n");
    }

    #[test]
    fn an_overlong_line_is_text() {
        let mut d = driver();
        let mut big = b"{\"type\":\"result\",\"x\":\"".to_vec();
        big.resize(MAX_LINE + 10, b'a');
        let (m, out) = feed(&mut d, &big);
        assert!(m.is_empty() && d.overlong && d.partial.is_empty());
        assert_eq!(out.len(), big.len());
        let (m, _) = feed(&mut d, b"\"}\n{\"type\":\"result\"}\n");
        assert_eq!(m, vec![Marker::Result(json!({"type": "result"}))]);
        assert!(!d.overlong);
    }

    #[test]
    fn a_custom_pointer_ends_turns() {
        let mut d = AgentDriver::new("/event/kind".into(), json!(7));
        let (m, _) = feed(&mut d, b"{\"type\":\"result\"}\n{\"event\":{\"kind\":7}}\n");
        assert_eq!(m, vec![Marker::Result(json!({"event": {"kind": 7}}))]);
        let mut bad = AgentDriver::new("type".into(), json!("result"));
        assert!(bad.begin_exec("hi", false).is_err());
    }

    #[test]
    fn the_conversation_id_is_reported_from_lines_that_pass_the_profiles_filter() {
        let mut d = driver().capturing(Some(AgentProfile::claude()));
        let (m, _) = feed(
            &mut d,
            b"{\"type\":\"assistant\",\"session_id\":\"no\"}\n{\"type\":\"system\",\"subtype\":\"init\",\"session_id\":\"c1\"}\n{\"type\":\"result\",\"session_id\":\"c1\"}\n",
        );
        assert_eq!(
            m,
            vec![
                Marker::Conversation("c1".into()),
                Marker::Result(json!({"type": "result", "session_id": "c1"}))
            ]
        );
        // Without a profile nothing is reported.
        let (m, _) = feed(
            &mut driver(),
            b"{\"type\":\"system\",\"subtype\":\"init\",\"session_id\":\"c1\"}\n",
        );
        assert!(m.is_empty());
    }

    fn finished(stdout: &str, payload: Option<Value>, ended: bool, timed_out: bool) -> ExecResult {
        let mut r = ExecResult {
            stdout: stdout.into(),
            session_ended: ended,
            timed_out,
            exit_code: ended.then_some(3),
            ..ExecResult::default()
        };
        driver().finish(payload.as_ref(), &mut r);
        r
    }

    #[test]
    fn result_line_usage_is_preferred_over_the_sum() {
        let out = concat!(
            "{\"type\":\"assistant\",\"message\":{\"id\":\"a\",\"usage\":{\"input_tokens\":3,\"output_tokens\":4}}}\n",
            "garbage\n",
            "\n",
            "{\"type\":\"result\",\"usage\":{\"input_tokens\":10,\"output_tokens\":20}}\n",
            "{\"type\":\"late\"}\n",
        );
        let end = json!({"type":"result","usage":{"input_tokens":10,"output_tokens":20}});
        let r = finished(out, Some(end.clone()), false, false);
        let messages = r.messages.unwrap();
        assert_eq!(messages.len(), 3);
        assert_eq!(messages[1], json!({"type": "text", "text": "garbage"}));
        assert_eq!(r.result, Some(end));
        assert_eq!(
            r.usage,
            Some(Usage {
                input_tokens: 10,
                output_tokens: 20
            })
        );
        assert!(r.error.is_none());
    }

    #[test]
    fn usage_is_summed_once_per_message_id_without_a_result_total() {
        let out = concat!(
            "{\"type\":\"assistant\",\"message\":{\"id\":\"a\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n",
            "{\"type\":\"assistant\",\"message\":{\"id\":\"a\",\"usage\":{\"input_tokens\":3,\"output_tokens\":4}}}\n",
            "{\"type\":\"tool\",\"usage\":{\"input_tokens\":5}}\n",
            "{\"type\":\"result\"}\n",
        );
        let r = finished(out, Some(json!({"type":"result"})), false, false);
        assert_eq!(
            r.usage,
            Some(Usage {
                input_tokens: 8,
                output_tokens: 4
            })
        );
        let r = finished(
            "{\"type\":\"result\"}\n",
            Some(json!({"type":"result"})),
            false,
            false,
        );
        assert_eq!(r.usage, None);
    }

    #[test]
    fn partial_turns() {
        let out = "{\"type\":\"assistant\"}\n{\"type\":\"assis";
        let r = finished(out, None, false, true);
        assert_eq!(r.messages.as_ref().unwrap().len(), 1);
        assert!(r.error.is_none() && r.result.is_none());
        let r = finished(out, None, true, false);
        let messages = r.messages.unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(
            messages[1],
            json!({"type": "text", "text": "{\"type\":\"assis"})
        );
        let e = r.error.unwrap();
        assert_eq!(e.kind, "AgentExited");
        assert_eq!(e.message, "the agent exited mid-turn (exit code 3)");
        // A turn-end line without a newline before exit still completes the turn.
        let r = finished("{\"type\":\"result\"}", None, true, false);
        assert_eq!(r.result, Some(json!({"type": "result"})));
        assert!(r.error.is_none());
    }
}
