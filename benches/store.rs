//! The store: snapshot record writes per second (batched, and with `durability = "always"`
//! at 1 and 64 concurrent writers, whose flushes are shared), and the time to restore 100,000
//! records when a runtime starts: live ones (in sled) and ended ones (final record files).
//!
//! Run: `cargo bench --bench store` (prints a Markdown table). `BENCH_RECORDS` sets the number
//! of records (default 100000); the store lives in a temporary directory on the same disk as
//! `TMPDIR`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use stablehand::config::StoreConfig;
use stablehand::ids::SessionId;
use stablehand::process::Rlimits;
use stablehand::session::{Kind, StateKind};
use stablehand::store::{Event, LiveRecord, Record, SpecRecord, Store, When};
use stablehand::{Config, Runtime};

fn records() -> usize {
    std::env::var("BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000)
}

/// A record shaped like a real shell session's (10 environment variables, a cwd, counters).
fn record(seq: u64) -> Record {
    let env = (0..10)
        .map(|i| {
            (
                format!("VAR_{i}"),
                format!("/usr/local/share/value/{i}/{seq}"),
            )
        })
        .collect();
    Record {
        spec: Arc::new(SpecRecord {
            id: SessionId::new(),
            owner: "local".into(),
            kind: Kind::Shell,
            name: Some(format!("session-{seq}")),
            argv: vec!["bash".into(), "--noprofile".into(), "--norc".into()],
            cwd: PathBuf::from("/home/agent/project"),
            env,
            rlimits: Rlimits::default(),
            idle_timeout_ms: 1_800_000,
            seq,
            created_at_ms: 1_790_000_000_000 + seq,
            options: Default::default(),
            limits: None,
        }),
        live: LiveRecord {
            state: StateKind::Ready,
            state_detail: "Ready".into(),
            cwd: Some("/home/agent/project/src".into()),
            last_active_ms: 1_790_000_000_000 + seq,
            output_end: [4096, 128],
            transcript_seq: 12,
            ..LiveRecord::default()
        },
    }
}

fn config(dir: &std::path::Path) -> StoreConfig {
    StoreConfig {
        data_dir: Some(dir.to_owned()),
        ..StoreConfig::default()
    }
}

fn main() {
    stablehand::telemetry::init();
    let n = records();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rows = Vec::new();

    // Batched: every session's record queued, written in the writer's batches.
    batched(
        dir.path(),
        &format!("batched record writes ({n} sessions, one flush)"),
        (0..n as u64).map(record).collect(),
        &mut rows,
    );

    // durability = "always": each write waits for its flush; concurrent writers share flushes.
    for writers in [1usize, 64] {
        let (store, _) = Store::open(&config(dir.path())).expect("open");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let secs = Duration::from_secs(3);
        let (done, lat) = rt.block_on(async {
            let tasks: Vec<_> = (0..writers)
                .map(|w| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        let mut r = record(w as u64);
                        let mut lat = Vec::new();
                        let end = Instant::now() + secs;
                        while Instant::now() < end {
                            r.live.metrics.ops += 1;
                            let event = Event {
                                seq: r.live.transcript_seq,
                                t_ms: 0,
                                dir: stablehand::store::Dir::Stdout,
                                offset: 0,
                                data: b"ok\n".to_vec(),
                            };
                            r.live.transcript_seq += 1;
                            let t = Instant::now();
                            store.put(r.clone(), vec![event], When::Lazy);
                            store.sync().await.unwrap().unwrap();
                            lat.push(t.elapsed().as_micros() as u64);
                        }
                        lat
                    })
                })
                .collect();
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            (all.len(), all)
        });
        let mut lat = lat;
        lat.sort_unstable();
        rows.push(format!(
            "| durable record writes (durability=always), {writers} writer(s) | {:.0} records/s | p50 {} µs per acknowledged write |",
            done as f64 / secs.as_secs_f64(),
            lat[lat.len() / 2]
        ));
        store.close();
    }

    // Restore: open the store and index every record, as `Runtime::start` does.
    restore(dir.path(), "live records, in sled", &mut rows);

    // The same number of ended sessions: final records, one file each.
    let ended = tempfile::tempdir().expect("temp dir");
    let finals = (0..n as u64)
        .map(|seq| {
            let mut r = record(seq);
            r.live.state = StateKind::Ended;
            r.live.state_detail = "Ended (exit code 0)".into();
            r
        })
        .collect();
    batched(
        ended.path(),
        &format!("batched final records ({n} ended sessions, one file each)"),
        finals,
        &mut rows,
    );
    restore(
        ended.path(),
        "ended sessions, final record files",
        &mut rows,
    );

    println!("| measure | result | detail |\n|---|---|---|");
    for r in rows {
        println!("{r}");
    }
}

/// Queues every record at once and times until the writer's batches have flushed them.
fn batched(dir: &std::path::Path, what: &str, prepared: Vec<Record>, rows: &mut Vec<String>) {
    let n = prepared.len();
    let (store, _) = Store::open(&config(dir)).expect("open");
    let t = Instant::now();
    for r in prepared {
        store.put(r, Vec::new(), When::Lazy);
    }
    wait(&store);
    let s = t.elapsed();
    rows.push(format!(
        "| {what} | {:.0} records/s | {:.2} s |",
        n as f64 / s.as_secs_f64(),
        s.as_secs_f64()
    ));
    store.close();
}

/// Opens the store in `dir` and indexes every record, as `Runtime::start` does.
fn restore(dir: &std::path::Path, what: &str, rows: &mut Vec<String>) {
    {
        let c = Config {
            store: config(dir),
            ..Config::default()
        };
        let sys = actix::System::new();
        let t = Instant::now();
        let rt = sys.block_on(async { Runtime::start(c) }).expect("start");
        let s = t.elapsed();
        let restored = rt.handle().store_stats().restored;
        rows.push(format!(
            "| restore at start ({restored} {what}, store open + index) | {:.2} s | {:.1} µs per record |",
            s.as_secs_f64(),
            s.as_secs_f64() * 1e6 / restored.max(1) as f64
        ));
        sys.block_on(rt.shutdown());
    }
}

/// Waits until everything queued is flushed.
fn wait(store: &Store) {
    let rx = store.sync();
    rx.blocking_recv().expect("writer").expect("flush");
}
