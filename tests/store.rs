//! The store's transcripts and writer: reads see what is being written, a full disk loses
//! nothing acknowledged, damage is reported and skipped, a schema-1 data dir still opens.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stablehand::session::messages::{End, Read};
use stablehand::session::{StateKind, Stream};
use stablehand::store::{SESSIONS_DIR, STORE_DIR};
use stablehand::Config;

use crate::util::*;
use crate::wire::StdioServer;

fn stored_config(dir: &Path) -> Config {
    let mut c = config();
    c.store.in_memory = false;
    c.store.data_dir = Some(dir.to_owned());
    c.store.flush_interval_ms = 20;
    c
}

fn ok(result: Value) -> Value {
    assert_ne!(result["isError"], json!(true), "tool failed: {result}");
    result["structuredContent"].clone()
}

/// Everything on stdout from cursor 0, as one read.
fn whole() -> Read {
    Read {
        stream: Stream::Stdout,
        cursor: Some(0),
        max_bytes: Some(1 << 20),
        wait_ms: None,
    }
}

#[test]
fn a_read_racing_a_batch_write_sees_the_record_and_the_events_in_flight() {
    let data = tempfile::tempdir().unwrap();
    with_runtime(stored_config(data.path()), |rt| async move {
        let h = rt.handle();
        let id = shell(&h).await;
        exec(&h, id, "echo before").await;
        bounded(LIMIT, h.store().sync()).await.unwrap().unwrap();
        // The writer takes the next batch and stops before writing it.
        let hold = h.store().hold_writes();
        exec(&h, id, "echo racing-output").await;
        h.end(id, End::default()).await.unwrap();
        let store = h.store().clone();
        let parked = tokio::task::spawn_blocking(move || store.wait_parked(LIMIT))
            .await
            .unwrap();
        assert!(parked, "the writer took the batch");
        // Once the actor is gone, reads come from the store: the batch in flight.
        bounded(LIMIT, async {
            while h.addr(id).is_ok() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        let page = bounded(LIMIT, h.read(id, whole())).await.unwrap();
        assert_eq!(page.data, "before\nracing-output\n");
        assert_eq!(page.state, StateKind::Ended);
        let info = bounded(LIMIT, h.state(id)).await.unwrap();
        assert_eq!(info.state, StateKind::Ended);
        assert_eq!(info.metrics.ops, 2);
        assert!(
            h.store().wait_parked(Duration::ZERO),
            "the reads happened while the batch was in flight"
        );
        drop(hold);
        bounded(LIMIT, h.store().sync()).await.unwrap().unwrap();
        let page = bounded(LIMIT, h.read(id, whole())).await.unwrap();
        assert_eq!(page.data, "before\nracing-output\n");
        rt
    });
}

#[test]
fn a_schema_1_data_dir_opens_and_its_transcripts_read_as_before() {
    // tests/fixtures/schema1-store.tar.gz was written by the build before segment files
    // (commit d95e24d) with tests/fixtures/make_schema1_store.py: a shell named "keeper"
    // (cd /tmp; out-one / err-one; line-1..line-200), suspended at shutdown, and a shell
    // named "ended" (bye / bye-err), ended.
    let data = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schema1-store.tar.gz");
    let status = std::process::Command::new("tar")
        .arg("xzf")
        .arg(&fixture)
        .arg("-C")
        .arg(data.path())
        .status()
        .unwrap();
    assert!(status.success());
    // The fixture's sessions settled when it was written: a retention period measured from
    // then would purge them on a later day, so this test keeps them for a century.
    let mut cfg = stored_config(data.path());
    cfg.runtime.retention_ms = 100 * 365 * 24 * 3600 * 1000;
    with_runtime(cfg.clone(), |rt| async move {
        // The fixture was written over stdio, whose principal was "stdio" then: its sessions
        // are the local principal's now, as every unauthenticated client's.
        let h = rt.handle();
        let stats = h.store_stats();
        assert_eq!(stats.restored, 2, "{stats:?}");
        assert!(stats.migrated_events > 0, "{stats:?}");
        let listed = h.list(&Default::default()).unwrap().sessions;
        let by_name = |n: &str| {
            listed
                .iter()
                .find(|s| s.name.as_deref() == Some(n))
                .unwrap_or_else(|| panic!("{n} listed: {listed:?}"))
                .clone()
        };
        let keeper = by_name("keeper");
        let ended = by_name("ended");
        assert_eq!(keeper.state, StateKind::Suspended);
        assert_eq!(ended.state, StateKind::Ended);

        let out = bounded(LIMIT, h.read(keeper.session_id, whole()))
            .await
            .unwrap();
        let expected: String = std::iter::once("out-one".to_owned())
            .chain((1..=200).map(|i| format!("line-{i}")))
            .map(|l| l + "\n")
            .collect();
        assert_eq!(out.data, expected);
        assert_eq!(
            out.cursor,
            expected.len() as u64,
            "the same cursors as before"
        );
        let err = read_all(&h, keeper.session_id, Stream::Stderr).await;
        assert_eq!(
            err.data, "err-one\nexit\n",
            "bash's goodbye when it was suspended"
        );
        let bye = bounded(LIMIT, h.read(ended.session_id, whole()))
            .await
            .unwrap();
        assert_eq!(bye.data, "bye\n");

        // Resumed, it continues its transcript and its cursors.
        let resumed = bounded(LIMIT, h.resume(keeper.session_id)).await.unwrap();
        assert_eq!(resumed.cwd.as_deref(), Some("/tmp"));
        let r = exec(&h, keeper.session_id, "echo after-upgrade").await;
        assert_eq!(r.stdout, "after-upgrade\n");
        assert_eq!(r.cursor, expected.len() as u64 + 14);
        rt
    });
    // The old tree is gone: the store is schema 2 now and opens without moving anything.
    with_runtime(cfg, |rt| async move {
        let stats = rt.handle().store_stats();
        assert_eq!((stats.restored, stats.migrated_events), (2, 0), "{stats:?}");
        rt
    });
}

/// The segment files of one session.
fn segments(data: &Path, id: &str) -> Vec<PathBuf> {
    // Files are named by the bare uuid, without the handle's node prefix.
    let id = id
        .rsplit('.')
        .next()
        .filter(|u| u.len() == 36)
        .unwrap_or(id);
    let mut files: Vec<PathBuf> = std::fs::read_dir(data.join(SESSIONS_DIR).join(id))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    files.sort();
    files
}

#[test]
fn damaged_segments_are_reported_and_skipped_and_other_sessions_are_untouched() {
    let data = tempfile::tempdir().unwrap();
    let mut c = stored_config(data.path());
    c.store.segment_bytes = 4096;
    let ids = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let ids2 = ids.clone();
    with_runtime(c.clone(), move |rt| async move {
        let h = rt.handle();
        for _ in 0..3 {
            let id = shell(&h).await;
            for i in 0..40 {
                exec(&h, id, &format!("printf 'row-%03d-%0100d\\n' {i} 0")).await;
            }
            h.end(id, End::default()).await.unwrap();
            ids2.lock().unwrap().push(id);
        }
        rt
    });
    let ids = ids.lock().unwrap().clone();
    let (flipped, cut, deleted) = (ids[0], ids[1], ids[2]);
    // A flipped byte inside one row's output frame of one session...
    let seg = &segments(data.path(), &flipped.to_string())[0];
    let mut bytes = std::fs::read(seg).unwrap();
    let at = bytes
        .windows(8)
        .position(|w| w == b"row-005-")
        .expect("row 5 is in the first segment");
    bytes[at + 20] ^= 0x10;
    std::fs::write(seg, &bytes).unwrap();
    // ...the last segment of another truncated by hand, a middle segment of a third deleted.
    let last = segments(data.path(), &cut.to_string()).pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    let middle = segments(data.path(), &deleted.to_string());
    assert!(middle.len() >= 3, "{middle:?}");
    std::fs::remove_file(&middle[1]).unwrap();

    with_runtime(c, move |rt| async move {
        let h = rt.handle();
        // Every row read page by page, and the bytes reported dropped.
        let rows = |id| {
            let h = h.clone();
            async move {
                let (mut got, mut cursor, mut dropped) = (Vec::new(), 0, 0);
                loop {
                    let mut req = whole();
                    req.cursor = Some(cursor);
                    let page = bounded(LIMIT, h.read(id, req)).await.unwrap();
                    for line in page.data.lines() {
                        got.push(
                            line[4..7]
                                .parse::<usize>()
                                .expect("whole rows, never garbage"),
                        );
                    }
                    dropped += page.dropped_bytes;
                    cursor = page.cursor;
                    if page.eof {
                        return (got, dropped);
                    }
                }
            }
        };
        let (got, dropped) = rows(flipped).await;
        let expected: Vec<usize> = (0..40).filter(|&r| r != 5).collect();
        assert_eq!(got, expected, "only the damaged row is skipped");
        assert!(dropped > 0, "the skipped bytes are reported as dropped");
        assert!(h.store_stats().damaged >= 1, "{:?}", h.store_stats());

        let (got, _) = rows(cut).await;
        assert_eq!(got, (0..got.len()).collect::<Vec<_>>(), "an intact prefix");
        assert!(got.len() >= 39, "at most the cut frame is gone: {got:?}");

        let (got, dropped) = rows(deleted).await;
        assert!(
            dropped > 0,
            "the deleted segment's bytes are reported as dropped"
        );
        assert!(got.len() < 40 && got.last() == Some(&39), "{got:?}");
        assert!(got.windows(2).all(|w| w[0] < w[1]));
        rt
    });
}

#[test]
fn an_output_larger_than_a_segment_is_stored_whole() {
    let data = tempfile::tempdir().unwrap();
    let mut c = stored_config(data.path());
    c.store.segment_bytes = 4096;
    with_runtime(c, |rt| async move {
        let h = rt.handle();
        let id = shell(&h).await;
        let r = exec(&h, id, "head -c 100000 /dev/zero | tr '\\0' 'z'; echo").await;
        assert_eq!(r.stdout.len(), 100_001);
        h.end(id, End::default()).await.unwrap();
        bounded(LIMIT, async {
            while h.addr(id).is_ok() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        let page = bounded(LIMIT, h.read(id, whole())).await.unwrap();
        assert!(
            page.data == r.stdout,
            "read back {} bytes of {}: {:?}",
            page.data.len(),
            r.stdout.len(),
            &page.data[page.data.len().saturating_sub(40)..]
        );
        bounded(LIMIT, h.store().sync()).await.unwrap().unwrap();
        let files = segments(data.path(), &id.to_string());
        assert!(files.len() > 20, "{} segments", files.len());
        assert!(files
            .iter()
            .all(|f| std::fs::metadata(f).unwrap().len() <= 4096));
        rt
    });
}

#[test]
fn a_data_dir_that_cannot_be_created_is_refused_naming_it() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let mut c = config();
    c.store.in_memory = false;
    c.store.data_dir = Some(file.path().join("data"));
    let sys = actix::System::new();
    let err = sys
        .block_on(async move { stablehand::Runtime::start(c).map(|_| ()) })
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&file.path().display().to_string()) && err.contains("data directory"),
        "{err}"
    );
}

/// Sets the soft RLIMIT_FSIZE of process `pid` (the hard limit stays).
fn set_file_size_limit(pid: u32, soft: Option<u64>) {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit reads and writes rlimit structs we own.
    unsafe {
        assert_eq!(
            libc::prlimit(pid as i32, libc::RLIMIT_FSIZE, std::ptr::null(), &mut old),
            0
        );
        let new = libc::rlimit {
            rlim_cur: soft.unwrap_or(old.rlim_max),
            rlim_max: old.rlim_max,
        };
        assert_eq!(
            libc::prlimit(pid as i32, libc::RLIMIT_FSIZE, &new, std::ptr::null_mut()),
            0,
            "{}",
            std::io::Error::last_os_error()
        );
    }
}

/// The store's counters, from the metrics resource.
fn store_stats(s: &mut StdioServer, id: u64) -> Value {
    let r = s.call(id, "resources/read", json!({"uri": "stablehand://metrics"}));
    let text = r["result"]["contents"][0]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    serde_json::from_str::<Value>(&text).unwrap()["store"].clone()
}

/// Polls the store's counters until `done` holds, failing after the wire limit.
fn until_store(s: &mut StdioServer, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    let mut id = 10_000;
    loop {
        id += 1;
        let stats = store_stats(s, id);
        if done(&stats) {
            return stats;
        }
        assert!(start.elapsed() < crate::wire::WAIT, "never {what}: {stats}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn server(data: &Path, config: &str) -> StdioServer {
    let cfg = data.join("test.toml");
    std::fs::write(&cfg, config).unwrap();
    let mut s = StdioServer::start_with(&[
        "--data-dir",
        data.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ]);
    s.initialize();
    s
}

#[test]
fn when_the_disk_refuses_writes_sessions_keep_working_and_nothing_is_lost() {
    let data = tempfile::tempdir().unwrap();
    let config = "[store]\nflush_interval_ms = 20\n";
    let mut s = server(data.path(), config);
    let a = ok(s.tool(1, "session_create", json!({"name": "a"})))["session_id"].clone();
    ok(s.tool(
        2,
        "session_exec",
        json!({"session_id": a, "input": "echo before-full"}),
    ));
    until_store(&mut s, "written", |st| st["batches"].as_u64() > Some(1));

    // The disk is full: every write that grows a file fails.
    set_file_size_limit(s.child.id(), Some(0));
    let r = ok(s.tool(
        3,
        "session_exec",
        json!({"session_id": a, "input": "echo during-full-1"}),
    ));
    assert_eq!(r["stdout"], "during-full-1\n");
    let failing = until_store(&mut s, "failing", |st| st["failing"] == json!(true));
    assert!(
        failing["last_error"]
            .as_str()
            .unwrap()
            .contains("too large"),
        "the error names the cause: {failing}"
    );
    // The server serves meanwhile: calls, a new session, another exec.
    assert!(s.call(4, "ping", json!({}))["result"].is_object());
    let b = ok(s.tool(5, "session_create", json!({"name": "b"})))["session_id"].clone();
    ok(s.tool(
        6,
        "session_exec",
        json!({"session_id": b, "input": "echo in-b"}),
    ));
    ok(s.tool(
        7,
        "session_exec",
        json!({"session_id": a, "input": "echo during-full-2"}),
    ));

    // Space returns: the kept changes land by themselves.
    set_file_size_limit(s.child.id(), None);
    let healed = until_store(&mut s, "writing again", |st| st["failing"] == json!(false));
    assert_eq!(healed["failure_episodes"], 1, "one episode: {healed}");
    s.close_stdin();
    assert!(s.wait_exit().success());

    let mut s = server(data.path(), config);
    let text = ok(s.tool(1, "session_read", json!({"session_id": a, "cursor": 0})));
    assert_eq!(
        text["data"], "before-full\nduring-full-1\nduring-full-2\n",
        "nothing written while the disk was full was lost"
    );
    let text = ok(s.tool(2, "session_read", json!({"session_id": b, "cursor": 0})));
    assert_eq!(text["data"], "in-b\n");
    let state = ok(s.tool(3, "session_state", json!({"session_id": a})));
    assert_eq!(state["metrics"]["ops"], 3);
}

#[test]
fn a_durable_call_reports_a_failed_write_and_its_change_still_lands_later() {
    let data = tempfile::tempdir().unwrap();
    let config = "[store]\ndurability = \"always\"\n";
    let mut s = server(data.path(), config);
    let a = ok(s.tool(1, "session_create", json!({})))["session_id"].clone();
    set_file_size_limit(s.child.id(), Some(0));
    let r = s.tool(
        2,
        "session_exec",
        json!({"session_id": a, "input": "echo unconfirmed"}),
    );
    assert_eq!(r["isError"], true, "{r}");
    let text = r["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("store"), "the error names the store: {text}");
    // The session itself is fine.
    set_file_size_limit(s.child.id(), None);
    let r = ok(s.tool(
        3,
        "session_exec",
        json!({"session_id": a, "input": "echo confirmed"}),
    ));
    assert_eq!(r["stdout"], "confirmed\n");
    s.close_stdin();
    assert!(s.wait_exit().success());

    let mut s = server(data.path(), config);
    let text = ok(s.tool(1, "session_read", json!({"session_id": a, "cursor": 0})));
    assert_eq!(text["data"], "unconfirmed\nconfirmed\n");
}

#[test]
fn an_ended_session_keeps_no_actor_and_answers_from_the_store() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_owned();
    with_runtime(stored_config(data.path()), |rt| async move {
        let h = rt.handle();
        let id = shell(&h).await;
        exec(&h, id, "echo last words; echo oops >&2").await;
        h.end(id, End::default()).await.unwrap();
        bounded(LIMIT, async {
            while h.addr(id).is_ok() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        let info = bounded(LIMIT, h.state(id)).await.unwrap();
        assert_eq!(info.state, StateKind::Ended);
        assert_eq!(info.pid, None);
        assert_eq!(read_all(&h, id, Stream::Stdout).await.data, "last words\n");
        let stderr = read_all(&h, id, Stream::Stderr).await.data;
        assert!(stderr.starts_with("oops\n"), "{stderr:?}");
        bounded(LIMIT, h.store().sync()).await.unwrap().unwrap();
        let record = dir.join(SESSIONS_DIR).join(id.0.to_string()).join("record");
        assert!(record.exists(), "its final record is a file");
        rt
    });
    // sled keeps only the records that can still change.
    let db = open_sled_when_free(&data.path().join(STORE_DIR));
    assert_eq!(db.open_tree("sessions").unwrap().len(), 0);
}
