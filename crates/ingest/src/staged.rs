//! Rows of a clinical load written to data files as they are parsed, committed afterwards.
//!
//! A parser hands its rows over in chunks ([`RowSink`]); a [`Stager`] writes each chunk into
//! the table's folder straight away (Parquet files that no commit names yet), so memory holds
//! one chunk and one open file per table, however large the input. When the round's files are
//! parsed, each table gets one commit naming the files of its fresh, accepted inputs with their
//! content hashes as application transactions: exactly once and all or nothing per file, as a
//! load that kept every row in memory. Files of an input rejected late (an X12 envelope broken
//! after a million claims) are deleted, never committed.
//!
//! A file of staged data holds either the rows of several small inputs, each handed over whole
//! once its parse succeeded, or the rows of one large input only, so that rejecting that input
//! drops whole files.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use carelake_common::{TableName, Zone};
use carelake_lake::{Lake, TimeTravel};
use datafusion::object_store::ObjectStoreExt as _;
use deltalake::DeltaTable;
use deltalake::kernel::Add;
use deltalake::writer::{DeltaWriter as _, RecordBatchWriter, WriteMode};

use crate::clinical::TableSpec;
use crate::columns::TableRows;
use crate::load::has_transaction;
use crate::{Error, Result};

/// Rows of one table a parser hands over at a time, unless `CARELAKE_CHUNK_ROWS` says
/// otherwise (smaller chunks hold less memory per table and make more, smaller writes).
fn chunk_rows() -> usize {
    static ROWS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *ROWS.get_or_init(|| {
        std::env::var("CARELAKE_CHUNK_ROWS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|v| *v > 0)
            .unwrap_or(50_000)
    })
}

/// Encoded bytes after which a staged data file is closed.
const FILE_BYTES: usize = 128 << 20;

/// Chunks in flight between the parser and the writer (back-pressure bounds memory).
pub(crate) const CHANNEL_CHUNKS: usize = 4;

/// Rows of one table from one input.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub(crate) table: TableSpec,
    /// Index of the input in its round.
    pub(crate) file: usize,
    pub(crate) sha256: String,
    pub(crate) batch: RecordBatch,
    /// Handed over before the input's parse finished (the input is large).
    pub(crate) mid_file: bool,
}

/// Where a parser puts rows: the tables of the round (a parser adds rows with
/// [`crate::clinical::table_index`] as on a plain list) and a channel to the writer.
#[derive(Debug)]
pub(crate) struct RowSink {
    tables: Vec<(TableSpec, TableRows)>,
    file: usize,
    sha256: String,
    to_writer: tokio::sync::mpsc::Sender<Chunk>,
    /// The writer stopped (on an error the load reports); rows are dropped from then on.
    stopped: bool,
}

impl std::ops::Deref for RowSink {
    type Target = Vec<(TableSpec, TableRows)>;
    fn deref(&self) -> &Self::Target {
        &self.tables
    }
}

impl std::ops::DerefMut for RowSink {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tables
    }
}

impl RowSink {
    pub(crate) fn new(to_writer: tokio::sync::mpsc::Sender<Chunk>) -> Self {
        Self {
            tables: Vec::new(),
            file: 0,
            sha256: String::new(),
            to_writer,
            stopped: false,
        }
    }

    /// Starts the rows of the round's input number `file`.
    pub(crate) fn start_file(&mut self, file: usize, sha256: &str) {
        self.file = file;
        self.sha256 = sha256.to_string();
    }

    /// Hands over every table holding a chunk of rows ([`chunk_rows`]) or more. Parsers call it between
    /// records. Waits while the writer is behind.
    pub(crate) fn flush_full(&mut self) {
        let chunk = chunk_rows();
        if self.tables.iter().any(|(_, rows)| rows.len() >= chunk)
            && let Err(e) = self.hand_over(|rows| rows.len() >= chunk, true)
        {
            // Reported by end_file (a parser has no way to stop midway).
            tracing::debug!(error = %e, "A chunk was not handed over.");
        }
    }

