//! The `terminal` kind: a program under a pseudo-terminal, and a terminal emulator
//! (`alacritty_terminal`) fed with everything it writes, so the screen can be read as text.
//!
//! `alacritty_terminal` was chosen over `vt100` by measurement (BENCHMARKS.md, "Terminal
//! emulator"): about 1.6–2.3× the throughput on a mix of full-screen redraws, coloured and
//! Unicode lines, half the time to render the screen as text, and it answers the queries
//! programs send to a terminal (cursor position, device attributes, size, colours), which
//! `vt100` leaves to its user.
//!
//! The raw output (escape sequences included) goes to the session's stdout log like every
//! kind's; the emulator is a view of it. There are no execs: `terminal_send` types, then
//! waits for the screen to settle or show a pattern (`session/terminal.rs`).

pub(crate) mod keys;

use std::cell::RefCell;
use std::rc::Rc;

use alacritty_terminal::event::{Event, EventListener, WindowSize};
use alacritty_terminal::grid::Dimensions;
use alacritty_terminal::index::{Column, Line};
use alacritty_terminal::term::cell::Flags;
use alacritty_terminal::term::{Config, Term, TermMode};
use alacritty_terminal::vte::ansi::{Processor, Rgb};

use super::{Completion, Driver, Marker, Stream};
use crate::model::kind::TerminalOptions;
use crate::{Error, Result};

/// What the emulator asks of the session: bytes to answer the program with, a new title.
#[derive(Default)]
struct Outbox {
    replies: Vec<u8>,
    title: Option<String>,
    size: (u16, u16),
}

/// The emulator's event sink.
#[derive(Clone)]
struct Events(Rc<RefCell<Outbox>>);

impl EventListener for Events {
    fn send_event(&self, event: Event) {
        let mut out = self.0.borrow_mut();
        match event {
            Event::PtyWrite(text) => out.replies.extend_from_slice(text.as_bytes()),
            Event::Title(title) => out.title = Some(title),
            Event::ResetTitle => out.title = None,
            Event::TextAreaSizeRequest(format) => {
                let (cols, rows) = out.size;
                let answer = format(WindowSize {
                    num_lines: rows,
                    num_cols: cols,
                    cell_width: 8,
                    cell_height: 16,
                });
                out.replies.extend_from_slice(answer.as_bytes());
            }
            // Light grey on black, as the question asks for a colour (OSC 10/11/4).
            Event::ColorRequest(index, format) => {
                let rgb = if index == 256 {
                    Rgb {
                        r: 229,
                        g: 229,
                        b: 229,
                    }
                } else {
                    Rgb { r: 0, g: 0, b: 0 }
                };
                out.replies.extend_from_slice(format(rgb).as_bytes());
            }
            _ => {}
        }
    }
}

struct Size {
    cols: usize,
    rows: usize,
}

impl Dimensions for Size {
    fn total_lines(&self) -> usize {
        self.rows
    }
    fn screen_lines(&self) -> usize {
        self.rows
    }
    fn columns(&self) -> usize {
        self.cols
    }
}

/// One terminal's screen: the emulator and what it has seen.
pub(crate) struct Screen {
    term: Term<Events>,
    parser: Processor,
    outbox: Rc<RefCell<Outbox>>,
    /// Counts the chunks of output fed, so a waiter can tell that something arrived.
    pub(crate) generation: u64,
    /// The rows of the last view returned, for `changed_only`.
    pub(crate) last_rows: Vec<String>,
    /// The stdout cursor up to which output was returned by the last `terminal_send`.
    pub(crate) output_seen: u64,
    /// Lines of scrollback kept at most.
    scrollback_cap: usize,
    /// The visible rows as text and joined by newlines, at the generation they were
    /// rendered: a screen is rendered once however often it is looked at.
    rendered: RefCell<Option<(u64, Rc<Rendered>)>>,
}

