//! Loads of clinical message formats into fixed sets of raw tables. Today: HL7 v2.
//!
//! Unlike CSV, these formats carry their own structure, so each format declares its tables up
//! front (see [`crate::hl7`], [`crate::fhir`] and [`crate::x12`]) and a file becomes rows in
//! several of them. Exactly once holds per table and file: the rows one file gives one table
//! are committed together with the file's content hash as a Delta application transaction, and
//! a table that already holds that transaction takes nothing from the file again. Tables are
//! committed in the format's order, its *ledger* table last (for HL7 the message store), so a
//! load cut off half-way is completed, never doubled, by loading the same files again.
//!
//! A file the format rejects as a whole (a broken HL7 batch) or a message it cannot parse
//! goes to `raw._rejects` with the reason; a wholly rejected file's hash is recorded there too,
//! so loading it again does not quarantine it twice.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use carelake_common::{TableName, Zone};
use carelake_lake::{Lake, LoadRecord, LoadStatus, Provenance, TableWrite, TimeTravel, WriteMode};
use chrono::{DateTime, Utc};
use deltalake::DeltaTable;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake::kernel::{Action, MetadataExt as _, StructType, Transaction};

use crate::columns::TableRows;
use crate::load::{Progress, ProgressEvent, quarantine};
use crate::reader::{HashingReader, open_decompressed};
use crate::rows::Reject;
use crate::staged::{CHANNEL_CHUNKS, RowSink, Stager};
use crate::{Error, Result};

/// Bytes of input parsed and committed together; larger loads commit in several rounds.
const ROUND_BYTES: u64 = 512 * 1024 * 1024;

/// A clinical message format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClinicalFormat {
    /// HL7 v2 messages, single or in FHS/BHS batches.
    Hl7,
    /// FHIR R4 JSON: Bundles, single resources, or bulk-export NDJSON.
    Fhir,
    /// X12 837 claims (professional and institutional).
    X12,
}

impl ClinicalFormat {
    /// The format's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ClinicalFormat::Hl7 => "hl7",
            ClinicalFormat::Fhir => "fhir",
            ClinicalFormat::X12 => "x12",
        }
    }

    /// Tells a clinical format from the start of a file's content: `MSH`/`FHS`/`BHS` is HL7 v2;
    /// a JSON object with a `resourceType` before its first line ends (a Bundle, a resource or
    /// an NDJSON line) is FHIR. `None` for anything else.
    /// The format of the first file, in order, that has one.
    pub fn sniff_first(paths: &[PathBuf]) -> Result<Option<Self>> {
        for path in paths {
            if let Some(format) = Self::sniff(path)? {
                return Ok(Some(format));
            }
        }
        Ok(None)
    }

    /// The clinical format of one file, from its first 4 KB.
    pub fn sniff(path: &Path) -> Result<Option<Self>> {
        let mut reader = open_decompressed(path, None)?;
        let mut head = vec![0u8; 4096];
        let mut filled = 0;
        while filled < head.len() {
            let n = reader
                .read(&mut head[filled..])
                .map_err(|source| Error::ReadFile {
                    path: path.to_path_buf(),
                    source,
                })?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        head.truncate(filled);
        Ok(Self::sniff_bytes(&head))
    }

    fn sniff_bytes(head: &[u8]) -> Option<Self> {
        let text = String::from_utf8_lossy(head);
        let text = text.trim_start_matches('\u{feff}').trim_start();
        if text.starts_with("MSH") || text.starts_with("FHS") || text.starts_with("BHS") {
            return Some(ClinicalFormat::Hl7);
        }
        // X12 starts with ISA; a file starting with a GS or ST segment is X12 that lost its
        // interchange header, and is loaded so that the parser can refuse it with the reason.
        if carelake_x12::sniff(head) || text.starts_with("GS*") || text.starts_with("ST*837*") {
            return Some(ClinicalFormat::X12);
        }
        if text.starts_with('{') {
            // FHIR writers put `resourceType` first, or near it; look in the first 4 KB.
            if text.contains("\"resourceType\"") {
                return Some(ClinicalFormat::Fhir);
            }
        }
        None
    }
}

impl FromStr for ClinicalFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "hl7" | "hl7v2" => Ok(ClinicalFormat::Hl7),
            "fhir" | "ndjson-fhir" => Ok(ClinicalFormat::Fhir),
            "x12" | "837" => Ok(ClinicalFormat::X12),
            other => Err(format!(
                "unknown clinical format '{other}' (hl7, fhir, x12)"
            )),
        }
    }
}

