//! Property test: the state machine against a tiny reference model.

use proptest::prelude::*;
use stablehand::process::ExitStatus;
use stablehand::session::state::{Event, State};
use stablehand::session::StateKind;

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        Just(Event::Started),
        Just(Event::OpBegin),
        Just(Event::OpEnd),
        Just(Event::Pause),
        Just(Event::Resume),
        any::<bool>().prop_map(|suspend| Event::End { suspend }),
        Just(Event::Exited(Some(ExitStatus {
            code: Some(0),
            signal: None
        }))),
        Just(Event::Fail("boom".into())),
        Just(Event::Respawn),
        Just(Event::Shutdown),
        Just(Event::Unresumed("refused".into())),
    ]
}

/// The reference: allowed (state, event) pairs written as a plain list.
fn model(state: StateKind, suspending: bool, event: &Event) -> Option<StateKind> {
    use StateKind::*;
    let live = matches!(state, Starting | Ready | Busy | Paused | Ending);
    Some(match event {
        Event::Started if state == Starting => Ready,
        Event::OpBegin if state == Ready => Busy,
        Event::OpEnd if state == Busy => Ready,
        Event::Pause if matches!(state, Ready | Busy) => Paused,
        Event::Resume if state == Paused => Busy,
        Event::End { suspend: false } if matches!(state, Starting | Ready | Busy | Paused) => {
            Ending
        }
        Event::End { suspend: true } if matches!(state, Ready | Paused) => Ending,
        Event::Shutdown if matches!(state, Starting | Ready | Busy | Paused) => Ending,
        Event::End { suspend: false } if state == Suspended => Ended,
        Event::Exited(_) if state == Ending && suspending => Suspended,
        Event::Exited(_) if live => Ended,
        Event::Fail(_) if live => Failed,
        Event::Respawn if state == Suspended => Starting,
        Event::Unresumed(_) if matches!(state, Starting | Ready | Busy) => Suspended,
        _ => return None,
    })
}

proptest! {
    #[test]
    fn transitions_match_the_reference_model(events in prop::collection::vec(event(), 1..40)) {
        let mut state = State::Starting;
        for e in &events {
            let suspending = matches!(state, State::Ending { suspend: true });
            let expected = model(state.kind(), suspending, e);
            match state.apply(e) {
                Ok(next) => {
                    prop_assert_eq!(Some(next.kind()), expected);
                    state = next;
                }
                Err(refused) => {
                    prop_assert_eq!(expected, None);
                    let message = refused.to_string();
                    prop_assert!(message.contains(&state.to_string()), "{}", message);
                }
            }
        }
    }
}

#[test]
fn a_refusal_names_the_current_and_the_needed_state() {
    let err = State::Ended { exit: None }
        .apply(&Event::OpBegin)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot run an operation: session is Ended, must be Ready"
    );
}

#[test]
fn a_refused_resume_is_suspended_with_its_reason() {
    let s = State::Ready
        .apply(&Event::Unresumed("the agent exited".into()))
        .unwrap();
    assert_eq!(s.kind(), StateKind::Suspended);
    assert_eq!(s.to_string(), "Suspended (the agent exited)");
    assert_eq!(s.apply(&Event::Respawn).unwrap(), State::Starting);
}
