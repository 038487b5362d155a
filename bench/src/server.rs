//! A `sluice serve` child process for the benchmarks and the kill test: started on
//! ephemeral ports with a throw-away (or a given) data directory, announced by its "sluice
//! listening kafka=... http=..." line, its output drained (kept as a short tail for
//! diagnostics, optionally appended to a log file), killed with SIGKILL and started again
//! with the same flags on demand, and stopped with SIGTERM, then SIGKILL, when dropped.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

/// How to start the server.
#[derive(Clone, Debug)]
pub(crate) struct SpawnOptions {
    /// Path of the `sluice` binary.
    pub(crate) path: PathBuf,
    /// Value of `--batch-timeout`.
    pub(crate) batch_timeout: String,
    /// Value of `--bucket-url`; `None` keeps the server's default.
    pub(crate) bucket_url: Option<String>,
    /// More arguments appended after the standard ones (e.g. `--memory-limit=512MiB`).
    pub(crate) extra_args: Vec<String>,
    /// Forward the server's stdout/stderr to this program's stderr.
    pub(crate) forward_log: bool,
    /// Keep the temporary data directory when the server stops (a given `data_dir` is
    /// always kept: it belongs to the caller).
    pub(crate) keep_data: bool,
    /// How long to wait for the "sluice listening" line.
    pub(crate) startup_timeout: Duration,
    /// `--data-dir`; `None`: a fresh directory under the system temp dir.
    pub(crate) data_dir: Option<PathBuf>,
    /// Append every line of the server's output to this file (across restarts).
    pub(crate) log_file: Option<PathBuf>,
}

type LogTail = Arc<Mutex<VecDeque<String>>>;

pub(crate) struct Server {
    child: Child,
    pub(crate) pid: u32,
    pub(crate) data_dir: PathBuf,
    opts: SpawnOptions,
    /// Whether `data_dir` was made by us (and is removed on stop unless `keep_data`).
    own_data_dir: bool,
    stopped: bool,
    log_tail: LogTail,
    /// The Kafka and HTTP listeners of the first start, kept across restarts.
    listeners: (String, String),
}

/// A started process, before it is wrapped in a `Server`.
struct Launched {
    child: Child,
    log_tail: LogTail,
    kafka: String,
    http: Option<String>,
}

