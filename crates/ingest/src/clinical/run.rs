//! A clinical load's run: files in rounds, each round's tables committed in the format's order
//! (its ledger last) with the files' load transactions, rejects quarantined, history recorded.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use carelake_common::{TableName, Zone};
use carelake_lake::{LoadRecord, LoadStatus, Provenance, TableWrite, TimeTravel, WriteMode};
use chrono::{DateTime, Utc};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake::kernel::{Action, MetadataExt as _, StructType, Transaction};

use super::format::ClinicalFormat;
use super::parser::{ClinicalParser, RoundContext, RoundOutcome, read_and_parse};
use super::{ClinicalFileOutcome, ClinicalRequest, ClinicalSummary, ROUND_BYTES, TableOutcome};
use crate::load::{Progress, ProgressEvent, quarantine};
use crate::load::{app_id, has_transaction};
use crate::{Error, Result};

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
