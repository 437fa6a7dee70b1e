//! One SMTP exchange driven phase by phase (connect and greeting, TLS, AUTH, MAIL FROM, RCPT,
//! DATA, the end of DATA) under one deadline, so that a failure says where it happened and what
//! it means: the relay's or our configuration's fault (the mail waits), this recipient refused,
//! this message refused, or — no answer to the end of DATA — sent without confirmation.
//!
//! A `Session` is an open, authenticated connection. `Relay::send` keeps one between messages:
//! the next message starts with RSET on it (a relay that closed it meanwhile is reconnected to
//! once, before MAIL FROM, which is not a send); any failure closes it, and the message after
//! opens a fresh one. The socket has `TCP_NODELAY` set: lettre writes the message and its final
//! `.` separately, and without it the `.` waits for the relay's delayed ACK (~40 ms a message).

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
#[allow(deprecated)]
use lettre::transport::smtp::client::AsyncNetworkStream;
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::ClientId;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

/// Where in the exchange something went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// TCP connect, implicit TLS, the greeting and EHLO.
    Connect,
    StartTls,
    Auth,
    MailFrom,
    Rcpt,
    /// The DATA command.
    Data,
    /// Sending the message and waiting for the relay's answer to its end.
    EndOfData,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::StartTls => "STARTTLS",
            Phase::Auth => "AUTH",
            Phase::MailFrom => "MAIL FROM",
            Phase::Rcpt => "RCPT TO",
            Phase::Data => "DATA",
            Phase::EndOfData => "end of DATA",
        }
    }
}

/// What went wrong in a phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The deadline (`smtp.timeout_seconds` for the whole exchange) passed.
    Timeout(Duration),
    /// The relay answered with a refusal.
    Refused {
        code: u16,
        text: String,
    },
    /// The connection could not be made or broke.
    Network(String),
    Tls(String),
    /// Something this client will not or cannot do with this relay (no common AUTH mechanism,
    /// a password over an unencrypted connection, an address the relay cannot take).
    Client(String),
    /// cpwatch is stopping: the exchange was abandoned before the end of DATA.
    Stopped,
}

/// One failed exchange: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} at {}: {}", self.subject(), .phase.as_str(), .cause)]
pub struct Failure {
    pub phase: Phase,
    pub cause: Cause,
    /// `host:port`, for the messages.
    pub relay: String,
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cause::Timeout(d) => write!(f, "no answer within {} s", d.as_secs()),
            Cause::Refused { code, text } => write!(f, "refused ({code} {text})"),
            Cause::Network(e) => write!(f, "connection failed ({e})"),
            Cause::Tls(e) => write!(f, "TLS failed ({e})"),
            Cause::Client(e) => write!(f, "{e}"),
            Cause::Stopped => write!(f, "abandoned: cpwatch is stopping"),
        }
    }
}

/// What a failure means for the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The relay or our configuration failed, not the recipient: the mail waits, using none of
    /// its attempts, and the operator is told what to fix.
    RelayFault,
    /// The relay refused this recipient at RCPT (`permanent`: 5xx).
    Recipient { permanent: bool },
    /// The relay refused this message at the end of DATA (`permanent`: 5xx).
    Message { permanent: bool },
    /// The whole message went out and the relay did not answer its end: it may have accepted
    /// it. Sending it again could deliver it twice, so it is recorded as sent, unconfirmed.
    Unconfirmed,
    /// Abandoned before the end of DATA because cpwatch is stopping: nothing was delivered.
    Stopped,
}

impl Failure {
    pub fn verdict(&self) -> Verdict {
        let code = match &self.cause {
            Cause::Stopped => return Verdict::Stopped,
            Cause::Refused { code, .. } => Some(*code),
            _ => None,
        };
        match (self.phase, code) {
            // "Service not available, closing": the relay, whatever the phase.
            (_, Some(421)) => Verdict::RelayFault,
            (Phase::Rcpt, Some(c)) => Verdict::Recipient {
                permanent: c >= 500,
            },
            (Phase::EndOfData, Some(c)) => Verdict::Message {
                permanent: c >= 500,
            },
            (Phase::EndOfData, None) => Verdict::Unconfirmed,
            _ => Verdict::RelayFault,
        }
    }

