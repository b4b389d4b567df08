//! The `shell` kind: a persistent bash driven through nonce-tagged end markers.
//!
//! bash runs interactively over pipes (`-i`, job control and history off, empty prompts), so
//! SIGINT aborts the running command line the way Ctrl-C does and the shell survives. Each
//! exec is sent as one line, `__sh_n=TOKEN;__sh_rc;eval $'…' </dev/null`: ANSI-C quoting makes
//! any command — quotes, heredocs, unbalanced syntax, non-UTF-8 bytes — a single well-formed
//! word, and `eval` at top level keeps `cd`, `export` and `declare` in the shell (a command
//! that may start a background job is sourced instead, which keeps them too, without bash's
//! interactive `[1] PID` notice on stderr). Before the
//! next prompt, `PROMPT_COMMAND` (the function `__sh_p`, parsed once rather than at every
//! prompt) prints `TOKEN\n` on stderr and then `TOKEN <status> <cwd> TOKEN\n` on
//! stdout, so both streams are complete when both markers are in (and the stderr marker is
//! already in its pipe when the stdout one arrives, so one wake-up reads both). The token is a fresh
//! 128-bit random value per exec, so output cannot end an exec by accident.
//!
//! A prompt with no token armed prints the session's idle token and `$?` on stdout instead.
//! While an exec runs that can only mean an interrupt discarded its line before the token
//! assignment ran; the exec then ends as interrupted instead of waiting forever.
//!
//! `PS0`, which bash shows after it has read and parsed a line and before it runs it, prints
//! the idle token alone on stderr: the exec has started ([`Marker::Started`]). Interrupts wait
//! for it, because bash reads a line whole and parses it byte by byte; an interrupt in between
//! throws away the part already parsed and leaves the rest buffered, to run later untracked
//! (measured with bare bash: 4 of 300 interrupts sent the moment the line left the pipe).

use super::token::{self, find, partial_start};
use super::{Completion, Driver, Marker, Stream};
use crate::{Error, Result};

const PREFIX: &[u8] = b"__SH_";
/// Prefix plus 32 hex digits.
const TOKEN_LEN: usize = PREFIX.len() + 32;
/// A trailer longer than this is not ours (PATH_MAX is 4096).
const MAX_TRAILER: usize = 8192;
/// Start-up noise kept for error messages.
const NOISE_KEEP: usize = 2048;

type Token = [u8; TOKEN_LEN];

/// Driver state for one shell session.
#[derive(Debug)]
pub(crate) struct ShellDriver {
    token: Option<Token>,
    /// Printed by prompts that have no exec token armed.
    idle: Token,
    starting: bool,
    /// The armed exec's line has started (its `PS0` marker arrived).
    started: bool,
    done: [bool; 2],
    pending: [Vec<u8>; 2],
    noise: Vec<u8>,
}

impl Default for ShellDriver {
    fn default() -> Self {
        Self {
            token: None,
            idle: new_token(),
            starting: false,
            started: false,
            done: [false, false],
            pending: Default::default(),
            noise: Vec::new(),
        }
    }
}

impl ShellDriver {
    fn arm(&mut self, starting: bool) -> Token {
        let token = new_token();
        self.token = Some(token);
        self.starting = starting;
        self.started = false;
        self.done = [false, false];
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
}

impl Driver for ShellDriver {
    fn prepare_argv(&self, argv: &mut Vec<String>) {
        // Long options must precede single-letter ones.
        for flag in ["--noediting", "-i"] {
            if !argv.iter().skip(1).any(|a| a == flag) {
                argv.push(flag.to_owned());
            }
        }
    }

    fn startup(&mut self) -> Option<Vec<u8>> {
        let token = self.arm(true);
        let mut line = b"set +m +H; set +o history; PS1=; PS2=; PS0='$__sh_s\\n'; unset HISTFILE; \
exit() { builtin exit \"$@\" 2>/dev/null; }; __sh_rc() { return $__sh_r; }; \
__sh_p() { __sh_r=$?;if [ -n \"$__sh_n\" ];then printf \"%s\\n\" \"$__sh_n\" >&2;\
printf \"%s %s %s %s\\n\" \"$__sh_n\" \"$__sh_r\" \"$PWD\" \"$__sh_n\";__sh_n=;else printf \"%s %s\\n\" \"$__sh_s\" \"$__sh_r\";fi; }; \
PROMPT_COMMAND=__sh_p; __sh_s="
            .to_vec();
        line.extend_from_slice(&self.idle);
        line.extend_from_slice(b"; __sh_n=");
        line.extend_from_slice(&token);
        line.push(b'\n');
        Some(line)
    }

