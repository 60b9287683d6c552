//! `carelake bench catalog`: catalog refresh time as the catalog grows.
//!
//! Every stream flush, MLLP group and load appends catalog events, so a long-lived lake
//! gathers hundreds of thousands of them. The catalog is folded once per lake handle and
//! refreshed from newer commits only; this prints, at each size, what a cold open, a refresh
//! with nothing new, and a refresh after another process's commit cost, next to a fold of
//! every event (what each refresh cost before the cache).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Result, ensure};
use carelake_common::TableName;
use carelake_lake::{CatalogEvent, Lake};

#[derive(Debug, clap::Args)]
pub(crate) struct CatalogBenchArgs {
    /// Catalog events to write in all.
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Events per commit (a stream flush records one per table it wrote).
    #[arg(long, default_value_t = 50)]
    per_commit: usize,
    /// Tables the events are spread over.
    #[arg(long, default_value_t = 200)]
    tables: usize,
    /// Runs of each measurement per size (the median is printed).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Working folder (a fresh one under the system temp folder by default).
    #[arg(long)]
    dir: Option<PathBuf>,
}

pub(crate) async fn run(args: CatalogBenchArgs) -> Result<()> {
    let dir = crate::bench::work_dir(args.dir.clone(), "catalog")?;
    let location = dir.join("lake").to_string_lossy().into_owned();
    let writer = Lake::init(&location).await?;
    let reader = Lake::open(&location).await?;
    reader.catalog().list().await?;
    let per_commit = args.per_commit.max(1);
    let mut sizes: Vec<usize> = [1_000, 10_000, 100_000, 1_000_000]
        .into_iter()
        .filter(|s| *s < args.events)
        .collect();
    sizes.push(args.events);
    println!(
        "bench catalog: events | cold open ms | refresh, nothing new ms | refresh after 1 commit ms | fold of every event ms"
    );
    let mut written = 0usize;
    let mut version_step = 0usize;
    for size in sizes {
        let started = Instant::now();
        while written < size {
            let n = per_commit.min(size - written);
            let events: Vec<CatalogEvent> = (0..n)
                .map(|k| {
                    let i = written + k;
                    let name: TableName = format!("raw.table_{}", i % args.tables.max(1))
                        .parse()
                        .expect("a valid table name");
                    let mut event = CatalogEvent::table(name);
                    event.row_count = Some(i as i64);
                    event.table_version = Some(i as i64);
                    event
                })
                .collect();
            writer.catalog().record(&events).await?;
            written += n;
            version_step += 1;
        }
        let write_secs = started.elapsed().as_secs_f64();
        // Cold: a new handle (a new process) starts from the saved fold and the commits after.
        let cold = median(args.runs, || async {
            let lake = Lake::open(&location).await?;
            lake.catalog().list().await?;
            Ok(())
        })
        .await?;
        reader.catalog().list().await?;
        let idle = median(args.runs, || async {
            reader.catalog().list().await?;
            Ok(())
        })
        .await?;
        let mut after_commit = Vec::new();
        for _ in 0..args.runs.max(1) {
            let name: TableName = "raw.table_0".parse()?;
            writer
                .catalog()
                .record(&[CatalogEvent::table(name)])
                .await?;
            written += 1;
            let started = Instant::now();
            reader.catalog().list().await?;
            after_commit.push(started.elapsed().as_secs_f64() * 1e3);
        }
        after_commit.sort_by(f64::total_cmp);
        let full = median(args.runs.min(3), || async {
            reader.catalog().list_from_events().await?;
            Ok(())
        })
        .await?;
        let cached = reader.catalog().list().await?;
        let folded = reader.catalog().list_from_events().await?;
        ensure!(
            cached == folded,
            "the cached catalog differs from a fold of every event"
        );
        println!(
            "bench catalog: {size:>7} | {cold:>9.1} | {idle:>9.2} | {:>9.2} | {full:>9.1}   ({version_step} commits written in {write_secs:.1}s)",
            after_commit[after_commit.len() / 2]
        );
    }
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

/// The median wall time of `runs` runs of `f`, in milliseconds.
async fn median<F, Fut>(runs: usize, f: F) -> Result<f64>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut times = Vec::new();
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        f().await?;
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}
