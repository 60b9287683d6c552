//! `carelake bench soak`: the whole server under a steady mixed load for a bounded time, on
//! loopback. A fresh lake and a real `carelake serve` child process (HTTP, Postgres, MLLP and
//! the pipeline's schedules); paced clients stream device events over HTTP, send HL7 v2 over
//! MLLP, and query over HTTP and Postgres, while a model scheduled every minute rebuilds a
//! table from the streamed events. Prints, per minute, the throughput and latency percentiles
//! of each kind of request, the errors, the pipeline runs and the server's resident memory;
//! at the end it checks that every acknowledged event and message is in the lake once, and
//! fails when one is missing, one is stored twice, or a request failed.
//!
//! The rates are fixed (not "as fast as possible") so that the figures of minute 1 and minute
//! N are comparable: a leak or a slowdown shows as growth, not as noise of a saturated loop.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::bench_http::{Connection, percentile};

/// What the soak runs and for how long.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SoakArgs {
    /// Minutes of load (then the last events are flushed and everything is checked).
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Streamed events per second over HTTP, in all.
    #[arg(long, default_value_t = 2000)]
    events_per_second: u32,
    /// Events per HTTP ingest request.
    #[arg(long, default_value_t = 50)]
    batch: usize,
    /// HTTP ingest clients (each one keep-alive connection).
    #[arg(long, default_value_t = 2)]
    ingest_clients: usize,
    /// HL7 v2 messages per second over MLLP (one connection).
    #[arg(long, default_value_t = 20)]
    mllp_per_second: u32,
    /// Queries per second over each of HTTP and Postgres.
    #[arg(long, default_value_t = 2.0)]
    queries_per_second: f64,
    /// Working folder (a fresh one under the system temp folder by default).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Start the server through this program, given the server's command line as arguments
    /// (for a profiler: a script that sets `LD_PRELOAD` and `exec`s its arguments keeps the
    /// server's pid, so memory and CPU are still read from the server).
    #[arg(long, value_name = "PROGRAM")]
    server_wrapper: Option<PathBuf>,
}

const STREAM_TABLE: &str = "soak_events";

/// The figures of one minute.
#[derive(Default)]
struct Minute {
    ingest: Vec<Duration>,
    events: u64,
    mllp: Vec<Duration>,
    http_queries: Vec<Duration>,
    pg_queries: Vec<Duration>,
    errors: u64,
    rss_kb: Vec<u64>,
    /// The anonymous part of `rss_kb` (heap and stacks): what a leak or an unbounded cache
    /// grows. RSS also counts the pages of the binary that the server has touched so far, which
    /// rise for a while as new code paths run (a debug binary is about 900 MB of them).
    anon_kb: Vec<u64>,
    /// The server's CPU time (user + system) in clock ticks at each sample of the minute.
    cpu_ticks: Vec<u64>,
    runs: Option<i64>,
}

/// Figures by minute, shared by the client tasks.
struct Stats {
    started: Instant,
    minutes: Mutex<Vec<Minute>>,
    /// The first few failures, for the report (the soak's own synthetic data only).
    failures: Mutex<Vec<String>>,
}

impl Stats {
    fn record(&self, f: impl FnOnce(&mut Minute)) {
        let index = (self.started.elapsed().as_secs() / 60) as usize;
        let mut minutes = self.minutes.lock().expect("stats lock");
        while minutes.len() <= index {
            minutes.push(Minute::default());
        }
        f(&mut minutes[index]);
    }

    fn fail(&self, what: &str, error: impl std::fmt::Display) {
        self.record(|m| m.errors += 1);
        let mut failures = self.failures.lock().expect("failures lock");
        if failures.len() < 10 {
            failures.push(format!("{what}: {error}"));
        }
    }
}

/// The server child process, killed when dropped.
struct ServerProcess {
    child: std::process::Child,
    http: u16,
    pg: u16,
    mllp: u16,
}