/// What to load.
#[derive(Debug, Clone)]
pub struct ClinicalRequest {
    /// Files, folders or glob patterns.
    pub inputs: Vec<String>,
    /// The format; `None` sniffs it from the first file's content.
    pub format: Option<ClinicalFormat>,
    /// Progress callback.
    pub progress: Option<Arc<dyn Progress>>,
    /// Names recorded in `_source_file` and the load history instead of a file's local path
    /// (a watched object's URL, for a copy of it on local disk).
    pub labels: HashMap<PathBuf, String>,
}

impl ClinicalRequest {
    /// A request for these inputs with the format sniffed from their content.
    pub fn new(inputs: Vec<String>) -> Self {
        Self {
            inputs,
            format: None,
            progress: None,
            labels: HashMap::new(),
        }
    }
}

/// What a clinical load did to one table.
#[derive(Debug, Clone)]
pub struct TableOutcome {
    /// The table.
    pub table: TableName,
    /// Rows added by this load.
    pub rows_added: u64,
    /// The table's version after the load.
    pub version: Option<u64>,
}

/// What happened to one input file.
#[derive(Debug, Clone)]
pub struct ClinicalFileOutcome {
    /// The file, as given.
    pub path: String,
    /// Loaded, skipped (loaded before) or rejected as a whole.
    pub status: LoadStatus,
    /// Messages, resources or claims read from it.
    pub records: u64,
    /// Messages, resources or claims quarantined.
    pub rejected: u64,
    /// Messages already in the lake (resent HL7 messages).
    pub duplicates: u64,
    /// Decompressed bytes.
    pub bytes: u64,
}

/// The result of a clinical load.
#[derive(Debug, Clone)]
pub struct ClinicalSummary {
    /// Identifier of this load.
    pub load_id: String,
    /// The format loaded.
    pub format: ClinicalFormat,
    /// Per file.
    pub files: Vec<ClinicalFileOutcome>,
    /// Per table, in commit order.
    pub tables: Vec<TableOutcome>,
    /// Records (messages, resources, claims) read.
    pub records: u64,
    /// Records quarantined.
    pub rejected: u64,
    /// Records already in the lake.
    pub duplicates: u64,
    /// Decompressed bytes read.
    pub bytes: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Files left out because their content is of no clinical format (a README beside the
    /// data), when the format was told from the content.
    pub ignored: Vec<String>,
}

/// A table a format writes.
#[derive(Debug, Clone)]
pub(crate) struct TableSpec {
    pub(crate) name: String,
    pub(crate) description: String,
}

/// One input file read into memory.
#[derive(Debug)]
pub(crate) struct SourceFile {
    pub(crate) label: String,
    pub(crate) sha256: String,
    pub(crate) content: Vec<u8>,
}

/// What parsing one file produced.
#[derive(Debug, Default)]
pub(crate) struct FileParse {
    /// Records read (messages, resources, claims), including rejected and duplicate ones.
    pub(crate) records: u64,
    /// Records already in the lake or earlier in this load.
    pub(crate) duplicates: u64,
    /// Rejected records, or the whole file when `whole_file_rejected`.
    pub(crate) rejects: Vec<Reject>,
    /// The format refused the file as a whole.
    pub(crate) whole_file_rejected: bool,
}

/// Per-round context a parser gets: lineage values.
#[derive(Debug, Clone)]
pub(crate) struct RoundContext {
    pub(crate) load_id: String,
    pub(crate) loaded_at: i64,
    /// Labels in place of local paths (see [`ClinicalRequest::labels`]).
    pub(crate) labels: Arc<HashMap<PathBuf, String>>,
}

/// A clinical format's parser: turns files into rows of its tables.
pub(crate) trait ClinicalParser: Send {
    /// Reads what the parser needs from the lake before a round (e.g. HL7 message keys).
    /// Nothing by default.
    fn prepare(&mut self, _lake: &Lake) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// Parses one file, appending rows to `tables` (keyed by table name; the parser creates
    /// the entries it needs with [`table_index`]) and calling [`RowSink::flush_full`] between
    /// records, so that a large file is handed to the writer in chunks.
    fn parse_file(
        &mut self,
        file: &SourceFile,
        context: &RoundContext,
        tables: &mut RowSink,
    ) -> FileParse;

