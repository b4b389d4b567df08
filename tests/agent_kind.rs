//! Agent sessions: JSON-lines turns against a fake agent CLI (tests/fixtures/fake_agent.py).

use serde_json::json;
use stablehand::session::kind::AgentOptions;
use stablehand::session::messages::{CreateRequest, Exec, SendInput, Usage};
use stablehand::session::{Kind, StateKind, Stream};
use stablehand::{Handle, SessionId};

use crate::util::*;

const FAKE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/fake_agent.py");

/// An agent session running the fake agent with `args`, ending turns by `options`.
async fn agent(h: &Handle, args: &[&str], options: Option<AgentOptions>) -> SessionId {
    let mut command = vec!["python3".to_string(), FAKE.to_string()];
    command.extend(args.iter().map(|a| a.to_string()));
    let req = CreateRequest {
        kind: Some(Kind::Agent),
        command: Some(command),
        agent: options,
        ..Default::default()
    };
    let info = bounded(LIMIT, h.create(req)).await.expect("agent starts");
    assert_eq!(info.kind, Kind::Agent);
    info.session_id
}

#[test]
fn a_turn_returns_its_messages_result_and_usage_and_metrics_count_them() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = agent(&h, &[], None).await;

        let r = exec(&h, id, "hello").await;
        assert!(!r.timed_out && !r.session_ended, "{r:?}");
        assert!(r.error.is_none(), "{r:?}");
        let messages = r.messages.as_ref().expect("an agent turn has messages");
        let types: Vec<&str> = messages
            .iter()
            .map(|m| m["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["system", "assistant", "result"]);
        assert_eq!(messages[1]["message"]["content"][0]["text"], "echo: hello");
        let result = r.result.as_ref().expect("the turn-end line");
        assert_eq!(result["subtype"], "success");
        assert_eq!(result["result"], "echo: hello");
        assert_eq!(&messages[2], result);
        // The result line carries the turn's totals: they are not added to the assistant's.
        assert_eq!(
            r.usage,
            Some(Usage {
                input_tokens: 5,
                output_tokens: 11
            })
        );
        // The raw lines are the exec's stdout.
        assert_eq!(r.stdout.lines().count(), 3);
        assert!(
            r.stdout.contains("\"result\":\"echo: hello\""),
            "{}",
            r.stdout
        );

        // Multi-line text is one JSON line: the agent sees the whole message.
        let r = exec(&h, id, "two\nlines").await;
        let messages = r.messages.as_ref().unwrap();
        assert_eq!(messages.len(), 2, "{messages:?}"); // no init line after the first turn
        assert_eq!(r.result.as_ref().unwrap()["result"], "echo: two\nlines");
        assert_eq!(
            r.usage,
            Some(Usage {
                input_tokens: 9,
                output_tokens: 15
            })
        );

        // A JSON object is sent as it is (here with string content).
        let raw = json!({"type": "user", "message": {"role": "user", "content": "raw"}});
        let r = exec(&h, id, &raw.to_string()).await;
        assert_eq!(r.result.as_ref().unwrap()["result"], "echo: raw");

        let info = h.state(id).await.unwrap();
        assert_eq!(info.state, StateKind::Ready);
        assert_eq!(info.metrics.messages, 3 + 2 + 2);
        assert_eq!(info.metrics.input_tokens, 5 + 9 + 3);
        assert_eq!(info.metrics.output_tokens, 11 + 15 + 9);
        rt
    });
}

#[test]
fn a_custom_turn_end_rule_and_summed_usage() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let options = AgentOptions {
            turn_end_pointer: "/kind".into(),
            turn_end_value: json!("done"),
            ..AgentOptions::default()
        };
        let id = agent(&h, &["--kind-done"], Some(options)).await;
        let r = exec(&h, id, "hi").await;
        let messages = r.messages.as_ref().unwrap();
        // hello, the decoy {"type":"result"} (not the end under this rule), say, say, say, done.
        assert_eq!(messages.len(), 6, "{messages:?}");
        assert_eq!(messages[1]["type"], "result");
        assert_eq!(r.result, Some(json!({"kind": "done", "answer": "HI"})));
        // No totals on the end line: summed per message id (the repeated `b1` counts once).
        assert_eq!(
            r.usage,
            Some(Usage {
                input_tokens: 11,
                output_tokens: 22
            })
        );
        let r = exec(&h, id, "again").await;
        assert_eq!(r.messages.as_ref().unwrap().len(), 5);
        assert_eq!(r.result.as_ref().unwrap()["answer"], "AGAIN");
        let info = h.state(id).await.unwrap();
        assert_eq!(info.metrics.messages, 11);
        assert_eq!(info.metrics.input_tokens, 22);
        assert_eq!(info.metrics.output_tokens, 44);
        rt
    });
}