    /// Ends the current input: its remaining rows are handed over when `keep`, else dropped
    /// (with whatever it handed over before, which the writer never commits).
    pub(crate) fn end_file(&mut self, keep: bool) -> Result<()> {
        if keep && !self.stopped {
            self.hand_over(|rows| rows.len() > 0, false)
        } else {
            for (_, rows) in &mut self.tables {
                if rows.len() > 0 {
                    rows.finish()?;
                }
            }
            if self.stopped {
                return Err(Error::Worker("the staging writer stopped".into()));
            }
            Ok(())
        }
    }

    fn hand_over(&mut self, due: impl Fn(&TableRows) -> bool, mid_file: bool) -> Result<()> {
        for (spec, rows) in &mut self.tables {
            if !due(rows) {
                continue;
            }
            let chunk = Chunk {
                table: spec.clone(),
                file: self.file,
                sha256: self.sha256.clone(),
                batch: rows.finish()?,
                mid_file,
            };
            if self.stopped || self.to_writer.blocking_send(chunk).is_err() {
                // The writer stopped on an error, which the load reports.
                self.stopped = true;
                return Err(Error::Worker("the staging writer stopped".into()));
            }
        }
        Ok(())
    }

    /// The tables the round's parses touched, with their schemas.
    pub(crate) fn into_tables(self) -> Vec<(TableSpec, SchemaRef)> {
        self.tables
            .into_iter()
            .map(|(spec, rows)| {
                let schema = Arc::clone(rows.schema());
                (spec, schema)
            })
            .collect()
    }
}

/// Data files written but not committed, of one or more inputs.
#[derive(Debug, Default)]
struct Segment {
    inputs: BTreeSet<usize>,
    /// The one large input whose rows fill this segment.
    exclusive: Option<usize>,
    adds: Vec<Add>,
}

/// One table's staged data.
pub(crate) struct StagedTable {
    pub(crate) name: TableName,
    pub(crate) spec: TableSpec,
    /// The table as opened (or created) for this round.
    pub(crate) table: DeltaTable,
    /// This round created the table.
    pub(crate) created: bool,
    /// Whether each input (by content hash) is new to this table.
    fresh: HashMap<String, bool>,
    writer: RecordBatchWriter,
    current: Segment,
    segments: Vec<Segment>,
    /// Rows staged per input.
    rows: HashMap<usize, u64>,
}

impl std::fmt::Debug for StagedTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedTable")
            .field("name", &self.name)
            .field("segments", &self.segments.len())
            .finish_non_exhaustive()
    }
}

impl StagedTable {
    /// Whether the input with this hash is new to the table (read once per input).
    pub(crate) async fn is_fresh(&mut self, sha256: &str) -> Result<bool> {
        if let Some(fresh) = self.fresh.get(sha256) {
            return Ok(*fresh);
        }
        let fresh = self.created || !has_transaction(&self.table, sha256).await?;
        self.fresh.insert(sha256.to_string(), fresh);
        Ok(fresh)
    }

    async fn accept(&mut self, chunk: Chunk) -> Result<()> {
        if !self.is_fresh(&chunk.sha256).await? || chunk.batch.num_rows() == 0 {
            return Ok(());
        }
        // A large input's rows go to files of their own.
        let switch = if chunk.mid_file {
            !self.current.inputs.is_empty() && self.current.exclusive != Some(chunk.file)
        } else {
            self.current.exclusive.is_some_and(|e| e != chunk.file)
        };
        if switch {
            self.close_segment().await?;
        }
        if chunk.mid_file {
            self.current.exclusive = Some(chunk.file);
        }
        self.current.inputs.insert(chunk.file);
        *self.rows.entry(chunk.file).or_default() += chunk.batch.num_rows() as u64;
        self.writer
            .write_with_mode(chunk.batch, WriteMode::MergeSchema)
            .await?;
        if self.writer.buffer_len() >= FILE_BYTES {
            // Closing the file keeps the segment's inputs: the next file continues it.
            let adds = self.writer.flush().await?;
            self.current.adds.extend(adds);
        }
        Ok(())
    }

    async fn close_segment(&mut self) -> Result<()> {
        let adds = self.writer.flush().await?;
        let mut segment = std::mem::take(&mut self.current);
        segment.adds.extend(adds);
        if !segment.adds.is_empty() {
            self.segments.push(segment);
        }
        Ok(())
    }

