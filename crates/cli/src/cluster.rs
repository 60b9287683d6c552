//! `carelake cluster scheduler` and `carelake cluster executor`: carelake's own Ballista
//! processes (the stock ones cannot read carelake's plans), and the `--cluster` option that
//! sends a session's read queries to one.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use carelake_cluster::{Executor, ExecutorOptions, Scheduler};
use carelake_lake::Lake;
use carelake_sql::Session;
use clap::{Args, Subcommand};

/// `carelake cluster` options.
#[derive(Debug, Args)]
pub(crate) struct ClusterArgs {
    #[command(subcommand)]
    which: ClusterCommand,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Run a scheduler until interrupted. It trusts the plans it is sent: listen on loopback
    /// or a private network that only carelake's processes reach.
    Scheduler {
        /// Address to listen on (port 0: any free port; the address is printed).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:50050")]
        bind: SocketAddr,
    },
    /// Run an executor that pulls tasks from a scheduler, until interrupted. It opens the
    /// lake itself, with this process's own credentials and key.
    Executor {
        /// The scheduler, http://host:port.
        #[arg(long, value_name = "URL")]
        scheduler: String,
        /// Host its Flight service binds (other executors and clients fetch stage outputs
        /// from it).
        #[arg(long, default_value = "127.0.0.1")]
        bind_host: String,
        /// The Flight service's port.
        #[arg(long, default_value_t = 50051)]
        port: u16,
        /// The executor's gRPC port.
        #[arg(long, default_value_t = 50052)]
        grpc_port: u16,
        /// Task slots (0: one per core).
        #[arg(long, default_value_t = 0)]
        vcores: usize,
        /// Folder for shuffle files (a temporary folder by default).
        #[arg(long)]
        work_dir: Option<String>,
    },
}

/// Runs `carelake cluster …` until it stops or is interrupted.
pub(crate) async fn run(location: &str, args: ClusterArgs) -> Result<()> {
    let lake = Lake::open(location).await?;
    let served = async {
        match args.which {
            ClusterCommand::Scheduler { bind } => {
                let listener = std::net::TcpListener::bind(bind)
                    .with_context(|| format!("cannot listen on {bind}"))?;
                let scheduler = Scheduler::start(&lake, listener).await?;
                // The address on standard output, for scripts that start it on port 0.
                println!("scheduler listening on {}", scheduler.url());
                scheduler.wait().await?;
            }
            ClusterCommand::Executor {
                scheduler,
                bind_host,
                port,
                grpc_port,
                vcores,
                work_dir,
            } => {
                let options = ExecutorOptions {
                    scheduler,
                    bind_host,
                    port,
                    grpc_port,
                    vcores,
                    work_dir,
                };
                Executor::run(&lake, options).await?;
            }
        }
        anyhow::Ok(())
    };
    tokio::select! {
        result = served => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// Attaches `session` to the scheduler at `url` when one is given.
pub(crate) fn attach(session: &Session, lake: &Lake, url: Option<&str>) -> Result<()> {
    if let Some(url) = url {
        carelake_cluster::attach(session, lake, url)?;
    }
    Ok(())
}