impl Server {
    /// Starts `PATH serve ...` and waits for its "sluice listening kafka=... http=..." line.
    /// Returns the server, its Kafka address and its HTTP address (if printed).
    pub(crate) fn spawn(opts: &SpawnOptions) -> Result<(Server, String, Option<String>)> {
        let (data_dir, own_data_dir) = match &opts.data_dir {
            Some(dir) => (dir.clone(), false),
            None => {
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.subsec_nanos())
                    .unwrap_or(0);
                let dir = std::env::temp_dir()
                    .join(format!("sluice-bench-{}-{nanos:x}", std::process::id()));
                (dir, true)
            }
        };
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let ephemeral = ("127.0.0.1:0", "127.0.0.1:0");
        let launched = match launch(opts, &data_dir, true, ephemeral) {
            Ok(l) => l,
            Err(e) => {
                if own_data_dir && !opts.keep_data {
                    let _ = std::fs::remove_dir_all(&data_dir);
                }
                return Err(e);
            }
        };
        let pid = launched.child.id();
        let server = Server {
            child: launched.child,
            pid,
            data_dir,
            opts: opts.clone(),
            own_data_dir,
            stopped: false,
            log_tail: launched.log_tail,
            listeners: (
                launched.kafka.clone(),
                launched
                    .http
                    .clone()
                    .unwrap_or_else(|| ephemeral.1.to_string()),
            ),
        };
        Ok((server, launched.kafka, launched.http))
    }

    /// Exit status if the process has ended.
    pub(crate) fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(format!("wait failed: {e}")),
        }
    }

    pub(crate) fn print_tail(&self) {
        print_tail(&self.log_tail);
    }

    /// SIGKILL, and reaps the process: a crash, no shutdown steps run.
    pub(crate) fn kill(&mut self) -> Result<()> {
        if self.exited().is_none() {
            self.child
                .kill()
                .with_context(|| format!("killing pid {}", self.pid))?;
        }
        self.child
            .wait()
            .with_context(|| format!("reaping pid {}", self.pid))?;
        Ok(())
    }

    /// Starts the process again with the same flags, data directory and ports (it must
    /// have exited, e.g. after `kill`), as a restarted broker keeps its address: clients
    /// that knew its node id find it where it was. Returns the Kafka and HTTP addresses.
    /// On failure the server stays down and `restart` may be called again; the error
    /// quotes the last line the server printed (the tail is not printed: a caller that
    /// retries would repeat it).
    pub(crate) fn restart(&mut self) -> Result<(String, Option<String>)> {
        if self.exited().is_none() {
            bail!(
                "pid {} is still running; kill it before restarting",
                self.pid
            );
        }
        if let Some(log) = &self.opts.log_file {
            append_line(log, "--- sluice-bench: restarting the server ---");
        }
        let (kafka, http) = &self.listeners;
        let launched = launch(&self.opts, &self.data_dir, false, (kafka, http))?;
        self.pid = launched.child.id();
        self.child = launched.child;
        self.log_tail = launched.log_tail;
        self.stopped = false;
        Ok((launched.kafka, launched.http))
    }

    /// SIGTERM (through `kill`, as this crate forbids unsafe code), then SIGKILL after 10 s.
    pub(crate) fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        if self.exited().is_none() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.exited().is_none() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(50));
            }
            if self.exited().is_none() {
                eprintln!("server did not stop within 10s of SIGTERM; killing it");
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        if !self.own_data_dir {
            return;
        }
        if self.opts.keep_data {
            eprintln!("kept server data in {}", self.data_dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

/// Runs `PATH serve --data-dir DIR ...` and waits for the "sluice listening" line. An early
/// exit or a missing line is an error that quotes the last line of output; with
/// `print_tail_on_failure` the whole tail is printed too.
fn launch(
    opts: &SpawnOptions,
    data_dir: &std::path::Path,
    print_tail_on_failure: bool,
    (kafka_addr, http_addr): (&str, &str),
) -> Result<Launched> {
    let path = opts.path.as_path();
    let mut cmd = Command::new(path);
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--kafka-addr", kafka_addr, "--http-addr", http_addr])
        .arg("--batch-timeout")
        .arg(&opts.batch_timeout);
    if let Some(url) = &opts.bucket_url {
        cmd.arg("--bucket-url").arg(url);
    }
    cmd.args(&opts.extra_args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let log_file = match &opts.log_file {
        Some(p) => Some(Arc::new(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening {}", p.display()))?,
        ))),
        None => None,
    };
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", path.display()))?;
    let log_tail: LogTail = Arc::new(Mutex::new(VecDeque::new()));
    let (tx, rx) = mpsc::channel::<String>();
    let pipes: [(Option<Box<dyn Read + Send>>, &'static str); 2] = [
        (
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            "stdout",
        ),
        (
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            "stderr",
        ),
    ];
    for (pipe, label) in pipes {
        if let Some(pipe) = pipe {
            pump_lines(
                pipe,
                label,
                Arc::clone(&log_tail),
                log_file.clone(),
                opts.forward_log,
                tx.clone(),
            );
        }
    }
    drop(tx);

    let last_line = |tail: &LogTail| {
        tail.lock()
            .ok()
            .and_then(|t| t.back().cloned())
            .unwrap_or_default()
    };
    let deadline = Instant::now() + opts.startup_timeout;
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                if let Some((kafka, http)) = parse_listening_line(&line) {
                    return Ok(Launched {
                        child,
                        log_tail,
                        kafka,
                        http,
                    });
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // Both pipes closed: the process is exiting. Give it a moment to be reaped.
                thread::sleep(Duration::from_millis(200));
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            // Let the pumps drain what the process printed last.
            thread::sleep(Duration::from_millis(100));
            if print_tail_on_failure {
                print_tail(&log_tail);
            }
            bail!(
                "{} exited before it was listening ({status}): {}",
                path.display(),
                last_line(&log_tail)
            );
        }
        if Instant::now() > deadline {
            if print_tail_on_failure {
                print_tail(&log_tail);
            }
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{} printed no \"sluice listening kafka=...\" line within {:?}",
                path.display(),
                opts.startup_timeout
            );
        }
    }
}

fn print_tail(tail: &LogTail) {
    if let Ok(tail) = tail.lock() {
        if tail.is_empty() {
            return;
        }
        eprintln!("--- last {} lines of server output ---", tail.len());
        for line in tail.iter() {
            eprintln!("{line}");
        }
        eprintln!("---");
    }
}

fn append_line(path: &std::path::Path, line: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Drains one output pipe of the server until EOF (so it never blocks on a full pipe),
/// keeps the last lines for diagnostics, optionally forwards them and appends them to a
/// log file, and sends lines that look like the "listening" announcement to `tx`.
fn pump_lines<R: Read + Send + 'static>(
    pipe: R,
    label: &'static str,
    tail: LogTail,
    log_file: Option<Arc<Mutex<File>>>,
    forward: bool,
    tx: mpsc::Sender<String>,
) {
    let _ = thread::Builder::new()
        .name(format!("server-{label}"))
        .spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut buf = Vec::new();
            let mut announced = false;
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let line = strip_ansi(String::from_utf8_lossy(&buf).trim_end());
                if forward {
                    eprintln!("[sluice {label}] {line}");
                }
                if let Some(file) = &log_file {
                    if let Ok(mut f) = file.lock() {
                        let _ = writeln!(f, "{line}");
                    }
                }
                if !announced && line.contains("sluice listening") {
                    announced = true;
                    let _ = tx.send(line.clone());
                }
                if let Ok(mut t) = tail.lock() {
                    if t.len() >= 40 {
                        t.pop_front();
                    }
                    t.push_back(line);
                }
            }
        });
}

