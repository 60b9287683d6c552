//! `carelake bench http`: a bounded load test of the HTTP API on loopback. A fresh lake and
//! an in-process server; client tasks on keep-alive connections post NDJSON batches of
//! device events, then run queries; prints events/s and request latency percentiles, and
//! checks that every acknowledged event reached the lake once.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use carelake_common::Principal;
use carelake_lake::Lake;
use carelake_server::{HttpConfig, HttpServer};
use carelake_sql::Session;
use carelake_stream::{StreamConfig, StreamIngest};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// What the load test does.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct HttpBenchArgs {
    /// Events to send.
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// Events per request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Concurrent clients (each one keep-alive connection).
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Queries each client runs after the ingest.
    #[arg(long, default_value_t = 25)]
    queries: usize,
    /// Working folder (a fresh one under the system temp folder by default).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// One keep-alive HTTP/1.1 connection.
pub(crate) struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    pub(crate) async fn open(port: u16) -> Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            reader: BufReader::new(stream),
        })
    }

    /// Sends a request; returns the status and body.
    pub(crate) async fn post(
        &mut self,
        path: &str,
        auth: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<(u16, Vec<u8>)> {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line).await?;
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("no HTTP status")?;
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).await?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; length];
        self.reader.read_exact(&mut body).await?;
        Ok((status, body))
    }
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn latency_line(what: &str, latencies: &mut [Duration]) -> String {
    latencies.sort_unstable();
    format!(
        "{what}: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} requests",
        percentile(latencies, 0.5),
        percentile(latencies, 0.9),
        percentile(latencies, 0.99),
        percentile(latencies, 1.0),
        latencies.len()
    )
}

pub(crate) async fn run(args: HttpBenchArgs, principal: Principal) -> Result<()> {
    let dir = crate::bench::work_dir(args.dir.clone(), "http")?;
    let lake = Lake::init(&dir.join("lake").to_string_lossy()).await?;
    let password = carelake_lake::generate_password();
    lake.users().ensure_first_user(Some(&password)).await?;
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{password}", carelake_lake::FIRST_USER))
    );
    let mut config = StreamConfig::new(dir.join("wal"));
    config.flush_interval = Duration::from_secs(5);
    let ingest = StreamIngest::open(lake.clone(), principal.clone(), config).await?;
    let server = HttpServer::bind(
        HttpConfig::new(([127, 0, 0, 1], 0).into(), dir.join("spool")),
        lake.clone(),
        ingest.clone(),
    )
    .await?;
    let port = server.local_addr().context("no address")?.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    // Ingest: each client sends its share of batches on one connection.
    let batches = args.events.div_ceil(args.batch);
    let per_client = batches.div_ceil(args.clients);
    println!(
        "bench http: {} events in batches of {} from {} clients (keep-alive), to 127.0.0.1:{port}",
        args.events, args.batch, args.clients
    );
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..args.clients {
        let auth = auth.clone();
        let (batch, events) = (args.batch, args.events);
        tasks.spawn(async move {
            let mut connection = Connection::open(port).await?;
            let mut latencies = Vec::new();
            let (mut bytes, mut sent) = (0usize, 0usize);
            for b in 0..per_client {
                let first = (client * per_client + b) * batch;
                if first >= events {
                    break;
                }
                let last = (first + batch).min(events);
                let mut body = String::with_capacity(batch * 160);
                for i in first..last {
                    body.push_str(&format!(
                        "{{\"event_id\":\"ev-{i}\",\"device_id\":\"MON-{:03}\",\"encounter_id\":\"E{:010}\",\"measured_at\":\"2026-11-25T10:{:02}:{:02}Z\",\"type\":\"heart_rate\",\"unit\":\"/min\",\"value\":{}}}\n",
                        i % 200,
                        i / 50,
                        (i / 60) % 60,
                        i % 60,
                        60 + i % 40
                    ));
                }
                let at = Instant::now();
                let (status, reply) = connection
                    .post("/api/v1/ingest/bench_events", &auth, "application/x-ndjson", body.as_bytes())
                    .await?;
                latencies.push(at.elapsed());
                if status != 202 {
                    bail!("ingest answered {status}: {}", String::from_utf8_lossy(&reply));
                }
                bytes += body.len();
                sent += last - first;
            }
            Ok::<_, anyhow::Error>((latencies, bytes, sent))
        });
    }
    let mut latencies = Vec::new();
    let (mut bytes, mut sent) = (0usize, 0usize);
    while let Some(done) = tasks.join_next().await {
        let (l, b, s) = done??;
        latencies.extend(l);
        bytes += b;
        sent += s;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "bench http ingest: {sent} events, {:.1} MB acknowledged (fsynced) in {secs:.2}s = {:.0} events/s, {:.1} MB/s",
        bytes as f64 / 1e6,
        sent as f64 / secs,
        bytes as f64 / 1e6 / secs
    );
    println!(
        "bench http ingest {}",
        latency_line("latency per request", &mut latencies)
    );
    let flush_started = Instant::now();
    ingest.flush().await?;
    println!(
        "bench http ingest: the rest flushed to raw.bench_events in {:.2}s",
        flush_started.elapsed().as_secs_f64()
    );
    let session = Session::open(lake.clone(), principal).await?;
    let stored = session
        .sql("SELECT count(*) AS n, count(DISTINCT event_id) AS ids FROM raw.bench_events")
        .await?;
    let text = arrow::util::pretty::pretty_format_batches(&stored.batches)?.to_string();
    let expected = format!("| {sent} ");
    if text.matches(&expected).count() != 2 {
        bail!("the lake does not hold every event once:\n{text}");
    }
    println!("bench http ingest: all {sent} events in the lake, each once");

    // Queries: every client runs the same small analytic query.
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.clients {
        let auth = auth.clone();
        let queries = args.queries;
        tasks.spawn(async move {
            let mut connection = Connection::open(port).await?;
            let mut latencies = Vec::new();
            for _ in 0..queries {
                let at = Instant::now();
                let (status, reply) = connection
                    .post(
                        "/api/v1/query",
                        &auth,
                        "text/plain",
                        b"SELECT device_id, count(*) AS n, avg(value) AS mean FROM raw.bench_events GROUP BY device_id ORDER BY n DESC LIMIT 10",
                    )
                    .await?;
                latencies.push(at.elapsed());
                if status != 200 {
                    bail!("query answered {status}: {}", String::from_utf8_lossy(&reply));
                }
            }
            Ok::<_, anyhow::Error>(latencies)
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done??);
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "bench http query: {} queries over {sent} rows in {secs:.2}s = {:.1} queries/s",
        latencies.len(),
        latencies.len() as f64 / secs
    );
    println!(
        "bench http query {}",
        latency_line("latency", &mut latencies)
    );
    let _ = stop.send(());
    serving.await??;
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
