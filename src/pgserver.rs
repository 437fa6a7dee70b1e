//! A private PostgreSQL server in a temporary directory, from the installed server binaries: for
//! `cpwatch demo`, the test harness and the benchmarks (never for the daemon). `initdb` and
//! `postgres` refuse to run as root, so as root the server runs as an unprivileged system user
//! (`postgres`, else `nobody`) by setting the child processes' uid and gid: no `sudo` needed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Why the private server could not be started or stopped; says what to install or fix.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(
        "PostgreSQL's server binaries (initdb, pg_ctl) are not installed: install the `postgresql` \
         package (Debian/Ubuntu: apt-get install postgresql), or put its bin directory on PATH"
    )]
    NoBinaries,
    #[error(
        "running as root, and PostgreSQL refuses to run as root: there is no `postgres` or \
         `nobody` user to run the private server as (create one, e.g. `adduser --system postgres`, \
         or run as a normal user)"
    )]
    NoUnprivilegedUser,
    #[error("{step}: {detail}")]
    Failed { step: &'static str, detail: String },
}

/// A running server of our own on a free loopback port, stopped and deleted when dropped.
pub struct PrivateServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// The (uid, gid) the server runs as when we are root.
    run_as: Option<(u32, u32)>,
}

impl PrivateServer {
    /// initdb into a new temporary directory and start the server; waits until it accepts
    /// connections. The superuser is `postgres`, trusted on loopback.
    pub fn start() -> Result<PrivateServer, ServerError> {
        Self::start_with(None)
    }

    /// The same, but every connection must log in as `postgres` with `password`
    /// (scram-sha-256): for testing how a password reaches cpwatch.
    pub fn start_with_password(password: &str) -> Result<PrivateServer, ServerError> {
        Self::start_with(Some(password))
    }

    fn start_with(password: Option<&str>) -> Result<PrivateServer, ServerError> {
        let bin = server_bin_dir().ok_or(ServerError::NoBinaries)?;
        let run_as = if is_root() {
            Some(unprivileged_user().ok_or(ServerError::NoUnprivilegedUser)?)
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("cpwatch-pg-")
            .tempdir()
            .map_err(|e| failed("creating a temporary directory", e))?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(|e| failed("handing the temporary directory to the server's user", e))?;
        }
        let mut server = PrivateServer {
            port: free_port().map_err(|e| failed("finding a free port", e))?,
            bin,
            dir,
            run_as,
        };
        let data = server.data();
        let mut initdb = server.command("initdb");
        initdb.arg("-D").arg(&data);
        initdb.args(["-U", "postgres", "-N", "-E", "UTF8", "--no-locale"]);
        match password {
            None => initdb.args(["-A", "trust"]),
            Some(pw) => {
                let file = server.dir.path().join("pwfile");
                std::fs::write(&file, pw).map_err(|e| failed("writing the password file", e))?;
                if let Some((uid, gid)) = run_as {
                    std::os::unix::fs::chown(&file, Some(uid), Some(gid))
                        .map_err(|e| failed("handing the password file to the server", e))?;
                }
                initdb.args(["-A", "scram-sha-256", "--pwfile"]).arg(file)
            }
        };
        let out = initdb.output().map_err(|e| failed("running initdb", e))?;
        check("initdb", &out)?;
        // The free port may be taken by someone else before the server binds it: try another.
        for attempt in 1.. {
            match server.start_again() {
                Ok(()) => break,
                Err(e) if attempt >= 3 => return Err(e),
                Err(_) => {
                    server.port = free_port().map_err(|e| failed("finding a free port", e))?
                }
            }
        }
        Ok(server)
    }

    /// The superuser's URL of the `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Start the server (again, after `stop`).
    pub fn start_again(&self) -> Result<(), ServerError> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-t", "60", "-o", &options, "-l"])
            .arg(self.dir.path().join("log"))
            .arg("start")
            .output()
            .map_err(|e| failed("running pg_ctl start", e))?;
        check("pg_ctl start", &out).map_err(|e| self.with_log(e))
    }

    /// Stop the server: `fast` cuts connections (as an administrator's restart does),
    /// `immediate` is a crash.
    pub fn stop(&self, mode: &str) -> Result<(), ServerError> {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-m", mode, "stop"])
            .output()
            .map_err(|e| failed("running pg_ctl stop", e))?;
        check("pg_ctl stop", &out)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// One of the server's programs, run as the server's user, from its own directory (a
    /// working directory the unprivileged user cannot read makes PostgreSQL complain).
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        cmd.current_dir(self.dir.path());
        cmd.env_remove("PGDATA");
        if let Some((uid, gid)) = self.run_as {
            use std::os::unix::process::CommandExt as _;
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    fn with_log(&self, e: ServerError) -> ServerError {
        let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
        match e {
            ServerError::Failed { step, detail } if !log.is_empty() => ServerError::Failed {
                step,
                detail: format!("{detail}\nserver log:\n{log}"),
            },
            e => e,
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

fn failed(step: &'static str, e: impl std::fmt::Display) -> ServerError {
    ServerError::Failed {
        step,
        detail: e.to_string(),
    }
}

fn check(step: &'static str, out: &Output) -> Result<(), ServerError> {
    if out.status.success() {
        return Ok(());
    }
    Err(ServerError::Failed {
        step,
        detail: format!(
            "{}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    })
}

/// The directory holding `initdb` and `pg_ctl`: on PATH, else the newest
/// /usr/lib/postgresql/*/bin (Debian keeps them there).
pub fn server_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file());
    if on_path.is_some() {
        return on_path;
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").is_file())
        .collect();
    dirs.sort_by_key(|p| version_of(p));
    dirs.pop()
}

/// `/usr/lib/postgresql/16/bin` → 16, so that 16 sorts after 9.
fn version_of(bin: &Path) -> u32 {
    bin.parent()
        .and_then(|v| v.file_name())
        .and_then(|v| v.to_str())
        .and_then(|v| v.split('.').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn is_root() -> bool {
    // The owner of /proc/self is this process's effective uid.
    std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}

/// `postgres` if it exists, else `nobody`: (uid, gid) as the system reports them (`id`).
fn unprivileged_user() -> Option<(u32, u32)> {
    ["postgres", "nobody"].iter().find_map(|user| {
        let id = |flag: &str| -> Option<u32> {
            let out = Command::new("id").args([flag, user]).output().ok()?;
            if !out.status.success() {
                return None;
            }
            String::from_utf8_lossy(&out.stdout).trim().parse().ok()
        };
        Some((id("-u")?, id("-g")?)).filter(|(uid, _)| *uid != 0)
    })
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
