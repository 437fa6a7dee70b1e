//! Configuration and secrets: `check` lists every problem (type errors, unknown keys, a schedule
//! `run` would refuse), a deployment's file says which partnerships exist, environment values
//! stay strings, plain AUTH to another host is refused, a malformed database URL is never
//! echoed, and the database password reaches cpwatch from a file or PGPASSFILE.

mod common;
mod fault_support;
mod relay_support;

use common::*;
use fault_support::*;
use std::io::Write as _;

fn output(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// cpwatch with only a configuration file (and no CPWATCH_* from the harness).
fn with_file(text: &str) -> (tempfile::NamedTempFile, std::process::Command) {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cpwatch"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CPWATCH_") {
            cmd.env_remove(k);
        }
    }
    cmd.arg("--config").arg(f.path()).arg("check");
    (f, cmd)
}

#[test]
fn check_lists_every_type_error_and_unknown_key_and_validates_the_schedule_as_run_does() {
    let (_f, mut cmd) = with_file(
        "[smtp]\nport = \"abc\"\nbogus = 1\n[delivery]\nbatch_size = \"x\"\n\
         [mail]\ninclude_names = \"maybe\"\n[extra]\na = 1\n\
         [schedule]\nevaluate_cron = \"0 0 99 * * bogus\"\n\
         [partnerships.wirral]\ntimezone = \"Europe/London\"\ncolour = \"blue\"\n",
    );
    let out = cmd.output().unwrap();
    let text = output(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    for key in [
        "smtp.port:",
        "smtp.bogus: unknown key",
        "delivery.batch_size:",
        "mail.include_names:",
        "extra: unknown section",
        "schedule.evaluate_cron: \"0 0 99 * * bogus\" is not a schedule",
        // A partnership without a standards policy follows the national baseline (issue 15);
        // its other keys are still checked.
        "partnerships.wirral.colour: unknown key",
    ] {
        assert!(text.contains(key), "{key}: {text}");
    }
}

#[test]
fn a_deployments_file_says_which_partnerships_exist_and_without_one_the_built_in_stays() {
    let (_f, mut cmd) =
        with_file("[partnerships.sefton]\nstandards_policy = \"knowsley-cp-2019\"\n");
    let out = cmd.output().unwrap();
    let text = output(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("partnerships: sefton\n"), "{text}");
    // No file (the tests' own set-up): the built-in partnership is there.
    let db = TestDb::new();
    let text = Cpwatch::new(&db, None).ok(&["check"]);
    assert!(text.contains("partnerships: knowsley\n"), "{text}");
}

#[test]
fn plain_auth_to_another_host_is_refused_unless_loudly_allowed() {
    let db = TestDb::new();
    let cp = Cpwatch::new(&db, None)
        .with("CPWATCH_SMTP__HOST", "relay.example.org")
        .with("CPWATCH_SMTP__USERNAME", "cpwatch")
        .with("CPWATCH_SMTP__PASSWORD", "hunter2-secret");
    let out = cp.run(&["check"]);
    let text = output(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("smtp.security") && text.contains("unencrypted"),
        "{text}"
    );
    assert!(!text.contains("hunter2-secret"), "{text}");
    let allowed = cp.with("CPWATCH_SMTP__INSECURE_CLEARTEXT_PASSWORD", "true");
    let text = allowed.ok(&["check"]);
    assert!(
        text.contains("WARNING: smtp.insecure_cleartext_password"),
        "{text}"
    );
    // On this machine plain AUTH is fine.
    let local = Cpwatch::new(&db, None).with("CPWATCH_SMTP__PASSWORD", "x");
    local.ok(&["check"]);
}

#[test]
fn environment_values_for_names_and_secrets_stay_strings() {
    let db = TestDb::new();
    let relay = relay_support::Relay::start();
    relay.require_login("0123", "1e3");
    let cp = daemon(&db.url, relay.port)
        .with("CPWATCH_SMTP__USERNAME", "0123")
        .with("CPWATCH_SMTP__PASSWORD", "1e3");
    let ids = queue_load(&cp, &db.url, "env", 3);
    cp.ok(&["deliver", "--once"]);
    let t = tally(&ids, &relay.message_id_counts());
    assert_eq!((t.lost, t.duplicates), (0, 0), "{t}");
    assert_eq!(
        relay.refused_logins(),
        0,
        "logged in as 0123 with 1e3, not 123 with 1000"
    );
}

#[test]
fn a_malformed_database_url_is_never_printed_by_any_command() {
    let db = TestDb::new();
    for url in [
        "postgres://u:s3cr3tpw@[host:5432/x",
        "postgres://u:s3cr3tpw@localhost/%zz",
        "postgres://u:s3cr3tpw@localhost:5432/x?sslmode",
        "postgres://u:s3cr3tpw@local host/x",
    ] {
        let cp = Cpwatch::new(&db, None).with("CPWATCH_DATABASE__URL", url);
        for args in [
            &["check"][..],
            &["migrate"],
            &["evaluate"],
            &["health"],
            &["run"],
            &["deliver", "--once"],
        ] {
            let out = cp.run(args);
            let text = output(&out);
            assert_eq!(out.status.code(), Some(2), "{url} {args:?}: {text}");
            assert!(text.contains("database.url"), "{url} {args:?}: {text}");
            assert!(!text.contains("s3cr3tpw"), "{url} {args:?}: {text}");
        }
    }
    // A well-formed URL with a wrong password: the error names no secret either.
    let pg = cpwatch::pgserver::PrivateServer::start_with_password("right-pw-42").unwrap();
    let wrong = format!(
        "postgres://postgres:wr0ng-pw-42@127.0.0.1:{}/postgres",
        pg.port()
    );
    let cp = Cpwatch::new(&db, None).with("CPWATCH_DATABASE__URL", &wrong);
    for args in [&["migrate"][..], &["health"]] {
        let out = cp.run(args);
        let text = output(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {text}");
        assert!(text.contains("password authentication failed"), "{text}");
        assert!(!text.contains("wr0ng-pw-42"), "{args:?}: {text}");
    }
}

#[test]
fn the_database_password_comes_from_password_file_or_pgpassfile() {
    let pg = cpwatch::pgserver::PrivateServer::start_with_password("db-pw-0123").unwrap();
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port());
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("db-password");
    std::fs::write(&pw, "db-pw-0123\n").unwrap();
    let cp = Cpwatch {
        env: vec![("CPWATCH_DATABASE__URL".into(), url.clone())],
    };
    // No password: refused by the server.
    let out = cp.run(&["migrate"]);
    assert_eq!(out.status.code(), Some(1), "{}", output(&out));
    // database.password_file (as systemd's LoadCredential= gives it).
    let with_file = Cpwatch {
        env: vec![
            ("CPWATCH_DATABASE__URL".into(), url.clone()),
            (
                "CPWATCH_DATABASE__PASSWORD_FILE".into(),
                pw.display().to_string(),
            ),
        ],
    };
    let text = with_file.ok(&["migrate"]);
    assert!(text.contains("applied"), "{text}");
    // A missing file: a configuration error naming the key.
    let missing = Cpwatch {
        env: vec![
            ("CPWATCH_DATABASE__URL".into(), url.clone()),
            (
                "CPWATCH_DATABASE__PASSWORD_FILE".into(),
                "/nonexistent/pw".into(),
            ),
        ],
    };
    let out = missing.run(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(output(&out).contains("database.password_file: /nonexistent/pw"));
    // PGPASSFILE (libpq's own), mode 0600.
    let pgpass = dir.path().join("pgpass");
    std::fs::write(
        &pgpass,
        format!("127.0.0.1:{}:*:postgres:db-pw-0123\n", pg.port()),
    )
    .unwrap();
    std::fs::set_permissions(&pgpass, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = cp
        .command(&["migrate"])
        .env("PGPASSFILE", &pgpass)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("up to date"));
}