    /// Orders tables for commit: the ledger table last.
    fn commit_order(&self, tables: &mut [(TableSpec, SchemaRef)]);
}

impl crate::Loader {
    /// Loads clinical message files (HL7 v2, FHIR, X12 837) into the format's raw tables. A FHIR load
    /// then refreshes the SQL-on-FHIR views over the resource types it added to.
    pub async fn load_clinical(&self, request: ClinicalRequest) -> Result<ClinicalSummary> {
        let mut files = crate::expand_inputs(&request.inputs)?;
        let mut ignored = Vec::new();
        let format = match request.format {
            Some(f) => f,
            None => {
                // Told from the content; files of no clinical format (a README or LICENSE
                // beside the data) are left out and listed.
                let mut sniffed = Vec::with_capacity(files.len());
                for file in &files {
                    sniffed.push(ClinicalFormat::sniff(file)?);
                }
                let format = sniffed
                    .iter()
                    .flatten()
                    .next()
                    .copied()
                    .ok_or_else(|| Error::UnknownFormat(files[0].clone()))?;
                if let Some((i, other)) = sniffed
                    .iter()
                    .enumerate()
                    .find_map(|(i, s)| s.filter(|s| *s != format).map(|s| (i, s)))
                {
                    return Err(Error::MixedClinicalFormats(
                        format!("{} ({})", files[0].display(), format.as_str()),
                        format!("{} ({})", files[i].display(), other.as_str()),
                    ));
                }
                let mut kept = Vec::with_capacity(files.len());
                for (file, sniff) in files.into_iter().zip(sniffed) {
                    if sniff.is_some() {
                        kept.push(file);
                    } else {
                        ignored.push(file.display().to_string());
                    }
                }
                files = kept;
                format
            }
        };
        let labels = Arc::new(request.labels);
        let mut summary = match format {
            ClinicalFormat::Hl7 => {
                self.run_clinical(
                    format,
                    files,
                    request.progress,
                    labels,
                    crate::hl7::Hl7Parser::default(),
                )
                .await?
            }
            ClinicalFormat::Fhir => {
                let summary = self
                    .run_clinical(
                        format,
                        files,
                        request.progress,
                        labels,
                        crate::fhir::FhirParser,
                    )
                    .await?;
                crate::fhir::refresh_views(&self.lake, &self.principal).await?;
                summary
            }
            ClinicalFormat::X12 => {
                self.run_clinical(
                    format,
                    files,
                    request.progress,
                    labels,
                    crate::x12::X12Parser,
                )
                .await?
            }
        };
        summary.ignored = ignored;
        Ok(summary)
    }

    async fn run_clinical<P: ClinicalParser + 'static>(
        &self,
        format: ClinicalFormat,
        files: Vec<PathBuf>,
        progress: Option<Arc<dyn Progress>>,
        labels: Arc<HashMap<PathBuf, String>>,
        mut parser: P,
    ) -> Result<ClinicalSummary> {
        let started = Instant::now();
        let started_at = Utc::now();
        let load_id = uuid::Uuid::new_v4().to_string();
        tracing::info!(files = files.len(), format = format.as_str(), %load_id, "Clinical load started.");
        if let Some(p) = &progress {
            let total: u64 = files
                .iter()
                .filter_map(|f| f.metadata().ok())
                .map(|m| m.len())
                .sum();
            p.event(ProgressEvent::Phase {
                name: "load",
                total_bytes: total,
            });
        }
        let mut summary = ClinicalSummary {
            load_id: load_id.clone(),
            format,
            files: Vec::new(),
            tables: Vec::new(),
            records: 0,
            rejected: 0,
            duplicates: 0,
            bytes: 0,
            elapsed: Duration::ZERO,
            ignored: Vec::new(),
        };
        let context = RoundContext {
            load_id: load_id.clone(),
            loaded_at: started_at.timestamp_micros(),
            labels,
        };
        // Rounds of up to ROUND_BYTES of input.
        let mut rounds: Vec<Vec<PathBuf>> = vec![Vec::new()];
        let mut round_bytes = 0;
        for file in files {
            let len = file.metadata().map(|m| m.len()).unwrap_or(0);
            if round_bytes + len > ROUND_BYTES && !rounds.last().is_some_and(Vec::is_empty) {
                rounds.push(Vec::new());
                round_bytes = 0;
            }
            round_bytes += len;
            if let Some(round) = rounds.last_mut() {
                round.push(file);
            }
        }
        let result = async {
            for round in rounds {
                parser.prepare(&self.lake).await?;
                let (returned, outcome) =
                    read_and_parse(&self.lake, round, parser, context.clone(), progress.clone())
                        .await?;
                parser = returned;
                self.commit_round(format, &context, outcome, &mut summary, started_at)
                    .await?;
            }
            Ok::<_, Error>(())
        }
        .await;
        if let Some(p) = &progress {
            p.event(ProgressEvent::Done);
        }
        result?;
        summary.elapsed = started.elapsed();
        let rows: u64 = summary.tables.iter().map(|t| t.rows_added).sum();
        crate::load::record_load(format.as_str(), summary.elapsed, rows);
        tracing::info!(
            format = format.as_str(),
            records = summary.records,
            rejected = summary.rejected,
            duplicates = summary.duplicates,
            "Clinical load finished."
        );
        Ok(summary)
    }

