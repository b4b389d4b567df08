//! The front door of the HTTP transport: which connections are held, for how long, and what
//! happens when there are too many of them or descriptors run short.
//!
//! - **Every connection is accepted** and gets a [`Slot`] in the door's table. A slot is *idle*
//!   while no request is in flight on it — a fresh connection, one that sent only part of a
//!   request head, and a keep-alive connection between requests are all idle.
//! - **Timers** ([`Watched`], the connection's I/O): a request head must be complete within
//!   `header_timeout_ms` (counted from the accept for the first request, from the first byte of a
//!   later one); a keep-alive connection may sit idle for `keepalive_timeout_ms`. A late
//!   connection is closed without a response. A request in flight has no timer here: its body
//!   has a floor rate ([`read_body`], 408 below it) and its call the request timeout.
//! - **Admission** ([`Door::admit`]): at `max_connections`, or when fewer than `http.fd_reserve`
//!   descriptors would be free, a new connection is admitted by closing the longest-idle one,
//!   where a connection that was served counts as idle for one header timeout less than it is
//!   (so a flood that never speaks goes before clients served recently); one that starts a
//!   request before it could close is kept after all. When every connection is busy with a
//!   request, the new one is answered 503 with `Retry-After: 1` and closed. Once fewer than `runtime.fd_reserve` + 4 descriptors
//!   would be free (a new session would be refused), idle connections are recycled the same way
//!   instead of added, so idle connections never crowd out sessions; busy ones are still let in.
//! - **Accept errors** ([`AcceptErrors`]): out of descriptors (EMFILE, ENFILE), the loop
//!   closes idle connections, spends a reserve descriptor to take the waiting connections off
//!   the listen queue and close each at once (so clients are told rather than left waiting), and
//!   backs off (5 to 200 ms); it logs once per episode.
//!
//! Why hand-written: hyper 1.12's `header_read_timeout` starts its timer whenever the connection
//! waits for a head — at the start and again after every response — so it is also the keep-alive
//! limit (one number for two jobs), and nothing in hyper or tower knows which connections are
//! idle, so that the oldest can make room. tower's `ConcurrencyLimit` and `LoadShed` limit
//! requests, not connections that never send one, and tower-http's body timeout is per frame (a
//! byte every few seconds never trips it). One I/O wrapper that sees the bytes and a guard the
//! service holds while a request is in flight give all of it.

use std::collections::HashMap;
use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt as _;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};
use tracing::{debug, info, warn};

use crate::config::HttpConfig;
use crate::process;

/// Refusals (503) being written and drained at once; beyond this a refused connection is
/// closed after one non-blocking write.
const MAX_REFUSING: usize = 64;
/// How long a refused connection is drained (so the client reads the 503 instead of a reset).
const REFUSAL_DRAIN: Duration = Duration::from_secs(1);
/// A rescan that found no idle connection is not repeated within this.
const RESCAN_AFTER: Duration = Duration::from_millis(10);
/// Idle connections closed per accept error for lack of descriptors.
const EVICT_ON_EMFILE: usize = 8;
/// Waiting connections closed per accept error for lack of descriptors.
const DRAIN_ON_EMFILE: usize = 64;
/// Back-off of the accept loop after an accept error: the first pause, doubled up to
/// `BACKOFF_MAX` while the errors last.
const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_millis(200);

/// The connection table and the admission rules of one listener.
#[derive(Debug)]
pub(super) struct Door {
    epoch: Instant,
    max_connections: usize,
    /// Connections never leave fewer descriptors free than this.
    fd_hard: u64,
    /// Below this many free descriptors, idle connections are recycled instead of added.
    fd_soft: u64,
    header_timeout: Duration,
    keepalive_timeout: Duration,
    table: Mutex<Table>,
    next_id: AtomicU64,
    refusing: AtomicUsize,
    refusal: Bytes,
}

