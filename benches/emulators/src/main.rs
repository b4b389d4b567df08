//! vt100 against alacritty_terminal: throughput on a mix of full-screen redraws, coloured
//! and Unicode lines (32 MB fed in 4 KiB chunks), the time to render the screen as text, and
//! the memory of a terminal (fresh, and after 2 MB of output with 10,000 lines of scrollback).

use std::time::Instant;

use alacritty_terminal::event::{Event, EventListener};
use alacritty_terminal::grid::Dimensions;
use alacritty_terminal::term::{Config, Term};
use alacritty_terminal::vte::ansi::Processor;

const ROWS: u16 = 40;
const COLS: u16 = 120;

fn workload(mb: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0u64;
    while out.len() < mb << 20 {
        match i % 10 {
            // A full-screen redraw (as top does).
            0 => {
                out.extend_from_slice(b"\x1b[H");
                for r in 0..ROWS {
                    out.extend_from_slice(format!("\x1b[{};1H\x1b[7m{:>5}\x1b[0m  \x1b[32mproc-{i}-{r}\x1b[0m {:>60}\x1b[K", r + 1, r, i * 31 % 9973).as_bytes());
                }
            }
            // Coloured ls lines.
            1..=4 => out.extend_from_slice(format!("-rw-r--r-- 1 root root {:>8} Dec  7 05:{:02} \x1b[01;34mdir-{i}\x1b[0m \x1b[01;32mfile-{i}.rs\x1b[0m\r\n", i * 7919 % 100000, i % 60).as_bytes()),
            // Plain compiler-like lines with UTF-8.
            _ => out.extend_from_slice(format!("   Compiling crate-{i} v0.{}.{} (/work/ünïcødé/{i}) — 日本語 ✓\r\n", i % 13, i % 7).as_bytes()),
        }
        i += 1;
    }
    out
}

fn rss_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines().find(|l| l.starts_with("VmRSS")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[derive(Clone)]
struct Answers;
impl EventListener for Answers {
    fn send_event(&self, _e: Event) {}
}

struct Size;
impl Dimensions for Size {
    fn total_lines(&self) -> usize { ROWS as usize }
    fn screen_lines(&self) -> usize { ROWS as usize }
    fn columns(&self) -> usize { COLS as usize }
}

fn alacritty(scrollback: usize) -> (Term<Answers>, Processor) {
    let config = Config { scrolling_history: scrollback, ..Config::default() };
    (Term::new(config, &Size, Answers), Processor::new())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("speed");
    let data = workload(32);
    match mode {
        "speed" => {
            for round in 0..3 {
                let mut p = vt100::Parser::new(std::num::NonZeroU16::new(ROWS).unwrap(), std::num::NonZeroU16::new(COLS).unwrap(), 10_000);
                let t = Instant::now();
                for chunk in data.chunks(4096) { p.process(chunk); }
                let v = data.len() as f64 / t.elapsed().as_secs_f64() / 1e6;
                let _ = p.screen().contents();
                let (mut term, mut proc_) = alacritty(10_000);
                let t = Instant::now();
                for chunk in data.chunks(4096) { proc_.advance(&mut term, chunk); }
                let a = data.len() as f64 / t.elapsed().as_secs_f64() / 1e6;
                // Screen to text, as terminal_screen would do, timed per call.
                let t = Instant::now();
                for _ in 0..1000 { std::hint::black_box(p.screen().contents()); }
                let vs = t.elapsed().as_micros() as f64 / 1000.0;
                let t = Instant::now();
                for _ in 0..1000 {
                    let mut s = String::with_capacity(5000);
                    for line in term.grid().display_iter() { s.push(line.c); }
                    std::hint::black_box(s);
                }
                let as_ = t.elapsed().as_micros() as f64 / 1000.0;
                println!("round {round}: vt100 {v:.0} MB/s, alacritty {a:.0} MB/s; screen text vt100 {vs:.1} µs, alacritty {as_:.1} µs");
            }
        }
        "mem-vt100" | "mem-alacritty" => {
            let n = 500;
            let feed = &data[..2 << 20];
            let before = rss_kb();
            let mut keep_v = Vec::new();
            let mut keep_a = Vec::new();
            for _ in 0..n {
                if mode == "mem-vt100" {
                    let mut p = vt100::Parser::new(std::num::NonZeroU16::new(ROWS).unwrap(), std::num::NonZeroU16::new(COLS).unwrap(), 10_000);
                    p.process(feed);
                    keep_v.push(p);
                } else {
                    let (mut t, mut pr) = alacritty(10_000);
                    pr.advance(&mut t, feed);
                    keep_a.push((t, pr));
                }
            }
            let after = rss_kb();
            println!("{mode}: {:.0} KB per terminal after 2 MB of output (10,000 lines of scrollback)", (after - before) as f64 / n as f64);
            let before = rss_kb();
            let mut idle_v = Vec::new();
            let mut idle_a = Vec::new();
            for _ in 0..n {
                if mode == "mem-vt100" {
                    let mut p = vt100::Parser::new(std::num::NonZeroU16::new(ROWS).unwrap(), std::num::NonZeroU16::new(COLS).unwrap(), 10_000);
                    p.process(b"$ ");
                    idle_v.push(p);
                } else {
                    let (mut t, mut pr) = alacritty(10_000);
                    pr.advance(&mut t, b"$ ");
                    idle_a.push((t, pr));
                }
            }
            println!("{mode}: {:.0} KB per fresh terminal", (rss_kb() - before) as f64 / n as f64);
        }
        _ => unreachable!(),
    }
}