    fn begin_exec(&mut self, input: &str, interactive: bool) -> Result<Vec<u8>> {
        if input.trim().is_empty() {
            return Err(Error::invalid("input", "command is empty"));
        }
        if input.contains('\0') {
            return Err(Error::invalid(
                "input",
                "command contains a NUL byte, which a shell cannot take",
            ));
        }
        let token = self.arm(false);
        let mut line = Vec::with_capacity(input.len() + 64);
        line.extend_from_slice(b"__sh_n=");
        line.extend_from_slice(&token);
        // Restore `$?` of the previous command, which the assignment just reset.
        line.extend_from_slice(b";__sh_rc;");
        if starts_a_job(input.as_bytes()) {
            // An interactive bash announces each background job (`[1] 4242`) on stderr; a
            // sourced file runs as a script does, without the notice, and, like `eval`, in
            // the shell itself. A descriptor no command is likely to use carries the text.
            line.extend_from_slice(b"source /dev/fd/47 47<<<");
        } else {
            line.extend_from_slice(b"eval ");
        }
        ansi_c_quote(input.as_bytes(), &mut line);
        if !interactive {
            // Opened per exec: one open(2), cheaper than keeping a descriptor open and checking
            // at every prompt that no command closed it (`benches/kinds.rs`, shell `true`).
            line.extend_from_slice(b" </dev/null");
        }
        line.push(b'\n');
        Ok(line)
    }

    fn completion(&self) -> Completion {
        Completion::Markers
    }

    fn feed(&mut self, stream: Stream, bytes: &[u8], out: &mut dyn FnMut(&[u8])) -> Vec<Marker> {
        if self.starting {
            return self.feed_stream(stream, bytes, out);
        }
        self.feed_idle(stream, bytes, out)
    }

    fn reports_start(&self) -> bool {
        true
    }

    fn flush(&mut self, stream: Stream, out: &mut dyn FnMut(&[u8])) {
        let pending = std::mem::take(&mut self.pending[stream.index()]);
        self.emit(&pending, out);
    }

    fn startup_noise(&self) -> String {
        String::from_utf8_lossy(&self.noise).trim().to_owned()
    }
}

impl ShellDriver {
    /// Both streams carry idle markers besides exec markers: strip them. On stdout (a prompt
    /// with no exec armed, `IDLE <status>`) one that arrives while an exec runs means its line
    /// was discarded; on stderr (`PS0`, `IDLE`) one means the exec's line has started.
    fn feed_idle(
        &mut self,
        stream: Stream,
        bytes: &[u8],
        out: &mut dyn FnMut(&[u8]),
    ) -> Vec<Marker> {
        let i = stream.index();
        let joined = token::take_joined(&mut self.pending[i], bytes);
        let buf: &[u8] = &joined;
        let idle = self.idle;
        let Some(at) = find(buf, &idle) else {
            // Hold back what may be the start of an idle marker, after what feed_stream holds.
            let keep = partial_start(buf, &idle);
            let markers = self.feed_stream(stream, &buf[..keep], out);
            self.pending[i].extend_from_slice(&buf[keep..]);
            return markers;
        };
        let mut markers = self.feed_stream(stream, &buf[..at], out);
        if !self.pending[i].is_empty() {
            // An exec marker was cut by the idle marker: not ours after all.
            let held = std::mem::take(&mut self.pending[i]);
            self.emit(&held, out);
        }
        let rest = &buf[at + TOKEN_LEN..];
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            if rest.len() > 16 {
                self.emit(&buf[at..], out);
            } else {
                self.pending[i] = buf[at..].to_vec();
            }
            return markers;
        };
        let armed = self.token.is_some() && !self.done[i];
        match stream {
            Stream::Stdout => {
                let exit_code = std::str::from_utf8(&rest[..nl])
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(130);
                if armed {
                    self.token = None;
                    self.pending = Default::default();
                    markers.push(Marker::Discarded { exit_code });
                }
            }
            Stream::Stderr if nl > 0 => self.emit(&buf[at..at + TOKEN_LEN + nl + 1], out),
            Stream::Stderr => {
                if armed && !std::mem::replace(&mut self.started, true) {
                    markers.push(Marker::Started);
                }
            }
        }
        markers.extend(self.feed_idle(stream, &rest[nl + 1..], out));
        markers
    }