/// Per-connection state shared by the connection's task, its service and the door.
#[derive(Debug)]
pub(super) struct Slot {
    id: u64,
    accepted: Instant,
    /// Requests in flight (at most one on HTTP/1.1; a count keeps it simple).
    in_flight: AtomicU32,
    /// Requests begun on this connection.
    requests: AtomicU64,
    /// When the connection last became idle, ms since the door's epoch.
    idle_since_ms: AtomicU64,
    evicting: AtomicBool,
    /// Signalled when the door closes this connection to make room.
    pub(super) evict: Notify,
}

#[derive(Debug, Default)]
struct Table {
    conns: HashMap<u64, Arc<Slot>>,
    /// Connections told to close that have not closed yet.
    evicting: usize,
    /// The next connections to close, from the last scan, ordered so that `pop` gives the
    /// first to close (see [`Table::take_victim`]).
    victims: Vec<Victim>,
    /// A connection was admitted since the last scan (it is idle and never served, so it goes
    /// before any served one in the batch).
    admitted_since_scan: bool,
    empty_scan_at: Option<Instant>,
    pressure: Option<Pressure>,
}

/// A connection found idle by a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Victim {
    /// Ordering key, smallest first: when it became idle, ms since the door's epoch, plus one
    /// header timeout for a connection that has served a request.
    rank: u64,
    /// When it became idle, and how many requests it had begun: a change in either means it
    /// has been busy since the scan.
    since: u64,
    requests: u64,
    id: u64,
    served: bool,
}

/// An episode of admissions that had to make room, logged at its start and its end.
#[derive(Debug)]
struct Pressure {
    since: Instant,
    evicted: u64,
    refused: u64,
}

/// A connection's place in the table; dropping it frees the place.
#[derive(Debug)]
pub(super) struct Ticket {
    door: Arc<Door>,
    slot: Arc<Slot>,
}

/// What to do with an accepted connection.
#[derive(Debug)]
pub(super) enum Admission {
    /// Serve it.
    Admit(Ticket),
    /// Answer 503 and close it.
    Refuse,
}