    /// Commits each table's staged rows of the round's fresh, accepted files (one commit per
    /// table, in the format's order), with the files' hashes as application transactions.
    /// Returns which files some table took.
    async fn commit_staged(
        &self,
        format: ClinicalFormat,
        context: &RoundContext,
        round: &mut RoundOutcome,
        summary: &mut ClinicalSummary,
    ) -> Result<Vec<bool>> {
        let (files, parses) = (&round.files, &round.parses);
        let mut file_loaded = vec![false; files.len()];
        for (spec, schema) in &round.tables {
            let staged = round.stager.open(spec, schema).await?;
            let mut accepted = vec![false; files.len()];
            let mut txns = Vec::new();
            for (i, file) in files.iter().enumerate() {
                if !parses[i].whole_file_rejected && staged.is_fresh(&file.sha256).await? {
                    txns.push(Transaction::new(app_id(&file.sha256), 1));
                    accepted[i] = true;
                    file_loaded[i] = true;
                }
            }
            let (adds, rows, dropped) = staged.finish(|i| accepted[i]).await?;
            staged.delete(&dropped).await;
            let name = staged.name.clone();
            let created = staged.created;
            let provenance = Provenance::new(
                format!("{} load", format.as_str()),
                self.principal.name.clone(),
            )
            .described(spec.description.clone());
            let write = TableWrite::new(name.clone(), WriteMode::Append, provenance);
            let written = if txns.is_empty() {
                // A load stopped between a commit and its catalog event (a crash) leaves the
                // table ahead of the catalog: run again, it takes nothing new and completes it.
                if !created {
                    let entry = self.lake.catalog().get(&name).await?;
                    let behind = entry
                        .is_none_or(|e| e.table_version < staged.table.version().map(|v| v as i64));
                    if !behind {
                        continue;
                    }
                }
                // Made by this round and given nothing: recorded in the catalog all the same.
                write.record(&self.lake, &staged.table, created).await?;
                staged.table.clone()
            } else {
                let mut actions: Vec<Action> = adds.into_iter().map(Action::Add).collect();
                if let Some(widened) = staged.widened_schema()? {
                    let widened: StructType = widened.as_ref().try_into_kernel()?;
                    let metadata = staged.table.snapshot()?.metadata().clone();
                    actions.push(Action::Metadata(
                        metadata
                            .with_schema(&widened)
                            .map_err(deltalake::DeltaTableError::from)?,
                    ));
                }
                write
                    .transactions(txns)
                    .metadata("operation", "load")
                    .metadata("load_id", context.load_id.clone())
                    .metadata("format", format.as_str())
                    .actions(&self.lake, &staged.table, actions, created)
                    .await?
            };
            match summary.tables.iter_mut().find(|t| t.table == name) {
                Some(outcome) => {
                    outcome.rows_added += rows;
                    outcome.version = written.version();
                }
                None => summary.tables.push(TableOutcome {
                    table: name,
                    rows_added: rows,
                    version: written.version(),
                }),
            }
        }
        Ok(file_loaded)
    }

