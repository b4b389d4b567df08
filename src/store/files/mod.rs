//! SessionFiles as per-session append-only segment files, outside sled: a directory per
//! session (`transcripts/<id>/`), numbered segment files (`<number, 16 hex digits>.seg`) of
//! checked frames ([`frame`]), the oldest segment deleted when the session's cap is exceeded,
//! the directory removed when the session is purged (the pattern of Prometheus's WAL).
//!
//! Reads go to the files (the page cache), never into a structure that grows with the number
//! of writes. Only the writer thread appends; a reader may race an append or a trim, and
//! treats a frame cut short at the end of the newest segment as "not written yet" and a
//! segment deleted under it as trimmed.

pub(crate) mod frame;
pub(crate) mod tasks;

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::ops::ControlFlow;
use std::os::unix::fs::{DirBuilderExt, FileExt};
use std::path::{Path, PathBuf};

use tracing::warn;

use self::frame::{Step, HEADER, MAGIC};
use super::record::{Dir, Event};
use crate::ids::SessionId;

/// Name of the directory of per-session directories inside the data directory.
pub const SESSIONS_DIR: &str = "sessions";
/// Directory (in the data directory) of agent sessions' own directories, one per session.
pub const AGENTS_DIR: &str = "agents";

/// Name of a session's final record file.
const RECORD_FILE: &str = "record";
/// Name of a final record being written.
const STAGED_RECORD: &str = ".record.tmp";

/// Smallest segment size; smaller caps still get segments this large (a quarter of the cap
/// above it).
const MIN_SEGMENT: u64 = 1024;

/// Where transcripts live and how they are cut into segments.
#[derive(Debug, Clone)]
pub(crate) struct SessionFiles {
    root: PathBuf,
    /// Largest segment file, bytes (magic included).
    segment: u64,
    /// Bytes of segment files kept per session.
    cap: u64,
    /// Where agent sessions' own directories are, removed with the rest of a session.
    agents: Option<PathBuf>,
}

/// One session's segments as the writer knows them.
#[derive(Debug)]
pub(crate) struct Log {
    dir: PathBuf,
    segments: VecDeque<Segment>,
    /// One past the largest sequence number written: appends skip what is already there, so
    /// a batch retried after a partial failure writes nothing twice.
    next_seq: u64,
}

#[derive(Debug, Clone, Copy)]
struct Segment {
    number: u64,
    bytes: u64,
}

/// What a scan of one session's files found wrong (each problem is logged where found).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Damage {
    /// Frames skipped because their checksum or contents were wrong.
    pub frames: u64,
    /// Segments (or their ends) that could not be read.
    pub segments: u64,
}

impl Damage {
    pub(crate) fn any(self) -> bool {
        self.frames + self.segments > 0
    }
}

/// Where a session's transcript ends on disk: what a resumed session continues from.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tail {
    /// One past the largest sequence number on disk.
    pub next_seq: u64,
    /// One past the last stdout and stderr byte on disk.
    pub output_end: [u64; 2],
}

impl SessionFiles {
    /// SessionFiles under `root`, `cap` bytes per session in segments of at most
    /// `segment_bytes` (and at most a quarter of the cap, so trimming keeps most of it).
    pub(crate) fn new(root: PathBuf, segment_bytes: u64, cap: u64) -> Self {
        let segment = segment_bytes.min(cap / 4).max(MIN_SEGMENT);
        Self {
            root,
            segment,
            cap,
            agents: None,
        }
    }

    /// Also removes `<agents>/<id>` when a session is purged.
    pub(crate) fn with_agents(mut self, agents: PathBuf) -> Self {
        self.agents = Some(agents);
        self
    }