impl Door {
    /// A door for `config`; sessions keep `session_fd_reserve` descriptors free.
    pub(super) fn new(config: &HttpConfig, session_fd_reserve: u64) -> Arc<Self> {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":null,"error":{{"code":{},"message":"the server holds its maximum of connections and every one is busy with a request; retry in a second"}}}}"#,
            super::protocol::code::INTERNAL_ERROR
        );
        let refusal = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        Arc::new(Self {
            epoch: Instant::now(),
            max_connections: config.max_connections.max(1),
            fd_hard: config.fd_reserve,
            fd_soft: session_fd_reserve + process::SESSION_FDS,
            header_timeout: Duration::from_millis(config.header_timeout_ms.max(1)),
            keepalive_timeout: Duration::from_millis(config.keepalive_timeout_ms.max(1)),
            table: Mutex::default(),
            next_id: AtomicU64::new(0),
            refusing: AtomicUsize::new(0),
            refusal: Bytes::from(refusal),
        })
    }

    fn header_ms(&self) -> u64 {
        self.header_timeout.as_millis() as u64
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Decides on a just-accepted connection (its descriptor is already counted).
    pub(super) fn admit(self: &Arc<Self>) -> Admission {
        let free = process::open_files().map_or(u64::MAX, |o| o.free());
        let now = Instant::now();
        let mut t = self.table.lock();
        // Connections told to close will give their descriptors back in a moment.
        let free = free.saturating_add(t.evicting as u64);
        let held = t.conns.len() - t.evicting;
        let at_max = held >= self.max_connections;
        let must = at_max || free < self.fd_hard;
        if must || free < self.fd_soft {
            match t.take_victim(now, self.header_ms()) {
                Some(victim) => {
                    victim.evicting.store(true, Ordering::Relaxed);
                    victim.evict.notify_one();
                    t.evicting += 1;
                    t.pressured(now, at_max, free).evicted += 1;
                }
                None if must => {
                    t.pressured(now, at_max, free).refused += 1;
                    return Admission::Refuse;
                }
                None => {}
            }
        } else if let Some(p) = t.pressure.take() {
            info!(
                evicted = p.evicted,
                refused = p.refused,
                secs = p.since.elapsed().as_secs_f64(),
                "front door: admitting without making room again"
            );
        }
        let slot = Arc::new(Slot {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            accepted: now,
            in_flight: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(self.now_ms()),
            evicting: AtomicBool::new(false),
            evict: Notify::new(),
        });
        t.conns.insert(slot.id, Arc::clone(&slot));
        t.admitted_since_scan = true;
        t.empty_scan_at = None;
        Admission::Admit(Ticket {
            door: Arc::clone(self),
            slot,
        })
    }

    /// Tells up to `n` of the longest-idle connections to close; returns how many.
    fn evict_idle(&self, n: usize) -> usize {
        let now = Instant::now();
        let mut t = self.table.lock();
        let mut done = 0;
        while done < n {
            let Some(victim) = t.take_victim(now, self.header_ms()) else {
                break;
            };
            victim.evicting.store(true, Ordering::Relaxed);
            victim.evict.notify_one();
            t.evicting += 1;
            done += 1;
        }
        done
    }

    /// Answers a refused connection with 503 and closes it: drained briefly when there is
    /// room, so the client reads the answer rather than a reset; at once otherwise.
    pub(super) fn refuse(self: &Arc<Self>, mut stream: TcpStream) {
        let refusing = self.refusing.fetch_add(1, Ordering::Relaxed);
        let spare = process::open_files().map_or(0, |o| o.free());
        if refusing >= MAX_REFUSING || spare < self.fd_hard.max(MAX_REFUSING as u64) {
            self.refusing.fetch_sub(1, Ordering::Relaxed);
            let _ = stream.try_write(&self.refusal);
            return;
        }
        let door = Arc::clone(self);
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REFUSAL_DRAIN, async {
                stream.write_all(&door.refusal).await?;
                stream.shutdown().await?;
                let mut sink = [0u8; 4096];
                let mut left = 64 * 1024usize;
                while left > 0 {
                    match stream.read(&mut sink).await? {
                        0 => break,
                        n => left = left.saturating_sub(n),
                    }
                }
                io::Result::Ok(())
            })
            .await;
            door.refusing.fetch_sub(1, Ordering::Relaxed);
        });
    }

    /// Wraps a connection's stream with its timers.
    pub(super) fn watch(self: &Arc<Self>, io: TcpStream, ticket: &Ticket) -> Watched {
        Watched {
            io,
            door: Arc::clone(self),
            slot: Arc::clone(&ticket.slot),
            seen_requests: 0,
            head_from: None,
            timer: None,
            armed_for: None,
        }
    }
}

impl Table {
    /// The idle connection to close first, if any: the longest idle, where a connection that
    /// never finished a request (a client that sent part of a head, or nothing) counts as idle
    /// for one header timeout longer than it is. So a flood of connections that never speak
    /// goes before clients that were served within the last header timeout, however fast the
    /// flood's connections are reopened; a client paused for longer ranks with the flood.
    /// Scans the table for a batch of victims when the last batch is used up, so a flood costs
    /// a scan per batch rather than per connection.
    fn take_victim(&mut self, now: Instant, header_ms: u64) -> Option<Arc<Slot>> {
        loop {
            if self.victims.is_empty() && !self.rescan(now, header_ms) {
                return None;
            }
            let &Victim {
                since,
                requests,
                id,
                served,
                ..
            } = self.victims.last()?;
            if served && self.admitted_since_scan {
                // A served one, and a connection that never spoke was admitted since the
                // scan: it may rank first.
                self.victims.clear();
                continue;
            }
            self.victims.pop();
            let Some(slot) = self.conns.get(&id) else {
                continue;
            };
            // Busy since the scan, or idle again after a request: no longer the oldest.
            if slot.evicting.load(Ordering::Relaxed)
                || slot.busy()
                || slot.idle_since_ms.load(Ordering::Relaxed) != since
                || slot.requests.load(Ordering::Relaxed) != requests
            {
                continue;
            }
            return Some(Arc::clone(slot));
        }
    }

