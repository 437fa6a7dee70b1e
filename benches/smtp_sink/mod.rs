//! A fast SMTP sink on loopback for the delivery benchmark: a thread per connection, buffered
//! both ways (answers are flushed only when the client has nothing more in flight), accepting
//! every message and counting it by Message-ID with the instant it arrived.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Default)]
struct Log {
    counts: HashMap<String, u32>,
    first: Option<Instant>,
    last: Option<Instant>,
    total: u64,
    connections: u64,
    last_size: usize,
}

pub struct Sink {
    pub port: u16,
    log: Arc<Mutex<Log>>,
}

/// What the sink saw since the last `take`.
pub struct Seen {
    pub counts: HashMap<String, u32>,
    pub total: u64,
    pub connections: u64,
    /// The size of the last message, in bytes.
    pub last_size: usize,
    /// From the first message's end of DATA to the last's.
    pub span: Option<std::time::Duration>,
}

impl Sink {
    pub fn start() -> std::io::Result<Sink> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let log = Arc::new(Mutex::new(Log::default()));
        let shared = log.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &log);
                });
            }
        });
        Ok(Sink { port, log })
    }

    /// What arrived so far, and start counting afresh.
    pub fn take(&self) -> Seen {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let l = std::mem::take(&mut *log);
        Seen {
            span: l.first.zip(l.last).map(|(f, t)| t - f),
            counts: l.counts,
            total: l.total,
            connections: l.connections,
            last_size: l.last_size,
        }
    }
}

fn serve(stream: TcpStream, log: &Mutex<Log>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    if let Ok(mut l) = log.lock() {
        l.connections += 1;
    }
    let mut out = BufWriter::new(stream.try_clone()?);
    let mut input = BufReader::with_capacity(64 * 1024, stream);
    out.write_all(b"220 sink.bench ESMTP\r\n")?;
    out.flush()?;
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).map(|v| v.to_ascii_uppercase());
        match verb.as_deref() {
            Some(b"EHLO") => {
                out.write_all(b"250-sink.bench\r\n250-8BITMIME\r\n250 PIPELINING\r\n")?
            }
            Some(b"DATA") => {
                out.write_all(b"354 go ahead\r\n")?;
                out.flush()?;
                let (id, size) = read_message(&mut input)?;
                record(log, id, size);
                out.write_all(b"250 2.0.0 queued\r\n")?;
            }
            Some(b"QUIT") => {
                out.write_all(b"221 bye\r\n")?;
                out.flush()?;
                return Ok(());
            }
            _ => out.write_all(b"250 ok\r\n")?,
        }
        if input.buffer().is_empty() {
            out.flush()?;
        }
    }
}

/// The message up to its end (a line holding a single dot); returns its Message-ID and size.
fn read_message(input: &mut BufReader<TcpStream>) -> std::io::Result<(String, usize)> {
    let mut id = String::new();
    let mut size = 0;
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == b".\r\n" {
            return Ok((id, size));
        }
        size += line.len();
        if id.is_empty() && line.len() > 11 && line[..11].eq_ignore_ascii_case(b"message-id:") {
            id = String::from_utf8_lossy(&line[11..]).trim().to_owned();
        }
    }
}

fn record(log: &Mutex<Log>, id: String, size: usize) {
    let now = Instant::now();
    let mut l = log.lock().unwrap_or_else(|p| p.into_inner());
    *l.counts.entry(id).or_insert(0) += 1;
    l.total += 1;
    l.last_size = size;
    l.first.get_or_insert(now);
    l.last = Some(now);
}

/// The sink's own ceiling: `n` messages of `message` over one reused connection per client,
/// `clients` at once, each message the exchange cpwatch makes (RSET, MAIL, RCPT, DATA, the
/// message and its end in one write), waiting for each answer. Messages per second.
pub fn ceiling(port: u16, clients: usize, n: usize, message: &[u8]) -> std::io::Result<f64> {
    let started = Instant::now();
    let per = n / clients;
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let message = message.to_vec();
            std::thread::spawn(move || client(port, c, per, &message))
        })
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| std::io::Error::other("client panicked"))??;
    }
    Ok((per * clients) as f64 / started.elapsed().as_secs_f64())
}

fn client(port: u16, c: usize, n: usize, message: &[u8]) -> std::io::Result<()> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_nodelay(true)?;
    let mut out = stream.try_clone()?;
    let mut input = BufReader::new(stream);
    let mut reply = String::new();
    let mut ask = |out: &mut TcpStream, what: &[u8]| -> std::io::Result<()> {
        out.write_all(what)?;
        loop {
            reply.clear();
            if input.read_line(&mut reply)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if reply.as_bytes().get(3) == Some(&b' ') {
                return Ok(());
            }
        }
    };
    ask(&mut out, b"")?; // the greeting
    ask(&mut out, b"EHLO ceiling\r\n")?;
    for i in 0..n {
        ask(&mut out, b"RSET\r\n")?;
        ask(&mut out, b"MAIL FROM:<ceiling@bench.test>\r\n")?;
        ask(&mut out, b"RCPT TO:<r@bench.test>\r\n")?;
        ask(&mut out, b"DATA\r\n")?;
        let mut body = format!("Message-ID: <ceiling-{c}-{i}@bench.test>\r\n").into_bytes();
        body.extend_from_slice(message);
        body.extend_from_slice(b"\r\n.\r\n");
        ask(&mut out, &body)?;
    }
    ask(&mut out, b"QUIT\r\n")
}
