//! The `shell` kind: a persistent bash whose own prompts frame each exec.
//!
//! bash runs interactively over pipes (`-i`, job control and history off), so SIGINT aborts
//! the running command line the way Ctrl-C does and the shell survives. Each exec is sent as
//! one line, `eval $'…' </dev/null`: ANSI-C quoting makes any command — quotes, heredocs,
//! unbalanced syntax, non-UTF-8 bytes — a single well-formed word, and `eval` at top level
//! keeps `cd`, `export` and `declare` in the shell (a command that may start a background job
//! is sourced instead, which keeps them too, without bash's interactive `[1] PID` notice on
//! stderr). A command of plain words (`git status`, `make -j4`: see [`plain_words`]) means
//! the same either way and is sent as itself, which spares bash the second parse.
//!
//! The prompts are the markers, and both go to stderr, where interactive bash writes them.
//! `PS0`, which bash shows after it has read and parsed a line and before it runs it, is
//! `TOKEN\n`: the exec has started ([`Marker::Started`]). `PS1`, shown before the next line
//! is read, is `TOKEN <status> <cwd> TOKEN\n` ([`Marker::ExecEnd`]); bash keeps `$?` across a
//! user's `PROMPT_COMMAND`, so the status is the command's. The token is a random 128-bit
//! value per session, so output cannot end an exec by accident. Both prompts are read-only
//! (a command that sets them gets bash's `readonly variable` error and changes nothing), and
//! `VIRTUAL_ENV_DISABLE_PROMPT` is set (not exported) so that activating a Python virtual
//! environment does not try.
//!
//! Nothing is printed on stdout: when the `PS1` marker is read, everything the command wrote
//! to stdout is already in the stdout pipe (its processes have exited, and bash flushes its
//! builtins' output before prompting), so the session reads stdout dry before it takes in
//! each stderr chunk ([`Driver::stderr_follows_stdout`]) and the exec's stdout is complete.
//! Per exec bash runs no command of ours besides the `eval`: no prompt hook, no assignment,
//! no `printf`, no redirection but the `</dev/null` (BENCHMARKS.md, "Shell protocol").
//!
//! Interrupts wait for `PS0`, because bash reads a line whole and parses it byte by byte; an
//! interrupt in between throws away the part already parsed and leaves the rest buffered, to
//! run later untracked (measured with bare bash: 4 of 300 interrupts sent the moment the line
//! left the pipe). A `PS1` that arrives while an exec is armed but has not started means an
//! interrupt discarded its line: the exec ends as interrupted ([`Marker::Discarded`]) instead
//! of waiting forever.

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
    /// Printed by both prompts.
    token: Token,
    /// An exec (or the start-up line) is waiting for its `PS1`.
    armed: bool,
    starting: bool,
    /// The armed exec's line has started (its `PS0` arrived).
    started: bool,
    /// The command number (`\#`) of the last `PS1`: one that repeats it after an exec
    /// started is a stale copy of the previous prompt (see [`Parsed::Ps1`]).
    last_prompt: Option<u64>,
    /// A newline was sent to get a fresh prompt: the next `PS1` ends the exec.
    reprompted: bool,
    /// stderr held back: what may be the start of a marker.
    pending: Vec<u8>,
    noise: Vec<u8>,
}

impl Default for ShellDriver {
    fn default() -> Self {
        Self {
            token: new_token(),
            armed: false,
            starting: false,
            started: false,
            last_prompt: None,
            reprompted: false,
            pending: Vec::new(),
            noise: Vec::new(),
        }
    }
}