    fn rescan(&mut self, now: Instant, header_ms: u64) -> bool {
        if self
            .empty_scan_at
            .is_some_and(|at| now.duration_since(at) < RESCAN_AFTER)
        {
            return false;
        }
        self.admitted_since_scan = false;
        let mut idle: Vec<Victim> = self
            .conns
            .values()
            .filter(|s| !s.evicting.load(Ordering::Relaxed) && !s.busy())
            .map(|s| {
                let since = s.idle_since_ms.load(Ordering::Relaxed);
                let requests = s.requests.load(Ordering::Relaxed);
                let served = requests > 0;
                Victim {
                    rank: if served { since + header_ms } else { since },
                    since,
                    requests,
                    id: s.id,
                    served,
                }
            })
            .collect();
        if idle.is_empty() {
            self.empty_scan_at = Some(now);
            return false;
        }
        self.empty_scan_at = None;
        let batch = (self.conns.len() / 16).clamp(1, 256);
        if idle.len() > batch {
            idle.select_nth_unstable(batch - 1);
            idle.truncate(batch);
        }
        idle.sort_unstable_by(|a, b| b.cmp(a));
        self.victims = idle;
        true
    }

    fn pressured(&mut self, now: Instant, at_max: bool, free: u64) -> &mut Pressure {
        self.pressure.get_or_insert_with(|| {
            let why = if at_max {
                "max_connections reached"
            } else {
                "few open-file descriptors free"
            };
            warn!(
                connections = self.conns.len(),
                free_descriptors = free,
                "front door: {why}; closing the longest-idle connections to admit new ones (503 when every one is busy)"
            );
            Pressure {
                since: now,
                evicted: 0,
                refused: 0,
            }
        })
    }
}

impl Slot {
    /// True while a request is in flight.
    pub(super) fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }
}

impl Ticket {
    /// The connection's slot.
    pub(super) fn slot(&self) -> &Arc<Slot> {
        &self.slot
    }

    /// Takes back the door's request to close this connection (it turned busy before it
    /// could close: a client after all).
    pub(super) fn spare(&self) {
        let mut t = self.door.table.lock();
        if self.slot.evicting.swap(false, Ordering::Relaxed) {
            t.evicting -= 1;
        }
    }

    /// Marks a request in flight until the returned guard is dropped.
    pub(super) fn busy(&self) -> Busy {
        Busy::start(&self.door, &self.slot)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut t = self.door.table.lock();
        if t.conns.remove(&self.slot.id).is_some() && self.slot.evicting.load(Ordering::Relaxed) {
            t.evicting -= 1;
        }
    }
}

/// A request in flight on a connection; dropping it (with the response body, or the service
/// future when the connection goes away) makes the connection idle again.
#[derive(Debug)]
pub(super) struct Busy {
    door: Arc<Door>,
    slot: Arc<Slot>,
}

