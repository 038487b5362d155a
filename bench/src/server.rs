//! A `sluice serve` child process for the benchmarks: started on ephemeral ports with a
//! throw-away data directory, announced by its "sluice listening kafka=... http=..." line,
//! its output drained (and kept as a short tail for diagnostics), and stopped with SIGTERM,
//! then SIGKILL, when dropped.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

/// How to start the server.
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
    /// Keep the temporary data directory when the server stops.
    pub(crate) keep_data: bool,
    /// How long to wait for the "sluice listening" line.
    pub(crate) startup_timeout: Duration,
}

pub(crate) struct Server {
    child: Child,
    pub(crate) pid: u32,
    pub(crate) data_dir: PathBuf,
    keep_data: bool,
    stopped: bool,
    log_tail: Arc<Mutex<VecDeque<String>>>,
}

impl Server {
    /// Starts `PATH serve ...` and waits for its "sluice listening kafka=... http=..." line.
    /// Returns the server, its Kafka address and its HTTP address (if printed).
    pub(crate) fn spawn(opts: &SpawnOptions) -> Result<(Server, String, Option<String>)> {
        let path = opts.path.as_path();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let data_dir =
            std::env::temp_dir().join(format!("sluice-bench-{}-{nanos:x}", std::process::id()));
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;

        let mut cmd = Command::new(path);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--kafka-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
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
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&data_dir);
                return Err(e).with_context(|| format!("starting {}", path.display()));
            }
        };
        let pid = child.id();
        let log_tail = Arc::new(Mutex::new(VecDeque::new()));
        let (tx, rx) = mpsc::channel::<String>();
        if let Some(out) = child.stdout.take() {
            pump_lines(
                out,
                "stdout",
                Arc::clone(&log_tail),
                opts.forward_log,
                tx.clone(),
            );
        }
        if let Some(err) = child.stderr.take() {
            pump_lines(
                err,
                "stderr",
                Arc::clone(&log_tail),
                opts.forward_log,
                tx.clone(),
            );
        }
        drop(tx);

        let mut server = Server {
            child,
            pid,
            data_dir,
            keep_data: opts.keep_data,
            stopped: false,
            log_tail,
        };
        let deadline = Instant::now() + opts.startup_timeout;
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    if let Some((kafka, http)) = parse_listening_line(&line) {
                        return Ok((server, kafka, http));
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // Both pipes closed: the process is exiting. Give it a moment to be reaped.
                    thread::sleep(Duration::from_millis(200));
                }
            }
            if let Some(status) = server.exited() {
                server.print_tail();
                bail!(
                    "{} exited before it was listening ({status})",
                    path.display()
                );
            }
            if Instant::now() > deadline {
                server.print_tail();
                bail!(
                    "{} printed no \"sluice listening kafka=...\" line within {:?}",
                    path.display(),
                    opts.startup_timeout
                );
            }
        }
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
        if let Ok(tail) = self.log_tail.lock() {
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
        if self.keep_data {
            eprintln!("kept server data in {}", self.data_dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Drains one output pipe of the server until EOF (so it never blocks on a full pipe),
/// keeps the last lines for diagnostics, optionally forwards them, and sends lines that
/// look like the "listening" announcement to `tx`.
fn pump_lines<R: Read + Send + 'static>(
    pipe: R,
    label: &'static str,
    tail: Arc<Mutex<VecDeque<String>>>,
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
