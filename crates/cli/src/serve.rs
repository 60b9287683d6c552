//! `carelake serve`: the HTTP API with its streaming ingest, the MLLP listener and the
//! pipeline's schedules in one process, stopped by Ctrl-C or SIGTERM (streamed events are
//! flushed to the lake first).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use carelake_common::Principal;
use carelake_lake::Lake;
use carelake_server::{
    DEFAULT_HTTP_ADDR, DEFAULT_PG_ADDR, HttpConfig, HttpServer, MllpConfig, MllpServer, PgConfig,
    PgServer, TlsConfig,
};
use carelake_sql::Session;
use carelake_stream::{StreamConfig, StreamIngest};
use clap::Args;

/// `carelake serve` options.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The HTTP API's address (host:port, or a port); `off` for none. Use 0.0.0.0:8080 to
    /// listen on every interface.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_HTTP_ADDR)]
    pub(crate) http_listen: String,
    /// The PostgreSQL wire protocol's address (for psql, drivers and BI tools); `off` for none.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_PG_ADDR)]
    pub(crate) pg_listen: String,
    /// PEM certificate chain for TLS on the HTTP and Postgres listeners. With it (and
    /// --tls-key) the HTTP API and web UI speak only HTTPS and every Postgres client must use
    /// TLS; a certificate that cannot be loaded stops the server.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Take HL7 v2 messages over MLLP on this address; without a value 127.0.0.1:2575.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:2575")]
    pub(crate) mllp: Option<String>,
    /// MLLP over TLS with the --tls-cert/--tls-key pair (senders must use TLS).
    #[arg(long, requires = "tls_cert", requires = "mllp")]
    pub(crate) mllp_tls: bool,
    /// With --mllp-tls, require client certificates signed by a CA in this PEM file.
    #[arg(long, value_name = "FILE", requires = "mllp_tls")]
    pub(crate) mllp_client_ca: Option<PathBuf>,
    /// Senders allowed to connect over MLLP: addresses or CIDR blocks, comma-separated
    /// (others are closed at once and audited). Default: any.
    #[arg(long, value_delimiter = ',', env = "CARELAKE_MLLP_ALLOW")]
    pub(crate) mllp_allow: Vec<String>,
    /// Most MLLP connections at once.
    #[arg(long, env = "CARELAKE_MLLP_MAX_CONNECTIONS", default_value_t = 64)]
    pub(crate) mllp_max_connections: usize,
    /// Run the pipeline's scheduled models (their `-- schedule:` cron, in UTC).
    #[arg(long)]
    pub(crate) schedules: bool,
    /// Load the new files of a landing area as they arrive:
    /// `<folder | s3://bucket/prefix>=<raw.table | auto>` (auto: HL7 v2, FHIR and X12 837
    /// told from each file's content). Repeatable. Each file is loaded once (by content
    /// hash), in the order files arrived, and listed in system.watch_files; a file that fails
    /// is quarantined in raw._rejects and not retried until it changes.
    #[arg(long, value_name = "SOURCE=TARGET")]
    pub(crate) watch: Vec<String>,
    /// Seconds between listings of a watched landing area.
    #[arg(long, env = "CARELAKE_WATCH_SECONDS", default_value_t = 5.0)]
    pub(crate) watch_seconds: f64,
    /// The project for --schedules; without it, the built-in default project.
    #[arg(long)]
    pub(crate) project: Option<PathBuf>,
    /// The write-ahead log of streamed events: a local folder, fsynced on every
    /// acknowledgement. Default: LAKE/_carelake/wal for a local lake, ./carelake-wal otherwise.
    #[arg(long)]
    pub(crate) wal_dir: Option<PathBuf>,
    /// Seconds an acknowledged event may wait before it is written to the lake.
    #[arg(long, default_value_t = 5.0)]
    pub(crate) flush_seconds: f64,
    /// Pending megabytes that start a flush before the interval is up.
    #[arg(long, default_value_t = 64)]
    pub(crate) flush_mb: u64,
    /// Megabytes of acknowledged streamed events that may wait for the lake (and so fill the
    /// write-ahead log); above it ingest requests get 503 with Retry-After until flushes
    /// catch up.
    #[arg(long, env = "CARELAKE_MAX_PENDING_MB", default_value_t = 1024)]
    pub(crate) max_pending_mb: u64,
    /// Run the read queries of Postgres, HTTP and the web UI on the Ballista cluster whose
    /// scheduler is at this URL (http://host:port); writes, DDL and system tables stay here.
    #[arg(long, value_name = "URL", env = "CARELAKE_CLUSTER")]
    pub(crate) cluster: Option<String>,
    /// Failed sign-ins of one user in a row before the account is locked (0: never).
    #[arg(long, env = "CARELAKE_LOCKOUT_AFTER", default_value_t = 10)]
    pub(crate) lockout_after: u32,
    /// Minutes a lock-out lasts unless an admin runs `carelake user unlock` first.
    #[arg(long, env = "CARELAKE_LOCKOUT_MINUTES", default_value_t = 15.0)]
    pub(crate) lockout_minutes: f64,
    /// Hours a bearer token or web UI session lives.
    #[arg(long, env = "CARELAKE_TOKEN_HOURS", default_value_t = 12.0)]
    pub(crate) token_hours: f64,
    /// Minutes of inactivity after which a web UI session is signed out.
    #[arg(long, env = "CARELAKE_UI_IDLE_MINUTES", default_value_t = 30.0)]
    pub(crate) ui_idle_minutes: f64,
    /// Megabytes of memory all queries of the server may hold at once (sorts and
    /// aggregations spill to disk beyond their share). Default: half the machine's memory.
    #[arg(long, env = "CARELAKE_MEMORY_MB")]
    pub(crate) memory_mb: Option<u64>,
    /// Megabytes one session (a Postgres connection, a user's HTTP session) may hold; a
    /// statement needing more fails, the others go on. Default: a quarter of --memory-mb.
    #[arg(long, env = "CARELAKE_QUERY_MEMORY_MB")]
    pub(crate) query_memory_mb: Option<u64>,
    /// Most rows an HTTP or web UI query returns (cut inside the plan; the response says so).
    #[arg(long, env = "CARELAKE_MAX_ROWS", default_value_t = 100_000)]
    pub(crate) max_rows: usize,
    /// Longest an HTTP query runs, in seconds, and the most a Postgres client may set
    /// statement_timeout to (a client cannot switch it off).
    #[arg(long, env = "CARELAKE_QUERY_SECONDS", default_value_t = 300.0)]
    pub(crate) query_seconds: f64,
    /// Most HTTP and web UI queries running at once (more wait up to 10 s, then get 503).
    #[arg(long, env = "CARELAKE_MAX_QUERIES", default_value_t = 16)]
    pub(crate) max_queries: usize,
    /// Most HTTP connections at once (one more is answered 503 and closed).
    #[arg(long, env = "CARELAKE_HTTP_MAX_CONNECTIONS", default_value_t = 1024)]
    pub(crate) http_max_connections: usize,
    /// Seconds an HTTP client may take to send a request's headers (and, times six, its
    /// body) before it is cut off.
    #[arg(long, env = "CARELAKE_HEADER_TIMEOUT_SECONDS", default_value_t = 10.0)]
    pub(crate) header_timeout_seconds: f64,
    /// Behind a TLS proxy: mark the web UI's cookie Secure (named __Host-…) and send HSTS,
    /// although this server speaks plain HTTP.
    #[arg(long, env = "CARELAKE_SECURE_COOKIES")]
    pub(crate) secure_cookies: bool,
    /// Most Postgres connections at once.
    #[arg(long, env = "CARELAKE_PG_MAX_CONNECTIONS", default_value_t = 64)]
    pub(crate) pg_max_connections: usize,
    /// Event ids remembered per stream to recognise a resend (a resend older than that many
    /// events is stored again).
    #[arg(
        long,
        env = "CARELAKE_STREAM_DEDUPE_WINDOW",
        default_value_t = 1_000_000
    )]
    pub(crate) stream_dedupe_window: usize,
    /// HL7 messages remembered by the MLLP listener to recognise a resend or a reused control
    /// id (about 80 bytes each).
    #[arg(long, env = "CARELAKE_HL7_DEDUPE_WINDOW", default_value_t = 2_000_000)]
    pub(crate) hl7_dedupe_window: usize,
    /// Close a Postgres connection that has run no statement for this long (0: never).
    #[arg(long, env = "CARELAKE_PG_IDLE_MINUTES", default_value_t = 60.0)]
    pub(crate) pg_idle_minutes: f64,
    /// Megabytes of query answers kept to answer a repeated query (per principal, and never
    /// stale: keyed by the versions of the tables read); 0 switches the cache off.
    #[arg(long, env = "CARELAKE_RESULT_CACHE_MB", default_value_t = 256)]
    pub(crate) result_cache_mb: usize,
}

