//! `carelake bench cluster`: the KPI and star-schema queries of `bench compare` on one
//! process and on a Ballista cluster of one and of two executors (scheduler and executors in
//! this process, on loopback), side by side in one run, answers compared.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, bail};
use carelake_cluster::{Executor, Scheduler};
use carelake_common::Principal;
use carelake_lake::Lake;
use carelake_sql::Session;

#[derive(Debug, clap::Args)]
pub(crate) struct ClusterBenchArgs {
    /// Patients to generate.
    #[arg(long, default_value_t = 20_000)]
    patients: u64,
    /// Timed runs per query and side (after one warm-up run).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Task slots of each executor.
    #[arg(long, default_value_t = 2)]
    vcores: usize,
    /// Working folder (a fresh one under the system temp folder by default).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// A scheduler for `lake` with `executors` executors in this process.
async fn cluster(location: &str, executors: usize, vcores: usize) -> Result<Scheduler> {
    let lake = Lake::open(location).await?;
    let scheduler = Scheduler::start(&lake, std::net::TcpListener::bind("127.0.0.1:0")?).await?;
    for _ in 0..executors {
        Executor::start_in_process(&Lake::open(location).await?, &scheduler.url(), vcores).await?;
    }
    Ok(scheduler)
}

/// Median milliseconds of `runs` runs of `sql` after a warm-up, and its sorted rows.
async fn time(session: &Session, sql: &str, runs: usize) -> Result<(f64, Vec<Vec<String>>)> {
    let rows = crate::bench_compare::rows_of(&session.sql(sql).await?.batches)?;
    let mut times = Vec::new();
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        session.sql(sql).await?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    Ok((crate::bench_compare::median(times), rows))
}

pub(crate) async fn run(args: ClusterBenchArgs, principal: Principal) -> Result<()> {
    let dir = crate::bench::work_dir(args.dir.clone(), "cluster")?;
    let lake =
        crate::bench::generate_and_load(&dir, args.patients, &principal, "bench cluster").await?;
    let location = dir.join("lake").to_string_lossy().into_owned();
    let local = Session::open(lake.clone(), principal.clone()).await?;
    let one = cluster(&location, 1, args.vcores).await?;
    let two = cluster(&location, 2, args.vcores).await?;
    let mut sessions = vec![("one process", local)];
    for (name, scheduler) in [("1 executor", &one), ("2 executors", &two)] {
        let session = Session::open(lake.clone(), principal.clone()).await?;
        carelake_cluster::attach(&session, &lake, &scheduler.url())?;
        sessions.push((name, session));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "bench cluster: {} patients, {cores} cores, executors of {} slots in this process, median of {} warm runs",
        args.patients,
        args.vcores,
        args.runs.max(1)
    );
    let sent_before = carelake_sql::cluster::queries_sent();
    let (mut log_one, mut log_two, mut differ) = (0.0, 0.0, Vec::new());
    for (title, sql) in crate::bench_compare::QUERIES {
        let mut figures = Vec::new();
        for (_, session) in &sessions {
            figures.push(time(session, sql, args.runs).await?);
        }
        let same = figures.iter().all(|(_, rows)| *rows == figures[0].1);
        if !same {
            differ.push(title.to_string());
        }
        let (local_ms, one_ms, two_ms) = (figures[0].0, figures[1].0, figures[2].0);
        log_one += (one_ms / local_ms.max(1e-3)).ln();
        log_two += (two_ms / one_ms.max(1e-3)).ln();
        println!(
            "bench cluster: {title:<32} one process {local_ms:>8.1} ms  1 executor {one_ms:>8.1} ms  2 executors {two_ms:>8.1} ms  2/1 {:>5.2}  {}",
            two_ms / one_ms.max(1e-3),
            if same { "equal" } else { "DIFFER" }
        );
    }
    let n = crate::bench_compare::QUERIES.len() as f64;
    println!(
        "bench cluster: geometric means: 1 executor / one process {:.2}, 2 executors / 1 executor {:.2} ({} queries ran on the clusters)",
        (log_one / n).exp(),
        (log_two / n).exp(),
        carelake_sql::cluster::queries_sent() - sent_before
    );
    drop((one, two));
    std::fs::remove_dir_all(&dir).ok();
    if !differ.is_empty() {
        bail!("answers differ on the cluster: {}", differ.join(", "));
    }
    Ok(())
}
