//! `--hold N`: a flood of slow connections next to the measured clients. Each held connection
//! sends part of a request line and then nothing; one the server closes is opened again
//! after `--hold-reopen`, so the pressure stays for the whole run. The report says how many
//! were open (sampled every 100 ms while measuring) and how many the server closed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// What every held connection sends: the start of a request line, never finished.
const PARTIAL: &[u8] = b"POST /mcp HTT";
/// Longest wait for one connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The flood's counters, shared by its tasks.
#[derive(Debug, Default)]
struct Counters {
    /// Connections open now (connected, not yet closed by the server).
    open: AtomicU64,
    /// Connections that were open at least once.
    opened_once: AtomicU64,
    /// Closes by the server (EOF or reset).
    closed_by_server: AtomicU64,
    /// Connects that failed or timed out.
    connect_failures: AtomicU64,
    stop: AtomicBool,
}

/// A running flood of held connections.
#[derive(Debug)]
pub struct Flood {
    connections: usize,
    counters: Arc<Counters>,
    sampler: Option<tokio::task::JoinHandle<Vec<u64>>>,
}

/// What the flood did, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HoldReport {
    /// Connections the flood tried to hold.
    pub connections: usize,
    /// Connections open from the flood's side while measuring (connected and not closed by
    /// the server; this includes connections waiting in the server's listen queue): fewest,
    /// sampled every 100 ms.
    pub open_min: u64,
    /// Mean of the samples.
    pub open_mean: f64,
    /// Most.
    pub open_max: u64,
    /// Connections the server closed during the whole run.
    pub closed_by_server: u64,
    /// Connects that failed or timed out.
    pub connect_failures: u64,
}

impl Flood {
    /// Starts `connections` held connections to `authority` and waits (at most `ready_within`)
    /// until each has been open once, so the measured clients arrive into the flood.
    pub async fn start(
        authority: &str,
        connections: usize,
        reopen_after: Duration,
        ready_within: Duration,
    ) -> Self {
        let counters = Arc::new(Counters::default());
        for _ in 0..connections {
            let (authority, counters) = (authority.to_owned(), Arc::clone(&counters));
            tokio::spawn(async move { hold(authority, counters, reopen_after).await });
        }
        let deadline = Instant::now() + ready_within;
        while counters.opened_once.load(Ordering::Relaxed) < connections as u64
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Self {
            connections,
            counters,
            sampler: None,
        }
    }

    /// Starts sampling how many connections are open, every 100 ms until [`Flood::finish`].
    pub fn start_sampling(&mut self) {
        let counters = Arc::clone(&self.counters);
        self.sampler = Some(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut every = tokio::time::interval(Duration::from_millis(100));
            while !counters.stop.load(Ordering::Relaxed) {
                every.tick().await;
                samples.push(counters.open.load(Ordering::Relaxed));
            }
            samples
        }));
    }

    /// Stops the flood (its connections close) and reports.
    pub async fn finish(self) -> HoldReport {
        let c = &self.counters;
        c.stop.store(true, Ordering::Relaxed);
        let samples = match self.sampler {
            Some(task) => task.await.unwrap_or_default(),
            None => Vec::new(),
        };
        HoldReport {
            connections: self.connections,
            open_min: samples.iter().copied().min().unwrap_or(0),
            open_mean: samples.iter().sum::<u64>() as f64 / samples.len().max(1) as f64,
            open_max: samples.iter().copied().max().unwrap_or(0),
            closed_by_server: c.closed_by_server.load(Ordering::Relaxed),
            connect_failures: c.connect_failures.load(Ordering::Relaxed),
        }
    }
}

/// One held connection, opened again after each close until the flood stops.
async fn hold(authority: String, c: Arc<Counters>, reopen_after: Duration) {
    let mut first = true;
    while !c.stop.load(Ordering::Relaxed) {
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&authority)).await;
        let Ok(Ok(mut stream)) = connected else {
            c.connect_failures.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(reopen_after).await;
            continue;
        };
        if stream.write_all(PARTIAL).await.is_err() {
            c.closed_by_server.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(reopen_after).await;
            continue;
        }
        c.open.fetch_add(1, Ordering::Relaxed);
        if std::mem::take(&mut first) {
            c.opened_once.fetch_add(1, Ordering::Relaxed);
        }
        // Wait for the server to close it, checking for the end of the run now and then.
        let mut buf = [0u8; 512];
        let closed = loop {
            match tokio::time::timeout(Duration::from_millis(250), stream.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => break true,
                Ok(Ok(_)) => continue,
                Err(_) if c.stop.load(Ordering::Relaxed) => break false,
                Err(_) => continue,
            }
        };
        c.open.fetch_sub(1, Ordering::Relaxed);
        if !closed {
            return;
        }
        c.closed_by_server.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(reopen_after).await;
    }
}