    fn subject(&self) -> String {
        format!("mail relay {}", self.relay)
    }

    /// What an operator should do about it.
    pub fn advice(&self) -> &'static str {
        match (self.phase, &self.cause) {
            (Phase::Auth, Cause::Refused { .. }) => {
                "the relay refused cpwatch's login: check smtp.username and the password \
                 (smtp.password or smtp.password_file)"
            }
            (Phase::Auth, _) => {
                "logging in to the relay failed: check smtp.security and that the relay offers \
                 AUTH PLAIN or LOGIN"
            }
            (Phase::MailFrom, Cause::Refused { .. }) => {
                "the relay refused the sender: check smtp.from, and that the relay lets cpwatch \
                 send as that address"
            }
            (Phase::StartTls, _) | (_, Cause::Tls(_)) => {
                "TLS with the relay failed: check smtp.security (starttls, tls or plain), \
                 smtp.port and the relay's certificate"
            }
            (Phase::EndOfData, Cause::Timeout(_) | Cause::Network(_)) => {
                "the relay took the whole message but did not confirm it: look for its \
                 Message-ID in the relay's log; raise smtp.timeout_seconds if the relay is slow"
            }
            (_, Cause::Timeout(_)) => {
                "the relay did not answer in time: check that it is running and not overloaded, \
                 or raise smtp.timeout_seconds"
            }
            _ => "check that the relay at smtp.host and smtp.port is running and reachable",
        }
    }
}

/// How the connection is secured.
#[derive(Clone)]
pub enum Security {
    Plain,
    /// Implicit TLS from the first byte.
    Tls(TlsParameters),
    /// A plain connection upgraded with STARTTLS (required).
    StartTls(TlsParameters),
}

/// An SMTP relay and how to talk to it.
pub struct Relay {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub credentials: Option<Credentials>,
    /// The deadline of one whole exchange, from connect to the answer to the end of DATA.
    pub timeout: Duration,
    /// Allow the password over a connection that is not encrypted.
    pub cleartext_auth: bool,
    pub hello: ClientId,
    /// The session kept open after the last message, for the next one (boxed: a relay is
    /// small, a session is not).
    pub kept: tokio::sync::Mutex<Option<Box<Kept>>>,
}

/// An open connection: greeted, secured and logged in as configured.
pub struct Session {
    conn: AsyncSmtpConnection,
    relay: String,
}

/// A session left open after a message, and since when.
pub struct Kept {
    session: Session,
    since: Instant,
}

/// A kept session idle longer than this is closed rather than reused (relays drop idle clients
/// after a few minutes; RFC 5321 says at least five).
const MAX_IDLE: Duration = Duration::from_secs(60);

/// The deadline of an exchange and the stop signal it gives way to (before the end of DATA).
pub struct Limits {
    pub deadline: Instant,
    pub timeout: Duration,
    pub stop: Option<watch::Receiver<bool>>,
}