    /// The directory of all transcripts.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, id: SessionId) -> PathBuf {
        self.root.join(id.0.to_string())
    }

    /// Largest data a frame carries; longer events are split.
    fn max_data(&self) -> usize {
        (self.segment as usize)
            .saturating_sub(MAGIC.len() + HEADER)
            .max(1)
    }

    /// Creates the root directory.
    pub(crate) fn create_root(&self) -> io::Result<()> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
    }

    /// The writer's view of a session's log, read from its directory. The newest segment's
    /// torn tail (a crash mid-write) is cut at the last whole frame first.
    pub(crate) fn open_log(&self, id: SessionId) -> io::Result<Log> {
        let dir = self.dir(id);
        let mut segments = list(&dir)?;
        let mut next_seq = 0;
        if let Some(newest) = segments.back_mut() {
            let path = segment_path(&dir, newest.number);
            let (good, seq) = repair(&path, self.segment)?;
            newest.bytes = good;
            next_seq = seq;
        }
        Ok(Log {
            dir,
            segments,
            next_seq,
        })
    }

    /// Appends `events` (those not yet written), splitting any longer than a segment; a
    /// [`SessionFiles::sync`] makes them durable. On failure the files are cut back to where
    /// they were, so the same events can be appended again. Returns the bytes added.
    pub(crate) fn append(&self, log: &mut Log, events: &[Event]) -> io::Result<u64> {
        let plan = self.plan(log, events);
        if plan.is_empty() {
            return Ok(0);
        }
        if log.segments.is_empty() {
            create_dir(&log.dir)?;
        }
        for (done, w) in plan.iter().enumerate() {
            if let Err(e) = write_segment(&log.dir, w) {
                for w in &plan[..=done] {
                    undo(&log.dir, w);
                }
                return Err(e);
            }
        }
        let mut added = 0;
        for w in &plan {
            added += w.buf.len() as u64;
            match log.segments.back_mut().filter(|s| s.number == w.number) {
                Some(s) => s.bytes += w.buf.len() as u64,
                None => log.segments.push_back(Segment {
                    number: w.number,
                    bytes: w.buf.len() as u64,
                }),
            }
        }
        log.next_seq = events
            .iter()
            .map(|e| e.seq + 1)
            .fold(log.next_seq, u64::max);
        Ok(added)
    }

    /// The writes that append `events` not yet written: frames packed into the newest segment
    /// and new ones after it.
    fn plan(&self, log: &Log, events: &[Event]) -> Vec<SegmentWrite> {
        let mut plan: Vec<SegmentWrite> = Vec::new();
        let mut newest = log.segments.back().map(|s| (s.number, s.bytes));
        let max_data = self.max_data();
        for e in events.iter().filter(|e| e.seq >= log.next_seq) {
            for (offset, chunk) in chunks(e, max_data) {
                let len = (HEADER + chunk.len()) as u64;
                match newest {
                    Some((number, bytes)) if bytes + len <= self.segment => {
                        if plan.last().is_none_or(|w| w.number != number) {
                            plan.push(SegmentWrite {
                                number,
                                existing: Some(bytes),
                                buf: Vec::new(),
                            });
                        }
                    }
                    _ => {
                        let number = newest.map_or(0, |(n, _)| n + 1);
                        plan.push(SegmentWrite {
                            number,
                            existing: None,
                            buf: MAGIC.to_vec(),
                        });
                        newest = Some((number, MAGIC.len() as u64));
                    }
                }
                let w = plan.last_mut().expect("pushed above");
                frame::encode(e.seq, e.t_ms, e.dir, offset, chunk, &mut w.buf);
                if let Some((_, bytes)) = &mut newest {
                    *bytes += len;
                }
            }
        }
        plan
    }

    /// Deletes the oldest segments while the session holds more than its cap (the newest is
    /// always kept). Returns the bytes freed.
    pub(crate) fn trim(&self, log: &mut Log) -> io::Result<u64> {
        let mut freed = 0;
        while log.bytes() > self.cap && log.segments.len() > 1 {
            let oldest = log.segments[0];
            match fs::remove_file(segment_path(&log.dir, oldest.number)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            log.segments.pop_front();
            freed += oldest.bytes;
        }
        Ok(freed)
    }

    /// Removes everything of a session. Returns the bytes freed.
    pub(crate) fn purge(&self, id: SessionId) -> io::Result<u64> {
        let dir = self.dir(id);
        let bytes = list(&dir)?.iter().map(|s| s.bytes).sum::<u64>() + self.record_bytes(id)?;
        if let Some(agents) = &self.agents {
            match fs::remove_dir_all(agents.join(id.0.to_string())) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Writes a session's final record beside the current one; [`SessionFiles::sync`] then
    /// [`SessionFiles::commit_record`] make it the current one.
    pub(crate) fn stage_record(&self, id: SessionId, value: &[u8]) -> io::Result<()> {
        let dir = self.dir(id);
        create_dir(&dir)?;
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join(STAGED_RECORD))?;
        f.write_all(value)
    }

    /// Makes a staged (and synced) final record the current one.
    pub(crate) fn commit_record(&self, id: SessionId) -> io::Result<()> {
        let dir = self.dir(id);
        fs::rename(dir.join(STAGED_RECORD), dir.join(RECORD_FILE))
    }

    /// Makes everything written under the root durable, with one `syncfs`.
    pub(crate) fn sync(&self) -> io::Result<()> {
        let root = File::open(&self.root)?;
        // SAFETY: syncfs takes a descriptor we own for the duration of the call.
        if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&root)) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// A session's final record, if it has one (the staged one if a crash came between its
    /// sync and its rename).
    pub(crate) fn read_record(&self, id: SessionId) -> io::Result<Option<Vec<u8>>> {
        let dir = self.dir(id);
        for name in [RECORD_FILE, STAGED_RECORD] {
            match fs::read(dir.join(name)) {
                Ok(v) => return Ok(Some(v)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Bytes of a session's final record file (0 without one).
    pub(crate) fn record_bytes(&self, id: SessionId) -> io::Result<u64> {
        match fs::metadata(self.dir(id).join(RECORD_FILE)) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Every final record: (the directory's session id, the file's bytes), read on every
    /// core. Unreadable files are reported as errors with their path.
    pub(crate) fn all_records(&self) -> io::Result<Vec<(SessionId, io::Result<Vec<u8>>)>> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            let entry = entry?;
            if let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| uuid::Uuid::parse_str(n).ok())
            {
                ids.push(SessionId(id));
            }
        }
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(ids.len() / 1024 + 1);
        let chunk = ids.len().div_ceil(threads).max(1);
        let read: Vec<Vec<_>> = std::thread::scope(|scope| {
            let workers: Vec<_> = ids
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .filter_map(|id| match self.read_record(*id) {
                                Ok(Some(v)) => Some((*id, Ok(v))),
                                Ok(None) => None,
                                Err(e) => Some((*id, Err(e))),
                            })
                            .collect()
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("reading does not panic"))
                .collect()
        });
        Ok(read.into_iter().flatten().collect())
    }

    /// Visits a session's events in order, from its files. Damaged frames are skipped and
    /// logged; the visitor stops the scan by returning `Break`.
    pub(crate) fn scan(
        &self,
        id: SessionId,
        mut visit: impl FnMut(Event) -> ControlFlow<()>,
    ) -> io::Result<Damage> {
        let dir = self.dir(id);
        let segments = list(&dir)?;
        let mut damage = Damage::default();
        let newest = segments.back().map(|s| s.number);
        for seg in &segments {
            let path = segment_path(&dir, seg.number);
            let buf = match fs::read(&path) {
                Ok(b) => b,
                // Trimmed between the listing and the read.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let last = Some(seg.number) == newest;
            let flow = scan_segment(&path, &buf, self.segment, last, &mut damage, &mut visit);
            if flow.is_break() {
                break;
            }
        }
        Ok(damage)
    }

    /// Where the session's transcript ends on disk, after cutting a torn tail.
    pub(crate) fn tail(&self, id: SessionId) -> io::Result<Tail> {
        let log = self.open_log(id)?;
        let mut tail = Tail {
            next_seq: log.next_seq,
            output_end: [0, 0],
        };
        self.scan(id, |e| {
            let end = e.offset + e.data.len() as u64;
            match e.dir {
                Dir::Stdout => tail.output_end[0] = tail.output_end[0].max(end),
                Dir::Stderr => tail.output_end[1] = tail.output_end[1].max(end),
                Dir::Input => {}
            }
            tail.next_seq = tail.next_seq.max(e.seq + 1);
            ControlFlow::Continue(())
        })?;
        Ok(tail)
    }
}

impl Log {
    /// Bytes of the session's segment files.
    pub(crate) fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }
}

/// An event's data in pieces of at most `max` bytes, each with its stream offset.
fn chunks(e: &Event, max: usize) -> impl Iterator<Item = (u64, &[u8])> {
    let step = if e.data.is_empty() { 1 } else { max };
    let pieces: Vec<&[u8]> = if e.data.is_empty() {
        vec![&e.data[..]]
    } else {
        e.data.chunks(step).collect()
    };
    let mut offset = e.offset;
    pieces.into_iter().map(move |c| {
        let at = offset;
        if e.dir != Dir::Input {
            offset += c.len() as u64;
        }
        (at, c)
    })
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:016x}.seg"))
}