    async fn commit_round(
        &self,
        format: ClinicalFormat,
        context: &RoundContext,
        mut round: RoundOutcome,
        summary: &mut ClinicalSummary,
        started_at: DateTime<Utc>,
    ) -> Result<()> {
        let file_loaded = match self
            .commit_staged(format, context, &mut round, summary)
            .await
        {
            Ok(loaded) => loaded,
            Err(e) => {
                round.stager.abandon().await;
                return Err(e);
            }
        };
        let RoundOutcome { files, parses, .. } = round;

        // Quarantine: bad records of loaded files, and wholly rejected files not seen before.
        let rejects_name = TableName::new(Zone::Raw, crate::REJECTS_TABLE)?;
        let rejects_table = self
            .lake
            .load_delta(&self.lake.table_url(&rejects_name)?, TimeTravel::Latest)
            .await?;
        let mut quarantined = Vec::new();
        let mut rejected_txns = Vec::new();
        let mut rejected_before = vec![false; files.len()];
        for (i, (file, parse)) in files.iter().zip(&parses).enumerate() {
            if parse.rejects.is_empty() {
                continue;
            }
            if parse.whole_file_rejected {
                if let Some(t) = &rejects_table
                    && has_transaction(t, &file.sha256).await?
                {
                    rejected_before[i] = true;
                    continue;
                }
                rejected_txns.push(app_id(&file.sha256));
            } else if !file_loaded[i] {
                continue;
            }
            for reject in &parse.rejects {
                quarantined.push((file.label.clone(), reject.clone()));
            }
        }
        if !quarantined.is_empty() {
            let target = format!("raw.{}_*", format.as_str());
            quarantine(
                &self.lake,
                &self.principal,
                &target,
                &context.load_id,
                quarantined,
                rejected_txns,
            )
            .await?;
        }

        let mut history = Vec::new();
        for (i, (file, parse)) in files.iter().zip(&parses).enumerate() {
            let status = if parse.whole_file_rejected {
                LoadStatus::Failed
            } else if file_loaded[i] {
                LoadStatus::Loaded
            } else {
                LoadStatus::Skipped
            };
            let counted = file_loaded[i] || (parse.whole_file_rejected && !rejected_before[i]);
            let rejected = parse.rejects.len() as u64;
            let outcome = ClinicalFileOutcome {
                path: file.label.clone(),
                status,
                records: parse.records,
                rejected,
                duplicates: parse.duplicates,
                bytes: file.bytes,
            };
            if counted {
                summary.records += parse.records;
                summary.rejected += rejected;
                summary.duplicates += parse.duplicates;
            }
            summary.bytes += outcome.bytes;
            history.push(LoadRecord {
                load_id: context.load_id.clone(),
                table: format!("raw.{}_*", format.as_str()),
                source_file: file.label.clone(),
                content_sha256: file.sha256.clone(),
                format: format.as_str().to_string(),
                rows_loaded: if file_loaded[i] {
                    (parse.records - rejected.min(parse.records)) as i64
                } else {
                    0
                },
                rows_rejected: rejected as i64,
                bytes: outcome.bytes as i64,
                status,
                principal: self.principal.name.clone(),
                started_at,
                finished_at: Utc::now(),
            });
            summary.files.push(outcome);
        }
        self.lake.load_history().record(&history).await?;
        Ok(())
    }
}

/// The parsed files of one round, with their rows staged per table.
#[derive(Debug)]
struct RoundOutcome {
    files: Vec<FileInfo>,
    parses: Vec<FileParse>,
    /// The tables the round touched, in commit order, with their schemas.
    tables: Vec<(TableSpec, SchemaRef)>,
    stager: Stager,
}

/// An input of a round once parsed (its content is no longer held).
#[derive(Debug)]
struct FileInfo {
    label: String,
    sha256: String,
    bytes: u64,
}