impl Relay {
    /// `host:port`.
    pub fn name(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// One message, within `self.timeout`, abandoned (before the end of DATA) if `stop` turns
    /// true: on the session kept from the last message (after RSET) or a new one, which is kept
    /// for the next message if this one went through and closed if anything failed.
    pub async fn send(
        &self,
        envelope: &Envelope,
        message: &[u8],
        stop: Option<watch::Receiver<bool>>,
    ) -> Result<(), Failure> {
        let mut limits = Limits {
            deadline: Instant::now() + self.timeout,
            timeout: self.timeout,
            stop,
        };
        let mut kept = self.kept.lock().await;
        let reused = match kept.take() {
            Some(k) => self.reuse(k, &mut limits).await?,
            None => None,
        };
        let mut session = match reused {
            Some(s) => s,
            None => self.open(&mut limits).await?,
        };
        // On a failure the session is dropped here, which closes its connection.
        session.transaction(envelope, message, &mut limits).await?;
        *kept = Some(Box::new(Kept {
            session,
            since: Instant::now(),
        }));
        Ok(())
    }

    /// A kept session, reset for the next message; None if it went stale or broke (the relay
    /// closed it while it sat idle): then the caller opens a new one. Only a stop is an error.
    async fn reuse(
        &self,
        kept: Box<Kept>,
        limits: &mut Limits,
    ) -> Result<Option<Session>, Failure> {
        let Kept { mut session, since } = *kept;
        if since.elapsed() > MAX_IDLE {
            let polite = Instant::now() + Duration::from_millis(200);
            session.quit(polite.min(limits.deadline)).await;
            return Ok(None);
        }
        // A relay that went silent must not take the whole deadline from the fresh session.
        let mut probe = Limits {
            deadline: limits.deadline.min(Instant::now() + limits.timeout / 4),
            timeout: limits.timeout,
            stop: limits.stop.clone(),
        };
        let reset = session.conn.command(Rset);
        match step(Phase::Connect, &mut probe, &session.relay, reset).await {
            Ok(_) => Ok(Some(session)),
            Err(f) if f.cause == Cause::Stopped => Err(f),
            Err(f) => {
                tracing::debug!(error = %f, "the kept SMTP session is gone; opening a new one");
                Ok(None)
            }
        }
    }

    /// Close the kept session, if any: QUIT, if the relay answers within a quarter of a second
    /// (this runs while cpwatch stops, and a relay that stalls must not hold that up).
    pub async fn close(&self) {
        if let Some(k) = self.kept.lock().await.take() {
            k.session
                .quit(Instant::now() + Duration::from_millis(250))
                .await;
        }
    }

    /// Connect (with `TCP_NODELAY`), secure and log in.
    pub async fn open(&self, limits: &mut Limits) -> Result<Session, Failure> {
        let relay = self.name();
        let fail = |phase, cause| Failure {
            phase,
            cause,
            relay: relay.clone(),
        };
        let stream = match connect_tcp(&self.host, self.port, limits).await {
            Ok(s) => s,
            Err(cause) => return Err(fail(Phase::Connect, cause)),
        };
        let implicit = matches!(self.security, Security::Tls(_));
        let transport: Box<dyn AsyncTokioStream> = match &self.security {
            Security::Tls(params) => {
                let tls = tls_stream(stream, params.clone());
                let tls = step(Phase::Connect, limits, &relay, tls).await;
                Box::new(tls.map_err(|f| match f.cause {
                    Cause::Network(e) => fail(Phase::Connect, Cause::Tls(e)),
                    _ => f,
                })?)
            }
            _ => Box::new(stream),
        };
        let greet = AsyncSmtpConnection::connect_with_transport(transport, &self.hello);
        let mut conn = step(Phase::Connect, limits, &relay, greet).await?;
        if let Security::StartTls(params) = &self.security {
            let upgrade = conn.starttls(params.clone(), &self.hello);
            step(Phase::StartTls, limits, &relay, upgrade).await?;
        }
        let encrypted = implicit || conn.is_encrypted();
        if let Some(credentials) = &self.credentials {
            if !encrypted && !self.cleartext_auth && !is_loopback(&self.host) {
                conn.abort().await;
                return Err(fail(
                    Phase::Auth,
                    Cause::Client(
                        "refusing to send the password unencrypted to a relay that is not on \
                         this machine (smtp.security = \"plain\")"
                            .into(),
                    ),
                ));
            }
            let auth = conn.auth(DEFAULT_MECHANISMS, credentials);
            step(Phase::Auth, limits, &relay, auth).await?;
        }
        Ok(Session { conn, relay })
    }
}

/// A TCP connection to `host:port` (each address it resolves to in turn) before `deadline`,
/// with `TCP_NODELAY` set.
async fn connect_tcp(host: &str, port: u16, limits: &Limits) -> Result<TcpStream, Cause> {
    let deadline = limits.deadline;
    let timeout = |_| Cause::Timeout(limits.timeout);
    let addrs = match tokio::time::timeout_at(deadline, tokio::net::lookup_host((host, port))).await
    {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => return Err(Cause::Network(format!("cannot resolve {host}: {e}"))),
        Err(_) => return Err(timeout(deadline)),
    };
    let mut last = Cause::Network(format!("{host} resolves to no address"));
    for addr in addrs {
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                stream
                    .set_nodelay(true)
                    .map_err(|e| Cause::Network(e.to_string()))?;
                return Ok(stream);
            }
            Ok(Err(e)) => last = Cause::Network(e.to_string()),
            Err(_) => return Err(timeout(deadline)),
        }
    }
    Err(last)
}