/// The segments in `dir`, oldest first (none when it does not exist). Files that are not
/// segments are ignored.
fn list(dir: &Path) -> io::Result<VecDeque<Segment>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(VecDeque::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(number) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".seg"))
            .filter(|n| n.len() == 16)
            .and_then(|n| u64::from_str_radix(n, 16).ok())
        else {
            continue;
        };
        let bytes = match entry.metadata() {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        out.push(Segment { number, bytes });
    }
    out.sort_unstable_by_key(|s| s.number);
    Ok(out.into())
}

/// Decodes one segment's frames into `visit`.
fn scan_segment(
    path: &Path,
    buf: &[u8],
    max_len: u64,
    newest: bool,
    damage: &mut Damage,
    visit: &mut impl FnMut(Event) -> ControlFlow<()>,
) -> ControlFlow<()> {
    if buf.len() < MAGIC.len() || buf[..MAGIC.len()] != MAGIC {
        if !(newest && MAGIC.starts_with(buf)) {
            warn!(segment = %path.display(), "transcript segment without its header; skipped");
            damage.segments += 1;
        }
        return ControlFlow::Continue(());
    }
    let mut pos = MAGIC.len();
    loop {
        match frame::decode(buf, pos, max_len as usize) {
            Step::Frame { event, next } => {
                visit(event)?;
                pos = next;
            }
            Step::Damaged { reason, next } => {
                warn!(segment = %path.display(), %reason, "damaged transcript frame; skipped");
                damage.frames += 1;
                pos = next;
            }
            Step::End => return ControlFlow::Continue(()),
            // The newest segment may be mid-append: its cut tail is not written yet.
            Step::Torn if newest => return ControlFlow::Continue(()),
            Step::Torn => {
                warn!(segment = %path.display(), at = pos, "transcript segment ends inside a frame; the rest is lost");
                damage.segments += 1;
                return ControlFlow::Continue(());
            }
            Step::Lost { reason } => {
                warn!(segment = %path.display(), %reason, "unreadable transcript segment tail; the rest is lost");
                damage.segments += 1;
                return ControlFlow::Continue(());
            }
        }
    }
}

