//! Terminal sessions' operations: typing and waiting for the screen (`terminal_send`),
//! reading it (`terminal_screen`), resizing it (`terminal_resize`).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;
use alacritty_terminal::vte::{Parser, Perform};
use tokio::time::Instant;

use super::kind::terminal::{keys, Screen};
use super::messages::{
    TerminalCursor, TerminalResize, TerminalRow, TerminalScreen, TerminalSend, TerminalView,
};
use super::{Kind, Session, StateKind};
use crate::model::kind::TerminalOptions;
use crate::{Error, Result};

/// Default quiet time after which the screen counts as settled.
const SETTLE_MS: u64 = 150;
/// Default and largest wait of a `terminal_send`.
const TIMEOUT_MS: u64 = 10_000;
const MAX_TIMEOUT_MS: u64 = 600_000;
/// Most program output a `terminal_send` returns (its tail).
const MAX_OUTPUT: usize = 64 * 1024;

/// Name of the store blob holding a terminal's last screen (JSON of its [`TerminalView`]),
/// which `terminal_screen` answers from while the session has no process.
pub(crate) const SCREEN_BLOB: &str = "screen";
/// Scrollback lines stored with the screen while the session runs; once it stops, all of it.
const LIVE_SAVED_SCROLLBACK: usize = 200;

/// How a `terminal_send` waits.
enum Until {
    Settled(Duration),
    Shows(regex::Regex),
}

impl Session {
    /// The screen of a terminal session, or why there is none.
    fn screen(&self, op: &'static str) -> Result<Rc<RefCell<Screen>>> {
        self.driver.screen().ok_or(Error::Unsupported {
            op,
            kind: self.spec.kind,
        })
    }

    /// The screen as a view, with `changed` rows when asked (the baseline for the next
    /// `changed_only` moves to this screen); `output` and `waited` are the caller's.
    fn view(
        &mut self,
        screen: &RefCell<Screen>,
        changed_only: bool,
        scrollback: usize,
    ) -> TerminalView {
        let mut s = screen.borrow_mut();
        let rows = s.rows();
        let mut view = snapshot(&s, &rows, scrollback, self.logs[0].end(), self.state.kind());
        if changed_only {
            view.changed = Some(
                rows.iter()
                    .enumerate()
                    .filter(|(i, text)| s.last_rows.get(*i) != Some(*text))
                    .map(|(i, text)| TerminalRow {
                        row: i as u16,
                        text: text.clone(),
                    })
                    .collect(),
            );
            view.screen.clear();
        }
        s.last_rows = rows;
        view
    }

    /// The screen to store, if it changed since `saved` (its generation, and whether it went
    /// with all its scrollback): JSON of its view. Once the session has `stopped`, the view
    /// carries all the scrollback; before, the last lines of it.
    pub(super) fn screen_to_save(
        &mut self,
        saved: &mut Option<(u64, bool)>,
        stopped: bool,
    ) -> Option<Vec<u8>> {
        let screen = self.driver.screen()?;
        let s = screen.borrow();
        if *saved == Some((s.generation, true))
            || (*saved == Some((s.generation, false)) && !stopped)
        {
            return None;
        }
        *saved = Some((s.generation, stopped));
        let lines = if stopped {
            s.scrollback_cap()
        } else {
            LIVE_SAVED_SCROLLBACK
        };
        let view = snapshot(&s, &s.rows(), lines, self.logs[0].end(), self.state.kind());
        serde_json::to_vec(&view).ok()
    }

    /// A terminal's working directory is its program's: read it from the process, so a
    /// resume starts there (a shell's `cd` is not reported as an exec's is).
    pub(super) fn note_terminal_cwd(&mut self) {
        let Some(child) = self.child.as_ref().filter(|c| c.terminal.is_some()) else {
            return;
        };
        if let Ok(dir) = std::fs::read_link(format!("/proc/{}/cwd", child.pid)) {
            self.cwd = Some(dir.display().to_string());
        }
    }

