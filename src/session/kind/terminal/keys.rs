//! Named keys as the bytes a terminal sends for them (xterm's encoding).

use crate::Error;

/// The key names `encode` knows, for error messages.
pub(crate) const NAMES: &str = "a single character (types itself), enter, tab, backspace, escape, space, up, down, left, right, \
home, end, pageup, pagedown, insert, delete, f1-f12, ctrl-<key> (ctrl-a..ctrl-z, ctrl-@, \
ctrl-[, ctrl-\\, ctrl-], ctrl-^, ctrl-_, ctrl-space) and alt-<key> (alt- before any of these or \
a single character)";

/// The bytes of one named key (case-insensitive). `app_cursor`: the program asked for
/// application cursor keys (arrows, home and end as `ESC O x`).
pub(crate) fn encode(name: &str, app_cursor: bool) -> Result<Vec<u8>, Error> {
    let key = name.trim().to_ascii_lowercase();
    let unknown = || Error::invalid("keys", format!("unknown key {name:?}; keys are {NAMES}"));
    if let Some(rest) = key.strip_prefix("alt-").or_else(|| key.strip_prefix("m-")) {
        let inner = if rest.chars().count() == 1 {
            // The original character, case kept (alt-A is not alt-a).
            let original = name.trim().as_bytes();
            original[original.len() - rest.len()..].to_vec()
        } else {
            encode(rest, app_cursor).map_err(|_| unknown())?
        };
        let mut out = vec![0x1b];
        out.extend(inner);
        return Ok(out);
    }
    if let Some(rest) = key.strip_prefix("ctrl-").or_else(|| key.strip_prefix("c-")) {
        let byte = match rest {
            "space" | "@" | "2" => 0,
            "[" => 0x1b,
            "\\" => 0x1c,
            "]" => 0x1d,
            "^" => 0x1e,
            "_" | "-" => 0x1f,
            "?" => 0x7f,
            r if r.len() == 1 && r.as_bytes()[0].is_ascii_lowercase() => r.as_bytes()[0] & 0x1f,
            _ => return Err(unknown()),
        };
        return Ok(vec![byte]);
    }
    if name.chars().count() == 1 {
        return Ok(name.as_bytes().to_vec());
    }
    let arrow = |c: u8| {
        if app_cursor {
            vec![0x1b, b'O', c]
        } else {
            vec![0x1b, b'[', c]
        }
    };
    let tilde = |n: &str| format!("\x1b[{n}~").into_bytes();
    Ok(match key.as_str() {
        "enter" | "return" => b"\r".to_vec(),
        "tab" => b"\t".to_vec(),
        "backspace" | "bs" => vec![0x7f],
        "escape" | "esc" => vec![0x1b],
        "space" => b" ".to_vec(),
        "up" => arrow(b'A'),
        "down" => arrow(b'B'),
        "right" => arrow(b'C'),
        "left" => arrow(b'D'),
        "home" => arrow(b'H'),
        "end" => arrow(b'F'),
        "pageup" | "pgup" => tilde("5"),
        "pagedown" | "pgdn" => tilde("6"),
        "insert" => tilde("2"),
        "delete" | "del" => tilde("3"),
        "f1" => b"\x1bOP".to_vec(),
        "f2" => b"\x1bOQ".to_vec(),
        "f3" => b"\x1bOR".to_vec(),
        "f4" => b"\x1bOS".to_vec(),
        "f5" => tilde("15"),
        "f6" => tilde("17"),
        "f7" => tilde("18"),
        "f8" => tilde("19"),
        "f9" => tilde("20"),
        "f10" => tilde("21"),
        "f11" => tilde("23"),
        "f12" => tilde("24"),
        _ => return Err(unknown()),
    })
}

/// Typed text as a terminal sends it: newlines as Enter (`\r`). In bracketed paste mode,
/// text of more than one line is sent as one paste and its trailing newlines as Enter after
/// it, as a user pastes and then presses Enter (a shell runs the pasted lines only then).
pub(crate) fn text(text: &str, bracketed_paste: bool) -> Vec<u8> {
    let typed = text.replace("\r\n", "\n").replace('\r', "\n");
    let body = typed.trim_end_matches('\n');
    let enters = typed.len() - body.len();
    let mut out = Vec::with_capacity(typed.len() + 12);
    if bracketed_paste && body.contains('\n') {
        out.extend_from_slice(b"\x1b[200~");
        out.extend(body.replace('\n', "\r").into_bytes());
        out.extend_from_slice(b"\x1b[201~");
    } else {
        out.extend(body.replace('\n', "\r").into_bytes());
    }
    out.extend(std::iter::repeat_n(b'\r', enters));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_encode_as_xterm_does_and_unknown_ones_list_the_valid_ones() {
        assert_eq!(encode("Enter", false).unwrap(), b"\r");
        assert_eq!(encode("ctrl-c", false).unwrap(), [3]);
        assert_eq!(encode("CTRL-D", false).unwrap(), [4]);
        assert_eq!(encode("up", false).unwrap(), b"\x1b[A");
        assert_eq!(encode("up", true).unwrap(), b"\x1bOA");
        assert_eq!(encode("alt-x", false).unwrap(), b"\x1bx");
        assert_eq!(encode("alt-left", false).unwrap(), b"\x1b\x1b[D");
        assert_eq!(encode("f5", false).unwrap(), b"\x1b[15~");
        assert_eq!(encode("pagedown", false).unwrap(), b"\x1b[6~");
        let err = encode("hyper-q", false).unwrap_err().to_string();
        assert!(
            err.contains("\"hyper-q\"") && err.contains("pageup"),
            "{err}"
        );
        assert!(encode("ctrl-1", false).is_err());
        assert_eq!(encode("q", false).unwrap(), b"q");
        assert_eq!(encode("Q", false).unwrap(), b"Q");
        assert_eq!(encode(" ", false).unwrap(), b" ");
    }

    #[test]
    fn text_sends_newlines_as_enter_and_pastes_lines_when_the_program_asks() {
        assert_eq!(text("a\nb\n", false), b"a\rb\r");
        assert_eq!(text("a\nb", true), b"\x1b[200~a\rb\x1b[201~");
        assert_eq!(text("a\r\nb\n\n", true), b"\x1b[200~a\rb\x1b[201~\r\r");
        assert_eq!(text("one line\n", true), b"one line\r");
    }
}