impl Session {
    /// MAIL FROM, RCPT TO for each recipient, DATA and the message. After the message's last
    /// byte is written the stop signal is no longer heeded: the answer is awaited until the
    /// deadline.
    pub async fn transaction(
        &mut self,
        envelope: &Envelope,
        message: &[u8],
        limits: &mut Limits,
    ) -> Result<(), Failure> {
        let relay = self.relay.clone();
        let non_ascii = envelope
            .to()
            .iter()
            .chain(envelope.from())
            .any(|a| !AsRef::<str>::as_ref(a).is_ascii());
        if non_ascii {
            return Err(Failure {
                phase: Phase::Rcpt,
                cause: Cause::Refused {
                    code: 553,
                    text: "cpwatch does not send to non-ASCII addresses".into(),
                },
                relay,
            });
        }
        let conn = &mut self.conn;
        let mail = conn.command(Mail::new(envelope.from().cloned(), vec![]));
        step(Phase::MailFrom, limits, &relay, mail).await?;
        for to in envelope.to() {
            let rcpt = conn.command(Rcpt::new(to.clone(), vec![]));
            step(Phase::Rcpt, limits, &relay, rcpt).await?;
        }
        step(Phase::Data, limits, &relay, conn.command(Data)).await?;
        let written = AtomicBool::new(false);
        let body = Body {
            message: Some(message),
            done: &written,
        };
        let sending = conn.message_iter(body);
        let deadline = limits.deadline;
        tokio::pin!(sending);
        let sent = match limits.stop.as_mut() {
            Some(stop) => {
                tokio::select! {
                    r = tokio::time::timeout_at(deadline, &mut sending) => r,
                    _ = stopped(stop), if !written.load(Ordering::SeqCst) => {
                        // Nothing reached the relay's queue: the message's end was not sent.
                        // If it was written meanwhile, wait for the answer after all.
                        if written.load(Ordering::SeqCst) {
                            tokio::time::timeout_at(deadline, &mut sending).await
                        } else {
                            return Err(failure(Phase::Data, Cause::Stopped, &relay));
                        }
                    }
                }
            }
            None => tokio::time::timeout_at(deadline, &mut sending).await,
        };
        // Until the body was written, a failure is a failure of the DATA phase (nothing the
        // relay could have accepted); after it, of the end of DATA.
        let phase = if written.load(Ordering::SeqCst) {
            Phase::EndOfData
        } else {
            Phase::Data
        };
        match sent {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(failure(phase, cause_of(&e), &relay)),
            Err(_) => Err(failure(phase, Cause::Timeout(limits.timeout), &relay)),
        }
    }

    /// Say goodbye, if the relay answers before `deadline`; a failure here changes nothing.
    pub async fn quit(mut self, deadline: Instant) {
        let _ = tokio::time::timeout_at(deadline, self.conn.quit()).await;
    }
}

/// The message as lettre's `message_iter` takes it, noting when lettre has taken its last byte
/// (lettre then writes the final `.` and waits for the answer).
struct Body<'a> {
    message: Option<&'a [u8]>,
    done: &'a AtomicBool,
}

impl<'a> Iterator for Body<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let next = self.message.take();
        if next.is_none() {
            self.done.store(true, Ordering::SeqCst);
        }
        next
    }
}

/// Implicit TLS on our own socket (so it keeps `TCP_NODELAY`), using lettre's TLS set-up.
async fn tls_stream(
    stream: TcpStream,
    params: TlsParameters,
) -> Result<TlsOverTcp, lettre::transport::smtp::Error> {
    let peer = stream.peer_addr().ok();
    #[allow(deprecated)] // lettre's own stream type: the one way to reuse its TLS set-up
    let mut inner = AsyncNetworkStream::use_existing_tokio1(Box::new(stream));
    inner.upgrade_tls(params).await?;
    Ok(TlsOverTcp { inner, peer })
}

/// lettre's TLS stream (a futures-io stream) as the tokio stream lettre's connection takes.
#[allow(deprecated)]
#[derive(Debug)]
struct TlsOverTcp {
    inner: AsyncNetworkStream,
    peer: Option<std::net::SocketAddr>,
}

