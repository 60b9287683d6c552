//! Printing query results: an aligned table, CSV, JSON, or a Parquet file.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};
use arrow::util::pretty::pretty_format_batches;
use carelake_sql::QueryResult;

/// How to print results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OutputFormat {
    /// An aligned text table.
    Table,
    /// CSV with a header row.
    Csv,
    /// A JSON array of objects.
    Json,
    /// NDJSON: one object per line.
    Ndjson,
    /// A Parquet file (needs --output).
    Parquet,
}

pub(crate) fn print_result(
    result: &QueryResult,
    format: OutputFormat,
    output: Option<&Path>,
) -> Result<()> {
    if let Some(message) = &result.message {
        println!("{message}");
        return Ok(());
    }
    if format == OutputFormat::Parquet {
        let Some(path) = output else {
            bail!("--format parquet writes a file: add --output FILE");
        };
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut writer = parquet::arrow::ArrowWriter::try_new(
            file,
            std::sync::Arc::clone(&result.schema),
            None,
        )?;
        for batch in &result.batches {
            writer.write(batch)?;
        }
        writer.close()?;
        eprintln!("Wrote {} rows to {}.", result.row_count(), path.display());
        return Ok(());
    }
    let mut sink: Box<dyn Write> = match output {
        Some(path) => {
            Box::new(File::create(path).with_context(|| format!("creating {}", path.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    match format {
        OutputFormat::Table => {
            if result.schema.fields().is_empty() {
                writeln!(sink, "OK")?;
            } else {
                writeln!(sink, "{}", pretty_format_batches(&result.batches)?)?;
                let rows = result.row_count();
                writeln!(sink, "({rows} row{})", if rows == 1 { "" } else { "s" })?;
            }
        }
        OutputFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut sink);
            if result.batches.is_empty() {
                let header: Vec<_> = result
                    .schema
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect();
                drop(writer);
                writeln!(sink, "{}", header.join(","))?;
            } else {
                for batch in &result.batches {
                    writer.write(batch)?;
                }
            }
        }
        OutputFormat::Json => {
            let mut writer = arrow::json::ArrayWriter::new(&mut sink);
            for batch in &result.batches {
                writer.write(batch)?;
            }
            writer.finish()?;
            drop(writer);
            if result.batches.iter().all(|b| b.num_rows() == 0) {
                write!(sink, "[]")?;
            }
            writeln!(sink)?;
        }
        OutputFormat::Ndjson => {
            let mut writer = arrow::json::LineDelimitedWriter::new(&mut sink);
            for batch in &result.batches {
                writer.write(batch)?;
            }
            writer.finish()?;
        }
        OutputFormat::Parquet => unreachable!("handled above"),
    }
    sink.flush()?;
    Ok(())
}

/// Every row as display strings (NULL as an empty string).
pub(crate) fn rows_as_strings(result: &QueryResult) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for batch in &result.batches {
        for r in 0..batch.num_rows() {
            rows.push(
                (0..batch.num_columns())
                    .map(|c| {
                        arrow::util::display::array_value_to_string(batch.column(c), r)
                            .unwrap_or_default()
                    })
                    .collect(),
            );
        }
    }
    rows
}