    /// The process group in the foreground of a terminal session's terminal (the shell's
    /// own, or the job it runs); `None` for other kinds.
    pub(super) fn foreground_group(&self) -> Option<u32> {
        crate::process::pty::foreground_group(self.child.as_ref()?.terminal.as_ref()?)
    }

    /// Program output since the previous `terminal_send`, escape sequences removed.
    fn output_since_last_send(&mut self, screen: &RefCell<Screen>) -> String {
        let end = self.logs[0].end();
        let from = screen
            .borrow()
            .output_seen
            .max(end.saturating_sub(MAX_OUTPUT as u64));
        screen.borrow_mut().output_seen = end;
        let raw = self.logs[0].read(from, MAX_OUTPUT).data;
        plain_text(&raw)
    }
}

impl Handler<TerminalSend> for Session {
    type Result = ResponseActFuture<Self, Result<TerminalView>>;

    fn handle(&mut self, msg: TerminalSend, ctx: &mut Self::Context) -> Self::Result {
        let prepared = (|| {
            let screen = self.screen("terminal_send")?;
            self.require_live("terminal_send")?;
            let until = match &msg.wait_for {
                Some(pattern) => Until::Shows(regex::Regex::new(pattern).map_err(|e| {
                    Error::invalid("wait_for", format!("not a regular expression: {e}"))
                })?),
                None => Until::Settled(Duration::from_millis(msg.settle_ms.unwrap_or(SETTLE_MS))),
            };
            let timeout = msg.timeout_ms.unwrap_or(TIMEOUT_MS);
            if timeout > MAX_TIMEOUT_MS {
                return Err(Error::invalid(
                    "timeout_ms",
                    format!("{timeout} is above the most, {MAX_TIMEOUT_MS}"),
                ));
            }
            let mut bytes = Vec::new();
            {
                let s = screen.borrow();
                if let Some(text) = &msg.text {
                    bytes.extend(keys::text(text, s.bracketed_paste()));
                }
                for key in &msg.keys {
                    bytes.extend(keys::encode(key, s.app_cursor())?);
                }
            }
            Ok((screen, until, Duration::from_millis(timeout), bytes))
        })();
        let (screen, until, timeout, bytes) = match prepared {
            Ok(p) => p,
            Err(e) => return Box::pin(actix::fut::ready(Err(e))),
        };
        if !bytes.is_empty() {
            if let Err(e) = self.write(bytes, ctx) {
                return Box::pin(actix::fut::ready(Err(e)));
            }
            self.shared.touch();
        }
        let changed = std::sync::Arc::clone(&self.changed);
        let watched = Rc::clone(&screen);
        // The program's end ends the wait: its last screen is the answer.
        let mut exit = self.child.as_ref().map(|c| c.exit.clone());
        let wait = async move {
            let deadline = Instant::now() + timeout;
            let mut seen = watched.borrow().generation;
            let mut quiet_since = Instant::now();
            loop {
                let notified = changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let now = Instant::now();
                let generation = watched.borrow().generation;
                if generation != seen {
                    (seen, quiet_since) = (generation, now);
                }
                let wake = match &until {
                    Until::Shows(re) => {
                        if re.is_match(&watched.borrow().rendered().text) {
                            return true;
                        }
                        deadline
                    }
                    Until::Settled(quiet) => {
                        if now >= quiet_since + *quiet {
                            return true;
                        }
                        (quiet_since + *quiet).min(deadline)
                    }
                };
                if now >= deadline {
                    return false;
                }
                let Some(exit) = exit.as_mut().filter(|e| e.borrow().is_none()) else {
                    return true;
                };
                tokio::select! {
                    () = notified => {}
                    () = tokio::time::sleep_until(wake) => {}
                    _ = exit.changed() => {}
                }
            }
        };
        Box::pin(wait.into_actor(self).map(move |met, act, _| {
            let output = act.output_since_last_send(&screen);
            let mut view = act.view(&screen, msg.changed_only, 0);
            view.waited = Some(met);
            view.output = Some(output);
            Ok(view)
        }))
    }
}