    /// Closes the open file and splits the staged files: the adds of inputs that `keep`
    /// accepts, the rows they hold, and the files to delete.
    pub(crate) async fn finish(
        &mut self,
        keep: impl Fn(usize) -> bool,
    ) -> Result<(Vec<Add>, u64, Vec<Add>)> {
        self.close_segment().await?;
        let (mut kept, mut dropped, mut rows) = (Vec::new(), Vec::new(), 0u64);
        for segment in self.segments.drain(..) {
            if segment.inputs.iter().all(|i| keep(*i)) {
                rows += segment
                    .inputs
                    .iter()
                    .map(|i| self.rows.get(i).copied().unwrap_or(0))
                    .sum::<u64>();
                kept.extend(segment.adds);
            } else {
                dropped.extend(segment.adds);
            }
        }
        Ok((kept, rows, dropped))
    }

    /// The schema the staged files were written with, when it grew beyond the table's.
    pub(crate) fn widened_schema(&self) -> Result<Option<SchemaRef>> {
        let written = self.writer.arrow_schema();
        let table = self
            .table
            .snapshot()?
            .metadata()
            .parse_schema()
            .map_err(deltalake::DeltaTableError::from)?;
        Ok((written.fields().len() > table.fields().count()).then_some(written))
    }

    /// Deletes staged files that will not be committed.
    pub(crate) async fn delete(&mut self, adds: &[Add]) {
        // Not `&self`: the writer is not `Sync`, and a shared borrow held across an await
        // would make the load's future lose `Send`.
        let store = self.table.log_store().object_store(None);
        for add in adds {
            let Ok(path) = datafusion::object_store::path::Path::from_url_path(&add.path) else {
                continue;
            };
            if let Err(e) = store.delete(&path).await {
                tracing::warn!(table = %self.name, error = %e, "Could not delete a staged data file.");
            }
        }
    }
}

/// The writer side of a round: staged tables by name.
#[derive(Debug)]
pub(crate) struct Stager {
    lake: Lake,
    tables: Vec<StagedTable>,
}

impl Stager {
    pub(crate) fn new(lake: Lake) -> Self {
        Self {
            lake,
            tables: Vec::new(),
        }
    }

    /// Writes a chunk into its table's staged files.
    pub(crate) async fn accept(&mut self, chunk: Chunk) -> Result<()> {
        let schema = chunk.batch.schema();
        let table = self.open(&chunk.table, &schema).await?;
        table.accept(chunk).await
    }

    /// The staged table `spec`, opened (or created with `schema`) on first use.
    pub(crate) async fn open(
        &mut self,
        spec: &TableSpec,
        schema: &SchemaRef,
    ) -> Result<&mut StagedTable> {
        if let Some(i) = self.tables.iter().position(|t| t.spec.name == spec.name) {
            return Ok(&mut self.tables[i]);
        }
        let name = TableName::new(Zone::Raw, &spec.name)?;
        let url = self.lake.table_url(&name)?;
        let (table, created) = match self.lake.load_delta(&url, TimeTravel::Latest).await? {
            Some(table) => (table, false),
            None => {
                let created = self
                    .lake
                    .delta_handle(&url)?
                    .write(vec![RecordBatch::new_empty(Arc::clone(schema))])
                    .with_save_mode(deltalake::protocol::SaveMode::Append)
                    .with_table_name(name.name.clone())
                    .await;
                match created {
                    Ok(table) => (table, true),
                    // Another load created it first: it may already hold our inputs.
                    Err(e) => match self.lake.load_delta(&url, TimeTravel::Latest).await? {
                        Some(table) => (table, false),
                        None => return Err(e.into()),
                    },
                }
            }
        };
        let writer = RecordBatchWriter::for_table(&table)?;
        self.tables.push(StagedTable {
            name,
            spec: spec.clone(),
            table,
            created,
            fresh: HashMap::new(),
            writer,
            current: Segment::default(),
            segments: Vec::new(),
            rows: HashMap::new(),
        });
        let last = self.tables.len() - 1;
        Ok(&mut self.tables[last])
    }

    /// Deletes every staged file (a round that failed).
    pub(crate) async fn abandon(mut self) {
        for table in &mut self.tables {
            if let Ok((kept, _, dropped)) = table.finish(|_| true).await {
                table.delete(&kept).await;
                table.delete(&dropped).await;
            }
        }
    }
}
