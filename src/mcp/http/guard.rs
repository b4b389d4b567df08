//! Who may talk to the server: path, `Host`, `Origin`, bearer token, `Accept`, and the
//! header helpers the checks share.

use super::*;

/// Path, Host, Origin and bearer checks. Returns the token principal, if any.
pub(super) fn check(
    state: &HttpState,
    req: &Request<Incoming>,
) -> Result<Option<Owner>, Box<Response<Body>>> {
    if req.uri().path() != state.config.path {
        return Err(Box::new(status(
            StatusCode::NOT_FOUND,
            &format!("not found; the MCP endpoint is {}", state.config.path),
        )));
    }
    let headers = req.headers();
    let access = state.access.current();
    let host = header(headers, "host").unwrap_or("");
    if !host_allowed(host, &access.allowed_hosts) {
        return Err(Box::new(rpc_status(
            StatusCode::FORBIDDEN,
            code::INVALID_REQUEST,
            format!("Host {host:?} is not allowed (DNS-rebinding protection; add it to http.allowed_hosts)"),
        )));
    }
    if let Some(origin) = header(headers, "origin") {
        if !origin_allowed(origin, &access.allowed_origins) {
            return Err(Box::new(rpc_status(
                StatusCode::FORBIDDEN,
                code::INVALID_REQUEST,
                format!("Origin {origin:?} is not allowed"),
            )));
        }
    }
    if access.tokens.is_empty() {
        return Ok(None);
    }
    let presented = header(headers, "authorization")
        .and_then(bearer_token)
        .unwrap_or("");
    // Every token is compared, so the time taken does not say which one (if any) matched.
    let mut matched = None;
    for t in &access.tokens {
        if constant_time_eq(t.secret().as_bytes(), presented.as_bytes()) && matched.is_none() {
            matched = Some(t);
        }
    }
    match matched {
        Some(t) => Ok(Some(Owner::new(&t.name))),
        None => {
            let mut resp = rpc_status(
                StatusCode::UNAUTHORIZED,
                code::INVALID_REQUEST,
                "a valid bearer token is required".into(),
            );
            resp.headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Bearer"));
            Err(Box::new(resp))
        }
    }
}

pub(super) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// True if the `Accept` header value lets the client take `media` (`type/subtype`, lower
/// case): a media range naming it, or `type/*`, or (with `wildcard`) `*/*`, with a non-zero
/// `q`. Parameters other than `q` are ignored.
pub(super) fn accepts(accept: &str, media: &str, wildcard: bool) -> bool {
    let main_type = media.split('/').next().unwrap_or(media);
    // Compared without allocating: this runs for every POST.
    accept.split(',').any(|range| {
        let mut parts = range.split(';');
        let name = parts.next().unwrap_or("").trim();
        let quality = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .and_then(|(_, v)| v.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let matches = name.eq_ignore_ascii_case(media)
            || name
                .strip_suffix("/*")
                .is_some_and(|t| t.eq_ignore_ascii_case(main_type))
            || (wildcard && name == "*/*");
        matches && quality > 0.0
    })
}

/// The token of an `Authorization: Bearer TOKEN` value (the scheme is case-insensitive).
pub(super) fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_matches(' '))
}

/// Loopback names (any port) and the configured extra hosts.
pub(super) fn host_allowed(host: &str, extra: &[String]) -> bool {
    let name = strip_port(host);
    matches!(name, "localhost" | "127.0.0.1" | "[::1]" | "::1")
        || extra.iter().any(|h| h == host || h == name)
}

pub(super) fn strip_port(hostport: &str) -> &str {
    if hostport.starts_with('[') {
        return hostport
            .split_once(']')
            .map_or(hostport, |(h, _)| &hostport[..h.len() + 1]);
    }
    hostport.rsplit_once(':').map_or(hostport, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            hostport
        }
    })
}

pub(super) fn origin_allowed(origin: &str, extra: &[String]) -> bool {
    if extra.iter().any(|o| o == origin) {
        return true;
    }
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    matches!(strip_port(rest), "localhost" | "127.0.0.1" | "[::1]")
}

/// True if `presented` equals `secret`, in a time that depends only on the presented length:
/// not on where they differ, nor on the secret's length.
pub(super) fn constant_time_eq(secret: &[u8], presented: &[u8]) -> bool {
    let len = secret.len().max(1);
    let mut diff = u64::from(secret.len() != presented.len());
    for (i, &p) in presented.iter().enumerate() {
        let s = secret.get(i % len).copied().unwrap_or(0);
        diff |= u64::from(p ^ s);
    }
    diff == 0 && !secret.is_empty()
}