async fn read_and_parse<P: ClinicalParser + 'static>(
    lake: &Lake,
    paths: Vec<PathBuf>,
    mut parser: P,
    context: RoundContext,
    progress: Option<Arc<dyn Progress>>,
) -> Result<(P, RoundOutcome)> {
    let (to_writer, mut chunks) = tokio::sync::mpsc::channel(CHANNEL_CHUNKS);
    let parsing = tokio::task::spawn_blocking(move || {
        let mut files = Vec::new();
        let mut parses = Vec::new();
        let mut sink = RowSink::new(to_writer);
        for (index, path) in paths.iter().enumerate() {
            let mut file = read_file(path, progress.clone())?;
            if let Some(label) = context.labels.get(path) {
                file.label.clone_from(label);
            }
            sink.start_file(index, &file.sha256);
            let parse = parser.parse_file(&file, &context, &mut sink);
            sink.end_file(!parse.whole_file_rejected)?;
            files.push(FileInfo {
                bytes: file.content.len() as u64,
                label: file.label,
                sha256: file.sha256,
            });
            parses.push(parse);
        }
        let mut tables = sink.into_tables();
        parser.commit_order(&mut tables);
        Ok::<_, Error>((parser, files, parses, tables))
    });
    // Chunks are written as they come, while the parse goes on.
    let mut stager = Stager::new(lake.clone());
    let mut failed = None;
    while let Some(chunk) = chunks.recv().await {
        if failed.is_none()
            && let Err(e) = stager.accept(chunk).await
        {
            failed = Some(e);
            // The parser's next hand-over fails, and it stops.
            chunks.close();
        }
    }
    let parsed = parsing.await.map_err(|e| Error::Worker(e.to_string()));
    let parsed = match (failed, parsed) {
        (Some(e), _) | (None, Err(e)) | (None, Ok(Err(e))) => Err(e),
        (None, Ok(Ok(parsed))) => Ok(parsed),
    };
    match parsed {
        Ok((parser, files, parses, tables)) => Ok((
            parser,
            RoundOutcome {
                files,
                parses,
                tables,
                stager,
            },
        )),
        Err(e) => {
            stager.abandon().await;
            Err(e)
        }
    }
}

fn read_file(path: &Path, progress: Option<Arc<dyn Progress>>) -> Result<SourceFile> {
    let read_err = |source| Error::ReadFile {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = HashingReader::new(open_decompressed(path, progress)?);
    let mut content = Vec::new();
    reader.read_to_end(&mut content).map_err(read_err)?;
    let (sha256, _) = reader.finish().map_err(read_err)?;
    Ok(SourceFile {
        label: path.display().to_string(),
        sha256,
        content,
    })
}

/// Whether `table` holds the load transaction of the file with this content hash.
pub(crate) async fn has_transaction(table: &DeltaTable, sha256: &str) -> Result<bool> {
    Ok(carelake_lake::app_version(table, &app_id(sha256))
        .await?
        .is_some())
}

pub(crate) fn app_id(sha256: &str) -> String {
    format!("carelake-load:{sha256}")
}

/// At most 64 KB of a rejected input, for the quarantine table.
pub fn clip(text: &str) -> String {
    const MAX: usize = 64 * 1024;
    if text.len() <= MAX {
        return text.to_string();
    }
    let mut cut = MAX;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text[..cut].to_string()
}

/// Finds the entry for `spec` in `tables`, creating it with `columns` when absent; returns its
/// index.
pub(crate) fn table_index(
    tables: &mut Vec<(TableSpec, TableRows)>,
    name: &str,
    description: &str,
    columns: &[crate::columns::ColumnSpec],
) -> usize {
    if let Some(i) = tables.iter().position(|(s, _)| s.name == name) {
        return i;
    }
    tables.push((
        TableSpec {
            name: name.to_string(),
            description: description.to_string(),
        },
        TableRows::new(columns),
    ));
    tables.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_formats() {
        assert_eq!(
            ClinicalFormat::sniff_bytes(b"\xef\xbb\xbfMSH|^~\\&|"),
            Some(ClinicalFormat::Hl7)
        );
        assert_eq!(
            ClinicalFormat::sniff_bytes(b"FHS|^~\\&"),
            Some(ClinicalFormat::Hl7)
        );
        assert_eq!(
            ClinicalFormat::sniff_bytes(b"ISA*00*"),
            Some(ClinicalFormat::X12)
        );
        assert_eq!(ClinicalFormat::sniff_bytes(b"ISAAC,NEWTON"), None);
        assert_eq!(
            ClinicalFormat::sniff_bytes(br#"{"resourceType":"Bundle","type":"batch"}"#),
            Some(ClinicalFormat::Fhir)
        );
        assert_eq!(
            ClinicalFormat::sniff_bytes(b"  {\"id\": 1, \"resourceType\": \"Patient\"}\n{"),
            Some(ClinicalFormat::Fhir)
        );
        assert_eq!(ClinicalFormat::sniff_bytes(br#"{"a": 1}"#), None);
        assert_eq!(ClinicalFormat::sniff_bytes(b"a,b,c\n1,2,3"), None);
    }
}