impl ShellDriver {
    fn arm(&mut self, starting: bool) {
        self.armed = true;
        self.starting = starting;
        self.started = false;
        self.reprompted = false;
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
        self.arm(true);
        let t = String::from_utf8_lossy(&self.token).into_owned();
        // PS0 is still unset while this line is read, so the first marker is its PS1.
        let line = format!(
            "set +m +H; set +o history; unset HISTFILE MAILCHECK; PROMPT_COMMAND=; PS2=; \
exit() {{ builtin exit \"$@\" 2>/dev/null; }}; VIRTUAL_ENV_DISABLE_PROMPT=1; \
PS0='{t}\\n'; PS1='{t} \\# $? ${{PWD}} {t}\\n'; readonly PS0 PS1\n"
        );
        Some(line.into_bytes())
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
        self.arm(false);
        let command = input.as_bytes();
        let mut line = Vec::with_capacity(input.len() + 32);
        if plain_words(command) {
            // Nothing in it that bash could read two ways: sent as it is, bash parses it once.
            line.extend_from_slice(command);
        } else {
            line.extend_from_slice(if starts_a_job(command) {
                // An interactive bash announces each background job (`[1] 4242`) on stderr; a
                // sourced file runs as a script does, without the notice, and, like `eval`, in
                // the shell itself. A descriptor no command is likely to use carries the text.
                b"source /dev/fd/47 47<<<".as_slice()
            } else {
                b"eval "
            });
            ansi_c_quote(command, &mut line);
        }
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
        match stream {
            Stream::Stdout => {
                self.emit(bytes, out);
                Vec::new()
            }
            Stream::Stderr => self.feed_stderr(bytes, out),
        }
    }

    fn stderr_follows_stdout(&self) -> bool {
        true
    }

    fn reports_start(&self) -> bool {
        true
    }

    fn flush(&mut self, stream: Stream, out: &mut dyn FnMut(&[u8])) {
        if stream == Stream::Stderr {
            let pending = std::mem::take(&mut self.pending);
            self.emit(&pending, out);
        }
    }

    fn startup_noise(&self) -> String {
        String::from_utf8_lossy(&self.noise).trim().to_owned()
    }
}

impl ShellDriver {
    /// Strips the prompts from stderr: `TOKEN\n` (`PS0`) and `TOKEN <status> <cwd> TOKEN\n`
    /// (`PS1`), turning them into markers while an exec is armed.
    fn feed_stderr(&mut self, bytes: &[u8], out: &mut dyn FnMut(&[u8])) -> Vec<Marker> {
        let joined = token::take_joined(&mut self.pending, bytes);
        let mut buf: &[u8] = &joined;
        let mut markers = Vec::new();
        let token = self.token;
        loop {
            let Some(at) = find(buf, &token) else {
                // Hold back what may be the start of a marker.
                let keep = partial_start(buf, &token);
                self.emit(&buf[..keep], out);
                self.pending = buf[keep..].to_vec();
                return markers;
            };
            self.emit(&buf[..at], out);
            match parse_prompt(&buf[at..], &token) {
                Parsed::Incomplete if buf.len() - at <= MAX_TRAILER => {
                    self.pending = buf[at..].to_vec();
                    return markers;
                }
                Parsed::Incomplete => {
                    // Too long for a marker: the token's bytes are output.
                    self.emit(&buf[at..at + TOKEN_LEN], out);
                    buf = &buf[at + TOKEN_LEN..];
                }
                Parsed::NotOurs { len } => {
                    self.emit(&buf[at..at + len], out);
                    buf = &buf[at + len..];
                }
                Parsed::Ps0 { used } => {
                    if self.armed && !self.starting && !std::mem::replace(&mut self.started, true) {
                        markers.push(Marker::Started);
                    }
                    buf = &buf[at + used..];
                }
                Parsed::Ps1 {
                    used,
                    number,
                    exit_code,
                    cwd,
                } => {
                    buf = &buf[at + used..];
                    let repeated = self.last_prompt.replace(number) == Some(number);
                    if !self.armed {
                        continue; // a prompt no exec waits for (a line the user left in stdin)
                    }
                    if repeated && self.started && !self.starting && !self.reprompted {
                        // bash printed the previous prompt again without expanding it, so its
                        // status and cwd are stale: an empty line gets a fresh one.
                        self.reprompted = true;
                        markers.push(Marker::Reply(b"\n".to_vec()));
                        continue;
                    }
                    self.armed = false;
                    if std::mem::take(&mut self.starting) {
                        self.noise = Vec::new();
                        markers.push(Marker::Ready);
                    } else if self.started {
                        markers.push(Marker::ExecEnd { exit_code, cwd });
                    } else {
                        markers.push(Marker::Discarded { exit_code });
                    }
                }
            }
        }
    }
}