    fn feed_stream(
        &mut self,
        stream: Stream,
        bytes: &[u8],
        out: &mut dyn FnMut(&[u8]),
    ) -> Vec<Marker> {
        let i = stream.index();
        let Some(token) = self.token.filter(|_| !self.done[i]) else {
            out(bytes);
            return Vec::new();
        };
        let joined = token::take_joined(&mut self.pending[i], bytes);
        let buf: &[u8] = &joined;
        let Some(at) = find(buf, &token) else {
            let keep = partial_start(buf, &token);
            self.emit(&buf[..keep], out);
            self.pending[i] = buf[keep..].to_vec();
            return Vec::new();
        };
        self.emit(&buf[..at], out);
        let Some((used, marker)) = parse_trailer(stream, &buf[at..], &token) else {
            if buf.len() - at > MAX_TRAILER {
                // Not a marker after all; give the bytes back as output.
                self.emit(&buf[at..], out);
            } else {
                self.pending[i] = buf[at..].to_vec();
            }
            return Vec::new();
        };
        self.done[i] = true;
        let mut markers = Vec::with_capacity(1);
        if !self.starting {
            markers.push(marker);
        }
        if self.done == [true, true] {
            self.token = None;
            if std::mem::take(&mut self.starting) {
                self.noise = Vec::new();
                markers.push(Marker::Ready);
            }
        }
        // Anything after the marker is output of background jobs.
        let rest = &buf[at + used..];
        if !rest.is_empty() {
            out(rest);
        }
        markers
    }
}

/// Parses what follows a token at the start of `buf`. Returns the bytes used and, for a
/// complete marker, the event.
fn parse_trailer(stream: Stream, buf: &[u8], token: &Token) -> Option<(usize, Marker)> {
    let rest = &buf[TOKEN_LEN..];
    match stream {
        Stream::Stderr => (rest.first()? == &b'\n').then_some((TOKEN_LEN + 1, Marker::ExecStderr)),
        Stream::Stdout => {
            let close = find(rest, token)?;
            if *rest.get(close + TOKEN_LEN)? != b'\n' {
                return None;
            }
            // rest = " <status> <cwd> TOKEN\n"
            let body = rest[..close].strip_prefix(b" ")?.strip_suffix(b" ")?;
            let space = body.iter().position(|&b| b == b' ')?;
            let exit_code = std::str::from_utf8(&body[..space]).ok()?.parse().ok()?;
            let cwd = String::from_utf8_lossy(&body[space + 1..]).into_owned();
            Some((
                TOKEN_LEN + close + TOKEN_LEN + 1,
                Marker::ExecStdout { exit_code, cwd },
            ))
        }
    }
}

fn new_token() -> Token {
    token::new_token(PREFIX)
}

/// One line a shell session writes to bash, and the token of the end markers that close it
/// (`TOKEN` on stderr, `TOKEN <status> <cwd> TOKEN` on stdout).
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct ProtocolLine {
    /// The line, newline included.
    pub bytes: Vec<u8>,
    /// The token both end markers carry.
    pub token: String,
}

/// The start-up line of a shell session, exactly as the session writes it (for benchmarks
/// that measure bash under the session protocol without the runtime).
#[doc(hidden)]
pub fn protocol_startup_line() -> ProtocolLine {
    let mut driver = ShellDriver::default();
    let bytes = driver.startup().expect("a shell has a start-up line");
    let token = driver
        .token
        .map(|t| String::from_utf8_lossy(&t).into_owned());
    ProtocolLine {
        bytes,
        token: token.expect("armed by startup"),
    }
}

/// The line of one non-interactive exec of `command`, exactly as a session writes it.
#[doc(hidden)]
pub fn protocol_exec_line(command: &str) -> ProtocolLine {
    let mut driver = ShellDriver::default();
    let bytes = driver.begin_exec(command, false).expect("a valid command");
    let token = driver
        .token
        .map(|t| String::from_utf8_lossy(&t).into_owned());
    ProtocolLine {
        bytes,
        token: token.expect("armed by begin_exec"),
    }
}

/// Whether a command may start a background job: an `&` that is not part of `&&`, `|&` or a
/// redirection (`2>&1`, `<&3`, `&>file`). Quoted `&`s count too, which only costs them the
/// sourced path.
fn starts_a_job(command: &[u8]) -> bool {
    let mut i = 0;
    while i < command.len() {
        if command[i] == b'&' {
            let before = i.checked_sub(1).map(|j| command[j]);
            let after = command.get(i + 1).copied();
            match (before, after) {
                (_, Some(b'&')) => i += 1,
                (Some(b'>' | b'<' | b'|'), _) | (_, Some(b'>')) => {}
                _ => return true,
            }
        }
        i += 1;
    }
    false
}