/// The visible rows as text, trailing blanks trimmed, and the same joined by newlines (what
/// a `wait_for` pattern is matched against).
#[derive(Debug)]
pub(crate) struct Rendered {
    pub rows: Vec<String>,
    pub text: String,
}

impl std::fmt::Debug for Screen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Screen")
            .field("cols", &self.term.columns())
            .field("rows", &self.term.screen_lines())
            .finish_non_exhaustive()
    }
}

/// Where the cursor is and whether it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub row: u16,
    pub col: u16,
    pub visible: bool,
}

impl Screen {
    /// A blank screen of `size` keeping up to `scrollback` lines that scroll off its top.
    pub(crate) fn new(size: TerminalOptions, scrollback: usize) -> Self {
        let outbox = Rc::new(RefCell::new(Outbox {
            size: (size.cols, size.rows),
            ..Outbox::default()
        }));
        let config = Config {
            scrolling_history: scrollback,
            ..Config::default()
        };
        let dims = Size {
            cols: size.cols.into(),
            rows: size.rows.into(),
        };
        Self {
            term: Term::new(config, &dims, Events(Rc::clone(&outbox))),
            parser: Processor::new(),
            outbox,
            generation: 0,
            last_rows: Vec::new(),
            output_seen: 0,
            scrollback_cap: scrollback,
            rendered: RefCell::new(None),
        }
    }

    /// Lines of scrollback kept at most.
    pub(crate) fn scrollback_cap(&self) -> usize {
        self.scrollback_cap
    }

    /// Feeds program output; returns the bytes to answer the program with (empty if none).
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.parser.advance(&mut self.term, bytes);
        self.generation += 1;
        std::mem::take(&mut self.outbox.borrow_mut().replies)
    }

    /// Changes the size (the caller resizes the pseudo-terminal).
    pub(crate) fn resize(&mut self, size: TerminalOptions) {
        self.outbox.borrow_mut().size = (size.cols, size.rows);
        self.term.resize(Size {
            cols: size.cols.into(),
            rows: size.rows.into(),
        });
        self.generation += 1;
    }

    /// `(cols, rows)`.
    pub(crate) fn size(&self) -> (u16, u16) {
        self.outbox.borrow().size
    }

    /// The visible rows as text, trailing blanks trimmed.
    pub(crate) fn rows(&self) -> Vec<String> {
        self.rendered().rows.clone()
    }

    /// The visible rows rendered, once per generation.
    pub(crate) fn rendered(&self) -> Rc<Rendered> {
        let mut cache = self.rendered.borrow_mut();
        if let Some((generation, r)) = cache.as_ref() {
            if *generation == self.generation {
                return Rc::clone(r);
            }
        }
        let rows: Vec<String> = (0..self.term.screen_lines() as i32)
            .map(|l| self.line_text(Line(l)))
            .collect();
        let text = rows.join("\n");
        let r = Rc::new(Rendered { rows, text });
        *cache = Some((self.generation, Rc::clone(&r)));
        r
    }

    /// Up to `n` lines of scrollback, oldest first.
    pub(crate) fn scrollback(&self, n: usize) -> Vec<String> {
        let have = self.term.grid().history_size();
        (1..=n.min(have))
            .rev()
            .map(|back| self.line_text(Line(-(back as i32))))
            .collect()
    }

    fn line_text(&self, line: Line) -> String {
        let row = &self.term.grid()[line];
        let mut text = String::with_capacity(self.term.columns());
        for col in 0..self.term.columns() {
            let cell = &row[Column(col)];
            if cell.flags.contains(Flags::WIDE_CHAR_SPACER)
                || cell.flags.contains(Flags::LEADING_WIDE_CHAR_SPACER)
            {
                continue;
            }
            text.push(cell.c);
            if let Some(marks) = cell.zerowidth() {
                text.extend(marks);
            }
        }
        let kept = text.trim_end_matches(' ').len();
        text.truncate(kept);
        text
    }

    pub(crate) fn cursor(&self) -> Cursor {
        let point = self.term.grid().cursor.point;
        Cursor {
            row: point.line.0.max(0) as u16,
            col: point.column.0 as u16,
            visible: self.term.mode().contains(TermMode::SHOW_CURSOR),
        }
    }

    pub(crate) fn alternate_screen(&self) -> bool {
        self.term.mode().contains(TermMode::ALT_SCREEN)
    }

    pub(crate) fn app_cursor(&self) -> bool {
        self.term.mode().contains(TermMode::APP_CURSOR)
    }

    pub(crate) fn bracketed_paste(&self) -> bool {
        self.term.mode().contains(TermMode::BRACKETED_PASTE)
    }

    pub(crate) fn title(&self) -> Option<String> {
        self.outbox.borrow().title.clone()
    }
}

