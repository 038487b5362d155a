//! Reads the agent's `/metrics` once per second on a background thread: a minimal HTTP/1.1
//! GET over one kept-alive `TcpStream` (reconnecting after any error), and a parser for the
//! few Prometheus gauges the overload table shows. A slow or unreachable endpoint never
//! stalls the benchmark's clock: the table just shows the latest snapshot, or `-`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// Largest `/metrics` body accepted (the agent's is a few hundred KiB at most).
const MAX_BODY: usize = 16 << 20;
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// The server gauges the overload benchmark reports. `None` = not exported.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Gauges {
    pub(crate) produce_pending_bytes: Option<f64>,
    pub(crate) fetch_inflight_bytes: Option<f64>,
    pub(crate) read_cache_bytes: Option<f64>,
    pub(crate) open_connections: Option<f64>,
    pub(crate) accept_paused: Option<f64>,
    pub(crate) gate_inflight_produce: Option<f64>,
    pub(crate) gate_inflight_fetch: Option<f64>,
    pub(crate) gate_waiting_produce: Option<f64>,
    pub(crate) gate_waiting_fetch: Option<f64>,
    pub(crate) gate_limit_produce: Option<f64>,
    pub(crate) gate_limit_fetch: Option<f64>,
}

fn add(slot: &mut Option<f64>, v: f64) {
    *slot = Some(slot.unwrap_or(0.0) + v);
}

/// Picks the known gauges out of Prometheus text format. Series of one name that differ
/// only in labels other than `gate` are summed.
pub(crate) fn parse_gauges(text: &str) -> Gauges {
    let mut g = Gauges::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, labels, value)) = split_sample(line) else {
            continue;
        };
        if !value.is_finite() {
            continue;
        }
        let gate = label_value(labels, "gate");
        let slot = match (name, gate.as_deref()) {
            ("sluice_produce_pending_bytes", _) => &mut g.produce_pending_bytes,
            ("sluice_fetch_inflight_bytes", _) => &mut g.fetch_inflight_bytes,
            ("sluice_read_cache_bytes", _) => &mut g.read_cache_bytes,
            ("sluice_open_connections", _) => &mut g.open_connections,
            ("sluice_accept_paused", _) => &mut g.accept_paused,
            ("sluice_gate_inflight_bytes", Some("produce")) => &mut g.gate_inflight_produce,
            ("sluice_gate_inflight_bytes", Some("fetch")) => &mut g.gate_inflight_fetch,
            ("sluice_gate_waiting", Some("produce")) => &mut g.gate_waiting_produce,
            ("sluice_gate_waiting", Some("fetch")) => &mut g.gate_waiting_fetch,
            ("sluice_gate_limit_bytes", Some("produce")) => &mut g.gate_limit_produce,
            ("sluice_gate_limit_bytes", Some("fetch")) => &mut g.gate_limit_fetch,
            _ => continue,
        };
        add(slot, value);
    }
    g
}

/// `name{labels} value [timestamp]` -> (name, labels without braces, value).
fn split_sample(line: &str) -> Option<(&str, &str, f64)> {
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = &line[..name_end];
    let (labels, rest) = if line[name_end..].starts_with('{') {
        let close = line[name_end..].find('}')? + name_end;
        (&line[name_end + 1..close], &line[close + 1..])
    } else {
        ("", &line[name_end..])
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some((name, labels, value))
}

/// The value of `key` in `a="x",key="y"` (no escapes inside the values we look for).
fn label_value(labels: &str, key: &str) -> Option<String> {
    labels.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
    })
}

/// One kept-alive HTTP/1.1 connection to `addr` (host:port).
struct HttpClient {
    addr: String,
    conn: Option<BufReader<TcpStream>>,
}

impl HttpClient {
    fn get(&mut self, path: &str) -> Result<String> {
        // A kept-alive connection may have been closed by the server since the last request:
        // retry once on a fresh connection.
        let mut last_err = None;
        for _ in 0..2 {
            if self.conn.is_none() {
                self.conn = Some(BufReader::new(self.connect()?));
            }
            let Some(conn) = self.conn.as_mut() else {
                continue;
            };
            match request(conn, &self.addr, path) {
                Ok((body, keep_alive)) => {
                    if !keep_alive {
                        self.conn = None;
                    }
                    return Ok(body);
                }
                Err(e) => {
                    self.conn = None;
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("no connection")))
    }

    fn connect(&self) -> Result<TcpStream> {
        let addr = self
            .addr
            .to_socket_addrs()
            .with_context(|| format!("resolving {}", self.addr))?
            .next()
            .ok_or_else(|| anyhow!("{} resolves to no address", self.addr))?;
        let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
            .with_context(|| format!("connecting to {addr}"))?;
        s.set_read_timeout(Some(IO_TIMEOUT))?;
        s.set_write_timeout(Some(IO_TIMEOUT))?;
        s.set_nodelay(true)?;
        Ok(s)
    }
}

/// Sends one GET and reads the response (Content-Length, chunked, or until close).
/// Returns the body and whether the connection may be reused.
fn request(conn: &mut BufReader<TcpStream>, host: &str, path: &str) -> Result<(String, bool)> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/plain\r\n\r\n");
    conn.get_mut().write_all(req.as_bytes())?;