/// Cuts a segment after its last whole frame (what a crash mid-write leaves is dropped) and
/// returns its length and one past its largest sequence number.
fn repair(path: &Path, max_len: u64) -> io::Result<(u64, u64)> {
    let buf = fs::read(path)?;
    if buf.len() < MAGIC.len() || buf[..MAGIC.len()] != MAGIC {
        warn!(segment = %path.display(), "newest transcript segment has no header; rewriting it empty");
        let mut f = OpenOptions::new().write(true).truncate(true).open(path)?;
        f.write_all(&MAGIC)?;
        f.sync_data()?;
        return Ok((MAGIC.len() as u64, 0));
    }
    let (mut pos, mut good, mut next_seq) = (MAGIC.len(), MAGIC.len(), 0);
    loop {
        match frame::decode(&buf, pos, max_len as usize) {
            Step::Frame { event, next } => {
                next_seq = next_seq.max(event.seq + 1);
                pos = next;
                good = next;
            }
            Step::Damaged { next, .. } => pos = next,
            Step::End | Step::Torn | Step::Lost { .. } => break,
        }
    }
    if good < buf.len() {
        warn!(
            segment = %path.display(),
            kept = good,
            cut = buf.len() - good,
            "cutting a torn transcript tail at the last whole frame"
        );
        let f = OpenOptions::new().write(true).open(path)?;
        f.set_len(good as u64)?;
        f.sync_data()?;
    }
    Ok((good as u64, next_seq))
}

