//! carelake's queries on an Apache Ballista cluster.
//!
//! Ballista's stock scheduler and executor cannot read carelake's plans: a lake table travels
//! by name and version, a principal's policy as the plan that enforces it, and carelake's SQL
//! functions must be in every process. This crate builds the three parts with carelake's
//! codecs ([`carelake_sql::cluster`]) and functions:
//!
//! - [`Scheduler`]: Ballista's scheduler (pull-staged) whose sessions have carelake's
//!   functions and a runtime whose object stores reach only the lake;
//! - [`Executor`]: Ballista's executor with the same functions, codecs and runtime;
//! - [`attach`]: points a [`Session`] at a scheduler, so that its read queries of lake tables
//!   run on the cluster while writes, DDL, `system.*` and everything else stay local.
//!
//! Every process opens the lake from its own environment (`Lake::open` with its own
//! credentials and key); no credential travels in a plan or a session's settings.
//!
//! The scheduler trusts the plans it is sent: it must listen on loopback or a private
//! network that only carelake's own processes reach (see `docs/SCALE.md`).

use std::net::SocketAddr;
use std::sync::Arc;

use ballista_core::RuntimeProducer;
use ballista_core::config::{BallistaConfig, TaskSchedulingPolicy};
use ballista_core::error::BallistaError;
use ballista_core::extension::SessionConfigExt;
use ballista_core::planner::BallistaQueryPlanner;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_core::serde::{
    BallistaCodec, BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec,
};
use ballista_core::utils::{default_config_producer, default_session_builder};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_server::SessionBuilder;
use carelake_lake::Lake;
use carelake_sql::Session;
use carelake_sql::cluster::{
    LakeLogicalCodec, LakePhysicalCodec, cluster_functions, cluster_runtime,
};
use datafusion::execution::{FunctionRegistry, SessionState};
use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionConfig;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::PhysicalExtensionCodec;
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// What can go wrong starting or reaching a cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Ballista refused or failed.
    #[error("cluster: {0}")]
    Ballista(#[from] BallistaError),
    /// carelake's SQL layer failed (opening the lake's functions or runtime).
    #[error(transparent)]
    Sql(#[from] carelake_sql::Error),
    /// A listener could not bind or a scheduler could not be reached.
    #[error("cluster: {context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A scheduler address that is not `http://host:port`.
    #[error("cluster: scheduler address {0:?} is not http://host:port")]
    Address(String),
    /// The lake cannot run on a cluster.
    #[error("cluster: {0}")]
    Refused(&'static str),
}

/// The result of this crate's functions.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Refuses a lake a cluster must not serve: Ballista writes shuffle files (a stage's rows,
/// plaintext) in each executor's work folder, outside an encrypted lake.
fn check_lake(lake: &Lake) -> Result<()> {
    if lake.is_encrypted() {
        return Err(Error::Refused(
            "an encrypted lake's queries stay on one machine (Ballista's shuffle files would \
             hold plaintext rows outside the lake)",
        ));
    }
    Ok(())
}

/// carelake's codecs over Ballista's, for a process that opens tables through `lake`.
fn codecs(lake: &Lake) -> (Arc<LakeLogicalCodec>, Arc<LakePhysicalCodec>) {
    let logical = Arc::new(LakeLogicalCodec::new(
        Some(lake.clone()),
        Arc::new(BallistaLogicalExtensionCodec::default()),
    ));
    let physical = Arc::new(LakePhysicalCodec::new(
        Some(lake.clone()),
        Arc::clone(&logical),
        Arc::new(BallistaPhysicalExtensionCodec::default()),
    ));
    (logical, physical)
}

/// Ballista's session state with carelake's functions and runtime.
fn session_state(
    config: SessionConfig,
    functions: &[Arc<ScalarUDF>],
    runtime: &Arc<datafusion::execution::runtime_env::RuntimeEnv>,
) -> datafusion::common::Result<SessionState> {
    let mut state = datafusion::execution::session_state::SessionStateBuilder::new_from_existing(
        default_session_builder(config)?,
    )
    .with_runtime_env(Arc::clone(runtime))
    .build();
    for f in functions {
        // Added beside DataFusion's own (a builder's `with_scalar_functions` replaces them).
        state.register_udf(Arc::clone(f))?;
    }
    Ok(state)
}

/// A running scheduler.
#[derive(Debug)]
pub struct Scheduler {
    address: SocketAddr,
    task: JoinHandle<Result<(), BallistaError>>,
}

impl Scheduler {
    /// Starts a scheduler for `lake` on `listener` (bind port 0 for any free port).
    pub async fn start(lake: &Lake, listener: std::net::TcpListener) -> Result<Self> {
        check_lake(lake)?;
        listener.set_nonblocking(true).map_err(|source| Error::Io {
            context: "scheduler listener".into(),
            source,
        })?;
        let listener = TcpListener::from_std(listener).map_err(|source| Error::Io {
            context: "scheduler listener".into(),
            source,
        })?;
        let address = listener.local_addr().map_err(|source| Error::Io {
            context: "scheduler listener".into(),
            source,
        })?;
        let functions = cluster_functions(lake).await?;
        let runtime = cluster_runtime(lake, None)?;
        let builder: SessionBuilder =
            Arc::new(move |config| session_state(config, &functions, &runtime));
        let (logical, physical) = codecs(lake);
        let config = SchedulerConfig {
            bind_host: address.ip().to_string(),
            bind_port: address.port(),
            external_host: address.ip().to_string(),
            scheduling_policy: TaskSchedulingPolicy::PullStaged,
            override_logical_codec: Some(logical as Arc<dyn LogicalExtensionCodec>),
            override_physical_codec: Some(physical as Arc<dyn PhysicalExtensionCodec>),
            override_session_builder: Some(builder),
            override_config_producer: Some(Arc::new(default_config_producer)),
            ..Default::default()
        };
        let cluster = BallistaCluster::new_from_config(&config).await?;
        let server = ballista_scheduler::scheduler_process::create_scheduler::<
            LogicalPlanNode,
            PhysicalPlanNode,
        >(cluster, Arc::new(config))
        .await?;
        let task = tokio::spawn(
            ballista_scheduler::scheduler_process::start_grpc_service_with_listener(
                listener, server,
            ),
        );
        tracing::info!(%address, "scheduler listening");
        Ok(Self { address, task })
    }

    /// Its URL for [`attach`] and executors: `http://host:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Serves until the scheduler stops (an error) or the task is cancelled.
    pub async fn wait(mut self) -> Result<()> {
        match (&mut self.task).await {
            Ok(result) => Ok(result?),
            Err(e) => Err(Error::Refused(if e.is_cancelled() {
                "the scheduler was stopped"
            } else {
                "the scheduler panicked"
            })),
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How an executor process joins a scheduler.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler, `http://host:port`.
    pub scheduler: String,
    /// The host its Flight service binds (shuffle reads come to it).
    pub bind_host: String,
    /// The Flight service's port (other executors and clients fetch stage outputs from it).
    pub port: u16,
    /// The executor's gRPC port.
    pub grpc_port: u16,
    /// Task slots (0: the machine's cores).
    pub vcores: usize,
    /// Where shuffle files are written (a temporary folder when `None`).
    pub work_dir: Option<String>,
}

/// Splits `http://host:port` into its host and port.
fn host_port(url: &str) -> Result<(String, u16)> {
    let parsed = url::Url::parse(url).map_err(|_| Error::Address(url.to_string()))?;
    match (parsed.scheme(), parsed.host_str(), parsed.port()) {
        ("http", Some(host), Some(port)) if parsed.path() == "/" || parsed.path().is_empty() => {
            Ok((host.trim_matches(['[', ']']).to_string(), port))
        }
        _ => Err(Error::Address(url.to_string())),
    }
}

/// What an executor needs of the lake: functions, runtime and codecs.
struct ExecutorParts {
    registry: BallistaFunctionRegistry,
    runtime: RuntimeProducer,
    logical: Arc<LakeLogicalCodec>,
    physical: Arc<LakePhysicalCodec>,
}

async fn executor_parts(lake: &Lake, work_dir: Option<&str>) -> Result<ExecutorParts> {
    check_lake(lake)?;
    let functions = cluster_functions(lake).await?;
    let runtime = cluster_runtime(lake, work_dir)?;
    let state = session_state(default_config_producer(), &functions, &runtime)
        .map_err(|e| Error::Ballista(e.into()))?;
    let (logical, physical) = codecs(lake);
    Ok(ExecutorParts {
        registry: BallistaFunctionRegistry::from(&state),
        runtime: Arc::new(move |_| Ok(Arc::clone(&runtime))),
        logical,
        physical,
    })
}

/// An executor joined to a scheduler.
#[derive(Debug)]
pub struct Executor;

impl Executor {
    /// Runs an executor process for `lake` until it stops (the `carelake cluster executor`
    /// command).
    pub async fn run(lake: &Lake, options: ExecutorOptions) -> Result<()> {
        let (scheduler_host, scheduler_port) = host_port(&options.scheduler)?;
        let parts = executor_parts(lake, options.work_dir.as_deref()).await?;
        let config = ballista_executor::executor_process::ExecutorProcessConfig {
            bind_host: options.bind_host,
            port: options.port,
            grpc_port: options.grpc_port,
            scheduler_host,
            scheduler_port,
            vcores: options.vcores,
            work_dir: options.work_dir,
            task_scheduling_policy: TaskSchedulingPolicy::PullStaged,
            print_thread_info: false,
            override_function_registry: Some(Arc::new(parts.registry)),
            override_runtime_producer: Some(parts.runtime),
            override_config_producer: Some(Arc::new(default_config_producer)),
            override_logical_codec: Some(parts.logical as Arc<dyn LogicalExtensionCodec>),
            override_physical_codec: Some(parts.physical as Arc<dyn PhysicalExtensionCodec>),
            ..Default::default()
        };
        ballista_executor::executor_process::start_executor_process(Arc::new(config)).await?;
        Ok(())
    }

    /// Starts an executor inside this process, on loopback, pulling tasks from `scheduler`
    /// with `vcores` task slots (tests and `carelake bench cluster`).
    pub async fn start_in_process(lake: &Lake, scheduler: &str, vcores: usize) -> Result<()> {
        host_port(scheduler)?;
        let parts = executor_parts(lake, None).await?;
        let client = SchedulerGrpcClient::connect(scheduler.to_string())
            .await
            .map_err(|e| Error::Ballista(BallistaError::General(format!("connect: {e}"))))?;
        ballista_executor::new_standalone_executor_from_builder(
            client,
            vcores.max(1),
            Arc::new(default_config_producer),
            parts.runtime,
            BallistaCodec::new(
                parts.logical as Arc<dyn LogicalExtensionCodec>,
                parts.physical as Arc<dyn PhysicalExtensionCodec>,
            ),
            parts.registry,
        )
        .await?;
        Ok(())
    }
}

/// Whether sessions of `lake` can be attached to the scheduler at `scheduler` (a lake a
/// cluster may serve, an address of the form `http://host:port`); [`attach`] checks the same.
pub fn check(lake: &Lake, scheduler: &str) -> Result<()> {
    check_lake(lake)?;
    host_port(scheduler).map(|_| ())
}

/// Sends `session`'s read queries of lake tables to the scheduler at `scheduler`
/// (`http://host:port`); everything else it plans and runs itself. The policy layer is in
/// the plans it sends, so the cluster returns what the principal may see and nothing else.
pub fn attach(session: &Session, lake: &Lake, scheduler: &str) -> Result<()> {
    attach_with(session, lake, scheduler, &ClusterOptions::default())
}

/// The fewest partitions a distributed query's stages have. With one, Ballista 55's adaptive
/// planner failed a `NOT IN (subquery)` (a null-aware anti join: with both sides in one
/// partition it takes them as already shuffled, then expects the exchange it never added:
/// "ExchangeExec is expected at this point"), and a one-partition stage would leave all but
/// one executor idle anyway.
pub const MIN_STAGE_PARTITIONS: usize = 2;

/// How a session's queries run on a cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// The partitions of a query's distributed stages (how many tasks share a shuffle);
    /// the session's own target partitions (its machine's cores, or
    /// `CARELAKE_TARGET_PARTITIONS`) when `None`; at least [`MIN_STAGE_PARTITIONS`].
    pub partitions: Option<usize>,
}

/// [`attach`] with `options`.
pub fn attach_with(
    session: &Session,
    lake: &Lake,
    scheduler: &str,
    options: &ClusterOptions,
) -> Result<()> {
    check(lake, scheduler)?;
    let (logical, _) = codecs(lake);
    let logical = logical as Arc<dyn LogicalExtensionCodec>;
    let planner = BallistaQueryPlanner::<LogicalPlanNode>::with_extension(
        scheduler.to_string(),
        BallistaConfig::default(),
        Arc::clone(&logical),
    );
    let planner = ReachablePlanner {
        inner: planner,
        scheduler: scheduler.to_string(),
        address: host_port(scheduler)?,
    };
    let partitions = options.partitions.filter(|&n| n > 0);
    session.run_reads_on(Arc::new(planner), |config| {
        let n = partitions
            .unwrap_or_else(|| config.target_partitions())
            .max(MIN_STAGE_PARTITIONS);
        config
            .with_target_partitions(n)
            .upgrade_for_ballista()
            .with_ballista_logical_extension_codec(logical)
    });
    Ok(())
}

/// Ballista's planner behind a check that the scheduler answers: Ballista reports a scheduler
/// it cannot reach as an execution error, text alone; the check makes it
/// [`carelake_sql::Error::Unavailable`], which every interface answers as such (HTTP 503,
/// SQLSTATE 08006) and callers may retry.
struct ReachablePlanner {
    inner: BallistaQueryPlanner<LogicalPlanNode>,
    scheduler: String,
    address: (String, u16),
}

impl std::fmt::Debug for ReachablePlanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReachablePlanner")
            .field("scheduler", &self.scheduler)
            .finish_non_exhaustive()
    }
}

/// How long the scheduler has to accept a connection before a query is refused.
const SCHEDULER_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

#[async_trait::async_trait]
impl datafusion::execution::context::QueryPlanner for ReachablePlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &datafusion::logical_expr::LogicalPlan,
        session_state: &dyn datafusion::catalog::Session,
    ) -> datafusion::common::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        let (host, port) = (&self.address.0, self.address.1);
        let reached = tokio::time::timeout(
            SCHEDULER_CONNECT_TIMEOUT,
            tokio::net::TcpStream::connect((host.as_str(), port)),
        )
        .await;
        let refusal = match reached {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.kind().to_string()),
            Err(_) => Some(format!(
                "no answer in {} s",
                SCHEDULER_CONNECT_TIMEOUT.as_secs()
            )),
        };
        if let Some(why) = refusal {
            return Err(datafusion::error::DataFusionError::External(Box::new(
                carelake_sql::Error::Unavailable(format!(
                    "the cluster scheduler at {} cannot be reached ({why})",
                    self.scheduler
                )),
            )));
        }
        self.inner
            .create_physical_plan(logical_plan, session_state)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_addresses() {
        assert_eq!(
            host_port("http://127.0.0.1:50050").unwrap(),
            ("127.0.0.1".to_string(), 50050)
        );
        assert_eq!(host_port("http://[::1]:7").unwrap(), ("::1".to_string(), 7));
        assert!(host_port("https://127.0.0.1:50050").is_err());
        assert!(host_port("http://127.0.0.1").is_err());
        assert!(host_port("http://127.0.0.1:1/path").is_err());
        assert!(host_port("127.0.0.1:50050").is_err());
    }
}