/// What follows a token at the start of a buffer.
#[derive(Debug, PartialEq)]
enum Parsed {
    /// `TOKEN\n`: the `PS0` marker.
    Ps0 { used: usize },
    /// `TOKEN <number> <status> <cwd> TOKEN\n`: the `PS1` marker. `number` is bash's command
    /// number (`\#`), which differs between two prompts that bash expanded with a command
    /// run between them. After an `eval` whose text ends inside a quote, interactive bash
    /// 5.2 prints the previous prompt again as it was, without expanding it (the inner
    /// parser's error leaves the outer parser's state as if the line were not over);
    /// the repeated number tells such a copy.
    Ps1 {
        used: usize,
        number: u64,
        exit_code: i32,
        cwd: String,
    },
    /// More bytes are needed to tell.
    Incomplete,
    /// The token, but not a marker's shape: `len` bytes are output.
    NotOurs { len: usize },
}

/// Parses the marker at the start of `buf`, which starts with `token`.
fn parse_prompt(buf: &[u8], token: &Token) -> Parsed {
    let rest = &buf[TOKEN_LEN..];
    match rest.first() {
        None => Parsed::Incomplete,
        Some(b'\n') => Parsed::Ps0 {
            used: TOKEN_LEN + 1,
        },
        Some(b' ') => {
            let Some(close) = find(rest, token) else {
                return Parsed::Incomplete;
            };
            let used = TOKEN_LEN + close + TOKEN_LEN + 1;
            match rest.get(close + TOKEN_LEN) {
                None => return Parsed::Incomplete,
                Some(b'\n') => {}
                Some(_) => return Parsed::NotOurs { len: used - 1 },
            }
            // rest = " <number> <status> <cwd> TOKEN\n"
            let parsed = (|| {
                let body = rest[..close].strip_prefix(b" ")?.strip_suffix(b" ")?;
                let mut fields = body.splitn(3, |&b| b == b' ');
                let mut int = || std::str::from_utf8(fields.next()?).ok();
                let number = int()?.parse().ok()?;
                let exit_code = int()?.parse().ok()?;
                let cwd = String::from_utf8_lossy(fields.next()?).into_owned();
                Some((number, exit_code, cwd))
            })();
            match parsed {
                Some((number, exit_code, cwd)) => Parsed::Ps1 {
                    used,
                    number,
                    exit_code,
                    cwd,
                },
                None => Parsed::NotOurs { len: used },
            }
        }
        Some(_) => Parsed::NotOurs { len: TOKEN_LEN },
    }
}

fn new_token() -> Token {
    token::new_token(PREFIX)
}

/// One line a shell session writes to bash, and the token of the prompts that frame it
/// (`TOKEN` when the line starts, `TOKEN <status> <cwd> TOKEN` when it is over, both on
/// stderr).
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct ProtocolLine {
    /// The line, newline included.
    pub bytes: Vec<u8>,
    /// The token both prompts carry.
    pub token: String,
}

/// The start-up line of a shell session, exactly as the session writes it (for benchmarks
/// that measure bash under the session protocol without the runtime).
#[doc(hidden)]
pub fn protocol_startup_line() -> ProtocolLine {
    let mut driver = ShellDriver::default();
    let bytes = driver.startup().expect("a shell has a start-up line");
    ProtocolLine {
        bytes,
        token: String::from_utf8_lossy(&driver.token).into_owned(),
    }
}

/// The line of one non-interactive exec of `command`, exactly as a session writes it.
#[doc(hidden)]
pub fn protocol_exec_line(command: &str) -> ProtocolLine {
    let mut driver = ShellDriver::default();
    let bytes = driver.begin_exec(command, false).expect("a valid command");
    ProtocolLine {
        bytes,
        token: String::from_utf8_lossy(&driver.token).into_owned(),
    }
}

