//! The SMTP session over TLS: implicit TLS (run by cpwatch over its own `TCP_NODELAY` socket)
//! and STARTTLS, against a real TLS relay on loopback (rustls, a certificate made by `openssl`
//! for this test), each carrying several messages over the one connection it keeps.

use cpwatch::smtp::{Relay, Security};
use lettre::address::Envelope;
use lettre::transport::smtp::client::{Certificate, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A self-signed certificate for `localhost` (not a CA, so it can be its own trust anchor).
fn certificate(dir: &std::path::Path) -> (Vec<u8>, Vec<u8>) {
    let (key, cert) = (dir.join("key.pem"), dir.join("cert.pem"));
    let ok = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl")
        .success();
    assert!(ok, "openssl made the certificate");
    (std::fs::read(cert).unwrap(), std::fs::read(key).unwrap())
}

#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    messages: Mutex<Vec<String>>,
}

/// A relay on loopback: implicit TLS from the first byte, or plain with STARTTLS.
fn relay(cert: &[u8], key: &[u8], implicit: bool) -> (u16, Arc<Seen>) {
    let certs: Vec<_> = rustls_pemfile::certs(&mut &cert[..])
        .collect::<Result<_, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut &key[..]).unwrap().unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            s.connections.fetch_add(1, Ordering::SeqCst);
            let (config, s) = (config.clone(), s.clone());
            std::thread::spawn(move || {
                let _ = serve(stream, config, implicit, &s);
            });
        }
    });
    (port, seen)
}

type Tls = rustls::StreamOwned<rustls::ServerConnection, TcpStream>;

fn tls(stream: TcpStream, config: Arc<rustls::ServerConfig>) -> std::io::Result<Tls> {
    let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    Ok(rustls::StreamOwned::new(conn, stream))
}

fn serve(
    mut plain: TcpStream,
    config: Arc<rustls::ServerConfig>,
    implicit: bool,
    seen: &Seen,
) -> std::io::Result<()> {
    if !implicit {
        plain.write_all(b"220 tls.test ESMTP\r\n")?;
        let mut lines = BufReader::new(plain.try_clone()?);
        let mut line = String::new();
        lines.read_line(&mut line)?; // EHLO
        plain.write_all(b"250-tls.test\r\n250 STARTTLS\r\n")?;
        line.clear();
        lines.read_line(&mut line)?;
        assert!(line.starts_with("STARTTLS"), "{line}");
        plain.write_all(b"220 go ahead\r\n")?;
        return dialogue(BufReader::new(tls(plain, config)?), false, seen);
    }
    dialogue(BufReader::new(tls(plain, config)?), true, seen)
}

/// The SMTP dialogue over TLS (greeting first if `greet`), recording each message.
fn dialogue(mut s: BufReader<Tls>, greet: bool, seen: &Seen) -> std::io::Result<()> {
    let reply = |s: &mut BufReader<Tls>, r: &[u8]| -> std::io::Result<()> {
        s.get_mut().write_all(r)?;
        s.get_mut().flush()
    };
    if greet {
        reply(&mut s, b"220 tls.test ESMTP\r\n")?;
    }
    loop {
        let mut line = String::new();
        if s.read_line(&mut line)? == 0 {
            return Ok(());
        }
        match line.get(..4).unwrap_or("").to_ascii_uppercase().as_str() {
            "EHLO" => reply(&mut s, b"250-tls.test\r\n250 8BITMIME\r\n")?,
            "DATA" => {
                reply(&mut s, b"354 go ahead\r\n")?;
                let mut message = String::new();
                loop {
                    let mut l = String::new();
                    if s.read_line(&mut l)? == 0 || l == ".\r\n" {
                        break;
                    }
                    message.push_str(&l);
                }
                seen.messages.lock().unwrap().push(message);
                reply(&mut s, b"250 queued\r\n")?;
            }
            "QUIT" => return reply(&mut s, b"221 bye\r\n"),
            _ => reply(&mut s, b"250 ok\r\n")?,
        }
    }
}

fn client(port: u16, security: Security) -> Relay {
    Relay {
        host: "127.0.0.1".into(),
        port,
        security,
        credentials: None,
        timeout: Duration::from_secs(10),
        cleartext_auth: false,
        hello: ClientId::default(),
        kept: Default::default(),
    }
}

fn params(cert: &[u8]) -> TlsParameters {
    TlsParameters::builder("localhost".into())
        .add_root_certificate(Certificate::from_pem(cert).unwrap())
        .build_rustls()
        .unwrap()
}

fn send_three(relay: &Relay) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let envelope = Envelope::new(
        Some("cpwatch@lscp.example.org".parse().unwrap()),
        vec!["tm1@ksc.example.org".parse().unwrap()],
    )
    .unwrap();
    rt.block_on(async {
        for i in 0..3 {
            let message = format!("Message-ID: <tls-{i}@cpwatch.test>\r\n\r\nbody {i}\r\n");
            relay
                .send(&envelope, message.as_bytes(), None)
                .await
                .unwrap_or_else(|e| panic!("message {i}: {e}"));
        }
        relay.close().await;
    });
}

#[test]
fn implicit_tls_carries_several_messages_over_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path());
    let (port, seen) = relay(&cert, &key, true);
    send_three(&client(port, Security::Tls(params(&cert))));
    let messages = seen.messages.lock().unwrap().clone();
    assert_eq!(messages.len(), 3);
    assert!(messages[2].contains("<tls-2@cpwatch.test>"), "{messages:?}");
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
}

#[test]
fn starttls_carries_several_messages_over_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path());
    let (port, seen) = relay(&cert, &key, false);
    send_three(&client(port, Security::StartTls(params(&cert))));
    assert_eq!(seen.messages.lock().unwrap().len(), 3);
    assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
}

#[test]
fn implicit_tls_refuses_a_certificate_it_does_not_trust() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(dir.path());
    let (port, seen) = relay(&cert, &key, true);
    let untrusting = client(
        port,
        Security::Tls(TlsParameters::new("localhost".into()).unwrap()),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let envelope = Envelope::new(None, vec!["tm1@ksc.example.org".parse().unwrap()]).unwrap();
    let err = rt
        .block_on(untrusting.send(&envelope, b"Subject: x\r\n\r\nx\r\n", None))
        .unwrap_err();
    assert_eq!(err.phase, cpwatch::smtp::Phase::Connect, "{err}");
    assert_eq!(err.verdict(), cpwatch::smtp::Verdict::RelayFault);
    assert!(matches!(err.cause, cpwatch::smtp::Cause::Tls(_)), "{err}");
    assert!(err.advice().contains("smtp.security"), "{}", err.advice());
    assert!(seen.messages.lock().unwrap().is_empty());
}