/// Bytes to write to one segment file: at the end of `existing` bytes, or as a new file.
#[derive(Debug)]
struct SegmentWrite {
    number: u64,
    existing: Option<u64>,
    buf: Vec<u8>,
}

/// Writes one planned piece (the writer syncs the batch).
fn write_segment(dir: &Path, w: &SegmentWrite) -> io::Result<()> {
    let path = segment_path(dir, w.number);
    let file = match w.existing {
        Some(_) => OpenOptions::new().write(true).open(&path)?,
        None => OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?,
    };
    write_all_at(&file, &w.buf, w.existing.unwrap_or(0))
}

fn write_all_at(file: &File, mut buf: &[u8], mut at: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match file.write_at(buf, at) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => {
                buf = &buf[n..];
                at += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Takes back one piece of a failed append: the file is cut to what it held, or removed.
fn undo(dir: &Path, w: &SegmentWrite) {
    let path = segment_path(dir, w.number);
    let result = match w.existing {
        Some(len) => OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(len)),
        None => fs::remove_file(&path),
    };
    if let Err(e) = result {
        if e.kind() != io::ErrorKind::NotFound {
            warn!(segment = %path.display(), error = %e, "cannot undo a failed transcript append");
        }
    }
}

fn create_dir(dir: &Path) -> io::Result<()> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64, dir: Dir, offset: u64, data: &[u8]) -> Event {
        Event {
            seq,
            t_ms: 1_700_000_000_000 + seq,
            dir,
            offset,
            data: data.to_vec(),
        }
    }

    fn all(t: &SessionFiles, id: SessionId) -> (Vec<Event>, Damage) {
        let mut out = Vec::new();
        let damage = t
            .scan(id, |e| {
                out.push(e);
                ControlFlow::Continue(())
            })
            .unwrap();
        (out, damage)
    }

    fn transcripts(cap: u64) -> (tempfile::TempDir, SessionFiles) {
        let dir = tempfile::tempdir().unwrap();
        let t = SessionFiles::new(dir.path().join(SESSIONS_DIR), 4096, cap);
        t.create_root().unwrap();
        (dir, t)
    }

    #[test]
    fn appended_events_read_back_in_order_and_appending_again_writes_nothing_twice() {
        let (_dir, t) = transcripts(1 << 20);
        let id = SessionId::new();
        let mut log = t.open_log(id).unwrap();
        let batch = vec![
            event(0, Dir::Input, 0, b"echo hi"),
            event(1, Dir::Stdout, 0, b"hi\n"),
            event(2, Dir::Stderr, 0, b"warn\n"),
        ];
        let added = t.append(&mut log, &batch).unwrap();
        assert_eq!(added, log.bytes());
        assert_eq!(
            t.append(&mut log, &batch).unwrap(),
            0,
            "a retried batch is skipped"
        );
        let (read, damage) = all(&t, id);
        assert_eq!(read, batch);
        assert!(!damage.any());
        let reopened = t.open_log(id).unwrap();
        assert_eq!((reopened.next_seq, reopened.bytes()), (3, log.bytes()));
    }

    #[test]
    fn the_oldest_segments_go_when_the_cap_is_exceeded_and_the_rest_stays_whole() {
        let cap = 8192;
        let (_dir, t) = transcripts(cap);
        let id = SessionId::new();
        let mut log = t.open_log(id).unwrap();
        let line = [b'x'; 100];
        for seq in 0..200u64 {
            t.append(&mut log, &[event(seq, Dir::Stdout, seq * 100, &line)])
                .unwrap();
            t.trim(&mut log).unwrap();
            assert!(
                log.bytes() <= cap,
                "{} bytes after event {seq}",
                log.bytes()
            );
        }
        let (read, _) = all(&t, id);
        let seqs: Vec<u64> = read.iter().map(|e| e.seq).collect();
        assert!(seqs.len() > 40, "most of the cap is kept: {}", seqs.len());
        assert_eq!(*seqs.last().unwrap(), 199);
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "a contiguous suffix"
        );
    }

    #[test]
    fn an_event_larger_than_a_segment_is_split_with_its_offsets() {
        let (_dir, t) = transcripts(1 << 20);
        let id = SessionId::new();
        let mut log = t.open_log(id).unwrap();
        let big: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        t.append(&mut log, &[event(0, Dir::Stdout, 500, &big)])
            .unwrap();
        let (read, _) = all(&t, id);
        assert!(read.len() > 1);
        let mut at = 500;
        let mut joined = Vec::new();
        for e in &read {
            assert_eq!(e.offset, at);
            at += e.data.len() as u64;
            joined.extend_from_slice(&e.data);
        }
        assert_eq!(joined, big);
    }

    #[test]
    fn a_torn_tail_is_cut_at_the_last_whole_frame_and_appends_continue_after_it() {
        let (_dir, t) = transcripts(1 << 20);
        let id = SessionId::new();
        let mut log = t.open_log(id).unwrap();
        t.append(&mut log, &[event(0, Dir::Stdout, 0, b"kept\n")])
            .unwrap();
        let whole = log.bytes();
        let path = segment_path(&log.dir, 0);
        // A crash mid-write: half of a frame at the end.
        let mut half = Vec::new();
        frame::encode(1, 0, Dir::Stdout, 5, b"lost in the crash\n", &mut half);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&half[..half.len() / 2]).unwrap();
        drop(f);
        let (read, damage) = all(&t, id);
        assert_eq!(read.len(), 1, "readers stop at a torn tail");
        assert!(
            !damage.any(),
            "a torn tail of the newest segment is not damage"
        );

        let mut log = t.open_log(id).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), whole, "cut on open");
        assert_eq!(log.next_seq, 1);
        t.append(&mut log, &[event(1, Dir::Stdout, 5, b"after\n")])
            .unwrap();
        let (read, damage) = all(&t, id);
        let data: Vec<&[u8]> = read.iter().map(|e| &e.data[..]).collect();
        assert_eq!(data, vec![&b"kept\n"[..], &b"after\n"[..]]);
        assert!(!damage.any());
    }

    #[test]
    fn a_flipped_byte_is_reported_and_its_frame_skipped_never_decoded() {
        let (_dir, t) = transcripts(1 << 20);
        let id = SessionId::new();
        let mut log = t.open_log(id).unwrap();
        let batch: Vec<Event> = (0..3)
            .map(|s| event(s, Dir::Stdout, s * 6, b"line-\n"))
            .collect();
        t.append(&mut log, &batch).unwrap();
        let path = segment_path(&log.dir, 0);
        let mut bytes = fs::read(&path).unwrap();
        let middle = MAGIC.len() + (HEADER + 6) + HEADER + 2; // inside the second frame's data
        bytes[middle] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        let (read, damage) = all(&t, id);
        assert_eq!(read.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(damage.frames, 1);
    }

    #[test]
    fn a_segment_deleted_by_hand_is_a_gap_not_an_error() {
        let (_dir, t) = transcripts(1 << 20);
        let id = SessionId::new();
        let mut log = t.open_log(id).unwrap();
        let line = [b'y'; 900];
        for seq in 0..10u64 {
            t.append(&mut log, &[event(seq, Dir::Stdout, seq * 900, &line)])
                .unwrap();
        }
        assert!(log.segments.len() > 2);
        fs::remove_file(segment_path(&log.dir, log.segments[1].number)).unwrap();
        let (read, damage) = all(&t, id);
        assert!(!damage.any());
        assert!(read.len() < 10 && read.last().unwrap().seq == 9);
        let mut log = t.open_log(id).unwrap();
        t.append(&mut log, &[event(10, Dir::Stdout, 9000, b"z")])
            .unwrap();
        assert_eq!(all(&t, id).0.last().unwrap().seq, 10);
    }

    #[test]
    fn purge_removes_the_directory_and_reports_its_bytes() {
        let (_dir, t) = transcripts(1 << 20);
        let id = SessionId::new();
        let mut log = t.open_log(id).unwrap();
        t.append(&mut log, &[event(0, Dir::Stdout, 0, b"bye\n")])
            .unwrap();
        assert_eq!(t.purge(id).unwrap(), log.bytes());
        assert!(!t.dir(id).exists());
        assert_eq!(t.purge(id).unwrap(), 0);
        assert!(all(&t, id).0.is_empty());
    }
}