/// Whether a command is one simple command of plain words — letters, digits, `_./:=,+@%-`,
/// single spaces between words — that does not start with a reserved word. Such a line means
/// the same to bash with or without `eval` (no quoting, expansion, operator or keyword to read
/// differently), so it is sent as it is and parsed once (`git status`, `ls -la /tmp`,
/// `make -j4`, `A=1`); anything else goes through `eval`.
fn plain_words(command: &[u8]) -> bool {
    const RESERVED: [&[u8]; 17] = [
        b"if",
        b"then",
        b"else",
        b"elif",
        b"fi",
        b"case",
        b"esac",
        b"for",
        b"select",
        b"while",
        b"until",
        b"do",
        b"done",
        b"in",
        b"function",
        b"time",
        b"coproc",
    ];
    let plain = |b: &u8| b.is_ascii_alphanumeric() || b"_./:=,+@%-".contains(b);
    let mut words = command.split(|&b| b == b' ');
    let Some(first) = words.next() else {
        return false;
    };
    !first.is_empty()
        && !RESERVED.contains(&first)
        && command.len() <= 4096
        && std::iter::once(first)
            .chain(words)
            .all(|w| !w.is_empty() && w.iter().all(plain))
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
    fn plain_words_go_without_eval_and_anything_else_with_it() {
        for plain in [
            "true",
            "git status",
            "ls -la /tmp",
            "A=1",
            "make -j4 CC=gcc-12",
            "x@y:%+,",
        ] {
            assert!(plain_words(plain.as_bytes()), "{plain}");
            let line = ShellDriver::default().begin_exec(plain, false).unwrap();
            assert_eq!(line, format!("{plain} </dev/null\n").as_bytes());
        }
        for not in [
            "",
            " ls",
            "ls ",
            "ls  -l",
            "ls\n",
            "echo $HOME",
            "echo 'a'",
            "a;b",
            "a|b",
            "a&&b",
            "ls *",
            "cd ~",
            "echo {a,b}",
            "for x",
            "time ls",
            "if",
            "done",
            "ls # c",
            "a\\b",
            "echo é",
        ] {
            assert!(!plain_words(not.as_bytes()), "{not:?}");
        }
        let line = ShellDriver::default()
            .begin_exec("echo $HOME", false)
            .unwrap();
        assert_eq!(line, b"eval $'echo $HOME' </dev/null\n");
    }

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
        let t = String::from_utf8(d.token.to_vec()).unwrap();
        (d, t)
    }

    #[test]
    fn prompts_split_across_reads_are_found_and_removed() {
        for size in [1, 5, 7, 4096] {
            let (mut d, t) = armed();
            let all = format!("{t}\nhello\n{t} 7 3 /tmp/a b {t}\nlater");
            let chunks: Vec<&[u8]> = all.as_bytes().chunks(size).collect();
            let (out, markers) = feed_all(&mut d, Stream::Stderr, &chunks);
            assert_eq!(out, b"hello\nlater", "chunks of {size}");
            assert_eq!(
                markers,
                vec![
                    Marker::Started,
                    Marker::ExecEnd {
                        exit_code: 3,
                        cwd: "/tmp/a b".into()
                    }
                ],
                "chunks of {size}"
            );
            assert!(!d.armed);
        }
    }

    #[test]
    fn stdout_is_passed_through_untouched() {
        let (mut d, t) = armed();
        let text = format!("{t} 1 0 / {t}\n");
        let (out, m) = feed_all(&mut d, Stream::Stdout, &[text.as_bytes()]);
        assert_eq!(out, text.as_bytes(), "markers are only read on stderr");
        assert!(m.is_empty());
    }

    #[test]
    fn a_different_token_or_a_malformed_trailer_is_plain_output() {
        let (mut d, t) = armed();
        let other = String::from_utf8(new_token().to_vec()).unwrap();
        for text in [
            format!("{other} 0 / {other}\n"),
            format!("{t}x and more\n"),
            format!("{t} 1 notanumber / {t}\n"),
            format!("{t} 1 0 / {t}x\n"),
        ] {
            let (out, m) = feed_all(&mut d, Stream::Stderr, &[text.as_bytes()]);
            assert_eq!(out, text.as_bytes(), "{text}");
            assert!(m.is_empty(), "{text}");
        }
        let (_, m) = feed_all(&mut d, Stream::Stderr, &[format!("{t}\n").as_bytes()]);
        assert_eq!(
            m,
            vec![Marker::Started],
            "still armed after the look-alikes"
        );
    }

    #[test]
    fn a_prompt_before_the_start_means_the_line_was_discarded() {
        let (mut d, t) = armed();
        let text = format!("{t} 4 130 /x {t}\nlater");
        let chunks: Vec<&[u8]> = text.as_bytes().chunks(7).collect();
        let (out, m) = feed_all(&mut d, Stream::Stderr, &chunks);
        assert_eq!(m, vec![Marker::Discarded { exit_code: 130 }]);
        assert_eq!(out, b"later");
        assert!(!d.armed);
    }

    #[test]
    fn prompts_with_no_exec_armed_are_stripped_without_markers() {
        let mut d = ShellDriver::default();
        let t = String::from_utf8(d.token.to_vec()).unwrap();
        let text = format!("bg\n{t}\nerr\n{t} 2 0 / {t}\n");
        let (out, m) = feed_all(&mut d, Stream::Stderr, &[text.as_bytes()]);
        assert!(m.is_empty(), "no exec is running");
        assert_eq!(out, b"bg\nerr\n");
    }

    #[test]
    fn start_up_output_is_noise_until_the_first_prompt() {
        let mut d = ShellDriver::default();
        let line = String::from_utf8(d.startup().unwrap()).unwrap();
        let t = String::from_utf8(d.token.to_vec()).unwrap();
        assert!(
            line.contains(&format!("PS1='{t} \\# $? ${{PWD}} {t}\\n'")),
            "{line}"
        );
        let (out, _) = feed_all(&mut d, Stream::Stdout, &[b"motd\n"]);
        let (err, m) = feed_all(
            &mut d,
            Stream::Stderr,
            &[b"bash: no job control\nbash-5.2# "],
        );
        assert!(out.is_empty() && err.is_empty() && m.is_empty());
        assert!(
            d.startup_noise().contains("no job control"),
            "kept for errors"
        );
        let (err, m) = feed_all(
            &mut d,
            Stream::Stderr,
            &[format!("{t} 1 0 /home {t}\n").as_bytes()],
        );
        assert!(err.is_empty());
        assert_eq!(m, vec![Marker::Ready]);
    }

    #[test]
    fn a_repeated_prompt_is_stale_and_an_empty_line_asks_for_a_fresh_one() {
        let (mut d, t) = armed();
        let (_, m) = feed_all(
            &mut d,
            Stream::Stderr,
            &[format!("{t}\n{t} 5 0 /a {t}\n").as_bytes()],
        );
        assert_eq!(m.len(), 2, "the first exec ends: {m:?}");
        d.begin_exec("echo \"x", false).unwrap();
        let text = format!("{t}\nbash: unexpected EOF\n{t} 5 0 /a {t}\n");
        let (out, m) = feed_all(&mut d, Stream::Stderr, &[text.as_bytes()]);
        assert_eq!(out, b"bash: unexpected EOF\n");
        assert_eq!(m, vec![Marker::Started, Marker::Reply(b"\n".to_vec())]);
        let (_, m) = feed_all(
            &mut d,
            Stream::Stderr,
            &[format!("{t} 6 2 /b {t}\n").as_bytes()],
        );
        assert_eq!(
            m,
            vec![Marker::ExecEnd {
                exit_code: 2,
                cwd: "/b".into()
            }]
        );
    }

    #[test]
    fn a_held_back_partial_token_is_released_by_flush() {
        let (mut d, _) = armed();
        let (out, _) = feed_all(&mut d, Stream::Stderr, &[b"err __SH_"]);
        assert_eq!(out, b"err ");
        let mut rest = Vec::new();
        d.flush(Stream::Stderr, &mut |b| rest.extend_from_slice(b));
        assert_eq!(rest, b"__SH_");
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