impl AsyncTokioStream for TlsOverTcp {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.peer
            .ok_or_else(|| std::io::Error::other("no peer address"))
    }
}

impl tokio::io::AsyncRead for TlsOverTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let unfilled = buf.initialize_unfilled();
        match futures_io::AsyncRead::poll_read(Pin::new(&mut self.inner), cx, unfilled) {
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl tokio::io::AsyncWrite for TlsOverTcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        futures_io::AsyncWrite::poll_write(Pin::new(&mut self.inner), cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        futures_io::AsyncWrite::poll_flush(Pin::new(&mut self.inner), cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        futures_io::AsyncWrite::poll_close(Pin::new(&mut self.inner), cx)
    }
}

/// Run one phase under the deadline, giving way to the stop signal.
async fn step<T>(
    phase: Phase,
    limits: &mut Limits,
    relay: &str,
    fut: impl std::future::Future<Output = Result<T, lettre::transport::smtp::Error>>,
) -> Result<T, Failure> {
    let timed = tokio::time::timeout_at(limits.deadline, fut);
    let result = match limits.stop.as_mut() {
        Some(stop) => tokio::select! {
            r = timed => r,
            _ = stopped(stop) => return Err(failure(phase, Cause::Stopped, relay)),
        },
        None => timed.await,
    };
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(failure(phase, cause_of(&e), relay)),
        Err(_) => Err(failure(phase, Cause::Timeout(limits.timeout), relay)),
    }
}

/// Resolves when `stop` turns true (never, if its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await
    }
}

fn failure(phase: Phase, cause: Cause, relay: &str) -> Failure {
    Failure {
        phase,
        cause,
        relay: relay.to_owned(),
    }
}

/// lettre's error as a cause: a refusal with its code, or what broke.
fn cause_of(e: &lettre::transport::smtp::Error) -> Cause {
    if let Some(code) = e.status() {
        let text = e
            .to_string()
            .split_once(": ")
            .map_or(String::new(), |(_, t)| t.to_owned());
        return Cause::Refused {
            code: code.to_string().parse().unwrap_or(0),
            text,
        };
    }
    if e.is_timeout() {
        return Cause::Timeout(Duration::ZERO);
    }
    if e.is_tls() {
        return Cause::Tls(e.to_string());
    }
    if e.is_client() {
        return Cause::Client(e.to_string());
    }
    Cause::Network(e.to_string())
}

/// A host name or address that is this machine: `localhost`, 127.0.0.0/8, `::1`.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(phase: Phase, cause: Cause) -> Verdict {
        Failure {
            phase,
            cause,
            relay: "r:25".into(),
        }
        .verdict()
    }

    fn refused(code: u16) -> Cause {
        Cause::Refused {
            code,
            text: "x".into(),
        }
    }

    #[test]
    fn only_rcpt_refusals_are_the_recipients_and_only_the_end_of_data_is_ambiguous() {
        use Verdict::*;
        assert_eq!(f(Phase::Auth, refused(535)), RelayFault);
        assert_eq!(f(Phase::Connect, refused(554)), RelayFault);
        assert_eq!(f(Phase::MailFrom, refused(550)), RelayFault);
        assert_eq!(f(Phase::Rcpt, refused(550)), Recipient { permanent: true });
        assert_eq!(f(Phase::Rcpt, refused(451)), Recipient { permanent: false });
        assert_eq!(f(Phase::Rcpt, refused(421)), RelayFault);
        let timeout = Cause::Timeout(Duration::from_secs(2));
        assert_eq!(f(Phase::Rcpt, timeout.clone()), RelayFault);
        assert_eq!(f(Phase::Data, timeout.clone()), RelayFault);
        assert_eq!(f(Phase::EndOfData, timeout), Unconfirmed);
        assert_eq!(
            f(Phase::EndOfData, refused(554)),
            Message { permanent: true }
        );
        assert_eq!(f(Phase::EndOfData, Cause::Stopped), Stopped);
    }

    #[test]
    fn loopback_hosts() {
        for h in ["localhost", "127.0.0.1", "127.1.2.3", "::1", "[::1]"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["relay.example.org", "10.0.0.1", "127.0.0.1.example.org"] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
