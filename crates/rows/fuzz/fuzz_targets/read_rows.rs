#![no_main]
//! Any bytes through both passes of a CSV or NDJSON load (the first byte picks which): the row
//! reader, value classification and type inference of the crawler, then the writer's parse of
//! every cell into the inferred types and the Arrow batch. Errors and rejects are fine; panics
//! are not, and neither is a disagreement between the passes: a value the crawler counted as
//! fitting its column's type must parse as that type, and the batch must build.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema};
use carelake_rows::value::classify;
use carelake_rows::{
    BatchBuilder, Cell, ColumnStats, ColumnType, Reject, RowSink, classify_json, fits, json_text,
    parse_cell, read_csv, read_ndjson,
};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

/// Rows kept for the second pass; the reader itself sees every row.
const KEEP: usize = 2_000;
const MAX_JSON_COLUMNS: usize = 64;

#[derive(Default)]
struct Crawl {
    columns: Vec<String>,
    stats: Vec<ColumnStats>,
    csv_rows: Vec<(u64, Vec<String>)>,
    json_rows: Vec<(u64, Map<String, Value>)>,
    last_line: u64,
}

impl Crawl {
    fn json_column(&mut self, key: &str) -> Option<usize> {
        if let Some(i) = self.columns.iter().position(|c| c == key) {
            return Some(i);
        }
        if self.columns.len() >= MAX_JSON_COLUMNS {
            return None;
        }
        self.columns.push(key.to_string());
        self.stats.push(ColumnStats::default());
        Some(self.columns.len() - 1)
    }
}

impl RowSink for Crawl {
    fn header(&mut self, columns: &[String]) {
        assert!(self.columns.is_empty(), "a second header");
        let mut seen = std::collections::HashSet::new();
        for name in columns {
            assert!(!name.is_empty(), "an empty column name");
            assert!(seen.insert(name.clone()), "a repeated column name");
        }
        self.columns = columns.to_vec();
        self.stats = vec![ColumnStats::default(); columns.len()];
    }

    fn csv_row(&mut self, line: u64, cells: &[&str], raw: &dyn Fn() -> String) {
        assert_eq!(cells.len(), self.columns.len(), "a row of another width");
        assert!(line >= self.last_line, "lines go backwards");
        self.last_line = line;
        for (stats, cell) in self.stats.iter_mut().zip(cells) {
            stats.observe(classify(cell));
        }
        if self.csv_rows.len() < KEEP {
            let _ = raw();
            self.csv_rows
                .push((line, cells.iter().map(|c| c.to_string()).collect()));
        }
    }

    fn json_row(&mut self, line: u64, object: &Map<String, Value>, _raw: &str) {
        assert!(line > self.last_line, "lines go backwards");
        self.last_line = line;
        for (key, value) in object {
            if let Some(i) = self.json_column(key) {
                self.stats[i].observe(classify_json(value));
            }
        }
        if self.json_rows.len() < KEEP {
            self.json_rows.push((line, object.clone()));
        }
    }

    fn reject(&mut self, reject: Reject) {
        assert!(reject.raw.len() <= 64 * 1024 + 4, "an unclipped reject");
        assert!(!reject.reason.is_empty(), "a reject without a reason");
    }
}

/// The writer's parse of one value: when the crawler's class fits the type, it must parse.
fn cell<'a>(text: &'a str, class: carelake_rows::value::Class, t: ColumnType) -> Cell<'a> {
    match parse_cell(text, class, t) {
        Some(cell) => cell,
        None => {
            assert!(
                !fits(class, t),
                "{text:?} was classified {class:?}, which fits {t:?}, but does not parse"
            );
            Cell::Null
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, body)) = data.split_first() else {
        return;
    };
    let json = mode & 1 == 1;
    let mut crawl = Crawl::default();
    let mut input = body;
    let read = if json {
        read_ndjson(&mut input, &mut crawl)
    } else {
        read_csv(&mut input, &mut crawl)
    };
    read.expect("reading from memory cannot fail");

    let types: Vec<ColumnType> = crawl.stats.iter().map(ColumnStats::infer).collect();
    let mut fields: Vec<Field> = crawl
        .columns
        .iter()
        .zip(&types)
        .map(|(name, t)| Field::new(name, t.arrow_type(), true))
        .collect();
    fields.extend(carelake_rows::lineage_fields());
    let mut batch = BatchBuilder::new(Arc::new(Schema::new(fields)), types.clone(), "fuzz".into(), 0);
    let mut rows = 0usize;
    for (line, cells) in &crawl.csv_rows {
        let row: Vec<Cell<'_>> = cells
            .iter()
            .zip(&types)
            .map(|(text, t)| cell(text, classify(text), *t))
            .collect();
        batch.append_row(*line, &row);
        rows += 1;
    }
    for (line, object) in &crawl.json_rows {
        let mut row = vec![Cell::Null; types.len()];
        let texts: Vec<(usize, std::borrow::Cow<'_, str>, &Value)> = object
            .iter()
            .filter_map(|(k, v)| {
                let i = crawl.columns.iter().position(|c| c == k)?;
                Some((i, json_text(v)?, v))
            })
            .collect();
        for (i, text, value) in &texts {
            row[*i] = cell(text, classify_json(value), types[*i]);
        }
        batch.append_row(*line, &row);
        rows += 1;
    }
    let built = batch.finish().expect("a batch of the inferred types builds");
    assert_eq!(built.num_rows(), rows);
});