    let mut line = String::new();
    read_line(conn, &mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line {:?}", line.trim_end()))?;
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut keep_alive = line.starts_with("HTTP/1.1");
    loop {
        read_line(conn, &mut line)?;
        let h = line.trim_end();
        if h.is_empty() {
            break;
        }
        let Some((k, v)) = h.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => content_length = v.parse().ok(),
            "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
            "connection" => keep_alive = !v.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }

    let mut body = Vec::new();
    if chunked {
        loop {
            read_line(conn, &mut line)?;
            let size_hex = line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size_hex, 16)
                .map_err(|_| anyhow!("bad chunk size {size_hex:?}"))?;
            if size == 0 {
                // Trailers until the empty line.
                loop {
                    read_line(conn, &mut line)?;
                    if line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            if body.len() + size > MAX_BODY {
                bail!("response body over {MAX_BODY} bytes");
            }
            let start = body.len();
            body.resize(start + size, 0);
            conn.read_exact(&mut body[start..])?;
            read_line(conn, &mut line)?; // CRLF after the chunk
        }
    } else if let Some(n) = content_length {
        if n > MAX_BODY {
            bail!("response body of {n} bytes is over {MAX_BODY}");
        }
        body.resize(n, 0);
        conn.read_exact(&mut body)?;
    } else {
        conn.by_ref().take(MAX_BODY as u64).read_to_end(&mut body)?;
        keep_alive = false;
    }
    if status != 200 {
        bail!("GET {path}: HTTP {status}");
    }
    Ok((String::from_utf8_lossy(&body).into_owned(), keep_alive))
}

fn read_line(conn: &mut BufReader<TcpStream>, line: &mut String) -> Result<()> {
    line.clear();
    let n = conn.by_ref().take(64 * 1024).read_line(line)?;
    if n == 0 {
        bail!("connection closed");
    }
    Ok(())
}

/// The latest scrape: when it was taken and what it found (`Err` text when it failed).
pub(crate) type Latest = Option<(Instant, std::result::Result<Gauges, String>)>;

/// Scrapes `http://addr/metrics` every `interval` until dropped.
pub(crate) struct Scraper {
    latest: Arc<Mutex<Latest>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Scraper {
    pub(crate) fn start(addr: String, interval: Duration) -> Scraper {
        let latest = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let latest = Arc::clone(&latest);
            let stop = Arc::clone(&stop);
            thread::Builder::new()
                .name("metrics-scraper".to_string())
                .spawn(move || {
                    let mut client = HttpClient { addr, conn: None };
                    let mut printed_error = false;
                    while !stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        let result = client
                            .get("/metrics")
                            .map(|body| parse_gauges(&body))
                            .map_err(|e| format!("{e:#}"));
                        if let Err(e) = &result {
                            if !printed_error {
                                printed_error = true;
                                eprintln!("metrics: scraping /metrics failed: {e} (shown as '-')");
                            }
                        }
                        if let Ok(mut l) = latest.lock() {
                            *l = Some((Instant::now(), result));
                        }
                        let next = started + interval;
                        while !stop.load(Ordering::Relaxed) && Instant::now() < next {
                            thread::sleep(Duration::from_millis(20));
                        }
                    }
                })
                .ok()
        };
        Scraper {
            latest,
            stop,
            handle,
        }
    }

    /// The latest successful gauges, if not older than `max_age`.
    pub(crate) fn latest(&self, max_age: Duration) -> Option<Gauges> {
        let l = self.latest.lock().ok()?;
        match &*l {
            Some((at, Ok(g))) if at.elapsed() <= max_age => Some(g.clone()),
            _ => None,
        }
    }
}

impl Drop for Scraper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_gauges() {
        let text = "\
# HELP sluice_gate_inflight_bytes Bytes held by requests in flight, per backpressure gate
# TYPE sluice_gate_inflight_bytes gauge
sluice_gate_inflight_bytes{gate=\"fetch\"} 1048576
sluice_gate_inflight_bytes{gate=\"produce\"} 2097152
sluice_gate_waiting{gate=\"produce\"} 3
sluice_gate_limit_bytes{gate=\"produce\"} 1.073741824e8
sluice_produce_pending_bytes 42
sluice_read_cache_bytes{cluster=\"a\"} 10
sluice_read_cache_bytes{cluster=\"b\"} 5
sluice_open_connections 7 1700000000000
sluice_kafka_requests_total{api=\"produce\"} 99
";
        let g = parse_gauges(text);
        assert_eq!(g.gate_inflight_fetch, Some(1_048_576.0));
        assert_eq!(g.gate_inflight_produce, Some(2_097_152.0));
        assert_eq!(g.gate_waiting_produce, Some(3.0));
        assert_eq!(g.gate_waiting_fetch, None);
        assert_eq!(g.gate_limit_produce, Some(107_374_182.4));
        assert_eq!(g.produce_pending_bytes, Some(42.0));
        assert_eq!(g.read_cache_bytes, Some(15.0));
        assert_eq!(g.open_connections, Some(7.0));
        assert_eq!(g.fetch_inflight_bytes, None);
    }

    #[test]
    fn http_get_content_length_and_chunked() {
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            for reply in [
                "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello".to_string(),
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                    .to_string(),
            ] {
                let mut line = String::new();
                loop {
                    line.clear();
                    r.read_line(&mut line).unwrap();
                    if line.trim_end().is_empty() {
                        break;
                    }
                }
                w.write_all(reply.as_bytes()).unwrap();
            }
        });
        let mut c = HttpClient { addr, conn: None };
        assert_eq!(c.get("/metrics").unwrap(), "hello");
        assert_eq!(c.get("/metrics").unwrap(), "abcde");
        server.join().unwrap();
    }
}