impl ServerProcess {
    fn start(lake: &Path, project: &Path, wal: &Path, wrapper: Option<&Path>) -> Result<Self> {
        use std::io::BufRead;
        let exe = std::env::current_exe().context("finding the carelake binary")?;
        let mut command = match wrapper {
            Some(wrapper) => {
                let mut command = std::process::Command::new(wrapper);
                command.arg(exe);
                command
            }
            None => std::process::Command::new(exe),
        };
        let mut child = command
            .args([
                "serve",
                "--http-listen",
                "127.0.0.1:0",
                "--pg-listen",
                "127.0.0.1:0",
                "--mllp",
                "127.0.0.1:0",
                "--schedules",
                "--flush-seconds",
                "1",
            ])
            .arg("--project")
            .arg(project)
            .arg("--wal-dir")
            .arg(wal)
            .env("CARELAKE_LAKE", lake)
            .env_remove("CARELAKE_LOG")
            .env_remove("CARELAKE_FAULTS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting carelake serve")?;
        let mut stdout = std::io::BufReader::new(child.stdout.take().context("no stdout")?);
        let mut said = String::new();
        loop {
            let mut line = String::new();
            if stdout.read_line(&mut line)? == 0 {
                let _ = child.kill();
                let _ = child.wait();
                bail!("carelake serve did not start:\n{said}");
            }
            if line.starts_with("Press Ctrl-C") {
                break;
            }
            said.push_str(&line);
        }
        // The rest of its output is read, so that it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let port = |prefix: &str| -> Result<u16> {
            said.lines()
                .find(|l| l.starts_with(prefix))
                .and_then(|l| {
                    l.split_whitespace().find_map(|w| {
                        let w = w.trim_end_matches('/').trim_end_matches(')');
                        let w = w.strip_prefix("port=").unwrap_or(w);
                        w.rsplit_once(':')
                            .map_or(w, |(_, p)| p)
                            .parse::<u16>()
                            .ok()
                            .filter(|p| *p > 0)
                    })
                })
                .with_context(|| format!("no {prefix} port in:\n{said}"))
        };
        let ports = (port("Web UI"), port("Postgres"), port("MLLP"));
        let (http, pg, mllp) = match ports {
            (Ok(http), Ok(pg), Ok(mllp)) => (http, pg, mllp),
            (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        Ok(Self {
            child,
            http,
            pg,
            mllp,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, and the exit awaited (the server flushes what it acknowledged first).
    async fn stop(mut self) -> Result<()> {
        std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .context("sending SIGTERM")?;
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("carelake serve exited with {status}");
                }
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("carelake serve did not stop within 60 s of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// CPU time a process has used (user and system), in clock ticks (Linux `/proc`: fields 14
/// and 15 of `stat`, after the command name in parentheses).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): utime is field 14, stime field 15.
    let user: u64 = fields.get(11)?.parse().ok()?;
    let system: u64 = fields.get(12)?.parse().ok()?;
    Some(user + system)
}

/// Resident memory of a process in kB, all of it and its anonymous part (Linux `/proc`;
/// `None` elsewhere).
fn resident_kb(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    Some((field("VmRSS:")?, field("RssAnon:")?))
}

fn write_project(dir: &Path) -> Result<()> {
    let models = dir.join("models").join("analytics");
    std::fs::create_dir_all(&models)?;
    std::fs::write(
        models.join("soak_devices.sql"),
        format!(
            "-- schedule: * * * * *\n\
             -- description: Events per device, rebuilt every minute by the soak.\n\
             SELECT device_id, count(*) AS events, avg(value) AS mean_value, max(measured_at) AS last_at\n\
             FROM raw.{STREAM_TABLE} GROUP BY device_id\n"
        ),
    )?;
    Ok(())
}

fn event_line(client: usize, n: u64) -> String {
    format!(
        "{{\"event_id\":\"c{client}-{n}\",\"device_id\":\"MON-{:03}\",\"measured_at\":\"2026-12-04T{:02}:{:02}:{:02}Z\",\"type\":\"heart_rate\",\"unit\":\"/min\",\"value\":{}}}\n",
        n % 150,
        (n / 3600) % 24,
        (n / 60) % 60,
        n % 60,
        55 + n % 50
    )
}

fn hl7_message(n: u64) -> String {
    format!(
        "MSH|^~\\&|SOAK|HOSP|LAKE|HOSP|20261204120000||ORU^R01^ORU_R01|soak-{n}|P|2.5.1\rPID|1||{}^^^HOSP^MR||Doe^Jane\rOBR|1|||2345-7^Glucose^LN\rOBX|1|NM|2345-7^Glucose^LN||{}|mg/dL|70-99|N|||F\r",
        n % 500,
        80 + n % 60
    )
}

/// A ticker at `per_second` that does not try to catch up after a stall.
fn ticker(per_second: f64) -> tokio::time::Interval {
    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second.max(0.001)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval
}

const QUERIES: [&str; 3] = [
    "SELECT device_id, count(*) AS n, avg(value) AS mean FROM raw.soak_events GROUP BY device_id ORDER BY n DESC LIMIT 10",
    "SELECT count(*) AS n FROM raw.hl7_messages WHERE message_type LIKE 'ORU%'",
    "SELECT count(*) AS n, max(value) AS top FROM raw.soak_events WHERE device_id = 'MON-007'",
];

pub(crate) async fn run(args: SoakArgs) -> Result<()> {
    let dir = crate::bench::work_dir(args.dir.clone(), "soak")?;
    let lake_dir = dir.join("lake");
    let lake = carelake_lake::Lake::init(&lake_dir.to_string_lossy()).await?;
    let password = carelake_lake::generate_password();
    lake.users().ensure_first_user(Some(&password)).await?;
    drop(lake);
    let user = carelake_lake::FIRST_USER;
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    );
    let project = dir.join("project");
    write_project(&project)?;
    let server = ServerProcess::start(
        &lake_dir,
        &project,
        &dir.join("wal"),
        args.server_wrapper.as_deref(),
    )?;
    let pid = server.pid();
    println!(
        "bench soak: {:.1} min; {} events/s over HTTP in batches of {} from {} clients, {} HL7 messages/s over MLLP, {} queries/s over each of HTTP and Postgres, a model scheduled every minute; server pid {pid}",
        args.minutes,
        args.events_per_second,
        args.batch,
        args.ingest_clients,
        args.mllp_per_second,
        args.queries_per_second
    );
    let stats = Arc::new(Stats {
        started: Instant::now(),
        minutes: Mutex::new(Vec::new()),
        failures: Mutex::new(Vec::new()),
    });
    let deadline = stats.started + Duration::from_secs_f64(args.minutes * 60.0);
    let mut tasks = tokio::task::JoinSet::new();

    // Streamed events over HTTP.
    let ingest_rate =
        f64::from(args.events_per_second) / (args.batch as f64 * args.ingest_clients as f64);
    for client in 0..args.ingest_clients {
        let (stats, auth, batch, port) =
            (Arc::clone(&stats), auth.clone(), args.batch, server.http);
        tasks.spawn(async move {
            let mut acked = 0u64;
            let mut sent = 0u64;
            let mut connection = Connection::open(port).await?;
            let mut tick = ticker(ingest_rate);
            while Instant::now() < deadline {
                tick.tick().await;
                let body: String = (sent..sent + batch as u64)
                    .map(|n| event_line(client, n))
                    .collect();
                let at = Instant::now();
                let reply = connection
                    .post(
                        &format!("/api/v1/ingest/{STREAM_TABLE}"),
                        &auth,
                        "application/x-ndjson",
                        body.as_bytes(),
                    )
                    .await;
                let took = at.elapsed();
                sent += batch as u64;
                match reply {
                    Ok((202, _)) => {
                        acked += batch as u64;
                        stats.record(|m| {
                            m.ingest.push(took);
                            m.events += batch as u64;
                        });
                    }
                    Ok((status, body)) => {
                        stats.fail(
                            "ingest",
                            format!("{status} {}", String::from_utf8_lossy(&body)),
                        );
                    }
                    Err(e) => {
                        stats.fail("ingest", &e);
                        connection = Connection::open(port).await?;
                    }
                }
            }
            Ok::<_, anyhow::Error>(Load::Events { sent, acked })
        });
    }

    // HL7 v2 over MLLP, one message at a time, each acknowledged before the next.
    {
        let (stats, port, rate) = (
            Arc::clone(&stats),
            server.mllp,
            f64::from(args.mllp_per_second),
        );
        tasks.spawn(async move {
            let mut stream = BufReader::new(TcpStream::connect(("127.0.0.1", port)).await?);
            let (mut sent, mut acked) = (0u64, 0u64);
            let mut tick = ticker(rate);
            while Instant::now() < deadline {
                tick.tick().await;
                let framed = format!("\x0b{}\x1c\r", hl7_message(sent));
                let at = Instant::now();
                stream.get_mut().write_all(framed.as_bytes()).await?;
                let mut ack = Vec::new();
                stream.read_until(0x1c, &mut ack).await?;
                let mut cr = [0u8; 1];
                stream.read_exact(&mut cr).await?;
                let took = at.elapsed();
                let text = String::from_utf8_lossy(&ack);
                if text.contains(&format!("MSA|AA|soak-{sent}")) {
                    acked += 1;
                    stats.record(|m| m.mllp.push(took));
                } else {
                    let code = text
                        .split("MSA|")
                        .nth(1)
                        .and_then(|r| r.get(..2))
                        .unwrap_or("?");
                    stats.fail("mllp", format!("acknowledged {code}"));
                }
                sent += 1;
            }
            Ok(Load::Messages { sent, acked })
        });
    }

    // Queries over HTTP.
    {
        let (stats, auth, port, rate) = (
            Arc::clone(&stats),
            auth.clone(),
            server.http,
            args.queries_per_second,
        );
        tasks.spawn(async move {
            let mut connection = Connection::open(port).await?;
            let mut tick = ticker(rate);
            let mut n = 0usize;
            while Instant::now() < deadline {
                tick.tick().await;
                let sql = QUERIES[n % QUERIES.len()];
                n += 1;
                let at = Instant::now();
                match connection
                    .post("/api/v1/query", &auth, "text/plain", sql.as_bytes())
                    .await
                {
                    Ok((200, _)) => stats.record(|m| m.http_queries.push(at.elapsed())),
                    // Before the first flush the stream's table does not exist yet.
                    Ok((400 | 404, _)) if stats.started.elapsed() < Duration::from_secs(10) => {}
                    Ok((status, body)) => {
                        stats.fail(
                            "http query",
                            format!("{status} {}", String::from_utf8_lossy(&body)),
                        );
                    }
                    Err(e) => {
                        stats.fail("http query", &e);
                        connection = Connection::open(port).await?;
                    }
                }
            }
            Ok(Load::Queries)
        });
    }

    // Queries over Postgres (SCRAM sign-in, the simple and the extended protocol in turn).
    let pg_config = format!(
        "host=127.0.0.1 port={} user={user} password='{}' dbname=carelake",
        server.pg,
        password.replace('\\', "\\\\").replace('\'', "\\'")
    );
    {
        let (stats, rate, config) = (
            Arc::clone(&stats),
            args.queries_per_second,
            pg_config.clone(),
        );
        tasks.spawn(async move {
            let client = pg_connect(&config).await?;
            let mut tick = ticker(rate);
            let mut n = 0usize;
            while Instant::now() < deadline {
                tick.tick().await;
                let sql = QUERIES[(n + 1) % QUERIES.len()];
                n += 1;
                let at = Instant::now();
                let result = if n.is_multiple_of(2) {
                    client.simple_query(sql).await.map(|_| ())
                } else {
                    client.query(sql, &[]).await.map(|_| ())
                };
                match result {
                    Ok(()) => stats.record(|m| m.pg_queries.push(at.elapsed())),
                    Err(_) if stats.started.elapsed() < Duration::from_secs(10) => {}
                    Err(e) => stats.fail(
                        "postgres query",
                        e.as_db_error()
                            .map_or(e.to_string(), |d| d.message().to_string()),
                    ),
                }
            }
            Ok(Load::Queries)
        });
    }

    // Memory every 5 s; pipeline runs and the per-minute report at each minute's end.
    let monitor = {
        let (stats, config) = (Arc::clone(&stats), pg_config.clone());
        tokio::spawn(async move {
            let client = pg_connect(&config).await.ok();
            let mut reported = 0usize;
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            print_header();
            loop {
                tick.tick().await;
                if let Some((rss, anon)) = resident_kb(pid) {
                    stats.record(|m| {
                        m.rss_kb.push(rss);
                        m.anon_kb.push(anon);
                    });
                }
                if let Some(ticks) = cpu_ticks(pid) {
                    stats.record(|m| m.cpu_ticks.push(ticks));
                }
                let minute = (stats.started.elapsed().as_secs() / 60) as usize;
                let over = Instant::now() >= deadline;
                if minute > reported || over {
                    if let Some(client) = &client {
                        let runs = client
                            .simple_query(
                                "SELECT count(*) FROM system.runs WHERE status = 'success'",
                            )
                            .await
                            .ok()
                            .and_then(|rows| first_value(&rows))
                            .and_then(|v| v.parse::<i64>().ok());
                        let mut minutes = stats.minutes.lock().expect("stats lock");
                        if let Some(m) = minutes.get_mut(reported) {
                            m.runs = runs;
                        }
                    }
                    let mut minutes = stats.minutes.lock().expect("stats lock");
                    if let Some(m) = minutes.get_mut(reported) {
                        // The last minute may be a part of one.
                        let began = stats.started + Duration::from_secs(reported as u64 * 60);
                        let seconds = deadline.saturating_duration_since(began).as_secs_f64();
                        print_minute(reported + 1, m, seconds.clamp(1.0, 60.0));
                    }
                    reported += 1;
                }
                if over {
                    return;
                }
            }
        })
    };

    let (mut sent, mut acked, mut messages_sent, mut messages_acked) = (0u64, 0u64, 0u64, 0u64);
    while let Some(done) = tasks.join_next().await {
        match done?? {
            Load::Events { sent: s, acked: a } => {
                sent += s;
                acked += a;
            }
            Load::Messages { sent: s, acked: a } => {
                messages_sent += s;
                messages_acked += a;
            }
            Load::Queries => {}
        }
    }
    monitor.await?;

    // The end: the server stopped with SIGTERM (it flushes what it acknowledged), then the
    // lake read directly.
    let (rss, anon): (Vec<u64>, Vec<u64>) = {
        let minutes = stats.minutes.lock().expect("stats lock");
        let peaks = |of: fn(&Minute) -> &Vec<u64>| -> Vec<u64> {
            minutes
                .iter()
                .filter_map(|m| of(m).iter().max().copied())
                .collect()
        };
        (peaks(|m| &m.rss_kb), peaks(|m| &m.anon_kb))
    };
    let stop_started = Instant::now();
    server.stop().await?;
    println!(
        "bench soak: the server stopped on SIGTERM in {:.1}s",
        stop_started.elapsed().as_secs_f64()
    );
    let lake = carelake_lake::Lake::open(&lake_dir.to_string_lossy()).await?;
    let session =
        carelake_sql::Session::open(lake, carelake_common::Principal::local_admin()).await?;
    // The first row's counts, column by column.
    let count = |sql: String| {
        let session = &session;
        async move {
            let result = session.sql(&sql).await?;
            let mut values = Vec::new();
            if let Some(batch) = result.batches.iter().find(|b| b.num_rows() > 0) {
                for column in batch.columns() {
                    let column = arrow::compute::cast(column, &arrow::datatypes::DataType::UInt64)?;
                    let column = column
                        .as_any()
                        .downcast_ref::<arrow::array::UInt64Array>()
                        .context("a count that is not a number")?;
                    values.push(column.value(0));
                }
            }
            Ok::<_, anyhow::Error>(values)
        }
    };
    let events = count(format!(
        "SELECT count(*), count(DISTINCT event_id) FROM raw.{STREAM_TABLE}"
    ))
    .await?;
    let stored = count(
        "SELECT count(*), count(DISTINCT control_id) FROM raw.hl7_messages WHERE sending_application = 'SOAK'"
            .to_string(),
    )
    .await?;
    let runs = count(
        "SELECT count(*) FROM system.runs WHERE status = 'success' AND model LIKE '%soak_devices%'"
            .to_string(),
    )
    .await
    // No scheduled run yet (a soak shorter than a minute): no run history either.
    .unwrap_or_default();
    let failed_runs =
        count("SELECT count(*) FROM system.runs WHERE status <> 'success'".to_string())
            .await
            .unwrap_or_default();
    // What compaction keeps the tables written every second at: their live files.
    let lake = session.lake();
    let mut tables = Vec::new();
    for name in [
        format!("raw.{STREAM_TABLE}"),
        "raw.hl7_messages".to_string(),
    ] {
        let url = lake.table_url(&name.parse::<carelake_common::TableName>()?)?;
        tables.push((
            name,
            lake.load_delta(&url, carelake_lake::TimeTravel::Latest)
                .await?,
        ));
    }
    for name in ["catalog", "audit"] {
        tables.push((name.to_string(), lake.system_table(name).await?));
    }
    let mut files = Vec::new();
    for (label, table) in tables {
        if let Some(table) = table {
            files.push(format!(
                "{label} {} files at version {}",
                table.snapshot()?.log_data().num_files(),
                table.version().map_or(-1, |v| v as i64)
            ));
        }
    }
    println!("bench soak: live files: {}", files.join(", "));
    let errors: u64 = stats
        .minutes
        .lock()
        .expect("stats lock")
        .iter()
        .map(|m| m.errors)
        .sum();
    println!(
        "bench soak: events {acked} acknowledged of {sent} sent, {} stored ({} distinct); HL7 messages {messages_acked} acknowledged of {messages_sent} sent, {} stored ({} distinct); {} scheduled runs, {} failed",
        events.first().unwrap_or(&0),
        events.get(1).unwrap_or(&0),
        stored.first().unwrap_or(&0),
        stored.get(1).unwrap_or(&0),
        runs.first().unwrap_or(&0),
        failed_runs.first().unwrap_or(&0),
    );
    for (what, series) in [
        ("resident memory", &rss),
        ("anonymous memory (heap)", &anon),
    ] {
        if let (Some(first), Some(last), Some(top)) =
            (series.first(), series.last(), series.iter().max())
        {
            println!(
                "bench soak: server {what} {:.0} MB in minute 1, {:.0} MB in minute {}, {:.0} MB at most",
                *first as f64 / 1024.0,
                *last as f64 / 1024.0,
                series.len(),
                *top as f64 / 1024.0
            );
        }
    }
    if anon.len() >= 4 {
        // The growth over the second half, per minute: the figure for "flat memory".
        let half = anon.len() / 2;
        let slope = (anon[anon.len() - 1] as f64 - anon[half - 1] as f64)
            / (anon.len() - half) as f64
            / 1024.0;
        println!(
            "bench soak: anonymous memory grew {slope:+.1} MB a minute over minutes {}-{}",
            half,
            anon.len()
        );
    }
    let mut problems = Vec::new();
    if events != [acked, acked] {
        problems.push(format!(
            "the lake holds {events:?} (rows, distinct) of {acked} acknowledged events"
        ));
    }
    if stored != [messages_acked, messages_acked] {
        problems.push(format!(
            "the lake holds {stored:?} (rows, distinct) of {messages_acked} acknowledged HL7 messages"
        ));
    }
    if errors > 0 {
        let failures = stats.failures.lock().expect("failures lock").join("; ");
        problems.push(format!("{errors} requests failed: {failures}"));
    }
    if failed_runs.first().copied().unwrap_or(0) > 0 {
        problems.push("a scheduled pipeline run failed (see system.runs)".to_string());
    }
    if !problems.is_empty() {
        bail!(
            "bench soak: {} (the lake is kept in {})",
            problems.join("; "),
            dir.display()
        );
    }
    println!("bench soak: every acknowledged event and message in the lake once, no error");
    if args.dir.is_none() {
        std::fs::remove_dir_all(&dir).ok();
    }
    Ok(())
}

/// What a client task did.
enum Load {
    Events { sent: u64, acked: u64 },
    Messages { sent: u64, acked: u64 },
    Queries,
}

async fn pg_connect(config: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(config, tokio_postgres::NoTls)
        .await
        .context("signing in over Postgres")?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("bench soak: the Postgres connection ended: {e}");
        }
    });
    Ok(client)
}

fn first_value(rows: &[tokio_postgres::SimpleQueryMessage]) -> Option<String> {
    rows.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
        _ => None,
    })
}