/// The machine's memory in bytes (Linux), for the default memory limits.
/// Bytes all of a process's queries may hold at once: `megabytes` (`--memory-mb`), else
/// `CARELAKE_MEMORY_MB`, else half the machine's memory.
pub(crate) fn memory_budget(megabytes: Option<u64>) -> u64 {
    megabytes
        .or_else(|| {
            std::env::var("CARELAKE_MEMORY_MB")
                .ok()
                .and_then(|v| v.trim().parse().ok())
        })
        .map(|mb: u64| mb << 20)
        .or_else(|| machine_memory().map(|m| m / 2))
        .unwrap_or(4 << 30)
}

fn machine_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = info
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

impl ServeArgs {
    /// The options `carelake serve` has when given none.
    pub(crate) fn defaults() -> Self {
        use clap::{Args as _, FromArgMatches as _};
        let command = Self::augment_args(clap::Command::new("serve"));
        Self::from_arg_matches(&command.get_matches_from(["serve"]))
            .expect("the defaults of carelake serve parse")
    }
}

/// A line on standard output that does not take the server down when nobody reads it any
/// more (a closed pipe).
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// A duration given in minutes on the command line.
fn minutes(value: f64, flag: &str) -> Result<Duration> {
    if !(value.is_finite() && value > 0.0 && value < 1e9) {
        anyhow::bail!("{flag} must be a positive number");
    }
    Ok(Duration::from_secs_f64(value * 60.0))
}

