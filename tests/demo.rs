//! `cpwatch demo`, the README's first command: a private PostgreSQL, the sample partnership,
//! a simulated month, and the mail written as .eml files.

#[test]
fn demo_simulates_a_month_and_writes_the_mail() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("outbox");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cpwatch"))
        .args(["demo", "--out", out_dir.to_str().unwrap(), "--days", "30"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let eml: Vec<_> = std::fs::read_dir(&out_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .collect();
    assert_eq!(eml.len(), 16, "{stdout}");
    assert!(stdout.contains("16 message(s) written"), "{stdout}");
    // KN-0002's conference was never held: escalated on Monday 30 March to the senior manager.
    assert!(
        stdout.lines().any(|l| l.starts_with("Mon 30 Mar 09:00")
            && l.contains("overdue_escalation")
            && l.contains("service.manager@ksc.example.org")),
        "{stdout}"
    );
    let escalation = eml
        .iter()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .find(|m| m.contains("To: service.manager@ksc.example.org"))
        .expect("the escalation's .eml");
    assert!(
        escalation.contains("Subject: Overdue, escalated to you:"),
        "{escalation}"
    );
}