#[test]
fn a_slow_turn_times_out_with_partial_messages_then_the_rest_can_be_read() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = agent(&h, &[], None).await;
        exec(&h, id, "warm up").await;

        let slow = exec_with(&h, id, "slow", 700).await;
        assert!(slow.timed_out, "{slow:?}");
        assert!(slow.result.is_none() && slow.error.is_none(), "{slow:?}");
        let messages = slow.messages.as_ref().expect("partial messages");
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert_eq!(messages[0]["type"], "assistant");
        assert_eq!(h.state(id).await.unwrap().state, StateKind::Busy);

        // The next turn queues behind the running one and gets only its own lines.
        let next = exec(&h, id, "next").await;
        assert!(!next.timed_out);
        let messages = next.messages.as_ref().unwrap();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert_eq!(next.result.as_ref().unwrap()["result"], "echo: next");

        // The slow turn's end is in the log, after the cursor its exec returned.
        let rest = read_until(
            &h,
            id,
            Stream::Stdout,
            slow.cursor,
            "\"result\":\"echo: slow\"",
        )
        .await
        .0;
        assert!(!rest.contains("echo: warm up"), "{rest}");
        until_state(&h, id, StateKind::Ready).await;
        // The timed-out turn's messages count too, once it ended: 3 turns of 2 lines plus
        // the system line of the first.
        assert_eq!(h.state(id).await.unwrap().metrics.messages, 7);
        rt
    });
}

#[test]
fn an_agent_that_dies_mid_turn_returns_the_partial_turn_and_an_error() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = agent(&h, &[], None).await;
        let r = exec(&h, id, "crash").await;
        assert!(r.session_ended && !r.timed_out, "{r:?}");
        assert_eq!(r.exit_code, Some(3));
        let messages = r.messages.as_ref().expect("partial messages");
        let types: Vec<&str> = messages
            .iter()
            .map(|m| m["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["system", "assistant"]);
        assert!(r.result.is_none());
        let e = r
            .error
            .as_ref()
            .expect("an error says why the turn did not finish");
        assert_eq!(e.kind, "AgentExited");
        assert_eq!(e.message, "the agent exited mid-turn (exit code 3)");
        // Partial usage: the assistant line's.
        assert_eq!(
            r.usage,
            Some(Usage {
                input_tokens: 5,
                output_tokens: 11
            })
        );
        until_state(&h, id, StateKind::Ended).await;
        rt
    });
}

#[test]
fn a_line_that_is_not_json_is_kept_as_text_and_the_turn_completes() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = agent(&h, &[], None).await;
        let r = exec(&h, id, "garbage").await;
        assert!(r.error.is_none(), "{r:?}");
        let messages = r.messages.as_ref().unwrap();
        assert_eq!(messages.len(), 4, "{messages:?}");
        assert_eq!(messages[2], json!({"type": "text", "text": "not json {"}));
        assert_eq!(r.result.as_ref().unwrap()["result"], "echo: garbage");
        assert!(r.stdout.contains("\nnot json {\n"), "{}", r.stdout);
        let r = exec(&h, id, "after").await;
        assert_eq!(r.result.as_ref().unwrap()["result"], "echo: after");
        rt
    });
}

#[test]
fn invalid_json_sent_to_the_agent_is_answered_and_nothing_is_lost() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let id = agent(&h, &[], None).await;
        let e = h
            .exec(
                id,
                Exec {
                    input: "  \n".into(),
                    timeout_ms: Some(5000),
                    interactive: false,
                },
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");

        // Raw bytes through send: the agent's error line lands in the log, outside any turn.
        let sent = h
            .send(
                id,
                SendInput {
                    data: "this is {not json\n".into(),
                    eof: false,
                },
            )
            .await
            .unwrap();
        let text = read_until(&h, id, Stream::Stdout, sent.cursor, "invalid JSON on stdin")
            .await
            .0;
        assert!(text.contains("\"type\":\"error\""), "{text}");

        // Text that looks like broken JSON is a message like any other.
        let r = exec(&h, id, "{not json").await;
        assert_eq!(r.result.as_ref().unwrap()["result"], "echo: {not json");
        assert!(
            !r.messages
                .as_ref()
                .unwrap()
                .iter()
                .any(|m| m["type"] == "error"),
            "{r:?}"
        );
        let all = read_all(&h, id, Stream::Stdout).await;
        assert!(all.data.contains("invalid JSON on stdin"), "{}", all.data);
        assert!(all.data.contains("echo: {not json"), "{}", all.data);
        assert_eq!(h.state(id).await.unwrap().state, StateKind::Ready);
        rt
    });
}

