//! What a clinical format's parser is given and gives back: a round's files read and hashed,
//! each parsed into rows staged per table.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use carelake_lake::Lake;

use crate::columns::TableRows;
use crate::load::Progress;
use crate::reader::{HashingReader, open_decompressed};
use crate::rows::Reject;
use crate::staged::{CHANNEL_CHUNKS, RowSink, Stager};
use crate::{Error, Result};

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
    /// Labels in place of local paths (see [`ClinicalRequest::labels`](super::ClinicalRequest::labels)).
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

/// The parsed files of one round, with their rows staged per table.
#[derive(Debug)]
pub(super) struct RoundOutcome {
    pub(super) files: Vec<FileInfo>,
    pub(super) parses: Vec<FileParse>,
    /// The tables the round touched, in commit order, with their schemas.
    pub(super) tables: Vec<(TableSpec, SchemaRef)>,
    pub(super) stager: Stager,
}

/// An input of a round once parsed (its content is no longer held).
#[derive(Debug)]
pub(super) struct FileInfo {
    pub(super) label: String,
    pub(super) sha256: String,
    pub(super) bytes: u64,
}

pub(super) async fn read_and_parse<P: ClinicalParser + 'static>(
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
