//! A misbehaving SMTP relay for the delivery tests: a real server on loopback (a thread per
//! connection) that can stall at the greeting, after RCPT or at the end of DATA, answer the end
//! of DATA slowly, demand a login and refuse a wrong password with 535. It counts what it
//! accepted by Message-ID.
#![allow(dead_code)]

use base64::Engine as _;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where the relay stops answering (it keeps the connection open and says nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    /// Accept the connection and never greet.
    Greeting,
    /// Accept RCPT TO, then never answer DATA.
    AfterRcpt,
    /// Read the whole message and never answer its end (a hung content filter: nothing queued).
    EndOfData,
}

#[derive(Default)]
struct Behaviour {
    stall: Option<Stall>,
    /// Answer the end of DATA only after this long (the message is queued when it answers).
    slow_end_of_data: Duration,
    /// The login the relay demands (user, password); None: no AUTH.
    login: Option<(String, String)>,
    /// Recipients refused at RCPT TO, with the code.
    refused: BTreeMap<String, u16>,
}

struct State {
    behaviour: Mutex<Behaviour>,
    accepted: Mutex<Vec<String>>,
    /// Connections now stalled by the relay.
    stalled: AtomicUsize,
    /// AUTH attempts refused with 535.
    refused_logins: AtomicUsize,
    /// Connections accepted so far.
    connections: AtomicUsize,
    /// The open connections, to drop them all as a relay drops idle clients.
    open: Mutex<Vec<TcpStream>>,
    shutdown: AtomicBool,
}

pub struct Relay {
    pub port: u16,
    state: Arc<State>,
}

impl Relay {
    pub fn start() -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State {
            behaviour: Mutex::new(Behaviour::default()),
            accepted: Mutex::new(Vec::new()),
            stalled: AtomicUsize::new(0),
            refused_logins: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            open: Mutex::new(Vec::new()),
            shutdown: AtomicBool::new(false),
        });
        let s = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.shutdown.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                s.connections.fetch_add(1, Ordering::SeqCst);
                if let Ok(clone) = stream.try_clone() {
                    s.open.lock().unwrap().push(clone);
                }
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &s);
                });
            }
        });
        Relay { port, state }
    }

    pub fn set_stall(&self, stall: Option<Stall>) {
        self.state.behaviour.lock().unwrap().stall = stall;
    }
    pub fn set_slow_end_of_data(&self, d: Duration) {
        self.state.behaviour.lock().unwrap().slow_end_of_data = d;
    }
    pub fn require_login(&self, user: &str, password: &str) {
        self.state.behaviour.lock().unwrap().login = Some((user.into(), password.into()));
    }
    /// Connections the relay is holding silent right now.
    pub fn stalled(&self) -> usize {
        self.state.stalled.load(Ordering::SeqCst)
    }
    /// Refuse this recipient at RCPT TO with `code`.
    pub fn refuse(&self, address: &str, code: u16) {
        let mut b = self.state.behaviour.lock().unwrap();
        b.refused.insert(address.to_owned(), code);
    }
    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }
    /// Close every open connection without a word, as a relay does with clients idle too long.
    pub fn drop_connections(&self) {
        for c in self.state.open.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
    pub fn refused_logins(&self) -> usize {
        self.state.refused_logins.load(Ordering::SeqCst)
    }
    /// The Message-IDs of the messages it accepted, in order.
    pub fn accepted(&self) -> Vec<String> {
        self.state.accepted.lock().unwrap().clone()
    }
    pub fn message_id_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for id in self.accepted() {
            *counts.entry(id).or_insert(0) += 1;
        }
        counts
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.state.shutdown.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // wake the accept loop
    }
}