#[test]
fn a_turn_end_pointer_that_is_not_a_json_pointer_is_refused_at_create() {
    with_runtime(config(), |rt| async move {
        let h = rt.handle();
        let err = h
            .create(CreateRequest {
                kind: Some(Kind::Agent),
                command: Some(vec!["cat".into()]),
                agent: Some(AgentOptions {
                    turn_end_pointer: "type".into(),
                    ..AgentOptions::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("agent.turn_end_pointer"), "{err}");
        rt
    });
}

// Conversations: the fake agent keeps them like Claude Code (tests/fixtures/fake_agent.py),
// under the agent profile `fake` (Claude Code's rules, matched by name, not by program).

/// A config whose store is `dir`, with the `fake` profile (and `max_sessions` live).
fn kept(dir: &std::path::Path, max_sessions: usize) -> stablehand::Config {
    let mut c = config();
    c.store.in_memory = false;
    c.store.data_dir = Some(dir.to_owned());
    c.runtime.max_sessions = max_sessions;
    let mut fake = stablehand::config::AgentProfile::claude();
    fake.programs.clear();
    c.agents.insert("fake".into(), fake);
    c
}

/// The `fake` profile's options.
fn fake() -> Option<AgentOptions> {
    Some(AgentOptions {
        profile: Some("fake".into()),
        ..AgentOptions::default()
    })
}

/// The turn number of the conversation that answered `r`, and its id.
fn turn(r: &stablehand::session::messages::ExecResult) -> (u64, String) {
    assert!(r.error.is_none(), "the turn failed: {r:?}");
    let result = r
        .result
        .as_ref()
        .unwrap_or_else(|| panic!("no result: {r:?}"));
    (
        result["turn"].as_u64().unwrap(),
        result["session_id"].as_str().unwrap().to_owned(),
    )
}

/// Suspends idle `id` by creating (and ending) a shell that needs its place.
async fn evict(h: &Handle, id: SessionId) {
    let other = shell(h).await;
    until_state(h, id, StateKind::Suspended).await;
    h.end(other, Default::default()).await.unwrap();
}

#[test]
fn the_conversation_and_counters_survive_eviction() {
    let data = tempfile::tempdir().unwrap();
    let root = data.path().to_owned();
    with_runtime(kept(data.path(), 1), |rt| async move {
        let h = rt.handle();
        let id = agent(&h, &[], fake()).await;
        let r = exec(&h, id, "one").await;
        let (n, conversation) = turn(&r);
        assert_eq!(n, 1);
        let info = h.state(id).await.unwrap();
        assert_eq!(
            info.agent_session_id.as_deref(),
            Some(conversation.as_str())
        );
        assert_eq!(
            info.agent_conversation.as_deref(),
            Some("a new conversation")
        );
        let own = root.join("agents").join(id.0.to_string());
        assert!(own.join("conversations").join(&conversation).is_file());
        let before = info.metrics;
        assert_eq!((before.messages, before.input_tokens), (3, 3));

        evict(&h, id).await;
        let stored = h.state(id).await.unwrap();
        assert_eq!(
            stored.agent_session_id.as_deref(),
            Some(conversation.as_str())
        );
        assert_eq!(stored.metrics, before);

        let resumed = bounded(LIMIT, h.resume(id)).await.expect("resume");
        let note = resumed.agent_conversation.unwrap();
        assert_eq!(
            note,
            format!("continues conversation {conversation} (agents.fake.resume_args)")
        );
        let r = exec(&h, id, "two").await;
        assert_eq!(turn(&r), (2, conversation.clone()), "{r:?}");
        let info = h.state(id).await.unwrap();
        assert_eq!(info.metrics.messages, before.messages + 3); // a new process: init again
        assert_eq!(info.metrics.input_tokens, before.input_tokens + 3);
        rt
    });
}

#[test]
fn the_agents_directory_goes_when_its_session_is_purged() {
    let data = tempfile::tempdir().unwrap();
    let root = data.path().to_owned();
    let mut c = kept(data.path(), 10);
    c.runtime.retention_ms = 0;
    with_runtime(c, |rt| async move {
        let h = rt.handle();
        let id = agent(&h, &[], fake()).await;
        let (_, conversation) = turn(&exec(&h, id, "one").await);
        let own = root.join("agents").join(id.0.to_string());
        assert!(own.join("conversations").join(conversation).is_file());
        // Ended, then purged after retention (0): the agent's directory goes with it.
        h.end(id, Default::default()).await.unwrap();
        until("the agent's directory is removed", || !own.exists()).await;
        rt
    });
}

#[test]
fn a_conversation_the_agent_cannot_continue_leaves_the_session_suspended_until_a_fresh_start() {
    let data = tempfile::tempdir().unwrap();
    let root = data.path().to_owned();
    with_runtime(kept(data.path(), 1), |rt| async move {
        let h = rt.handle();
        let id = agent(&h, &[], fake()).await;
        let (_, conversation) = turn(&exec(&h, id, "one").await);
        evict(&h, id).await;
        let file = root
            .join("agents")
            .join(id.0.to_string())
            .join("conversations")
            .join(&conversation);
        std::fs::remove_file(file).unwrap();

        // The agent exits at once: the session is Suspended again, saying why, with its record.
        // A turn sent meanwhile fails, whether it reached the agent before its exit or not.
        bounded(LIMIT, h.resume(id))
            .await
            .expect("resume starts the agent");
        let early = h
            .exec(
                id,
                stablehand::session::messages::Exec {
                    input: "lost".into(),
                    ..Default::default()
                },
            )
            .await;
        match early {
            Ok(r) => assert_eq!(
                r.error.map(|e| e.kind).as_deref(),
                Some("AgentResumeFailed")
            ),
            Err(e) => assert!(e.to_string().contains("Suspended"), "{e}"),
        }
        until_state(&h, id, StateKind::Suspended).await;
        let info = h.state(id).await.unwrap();
        let detail = &info.state_detail;
        assert!(
            detail.contains("agents.fake.resume_args (--resume ")
                && detail.contains("No conversation found with session ID")
                && detail.contains("resume with fresh"),
            "{detail}"
        );
        assert_eq!(
            info.agent_session_id.as_deref(),
            Some(conversation.as_str())
        );
        let note = info.agent_conversation.clone().unwrap();
        assert!(note.contains("was not continued"), "{note}");
        // Nothing restarts it: it stays Suspended until asked (one resume in the trail).
        let resumes = |i: &stablehand::session::messages::SessionInfo| {
            i.audit
                .iter()
                .filter(|a| a.action == stablehand::model::audit::AuditAction::Resumed)
                .count()
        };
        assert_eq!(resumes(&info), 1);
        let e = h
            .exec(
                id,
                stablehand::session::messages::Exec {
                    input: "two".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains("Suspended"), "{e}");

        let fresh = bounded(LIMIT, h.resume_with(id, true))
            .await
            .expect("a fresh start");
        assert_eq!(
            fresh.agent_conversation.as_deref(),
            Some("a new conversation, as asked (fresh)")
        );
        assert_eq!(fresh.agent_session_id, None);
        let (n, other) = turn(&exec(&h, id, "again").await);
        assert_eq!(n, 1);
        assert_ne!(other, conversation);
        assert_eq!(resumes(&h.state(id).await.unwrap()), 2);
        rt
    });
}

#[test]
fn an_agent_that_rejects_the_resume_flag_is_suspended_and_a_pointer_that_never_matches_starts_fresh(
) {
    let data = tempfile::tempdir().unwrap();
    let mut c = kept(data.path(), 1);
    let mut blind = stablehand::config::AgentProfile::claude();
    blind.programs.clear();
    blind.session_id_pointer = "/no_such_field".into();
    c.agents.insert("blind".into(), blind);
    with_runtime(c, |rt| async move {
        let h = rt.handle();
        // A CLI without --resume: it exits 2 when resumed with it.
        let id = agent(&h, &["--no-resume"], fake()).await;
        exec(&h, id, "one").await;
        evict(&h, id).await;
        bounded(LIMIT, h.resume(id))
            .await
            .expect("resume starts the agent");
        until_state(&h, id, StateKind::Suspended).await;
        let detail = h.state(id).await.unwrap().state_detail;
        assert!(
            detail.contains("exit code 2")
                && detail.contains("agents.fake.resume_args")
                && detail.contains("unknown option '--resume'"),
            "{detail}"
        );
        h.end(id, Default::default()).await.unwrap();

        // A pointer that matches no line: nothing to continue, and the resume says why.
        let options = AgentOptions {
            profile: Some("blind".into()),
            ..AgentOptions::default()
        };
        let id = agent(&h, &[], Some(options)).await;
        exec(&h, id, "one").await;
        assert_eq!(h.state(id).await.unwrap().agent_session_id, None);
        evict(&h, id).await;
        let info = bounded(LIMIT, h.resume(id)).await.unwrap();
        let note = info.agent_conversation.unwrap();
        assert!(
            note.contains("agents.blind.session_id_pointer = \"/no_such_field\""),
            "{note}"
        );
        assert_eq!(turn(&exec(&h, id, "two").await).0, 1);

        // An unknown profile is refused at create, naming the defined ones.
        let e = h
            .create(CreateRequest {
                kind: Some(Kind::Agent),
                command: Some(vec!["cat".into()]),
                agent: Some(AgentOptions {
                    profile: Some("nope".into()),
                    ..AgentOptions::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap_err();
        let e = e.to_string();
        assert!(
            e.contains("agent.profile") && e.contains("blind, claude, fake"),
            "{e}"
        );
        rt
    });
}

#[test]
fn a_fork_continues_a_copy_and_the_original_goes_on_alone() {
    let data = tempfile::tempdir().unwrap();
    with_runtime(kept(data.path(), 10), |rt| async move {
        let h = rt.handle();
        let parent = agent(&h, &[], fake()).await;
        // Not yet: the parent has reported no conversation.
        let fork = |from: SessionId| CreateRequest {
            kind: Some(Kind::Agent),
            agent: Some(AgentOptions {
                fork_from: Some(from),
                ..AgentOptions::default()
            }),
            ..Default::default()
        };
        let e = h.create(fork(parent)).await.unwrap_err().to_string();
        assert!(
            e.contains("agent.fork_from") && e.contains("no conversation to fork yet"),
            "{e}"
        );
        exec(&h, parent, "one").await;
        let (_, original) = turn(&exec(&h, parent, "two").await);

        let child = bounded(LIMIT, h.create(fork(parent))).await.expect("fork");
        assert_eq!(child.command, h.state(parent).await.unwrap().command);
        let note = child.agent_conversation.unwrap();
        assert!(
            note.contains(&original) && note.contains("agents.fake.fork_args"),
            "{note}"
        );
        let (n, forked) = turn(&exec(&h, child.session_id, "three").await);
        assert_eq!(n, 3);
        assert_ne!(forked, original);
        assert_eq!(
            h.state(child.session_id).await.unwrap().agent_session_id,
            Some(forked)
        );
        // The original did not see the fork's turn.
        assert_eq!(turn(&exec(&h, parent, "three").await), (3, original));

        // Only agents fork, and only your own.
        let sh = shell(&h).await;
        let e = h.create(fork(sh)).await.unwrap_err().to_string();
        assert!(
            e.contains("agent.fork_from") && e.contains("not an agent"),
            "{e}"
        );
        let stranger = h.with_owner(stablehand::Owner::new("mallory"));
        let e = stranger.create(fork(parent)).await.unwrap_err();
        assert!(matches!(e, stablehand::Error::NotFound { .. }), "{e}");
        rt
    });
}

#[test]
fn a_bad_resume_template_is_refused_at_load_naming_the_setting() {
    let toml = "[agents.x]\nprograms = [\"x\"]\nresume_args = [\"--resume\", \"{id}\"]\n";
    let e = stablehand::Config::from_toml(toml).unwrap_err().to_string();
    assert!(e.contains("agents.x.resume_args[1] = \"{id}\""), "{e}");
    assert!(e.contains("{agent_session_id}"), "{e}");
    // The built-in profile stays beside a file's own.
    let c = stablehand::Config::from_toml("[agents.x]\nprograms = [\"x\"]\n").unwrap();
    assert!(c.agents.contains_key("claude") && c.agents.contains_key("x"));
}