impl Handler<TerminalScreen> for Session {
    type Result = Result<TerminalView>;

    fn handle(&mut self, msg: TerminalScreen, _: &mut Self::Context) -> Self::Result {
        let screen = self.screen("terminal_screen")?;
        Ok(self.view(&screen, false, msg.scrollback as usize))
    }
}

impl Handler<TerminalResize> for Session {
    type Result = Result<TerminalView>;

    fn handle(&mut self, msg: TerminalResize, _: &mut Self::Context) -> Self::Result {
        let screen = self.screen("terminal_resize")?;
        self.require_live("terminal_resize")?;
        let size = TerminalOptions {
            cols: msg.cols,
            rows: msg.rows,
        };
        size.check().map_err(|e| Error::invalid("cols/rows", e))?;
        let master = self
            .child
            .as_ref()
            .and_then(|c| c.terminal.as_ref())
            .ok_or(Error::Unsupported {
                op: "terminal_resize",
                kind: Kind::Terminal,
            })?;
        crate::process::pty::resize(
            master,
            crate::process::pty::TermSize {
                cols: size.cols,
                rows: size.rows,
            },
        )
        .map_err(|e| Error::Io(format!("resizing the terminal: {e}")))?;
        screen.borrow_mut().resize(size);
        Ok(self.view(&screen, false, 0))
    }
}

/// The screen `s` (whose `rows` are given) as a view with up to `scrollback` lines of it.
fn snapshot(
    s: &Screen,
    rows: &[String],
    scrollback: usize,
    cursor_out: u64,
    state: StateKind,
) -> TerminalView {
    let mut shown = rows.to_vec();
    while shown.last().is_some_and(String::is_empty) {
        shown.pop();
    }
    let cursor = s.cursor();
    let (cols, nrows) = s.size();
    TerminalView {
        screen: shown,
        changed: None,
        scrollback: s.scrollback(scrollback),
        cols,
        rows: nrows,
        cursor: TerminalCursor {
            row: cursor.row,
            col: cursor.col,
            visible: cursor.visible,
        },
        alternate_screen: s.alternate_screen(),
        title: s.title(),
        waited: None,
        output: None,
        cursor_out,
        state,
    }
}

/// The view of a terminal session without a process (Suspended or stopped), from the screen
/// it stored last (`blob`), with up to `scrollback` lines of what was stored of its
/// scrollback, and `state` now.
pub(crate) fn stored_view(
    blob: &[u8],
    scrollback: usize,
    state: StateKind,
) -> Result<TerminalView> {
    let mut view: TerminalView = serde_json::from_slice(blob)
        .map_err(|e| Error::Store(format!("the stored screen does not decode: {e}")))?;
    let skip = view.scrollback.len().saturating_sub(scrollback);
    view.scrollback.drain(..skip);
    view.state = state;
    Ok(view)
}

/// Text of terminal output: what it prints, with newlines; escape sequences and other
/// controls dropped.
fn plain_text(raw: &[u8]) -> String {
    struct Text(String);
    impl Perform for Text {
        fn print(&mut self, c: char) {
            self.0.push(c);
        }
        fn execute(&mut self, byte: u8) {
            match byte {
                b'\n' => self.0.push('\n'),
                b'\t' => self.0.push('\t'),
                _ => {}
            }
        }
    }
    let mut parser = Parser::new();
    let mut text = Text(String::with_capacity(raw.len()));
    parser.advance(&mut text, raw);
    text.0
}

#[cfg(test)]
mod tests {
    #[test]
    fn plain_text_drops_escape_sequences_and_carriage_returns() {
        let raw = b"\x1b[1;32mok\x1b[0m\r\n\x1b]0;title\x07done\x1b[K";
        assert_eq!(super::plain_text(raw), "ok\ndone");
    }
}
