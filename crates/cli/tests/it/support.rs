//! Shared helpers: a fresh lake folder and running the real `carelake` binary.

use std::path::PathBuf;
use std::process::Output;

use assert_cmd::Command;

/// Starts `carelake serve …` on the workspace's lake; returns the process and the lines it
/// prints until it is ready (the addresses it listens on). What it prints afterwards is read
/// and dropped, so that its standard output stays open. The Postgres listener is off unless
/// `args` name `--pg-listen`.
pub(crate) fn spawn_serve(ws: &Workspace, args: &[&str]) -> (std::process::Child, String) {
    spawn_serve_with(ws, args, &[])
}

/// [`spawn_serve`] with extra environment (`CARELAKE_LAKE` among them names another lake).
pub(crate) fn spawn_serve_with(
    ws: &Workspace,
    args: &[&str],
    env: &[(&str, &str)],
) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut all: Vec<&str> = args.to_vec();
    if !args.contains(&"--pg-listen") {
        all.extend(["--pg-listen", "off"]);
    }
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("carelake"))
        .arg("serve")
        .args(all)
        .env("CARELAKE_LAKE", ws.lake())
        .env_remove("CARELAKE_LOG")
        .envs(env.iter().copied())
        .current_dir(ws.dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("start carelake serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut reader = std::io::BufReader::new(stdout);
    let mut lines = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).expect("a line from serve") == 0 {
            panic!("carelake serve ended before it was ready: {lines}");
        }
        if line.starts_with("Press Ctrl-C") {
            break;
        }
        lines.push_str(&line);
    }
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    (child, lines)
}

/// `scheme://host:port` of the listener `carelake serve` announced for `scheme` in `lines`.
pub(crate) fn served_at(lines: &str, scheme: &str) -> Option<String> {
    lines
        .split(&format!("{scheme}://"))
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .map(|addr| format!("{scheme}://{addr}"))
}

/// A temporary folder holding a lake and input files; removed when dropped.
pub(crate) struct Workspace {
    pub(crate) dir: tempfile::TempDir,
}

impl Workspace {
    /// A new folder with an initialised lake at `lake/`.
    pub(crate) fn new() -> Self {
        let ws = Self {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        ws.ok(&["init"]);
        ws
    }

    /// Adds a lake user with `password` and `roles` (comma-separated, or empty for none).
    pub(crate) fn add_user(&self, name: &str, password: &str, roles: &str) {
        let mut args = vec!["user", "add", name];
        if !roles.is_empty() {
            args.extend(["--roles", roles]);
        }
        let out = self
            .command(&args)
            .env("CARELAKE_PASSWORD", password)
            .output()
            .expect("user add");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn lake(&self) -> String {
        self.path("lake").to_string_lossy().into_owned()
    }

    pub(crate) fn write(&self, name: &str, content: impl AsRef<[u8]>) -> String {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create dir");
        }
        std::fs::write(&path, content).expect("write file");
        path.to_string_lossy().into_owned()
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::cargo_bin("carelake").expect("binary");
        cmd.current_dir(self.dir.path())
            .env("CARELAKE_LAKE", self.lake())
            .env_remove("CARELAKE_LOG")
            .args(args);
        cmd
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run carelake")
    }

    /// Runs a command that must succeed; returns standard output.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        succeeded(args, self.run(args))
    }

    /// Runs a command that must fail; returns standard error.
    pub(crate) fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "carelake {args:?} should have failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Runs a query and returns its CSV output without the header, one line per row.
    pub(crate) fn query(&self, sql: &str) -> Vec<String> {
        let out = self.ok(&["sql", sql, "--format", "csv"]);
        out.lines().skip(1).map(str::to_string).collect()
    }

    /// A single value from a query.
    pub(crate) fn scalar(&self, sql: &str) -> String {
        let rows = self.query(sql);
        assert_eq!(rows.len(), 1, "{sql} returned {rows:?}");
        rows[0].clone()
    }
}

/// Standard output of `carelake args`, which must have succeeded.
pub(crate) fn succeeded(args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "carelake {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The Python interpreter for tests that need Python packages (`CARELAKE_PYTHON`, else
/// `python3`), when it can import `modules`. Where it cannot, the test skips with a message,
/// unless `CARELAKE_REQUIRE_INTEROP` is set (as `scripts/test.sh` does), where it fails.
pub(crate) fn python_with(modules: &str, test: &str) -> Option<String> {
    let python = std::env::var("CARELAKE_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = std::process::Command::new(&python)
        .args(["-c", &format!("import {modules}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        return Some(python);
    }
    assert!(
        std::env::var_os("CARELAKE_REQUIRE_INTEROP").is_none(),
        "CARELAKE_REQUIRE_INTEROP is set but {python} cannot import {modules}"
    );
    eprintln!("SKIPPED {test}: Python cannot import {modules} (scripts/test.sh installs them)");
    None
}

pub(crate) use carelake_common::testdata::shared_data;

/// The bytes of every file under `dir`, one after another (for checking that a secret or a
/// patient's name appears nowhere in the lake's files).
pub(crate) fn all_bytes_under(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.extend(bytes);
            }
        }
    }
    out
}

/// A child process killed when dropped (also when a test panics), so that no server outlives
/// its test.
pub(crate) struct KillOnDrop(pub(crate) std::process::Child);

impl KillOnDrop {
    /// The process id.
    pub(crate) fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Workspace {
    /// The values `sql` (one column) returns once they include every one of `expected`,
    /// waiting up to 60 s (a restarted server stores what its write-ahead log holds a little
    /// after it starts); panics with how many were found when they do not arrive.
    pub(crate) fn wait_for_ids(
        &self,
        sql: &str,
        expected: &std::collections::HashSet<String>,
    ) -> Vec<String> {
        let started = std::time::Instant::now();
        loop {
            let out = self.run(&["sql", sql, "--format", "csv"]);
            let rows: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .skip(1)
                .map(str::to_string)
                .collect();
            let found: std::collections::HashSet<&String> = rows.iter().collect();
            if expected.iter().all(|id| found.contains(id)) {
                return rows;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "{} of {} expected values returned by {sql}",
                expected.iter().filter(|id| found.contains(id)).count(),
                expected.len()
            );
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }
}

/// The program, or `None` with a message (the test then skips) unless
/// `CARELAKE_REQUIRE_INTEROP` is set, where a missing program fails the test.
pub(crate) fn program(name: &str, test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CARELAKE_REQUIRE_INTEROP").is_none(),
            "CARELAKE_REQUIRE_INTEROP is set but {name} is not installed"
        );
        eprintln!("SKIPPED {test}: {name} is not installed (scripts/test.sh installs it)");
    }
    found
}

/// A self-signed certificate for localhost and 127.0.0.1, and its key, made by `openssl` in
/// the workspace as `<name>.crt` and `<name>.key`.
pub(crate) fn self_signed(
    openssl: &std::path::Path,
    ws: &Workspace,
    name: &str,
) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        ws.path(&format!("{name}.crt")),
        ws.path(&format!("{name}.key")),
    );
    let made = std::process::Command::new(openssl)
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    (cert, key)
}