fn print_header() {
    println!(
        "{:>3} {:>8} {:>17} {:>9} {:>17} {:>7} {:>17} {:>7} {:>17} {:>6} {:>5} {:>7} {:>7} {:>5}",
        "min",
        "events/s",
        "ingest p50/p99 ms",
        "hl7 msg/s",
        "mllp p50/p99 ms",
        "http q/s",
        "http p50/p99 ms",
        "pg q/s",
        "pg p50/p99 ms",
        "errors",
        "runs",
        "RSS MB",
        "heap MB",
        "CPU%"
    );
}

fn print_minute(number: usize, m: &mut Minute, seconds: f64) {
    let pair = |l: &mut Vec<Duration>| {
        l.sort_unstable();
        format!("{:.1}/{:.1}", percentile(l, 0.5), percentile(l, 0.99))
    };
    let peak = |kb: &[u64]| {
        kb.iter()
            .max()
            .map_or("-".to_string(), |kb| format!("{:.0}", *kb as f64 / 1024.0))
    };
    let (rss, anon) = (peak(&m.rss_kb), peak(&m.anon_kb));
    // The server's CPU over the minute's samples, in % of one core (200 is both cores here).
    let cpu = match (m.cpu_ticks.first(), m.cpu_ticks.last()) {
        (Some(first), Some(last)) if m.cpu_ticks.len() > 1 => {
            let span = 5.0 * (m.cpu_ticks.len() - 1) as f64;
            format!(
                "{:.0}",
                (last - first) as f64 / TICKS_PER_SECOND / span * 100.0
            )
        }
        _ => "-".to_string(),
    };
    println!(
        "{number:>3} {:>8.0} {:>17} {:>9.1} {:>17} {:>7.1} {:>17} {:>7.1} {:>17} {:>6} {:>5} {:>7} {:>7} {:>5}",
        m.events as f64 / seconds,
        pair(&mut m.ingest),
        m.mllp.len() as f64 / seconds,
        pair(&mut m.mllp),
        m.http_queries.len() as f64 / seconds,
        pair(&mut m.http_queries),
        m.pg_queries.len() as f64 / seconds,
        pair(&mut m.pg_queries),
        m.errors,
        m.runs.map_or("-".to_string(), |r| r.to_string()),
        rss,
        anon,
        cpu
    );
}

/// Linux's `USER_HZ`, the unit of `/proc/<pid>/stat` times (100 on every common kernel).
const TICKS_PER_SECOND: f64 = 100.0;