/// Completes on Ctrl-C or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub(crate) async fn run(lake_location: &str, principal: Principal, args: ServeArgs) -> Result<()> {
    let lake = Lake::open(lake_location).await?;
    let http = if args.http_listen.eq_ignore_ascii_case("off") {
        None
    } else {
        Some(crate::parse_listen_addr(&args.http_listen)?)
    };
    let pg = if args.pg_listen.eq_ignore_ascii_case("off") {
        None
    } else {
        Some(crate::parse_listen_addr(&args.pg_listen)?)
    };
    if http.is_none()
        && pg.is_none()
        && args.mllp.is_none()
        && !args.schedules
        && args.watch.is_empty()
    {
        anyhow::bail!(
            "nothing to serve: the HTTP API and Postgres listener are off; pass --mllp [ADDR], --watch SOURCE=TARGET and/or --schedules"
        );
    }
    let watches = args
        .watch
        .iter()
        .map(|w| w.parse::<carelake_ingest::WatchSpec>())
        .collect::<Result<Vec<_>, _>>()?;
    let wal_dir = match (&args.wal_dir, lake.local_root()) {
        (Some(dir), _) => dir.clone(),
        (None, Some(root)) => root.join("_carelake").join("wal"),
        (None, None) => PathBuf::from("carelake-wal"),
    };
    if (http.is_some() || pg.is_some()) && lake.users().list().await?.is_empty() {
        anyhow::bail!(
            "the lake has no users to sign in with: run `carelake init` (or `carelake user add NAME`) first"
        );
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let wait = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let mut tasks = tokio::task::JoinSet::new();

    let project = if args.schedules {
        let project = crate::pipeline::load_project(args.project.as_ref())?;
        if !project.has_schedules() && args.project.is_some() {
            anyhow::bail!("no model of {} has a `-- schedule:`", project.origin);
        }
        // Alert rules run when their interval has passed (checked every 15 s), as their owners.
        let alert_lake = lake.clone();
        let until = wait();
        tasks.spawn(async move {
            tokio::select! {
                () = run_alerts(alert_lake) => {}
                () = until => {}
            }
            Ok::<_, anyhow::Error>(())
        });
        say("Running alert rules on their schedules (SHOW ALERTS lists them).");
        Some(project).filter(|p| p.has_schedules())
    } else {
        None
    };
    if let Some(project) = project {
        let project = Arc::new(project);
        let session = Arc::new(Session::open(lake.clone(), principal.clone()).await?);
        say(&format!(
            "Running the scheduled models of {} (UTC).",
            project.origin
        ));
        let until = wait();
        tasks.spawn(async move {
            tokio::select! {
                () = crate::pipeline::run_schedules(session, project) => {}
                () = until => {}
            }
            Ok::<_, anyhow::Error>(())
        });
    }

    // Materialized views: EVERY views when their interval has passed, ON LOAD views when a
    // table they read changed.
    let views_lake = lake.clone();
    let until = wait();
    tasks.spawn(async move {
        tokio::select! {
            () = refresh_views(views_lake) => {}
            () = until => {}
        }
        Ok::<_, anyhow::Error>(())
    });

    let memory = memory_budget(args.memory_mb);
    let query_memory = args.query_memory_mb.map_or(memory / 4, |mb| mb << 20);
    carelake_sql::limit_memory(memory as usize, query_memory as usize);
    carelake_sql::set_result_cache_bytes(args.result_cache_mb << 20);
    let query_timeout = minutes(args.query_seconds / 60.0, "--query-seconds")?;
    // One sign-in state for every listener: back-off, lock-out and revocation hold across
    // interfaces.
    let sign_in = carelake_server::SignIn::new(
        lake.clone(),
        carelake_server::SignInConfig {
            lockout_after: args.lockout_after,
            lockout_for: minutes(args.lockout_minutes, "--lockout-minutes")?,
            token_lifetime: minutes(args.token_hours * 60.0, "--token-hours")?,
            ui_idle_timeout: minutes(args.ui_idle_minutes, "--ui-idle-minutes")?,
        },
    );
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsConfig {
            cert: cert.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    // Patient data in the clear beyond this machine: say so at start-up.
    for (what, addr) in [("HTTP API and web UI", http), ("Postgres listener", pg)] {
        if let Some(addr) = addr
            && !addr.ip().is_loopback()
            && tls.is_none()
        {
            say(&format!(
                "WARNING: the {what} listens on {addr} without TLS: passwords and patient data cross the network in the clear. Give --tls-cert and --tls-key, or put a TLS proxy in front (with --secure-cookies)."
            ));
            tracing::warn!(%addr, "A listener beyond loopback without TLS.");
        }
    }
    if let Some(mllp) = &args.mllp
        && let Ok(addr) = crate::parse_listen_addr(mllp)
        && !addr.ip().is_loopback()
        && !args.mllp_tls
    {
        say(&format!(
            "WARNING: the MLLP listener listens on {addr} in the clear: give --mllp-tls (and --mllp-allow for the senders), or keep it on a private network."
        ));
    }
    let session_setup = match &args.cluster {
        Some(url) => {
            // Refuse a lake or address a cluster cannot serve now, not at the first query.
            carelake_cluster::check(&lake, url)?;
            say(&format!("Read queries run on the cluster at {url}"));
            let (lake, url) = (lake.clone(), url.clone());
            Some(carelake_server::SessionSetup::new(move |session| {
                carelake_cluster::attach(session, &lake, &url).map_err(|e| e.to_string())
            }))
        }
        None => None,
    };
    if let Some(addr) = pg {
        let mut config = PgConfig::new(addr);
        config.tls = tls.clone();
        config.sign_in = Some(Arc::clone(&sign_in));
        config.session_setup = session_setup.clone();
        config.max_connections = args.pg_max_connections.max(1);
        config.statement_timeout = query_timeout;
        config.idle_timeout = if args.pg_idle_minutes > 0.0 {
            Some(minutes(args.pg_idle_minutes, "--pg-idle-minutes")?)
        } else {
            None
        };
        let server = PgServer::bind(config, lake.clone())
            .await
            .context("starting the Postgres listener")?;
        let bound = server.local_addr().unwrap_or(addr);
        let sslmode = if server.uses_tls() {
            "require"
        } else {
            "disable"
        };
        say(&format!(
            "Postgres wire protocol on {bound} (psql \"host={} port={} user=carelake dbname=carelake sslmode={sslmode}\")",
            bound.ip(),
            bound.port()
        ));
        let until = wait();
        tasks.spawn(async move {
            server.run(until).await?;
            Ok(())
        });
    }

    if let Some(addr) = http {
        let mut config = StreamConfig::new(&wal_dir);
        config.flush_interval = Duration::from_secs_f64(args.flush_seconds.max(0.05));
        config.flush_bytes = args.flush_mb.max(1) << 20;
        config.max_pending_bytes = args.max_pending_mb.max(1) << 20;
        config.dedupe_window = args.stream_dedupe_window.max(1);
        let ingest = StreamIngest::open(lake.clone(), principal.clone(), config)
            .await
            .with_context(|| format!("opening the write-ahead log in {}", wal_dir.display()))?;
        let spool = wal_dir.with_file_name("spool");
        let mut config = HttpConfig::new(addr, spool);
        config.tls = tls.clone();
        config.sign_in = Some(Arc::clone(&sign_in));
        config.session_setup = session_setup.clone();
        config.max_rows = args.max_rows.max(1);
        config.query_timeout = query_timeout;
        config.max_concurrent_queries = args.max_queries.max(1);
        config.max_connections = args.http_max_connections.max(1);
        config.header_timeout = minutes(
            args.header_timeout_seconds / 60.0,
            "--header-timeout-seconds",
        )?;
        config.body_timeout = config.header_timeout * 6;
        config.secure_cookies = args.secure_cookies;
        let server = HttpServer::bind(config, lake.clone(), ingest)
            .await
            .context("starting the HTTP API")?;
        let bound = server.local_addr().unwrap_or(addr);
        let scheme = if server.uses_tls() { "https" } else { "http" };
        say(&format!(
            "Web UI and HTTP API on {scheme}://{bound}/ (health /healthz, metrics /metrics, API /api/v1/openapi.json)"
        ));
        let until = wait();
        tasks.spawn(async move {
            server.run(until).await?;
            say("HTTP API stopped; streamed events flushed.");
            Ok(())
        });
    }

    if let Some(mllp) = &args.mllp {
        let addr = crate::parse_listen_addr(mllp)?;
        let store = carelake_stream::Hl7Store::open_with(
            lake.clone(),
            principal.clone(),
            args.hl7_dedupe_window.max(1),
        )
        .await?;
        let known = store.message_count();
        let allow = args
            .mllp_allow
            .iter()
            .filter(|a| !a.trim().is_empty())
            .map(|a| {
                a.parse::<carelake_server::PeerRange>()
                    .map_err(anyhow::Error::msg)
            })
            .collect::<Result<Vec<_>>>()?;
        let config = MllpConfig {
            addr,
            allow,
            max_connections: args.mllp_max_connections.max(1),
            tls: if args.mllp_tls { tls.clone() } else { None },
            client_ca: args.mllp_client_ca.clone(),
            ..Default::default()
        };
        let server = MllpServer::bind(config, store)
            .await
            .context("starting the MLLP listener")?;
        let bound = server.local_addr().unwrap_or(addr);
        say(&format!(
            "MLLP listener on {bound}{} ({known} messages already in the lake).",
            if server.uses_tls() { " over TLS" } else { "" }
        ));
        let until = wait();
        tasks.spawn(async move {
            server.run(until).await?;
            say("MLLP listener stopped.");
            Ok(())
        });
    }
    if !watches.is_empty() {
        let interval = minutes(args.watch_seconds / 60.0, "--watch-seconds")?;
        let spool = wal_dir.with_file_name("watch-spool");
        for spec in &watches {
            let watcher =
                carelake_ingest::Watcher::open(lake.clone(), principal.clone(), spec, &spool)
                    .await
                    .with_context(|| format!("watching {}", spec.location))?;
            say(&format!(
                "Watching {} for new files into {} (every {}s; system.watch_files lists them).",
                watcher.url(),
                spec.target,
                args.watch_seconds
            ));
            let until = wait();
            tasks.spawn(async move {
                watcher.run(interval, until).await;
                Ok(())
            });
        }
    }
    say("Press Ctrl-C to stop.");

    tokio::select! {
        () = stop_signal() => {}
        Some(done) = tasks.join_next() => {
            // A listener ended on its own: an error.
            let _ = stop.send(true);
            done??;
        }
    }
    let _ = stop.send(true);
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    // The newest version and row count of the tables streams and MLLP appended to.
    lake.catalog().flush_coalesced().await?;
    Ok(())
}

/// Refreshes the materialized views that are due, every 5 seconds.
async fn refresh_views(lake: carelake_lake::Lake) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        for (name, result) in
            carelake_sql::refresh_due_materialized_views(&lake, chrono::Utc::now(), false).await
        {
            match result {
                Ok(carelake_sql::Refreshed::Rows(rows)) => {
                    tracing::info!(view = %name, rows, "Materialized view refreshed.");
                }
                Ok(carelake_sql::Refreshed::UpToDate) => {}
                Err(e) => eprintln!("error: materialized view {name}: {e}"),
            }
        }
    }
}

/// Runs the alert rules that are due, every 15 seconds.
async fn run_alerts(lake: carelake_lake::Lake) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(15)).await;
        for (name, result) in carelake_alert::run_due(&lake, chrono::Utc::now()).await {
            if let Err(e) = result {
                eprintln!("error: alert {name}: {e}");
            }
        }
    }
}