/// Appends `bytes` as a bash ANSI-C quoted word (`$'…'`), escaping everything that is not
/// printable ASCII, so any byte string survives the shell's parser unchanged.
fn ansi_c_quote(bytes: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"$'");
    for &b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\'' => out.extend_from_slice(b"\\'"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x20..=0x7e => out.push(b),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'x',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 15)],
                ]);
            }
        }
    }
    out.push(b'\'');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_background_job_is_told_from_and_lists_and_redirections() {
        for job in [
            "sleep 1 &",
            "a & b",
            "a&",
            "x=1 && sleep 2 & wait",
            "echo '&'",
        ] {
            assert!(starts_a_job(job.as_bytes()), "{job}");
        }
        for not in [
            "a && b",
            "cmd 2>&1 | tail",
            "cat <&3",
            "make &> log",
            "a |& b",
            "true",
        ] {
            assert!(!starts_a_job(not.as_bytes()), "{not}");
        }
    }

    fn feed_all(d: &mut ShellDriver, stream: Stream, chunks: &[&[u8]]) -> (Vec<u8>, Vec<Marker>) {
        let mut out = Vec::new();
        let mut markers = Vec::new();
        for c in chunks {
            markers.extend(d.feed(stream, c, &mut |b| out.extend_from_slice(b)));
        }
        (out, markers)
    }

    fn armed() -> (ShellDriver, String) {
        let mut d = ShellDriver::default();
        d.begin_exec("true", false).unwrap();
        let t = String::from_utf8(d.token.unwrap().to_vec()).unwrap();
        (d, t)
    }

    #[test]
    fn marker_split_across_reads_is_found_and_removed() {
        let (mut d, t) = armed();
        let all = format!("hello\n{t} 3 /tmp/a b {t}\nlater");
        let bytes = all.as_bytes();
        let chunks: Vec<&[u8]> = bytes.chunks(5).collect();
        let (out, markers) = feed_all(&mut d, Stream::Stdout, &chunks);
        assert_eq!(out, b"hello\nlater");
        assert_eq!(
            markers,
            vec![Marker::ExecStdout {
                exit_code: 3,
                cwd: "/tmp/a b".into()
            }]
        );
    }

    #[test]
    fn stderr_marker_completes_only_its_stream() {
        let (mut d, t) = armed();
        let (out, m) = feed_all(&mut d, Stream::Stderr, &[format!("oops\n{t}\n").as_bytes()]);
        assert_eq!(out, b"oops\n");
        assert_eq!(m, vec![Marker::ExecStderr]);
        assert!(d.token.is_some(), "stdout marker still outstanding");
    }

    #[test]
    fn a_different_token_is_plain_output() {
        let (mut d, _) = armed();
        let other = String::from_utf8(new_token().to_vec()).unwrap();
        let text = format!("{other} 0 / {other}\n");
        let (out, m) = feed_all(&mut d, Stream::Stdout, &[text.as_bytes()]);
        assert_eq!(out, text.as_bytes());
        assert!(m.is_empty());
    }

    #[test]
    fn an_idle_marker_is_stripped_and_ends_an_exec_whose_line_was_discarded() {
        let mut d = ShellDriver::default();
        let idle = String::from_utf8(d.idle.to_vec()).unwrap();
        let (out, m) = feed_all(
            &mut d,
            Stream::Stdout,
            &[format!("bg\n{idle} 130\n").as_bytes()],
        );
        assert_eq!(out, b"bg\n");
        assert!(m.is_empty(), "no exec is running");
        d.begin_exec("sleep 5", false).unwrap();
        let text = format!("{idle} 130\nlater");
        let chunks: Vec<&[u8]> = text.as_bytes().chunks(7).collect();
        let (out, m) = feed_all(&mut d, Stream::Stdout, &chunks);
        assert_eq!(m, vec![Marker::Discarded { exit_code: 130 }]);
        assert_eq!(out, b"later");
        assert!(d.token.is_none());
    }

    #[test]
    fn the_ps0_marker_on_stderr_reports_the_start_once_and_is_stripped() {
        let mut d = ShellDriver::default();
        let idle = String::from_utf8(d.idle.to_vec()).unwrap();
        let (out, m) = feed_all(&mut d, Stream::Stderr, &[format!("{idle}\n").as_bytes()]);
        assert!(out.is_empty() && m.is_empty(), "no exec is running");
        d.begin_exec("sleep 5", false).unwrap();
        let text = format!("bg\n{idle}\nerr\n{idle}\n{idle}x\n");
        let chunks: Vec<&[u8]> = text.as_bytes().chunks(5).collect();
        let (out, m) = feed_all(&mut d, Stream::Stderr, &chunks);
        assert_eq!(m, vec![Marker::Started]);
        assert_eq!(out, format!("bg\nerr\n{idle}x\n").as_bytes());
        assert!(d.token.is_some(), "the exec still runs");
    }

    #[test]
    fn quoting_escapes_everything_unsafe() {
        let mut out = Vec::new();
        ansi_c_quote(b"a'b\\c\n\xff", &mut out);
        assert_eq!(out, b"$'a\\'b\\\\c\\n\\xff'");
    }

    #[test]
    fn empty_and_nul_commands_are_refused() {
        let mut d = ShellDriver::default();
        assert!(d
            .begin_exec("  \n", false)
            .unwrap_err()
            .to_string()
            .contains("empty"));
        assert!(d
            .begin_exec("a\0b", false)
            .unwrap_err()
            .to_string()
            .contains("NUL"));
    }
}