/// Parses `sluice listening kafka=HOST:PORT http=HOST:PORT` (tolerating a log prefix,
/// quotes and trailing commas) into (kafka, http).
fn parse_listening_line(line: &str) -> Option<(String, Option<String>)> {
    let mut kafka = None;
    let mut http = None;
    for token in line.split_whitespace() {
        let token = token.trim_matches(|c: char| c == '"' || c == ',' || c == '\'');
        if let Some(v) = token.strip_prefix("kafka=") {
            kafka = Some(v.trim_matches('"').to_string());
        } else if let Some(v) = token.strip_prefix("http=") {
            http = Some(v.trim_matches('"').to_string());
        }
    }
    kafka.filter(|k| k.contains(':')).map(|k| (k, http))
}

/// Removes ANSI escape sequences (ESC '[' ... final byte) from a log line.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c2 in chars.by_ref() {
                    if ('@'..='~').contains(&c2) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_line() {
        let (k, h) =
            parse_listening_line("sluice listening kafka=127.0.0.1:40001 http=127.0.0.1:40002")
                .unwrap();
        assert_eq!(k, "127.0.0.1:40001");
        assert_eq!(h.as_deref(), Some("127.0.0.1:40002"));
        let (k, _) = parse_listening_line(&strip_ansi(
            "\u{1b}[2m2024\u{1b}[0m INFO sluice listening kafka=\"127.0.0.1:1\"",
        ))
        .unwrap();
        assert_eq!(k, "127.0.0.1:1");
        assert!(parse_listening_line("sluice starting").is_none());
    }
}