/// Say nothing while this stall is set, the relay runs and the client is there; true if the
/// stall was lifted with the client still connected (a client that left is forgotten, and
/// what it sent with it).
fn hold(state: &State, at: Stall, client: &TcpStream) -> bool {
    if state.behaviour.lock().unwrap().stall != Some(at) {
        return true;
    }
    state.stalled.fetch_add(1, Ordering::SeqCst);
    let mut lifted = false;
    while !state.shutdown.load(Ordering::SeqCst) && !gone(client) {
        if state.behaviour.lock().unwrap().stall != Some(at) {
            lifted = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    state.stalled.fetch_sub(1, Ordering::SeqCst);
    lifted
}

/// The client closed its end.
fn gone(client: &TcpStream) -> bool {
    if client.set_nonblocking(true).is_err() {
        return true;
    }
    let mut byte = [0u8; 1];
    let closed = match client.peek(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    let _ = client.set_nonblocking(false);
    closed
}

fn serve(stream: TcpStream, state: &State) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut out = stream.try_clone()?;
    let probe = stream.try_clone()?;
    let mut lines = BufReader::new(stream);
    if !hold(state, Stall::Greeting, &probe) {
        return Ok(());
    }
    write!(out, "220 misbehaving.test ESMTP\r\n")?;
    let mut logged_in = false;
    let mut rcpt = 0;
    loop {
        let mut line = String::new();
        if lines.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_owned();
        let verb = cmd.split(' ').next().unwrap_or("").to_ascii_uppercase();
        let login = state.behaviour.lock().unwrap().login.clone();
        match verb.as_str() {
            "EHLO" | "HELO" => {
                let auth = if login.is_some() {
                    "250-AUTH PLAIN\r\n"
                } else {
                    ""
                };
                write!(out, "250-misbehaving.test\r\n{auth}250 8BITMIME\r\n")?;
            }
            "AUTH" => {
                let ok = login
                    .as_ref()
                    .is_some_and(|(u, p)| plain_login(&cmd) == Some((u.clone(), p.clone())));
                if ok {
                    logged_in = true;
                    write!(out, "235 2.7.0 Authentication successful\r\n")?;
                } else {
                    state.refused_logins.fetch_add(1, Ordering::SeqCst);
                    write!(out, "535 5.7.8 Authentication credentials invalid\r\n")?;
                }
            }
            "MAIL" if login.is_some() && !logged_in => {
                write!(out, "530 5.7.0 Authentication required\r\n")?
            }
            "MAIL" => {
                rcpt = 0;
                write!(out, "250 2.1.0 Ok\r\n")?
            }
            "RCPT" => {
                let to = cmd.split(['<', '>']).nth(1).unwrap_or("").to_owned();
                let refused = state.behaviour.lock().unwrap().refused.get(&to).copied();
                match refused {
                    Some(code) => write!(out, "{code} 5.1.1 <{to}>: refused by test\r\n")?,
                    None => {
                        rcpt += 1;
                        write!(out, "250 2.1.5 Ok\r\n")?
                    }
                }
            }
            "DATA" if rcpt == 0 => write!(out, "503 5.5.1 No recipients\r\n")?,
            "DATA" => {
                if !hold(state, Stall::AfterRcpt, &probe) {
                    return Ok(());
                }
                write!(out, "354 End data with <CR><LF>.<CR><LF>\r\n")?;
                let message = read_message(&mut lines)?;
                if !hold(state, Stall::EndOfData, &probe) {
                    return Ok(());
                }
                let slow = state.behaviour.lock().unwrap().slow_end_of_data;
                std::thread::sleep(slow);
                // Queued, then answered (a client that has gone does not unqueue it).
                state.accepted.lock().unwrap().push(message_id(&message));
                write!(out, "250 2.0.0 Ok: queued\r\n")?;
            }
            "RSET" | "NOOP" => write!(out, "250 2.0.0 Ok\r\n")?,
            "QUIT" => {
                write!(out, "221 2.0.0 Bye\r\n")?;
                return Ok(());
            }
            _ => write!(out, "502 5.5.2 Command not recognised\r\n")?,
        }
    }
}

/// The message up to the line holding a single dot.
fn read_message(lines: &mut BufReader<TcpStream>) -> std::io::Result<String> {
    let mut message = String::new();
    loop {
        let mut line = String::new();
        if lines.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == ".\r\n" {
            return Ok(message);
        }
        message.push_str(&line);
    }
}

fn message_id(message: &str) -> String {
    message
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("message-id:")
                .then(|| l["message-id:".len()..].trim().to_owned())
        })
        .unwrap_or_default()
}

/// `AUTH PLAIN <base64 of \0user\0password>` → (user, password).
fn plain_login(cmd: &str) -> Option<(String, String)> {
    let b64 = cmd.split(' ').nth(2)?;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let mut parts = text.split('\0');
    let _authz = parts.next()?;
    Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
}