/// Driver of a terminal session: output into the emulator (and, unchanged, the log).
#[derive(Debug)]
pub(crate) struct TerminalDriver {
    screen: Rc<RefCell<Screen>>,
}

impl TerminalDriver {
    /// A driver with a blank screen of `size` keeping up to `scrollback` lines.
    pub(crate) fn new(size: TerminalOptions, scrollback: usize) -> Self {
        Self {
            screen: Rc::new(RefCell::new(Screen::new(size, scrollback))),
        }
    }
}

impl Driver for TerminalDriver {
    fn startup(&mut self) -> Option<Vec<u8>> {
        None
    }

    fn begin_exec(&mut self, _input: &str, _interactive: bool) -> Result<Vec<u8>> {
        Err(Error::invalid(
            "session",
            "a terminal session has no execs: type with terminal_send (text and keys such as \
             enter) and read the screen it returns, or terminal_screen",
        ))
    }

    fn completion(&self) -> Completion {
        Completion::FirstLine
    }

    fn feed(&mut self, stream: Stream, bytes: &[u8], out: &mut dyn FnMut(&[u8])) -> Vec<Marker> {
        out(bytes);
        if stream != Stream::Stdout {
            return Vec::new();
        }
        let replies = self.screen.borrow_mut().feed(bytes);
        if replies.is_empty() {
            Vec::new()
        } else {
            vec![Marker::Reply(replies)]
        }
    }

    fn flush(&mut self, _stream: Stream, _out: &mut dyn FnMut(&[u8])) {}

    fn screen(&self) -> Option<Rc<RefCell<Screen>>> {
        Some(Rc::clone(&self.screen))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_screen_shows_text_wide_and_combining_characters_in_their_cells() {
        let mut s = Screen::new(TerminalOptions { cols: 20, rows: 4 }, 100);
        s.feed("ab\r\n日本x\r\ne\u{301}!\x1b]0;hello\x07".as_bytes());
        assert_eq!(s.rows(), ["ab", "日本x", "e\u{301}!", ""]);
        assert_eq!(
            s.cursor(),
            Cursor {
                row: 2,
                col: 2,
                visible: true
            }
        );
        assert_eq!(s.title().as_deref(), Some("hello"));
    }

    #[test]
    fn a_cursor_position_query_is_answered_and_the_alternate_screen_is_seen() {
        let mut s = Screen::new(TerminalOptions { cols: 20, rows: 4 }, 100);
        assert_eq!(s.feed(b"abc\x1b[6n"), b"\x1b[1;4R");
        assert!(!s.feed(b"\x1b[c").is_empty(), "device attributes");
        s.feed(b"\x1b[?1049h");
        assert!(s.alternate_screen());
        s.feed(b"\x1b[?1049l");
        assert!(!s.alternate_screen());
        assert_eq!(s.rows()[0], "abc");
    }

    #[test]
    fn scrollback_keeps_what_scrolled_off_oldest_first() {
        let mut s = Screen::new(TerminalOptions { cols: 10, rows: 2 }, 100);
        s.feed(b"1\r\n2\r\n3\r\n4");
        assert_eq!(s.rows(), ["3", "4"]);
        assert_eq!(s.scrollback(5), ["1", "2"]);
        assert_eq!(s.scrollback(1), ["2"]);
    }
}