impl Busy {
    fn start(door: &Arc<Door>, slot: &Arc<Slot>) -> Self {
        slot.requests.fetch_add(1, Ordering::Relaxed);
        slot.in_flight.fetch_add(1, Ordering::AcqRel);
        Self {
            door: Arc::clone(door),
            slot: Arc::clone(slot),
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.slot
            .idle_since_ms
            .store(self.door.now_ms(), Ordering::Relaxed);
        self.slot.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as in flight until hyper drops it.
#[derive(Debug)]
pub(super) struct Guarded<B> {
    body: B,
    _busy: Busy,
}

impl<B> Guarded<B> {
    pub(super) fn new(body: B, busy: Busy) -> Self {
        Self { body, _busy: busy }
    }
}

impl<B: Body + Unpin> Body for Guarded<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A connection's stream with its header and keep-alive timers. The timers are checked where
/// hyper reads: while it waits for a head it keeps a read pending, and the timer registered
/// with that read wakes the connection when it is late; the read then fails with `TimedOut`
/// and hyper closes the connection.
#[derive(Debug)]
pub(super) struct Watched {
    io: TcpStream,
    door: Arc<Door>,
    slot: Arc<Slot>,
    /// `Slot::requests` when this stream last looked.
    seen_requests: u64,
    /// First byte of the head of a later request.
    head_from: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
    armed_for: Option<Instant>,
}

impl Watched {
    /// The deadline of what the connection is waiting for, or `None` while a request is in
    /// flight. `got_bytes`: the read that just happened returned bytes.
    fn deadline(&mut self, got_bytes: bool) -> Option<(Instant, &'static str)> {
        if self.slot.busy() {
            return None;
        }
        let requests = self.slot.requests.load(Ordering::Relaxed);
        if requests != self.seen_requests {
            self.seen_requests = requests;
            self.head_from = None;
        }
        if requests == 0 {
            return Some((self.slot.accepted + self.door.header_timeout, "header"));
        }
        if got_bytes && self.head_from.is_none() {
            self.head_from = Some(Instant::now());
        }
        Some(match self.head_from {
            Some(t) => (t + self.door.header_timeout, "header"),
            None => {
                let idle = self.slot.idle_since_ms.load(Ordering::Relaxed);
                (
                    self.door.epoch + Duration::from_millis(idle) + self.door.keepalive_timeout,
                    "keep-alive",
                )
            }
        })
    }

    fn late(&self, what: &str) -> io::Error {
        debug!(
            connection = self.slot.id,
            "{what} timeout: closing the connection"
        );
        io::Error::new(io::ErrorKind::TimedOut, format!("{what} timeout"))
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        let got_bytes = matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before;
        let Some((deadline, what)) = this.deadline(got_bytes) else {
            return polled;
        };
        if Instant::now() >= deadline {
            return Poll::Ready(Err(this.late(what)));
        }
        if polled.is_pending() {
            let timer = this
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if this.armed_for != Some(deadline) {
                timer.as_mut().reset(deadline);
                this.armed_for = Some(deadline);
            }
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(this.late(what)));
            }
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Limits on reading a request body.
#[derive(Debug, Clone, Copy)]
pub(super) struct BodyLimits {
    /// Largest body.
    pub max_bytes: usize,
    /// Time before the floor rate applies.
    pub timeout: Duration,
    /// Floor rate, bytes per second (0: none; the body must be in within `timeout`).
    pub min_rate: u64,
}

/// Why a body could not be read.
#[derive(Debug)]
pub(super) enum BodyError {
    /// Larger than `max_bytes`.
    TooLarge,
    /// Slower than the floor: what had arrived and when it was cut off.
    TooSlow {
        /// Bytes received.
        received: usize,
        /// Time spent, ms.
        elapsed_ms: u64,
    },
    /// The connection failed (or closed) mid-body.
    Read(hyper::Error),
}

impl From<&HttpConfig> for BodyLimits {
    fn from(c: &HttpConfig) -> Self {
        Self {
            max_bytes: c.max_body_bytes,
            timeout: Duration::from_millis(c.body_timeout_ms.max(1)),
            min_rate: c.body_min_rate,
        }
    }
}

/// Reads a whole body, cut off when it grows past `max_bytes` or arrives slower than the
/// floor: `n` bytes must be in within `timeout + n / min_rate` seconds of the start.
pub(super) async fn read_body(mut body: Incoming, limits: BodyLimits) -> Result<Bytes, BodyError> {
    let start = Instant::now();
    let mut first: Option<Bytes> = None;
    let mut rest: Option<BytesMut> = None;
    let mut received = 0usize;
    loop {
        let earned = match limits.min_rate {
            0 => Duration::ZERO,
            rate => Duration::from_secs_f64(received as f64 / rate as f64),
        };
        let frame =
            match tokio::time::timeout_at(start + limits.timeout + earned, body.frame()).await {
                Err(_) => {
                    return Err(BodyError::TooSlow {
                        received,
                        elapsed_ms: start.elapsed().as_millis() as u64,
                    })
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(BodyError::Read(e)),
                Ok(Some(Ok(frame))) => frame,
            };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        received += data.len();
        if received > limits.max_bytes {
            return Err(BodyError::TooLarge);
        }
        // One frame (the usual case) is passed on without a copy.
        match (&mut first, &mut rest) {
            (None, _) => first = Some(data),
            (Some(f), None) => {
                let mut joined = BytesMut::with_capacity(received);
                joined.extend_from_slice(f);
                joined.extend_from_slice(&data);
                rest = Some(joined);
            }
            (Some(_), Some(r)) => r.extend_from_slice(&data),
        }
    }
    Ok(match (first, rest) {
        (_, Some(r)) => r.freeze(),
        (Some(f), None) => f,
        (None, None) => Bytes::new(),
    })
}

/// The accept loop's handling of its errors.
#[derive(Debug)]
pub(super) struct AcceptErrors {
    /// Opened at start and given up when descriptors run out, to take one waiting connection
    /// off the queue.
    reserve: Option<std::fs::File>,
    backoff: Duration,
    episode: Option<(Instant, u64)>,
}

impl Default for AcceptErrors {
    fn default() -> Self {
        Self {
            reserve: open_reserve(),
            backoff: BACKOFF_MIN,
            episode: None,
        }
    }
}

impl AcceptErrors {
    /// An accept succeeded: ends an episode of errors.
    pub(super) fn recovered(&mut self) {
        if let Some((since, refused)) = self.episode.take() {
            info!(
                refused,
                secs = since.elapsed().as_secs_f64(),
                "accepting connections again"
            );
            self.backoff = BACKOFF_MIN;
        }
        if self.reserve.is_none() {
            self.reserve = open_reserve();
        }
    }

    /// Handles a failed accept, sleeping as long as the error calls for.
    pub(super) async fn failed(&mut self, e: io::Error, listener: &TcpListener, door: &Door) {
        if matches!(
            e.kind(),
            io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::Interrupted
        ) {
            // A connection that failed before it was accepted: nothing to wait for.
            debug!(error = %e, "accept: connection gone before it was accepted");
            return;
        }
        let no_fds = out_of_descriptors(&e);
        let evicted = if no_fds {
            door.evict_idle(EVICT_ON_EMFILE)
        } else {
            0
        };
        let episode = self.episode.get_or_insert_with(|| {
            if no_fds {
                let open = process::open_files().ok();
                warn!(
                    error = %e,
                    in_use = open.map(|o| o.in_use),
                    limit = open.map(|o| o.limit),
                    evicted,
                    "out of file descriptors: closing idle connections and refusing new ones until descriptors are free"
                );
            } else {
                warn!(error = %e, "accept failing; retrying with back-off");
            }
            (Instant::now(), 0)
        });
        // Take the waiting connections off the queue through the one descriptor the reserve
        // frees, and close each at once, so their clients are told instead of left waiting.
        if no_fds {
            if let Some(reserve) = self.reserve.take() {
                drop(reserve);
                for _ in 0..DRAIN_ON_EMFILE {
                    let Some(Ok((stream, _))) = listener.accept().now_or_never() else {
                        break;
                    };
                    let _ = stream.try_write(&door.refusal);
                    episode.1 += 1;
                }
                self.reserve = open_reserve();
            }
        }
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }
}

fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

fn open_reserve() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn door(max: usize) -> Arc<Door> {
        door_with(max, 10_000)
    }

    fn door_with(max: usize, header_timeout_ms: u64) -> Arc<Door> {
        let config = HttpConfig {
            max_connections: max,
            fd_reserve: 0,
            header_timeout_ms,
            ..HttpConfig::default()
        };
        Door::new(&config, 0)
    }

    fn admitted(a: Admission) -> Ticket {
        match a {
            Admission::Admit(t) => t,
            Admission::Refuse => panic!("refused"),
        }
    }

    #[tokio::test]
    async fn at_the_limit_the_longest_idle_connection_makes_room() {
        let door = door(2);
        let a = admitted(door.admit());
        tokio::time::sleep(Duration::from_millis(2)).await;
        let b = admitted(door.admit());
        let busy_b = b.busy();
        let _c = admitted(door.admit());
        assert!(
            a.slot().evicting.load(Ordering::Relaxed),
            "a was idle longest"
        );
        assert!(!b.slot().evicting.load(Ordering::Relaxed));
        drop(a);
        // b is busy and c is idle: c makes room for d.
        let _d = admitted(door.admit());
        assert!(_c.slot().evicting.load(Ordering::Relaxed));
        drop(_c);
        drop(busy_b);
        assert!(!b.slot().busy());
    }

    #[tokio::test]
    async fn a_connection_that_never_finished_a_request_goes_before_a_served_one() {
        let door = door(2);
        let served = admitted(door.admit());
        drop(served.busy());
        tokio::time::sleep(Duration::from_millis(2)).await;
        let silent = admitted(door.admit());
        let _new = admitted(door.admit());
        assert!(silent.slot().evicting.load(Ordering::Relaxed));
        assert!(!served.slot().evicting.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn a_served_connection_paused_longer_than_the_header_timeout_ranks_with_the_silent() {
        let door = door_with(2, 5);
        let served = admitted(door.admit());
        drop(served.busy());
        tokio::time::sleep(Duration::from_millis(30)).await;
        let silent = admitted(door.admit());
        let _new = admitted(door.admit());
        assert!(served.slot().evicting.load(Ordering::Relaxed));
        assert!(!silent.slot().evicting.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn a_connection_admitted_after_the_scan_goes_before_a_served_one_of_the_batch() {
        // 32 served connections: the scan's batch holds the two longest idle.
        let door = door(32);
        let served: Vec<Ticket> = (0..32).map(|_| admitted(door.admit())).collect();
        for t in &served {
            drop(t.busy());
        }
        let silent = admitted(door.admit());
        assert_eq!(
            served
                .iter()
                .filter(|t| t.slot().evicting.load(Ordering::Relaxed))
                .count(),
            1
        );
        let _new = admitted(door.admit());
        assert!(
            silent.slot().evicting.load(Ordering::Relaxed),
            "the silent one, not the batch's second"
        );
    }

    #[tokio::test]
    async fn a_connection_spared_after_all_counts_as_held_again() {
        let door = door(1);
        let a = admitted(door.admit());
        let _b = admitted(door.admit());
        assert!(a.slot().evicting.load(Ordering::Relaxed));
        assert_eq!(door.table.lock().evicting, 1);
        a.spare();
        assert!(!a.slot().evicting.load(Ordering::Relaxed));
        assert_eq!(door.table.lock().evicting, 0);
        drop(a);
        assert_eq!(
            door.table.lock().evicting,
            0,
            "a spared connection is not counted twice"
        );
    }

    #[tokio::test]
    async fn when_every_connection_is_busy_a_new_one_is_refused() {
        let door = door(1);
        let a = admitted(door.admit());
        let _busy = a.busy();
        assert!(matches!(door.admit(), Admission::Refuse));
        drop(_busy);
        // Idle again: the next one takes its place (after the rescan pause).
        tokio::time::sleep(RESCAN_AFTER * 2).await;
        let _b = admitted(door.admit());
        assert!(a.slot().evicting.load(Ordering::Relaxed));
    }
}
