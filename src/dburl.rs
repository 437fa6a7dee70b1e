//! `database.url` without leaking it: checked against libpq's URI grammar before libpq sees it
//! (libpq repeats a URL it cannot parse in its error, password and all), a password from a
//! file added to it, and its secrets scrubbed from any message that might quote them.
//! Pure: no I/O. No message from here contains the URL or any part of its user information.

/// Why a URL is refused. Never holds the URL or its user information.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UrlProblem(pub String);

fn problem(s: &str) -> UrlProblem {
    UrlProblem(s.to_owned())
}

/// A URL's parts as libpq reads them (still percent-encoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts<'a> {
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
    pub hosts: &'a str,
    pub query: Option<&'a str>,
}

/// Check `url` as libpq would parse it: `postgres[ql]://[user[:password]@][host][:port][,...]
/// [/dbname][?key=value&...]`, with well-formed percent escapes.
pub fn check(url: &str) -> Result<Parts<'_>, UrlProblem> {
    let rest = url
        .strip_prefix("postgresql://")
        .or_else(|| url.strip_prefix("postgres://"))
        .ok_or_else(|| problem("must start with postgres:// or postgresql://"))?;
    if url.chars().any(|c| c.is_control() || c == ' ') {
        return Err(problem(
            "contains a space or a control character (percent-encode it)",
        ));
    }
    check_escapes(url)?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((user, pw)) => (Some(user), Some(pw)),
            None => (Some(u), None),
        },
        None => (None, None),
    };
    for host in hosts.split(',') {
        check_host(host)?;
    }
    let query = tail.split_once('?').map(|(_, q)| q);
    if let Some(q) = query {
        for param in q.split('&') {
            let mut kv = param.split('=');
            match (kv.next(), kv.next(), kv.next()) {
                (Some(k), Some(_), None) if !k.is_empty() => {}
                _ => {
                    return Err(problem(
                        "has a query parameter that is not one key=value pair",
                    ))
                }
            }
        }
    }
    Ok(Parts {
        user,
        password,
        hosts,
        query,
    })
}

fn check_escapes(url: &str) -> Result<(), UrlProblem> {
    let bytes = url.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .filter(|h| h.iter().all(u8::is_ascii_hexdigit));
            match hex {
                Some(b"00") => return Err(problem("contains %00, which libpq forbids")),
                Some(_) => i += 3,
                None => {
                    return Err(problem(
                        "has a % that is not followed by two hexadecimal digits (write a literal % as %25)",
                    ))
                }
            }
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; all may be empty (libpq's defaults).
fn check_host(host: &str) -> Result<(), UrlProblem> {
    let port =
        if let Some(v6) = host.strip_prefix('[') {
            let (addr, after) = v6
                .split_once(']')
                .ok_or_else(|| problem("has an IPv6 address with no closing ]"))?;
            if addr.is_empty() {
                return Err(problem("has an empty IPv6 address []"));
            }
            match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| {
                    problem("has something other than :port after an IPv6 address")
                })?),
            }
        } else {
            if host.contains(['[', ']']) {
                return Err(problem("has a [ or ] outside an IPv6 address"));
            }
            host.split_once(':').map(|(_, p)| p)
        };
    match port {
        Some(p) if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) => {
            Err(problem("has a port that is not a number"))
        }
        _ => Ok(()),
    }
}

/// `url` with `password` added as libpq's `password` parameter. Refused if the URL has a
/// password of its own (say which one counts, by giving only one).
pub fn with_password(url: &str, password: &str) -> Result<String, UrlProblem> {
    let parts = check(url)?;
    if parts.password.is_some() || query_has(parts.query, "password") {
        return Err(problem(
            "has a password of its own, and database.password_file gives another: keep one",
        ));
    }
    let sep = if parts.query.is_some() { '&' } else { '?' };
    Ok(format!("{url}{sep}password={}", encode(password)))
}

fn query_has(query: Option<&str>, key: &str) -> bool {
    query.is_some_and(|q| q.split('&').any(|p| p.split('=').next() == Some(key)))
}

/// Percent-encode everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The secrets a message might quote: the whole URL, its user information, its password
/// (as written and decoded) and a `password=` parameter's value. Longest first.
fn secrets(url: &str) -> Vec<String> {
    let mut out = vec![url.to_owned()];
    if let Some(rest) = url.split_once("://").map(|(_, r)| r) {
        let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
        if let Some(i) = authority.rfind('@') {
            let userinfo = &authority[..i];
            out.push(userinfo.to_owned());
            if let Some((_, pw)) = userinfo.split_once(':') {
                out.push(pw.to_owned());
                out.push(decode(pw));
            }
        }
        if let Some((_, q)) = rest.split_once('?') {
            for p in q.split('&') {
                if let Some(v) = p.strip_prefix("password=") {
                    out.push(v.to_owned());
                    out.push(decode(v));
                }
            }
        }
    }
    out.retain(|s| !s.is_empty());
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out
}

/// `message` with every secret of `url` replaced by `***` (the whole URL by its redacted form).
pub fn scrub(message: &str, url: &str) -> String {
    let mut out = message.to_owned();
    for s in secrets(url) {
        let with = if s == url {
            redacted(url)
        } else {
            "***".into()
        };
        out = out.replace(&s, &with);
    }
    out
}

/// The URL as it may be shown: scheme and hosts, never user information or parameters.
pub fn redacted(url: &str) -> String {
    match check(url) {
        Ok(p) => format!(
            "postgres://{}{}",
            if p.user.is_some() { "***@" } else { "" },
            p.hosts
        ),
        Err(_) => "(the database.url, not shown)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_grammar() {
        for ok in [
            "postgres://u:secret@host:5432/db",
            "postgresql:///cpwatch?host=/var/run/postgresql",
            "postgres://[::1]:5432,other:5433/db?sslmode=require&application_name=cpwatch",
            "postgres://u:p%40ss@h/d",
            "postgres://",
        ] {
            assert!(check(ok).is_ok(), "{ok}");
        }
        for bad in [
            "postgres://u:secret@[host:5432/x",
            "postgres://u:%zz@h/d",
            "postgres://u:a%00b@h/d",
            "postgres://u:secret@h:port/d",
            "postgres://h/d?sslmode",
            "postgres://h/d?a=b=c",
            "mysql://u:secret@h/d",
            "postgres://u:sec ret@h/d",
        ] {
            let e = check(bad).expect_err(bad);
            assert!(!e.0.contains("secret") && !e.0.contains("%zz"), "{e}");
        }
    }

    #[test]
    fn password_file_goes_in_as_a_parameter_and_secrets_are_scrubbed() {
        let url = with_password("postgres://cpwatch@db/cpwatch", "p@ss w%rd").unwrap();
        assert_eq!(
            url,
            "postgres://cpwatch@db/cpwatch?password=p%40ss%20w%25rd"
        );
        assert!(with_password("postgres://u:x@db/c", "y").is_err());
        let msg = format!("FATAL {url} p@ss w%rd p%40ss%20w%25rd");
        let clean = scrub(&msg, &url);
        assert!(
            !clean.contains("p@ss") && !clean.contains("p%40ss"),
            "{clean}"
        );
        let url = "postgres://u:s%3Acret@h/d";
        let clean = scrub("bad: \"postgres://u:s%3Acret@h/d\" s:cret u:s%3Acret", url);
        assert!(!clean.contains("cret"), "{clean}");
        assert_eq!(redacted(url), "postgres://***@h");
    }
}
