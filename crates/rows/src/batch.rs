//! Parsing cells into the inferred column types and building Arrow batches of them.

use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder,
    Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, SchemaRef};

use crate::infer::ColumnType;
use crate::value::{Class, parse_bool, parse_date, parse_timestamp};

/// Whether a value of `class` can be stored in a column of `column_type`.
pub fn fits(class: Class, column_type: ColumnType) -> bool {
    match (class, column_type) {
        (Class::Null, _) | (_, ColumnType::Text) => true,
        (Class::Bool, ColumnType::Boolean) => true,
        (Class::Int32, ColumnType::Int | ColumnType::BigInt | ColumnType::Double) => true,
        (Class::Int64, ColumnType::BigInt | ColumnType::Double) => true,
        (Class::Float, ColumnType::Double) => true,
        (Class::Date(form), ColumnType::Date(order) | ColumnType::Timestamp(order)) => {
            form.fits(order)
        }
        (Class::Timestamp(form), ColumnType::Timestamp(order)) => form.fits(order),
        _ => false,
    }
}

/// One parsed cell, ready to append.
#[derive(Debug, Clone, Copy)]
pub enum Cell<'a> {
    /// No value.
    Null,
    /// A boolean.
    Bool(bool),
    /// A 32-bit integer.
    Int(i32),
    /// A 64-bit integer.
    BigInt(i64),
    /// A float.
    Double(f64),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since 1970-01-01T00:00:00Z.
    Timestamp(i64),
    /// Text, as read.
    Text(&'a str),
}

/// Parses `text` (of class `class`) into a cell of `column_type`, or `None` when it does not fit.
pub fn parse_cell(text: &str, class: Class, column_type: ColumnType) -> Option<Cell<'_>> {
    if matches!(class, Class::Null) {
        return Some(Cell::Null);
    }
    if !fits(class, column_type) {
        return None;
    }
    let t = text.trim();
    Some(match column_type {
        ColumnType::Null | ColumnType::Text => Cell::Text(text),
        ColumnType::Boolean => Cell::Bool(parse_bool(t)?),
        ColumnType::Int => Cell::Int(t.parse().ok()?),
        ColumnType::BigInt => Cell::BigInt(t.parse().ok()?),
        ColumnType::Double => Cell::Double(t.parse().ok()?),
        ColumnType::Date(order) => Cell::Date(parse_date(t, order)?),
        ColumnType::Timestamp(order) => Cell::Timestamp(parse_timestamp(t, order)?),
    })
}

#[derive(Debug)]
enum ColumnBuilder {
    Bool(BooleanBuilder),
    Int(Int32Builder),
    BigInt(Int64Builder),
    Double(Float64Builder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    Text(StringBuilder),
}

impl ColumnBuilder {
    fn new(column_type: ColumnType, capacity: usize) -> Self {
        match column_type {
            ColumnType::Null | ColumnType::Text => {
                ColumnBuilder::Text(StringBuilder::with_capacity(capacity, capacity * 16))
            }
            ColumnType::Boolean => ColumnBuilder::Bool(BooleanBuilder::with_capacity(capacity)),
            ColumnType::Int => ColumnBuilder::Int(Int32Builder::with_capacity(capacity)),
            ColumnType::BigInt => ColumnBuilder::BigInt(Int64Builder::with_capacity(capacity)),
            ColumnType::Double => ColumnBuilder::Double(Float64Builder::with_capacity(capacity)),
            ColumnType::Date(_) => ColumnBuilder::Date(Date32Builder::with_capacity(capacity)),
            ColumnType::Timestamp(_) => ColumnBuilder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC"),
            ),
        }
    }

    fn append(&mut self, cell: Cell<'_>) {
        match (self, cell) {
            (ColumnBuilder::Bool(b), Cell::Bool(v)) => b.append_value(v),
            (ColumnBuilder::Int(b), Cell::Int(v)) => b.append_value(v),
            (ColumnBuilder::BigInt(b), Cell::BigInt(v)) => b.append_value(v),
            (ColumnBuilder::Double(b), Cell::Double(v)) => b.append_value(v),
            (ColumnBuilder::Date(b), Cell::Date(v)) => b.append_value(v),
            (ColumnBuilder::Timestamp(b), Cell::Timestamp(v)) => b.append_value(v),
            (ColumnBuilder::Text(b), Cell::Text(v)) => b.append_value(v),
            (b, _) => b.append_null(),
        }
    }

    fn append_null(&mut self) {
        match self {
            ColumnBuilder::Bool(b) => b.append_null(),
            ColumnBuilder::Int(b) => b.append_null(),
            ColumnBuilder::BigInt(b) => b.append_null(),
            ColumnBuilder::Double(b) => b.append_null(),
            ColumnBuilder::Date(b) => b.append_null(),
            ColumnBuilder::Timestamp(b) => b.append_null(),
            ColumnBuilder::Text(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Bool(b) => Arc::new(b.finish()),
            ColumnBuilder::Int(b) => Arc::new(b.finish()),
            ColumnBuilder::BigInt(b) => Arc::new(b.finish()),
            ColumnBuilder::Double(b) => Arc::new(b.finish()),
            ColumnBuilder::Date(b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(b) => Arc::new(b.finish()),
            ColumnBuilder::Text(b) => Arc::new(b.finish()),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            ColumnBuilder::Text(b) => b.values_slice().len(),
            ColumnBuilder::Bool(b) => b.len() / 8,
            other => other.len() * 8,
        }
    }

    fn len(&self) -> usize {
        match self {
            ColumnBuilder::Bool(b) => b.len(),
            ColumnBuilder::Int(b) => b.len(),
            ColumnBuilder::BigInt(b) => b.len(),
            ColumnBuilder::Double(b) => b.len(),
            ColumnBuilder::Date(b) => b.len(),
            ColumnBuilder::Timestamp(b) => b.len(),
            ColumnBuilder::Text(b) => b.len(),
        }
    }
}

/// The lineage columns every loaded row carries after its data columns: the file (or stream) it
/// came from, its line (or log sequence number), the load's id and when it was loaded.
pub const LINEAGE_COLUMNS: [&str; 4] = ["_source_file", "_source_line", "_load_id", "_loaded_at"];

/// The fields of [`LINEAGE_COLUMNS`], in order, as [`BatchBuilder`] fills them.
pub fn lineage_fields() -> [Field; 4] {
    [
        Field::new(LINEAGE_COLUMNS[0], DataType::Utf8, true),
        Field::new(LINEAGE_COLUMNS[1], DataType::Int64, true),
        Field::new(LINEAGE_COLUMNS[2], DataType::Utf8, true),
        Field::new(LINEAGE_COLUMNS[3], crate::infer::timestamp_type(), true),
    ]
}

/// Rows per batch, and the text bytes after which a batch is cut early (huge fields).
pub const BATCH_ROWS: usize = 16 * 1024;
const BATCH_BYTES: usize = 64 << 20;

/// Builds record batches in the target schema: data columns then the lineage columns.
#[derive(Debug)]
pub struct BatchBuilder {
    schema: SchemaRef,
    column_types: Vec<ColumnType>,
    columns: Vec<ColumnBuilder>,
    source_file: StringBuilder,
    source_line: Int64Builder,
    load_id: String,
    loaded_at: i64,
    rows: usize,
    /// The file name stored in `_source_file`.
    pub file_label: String,
}

impl BatchBuilder {
    /// `column_types` are the crawler types of the schema's data columns (the schema then has
    /// the four lineage columns).
    pub fn new(
        schema: SchemaRef,
        column_types: Vec<ColumnType>,
        load_id: String,
        loaded_at: i64,
    ) -> Self {
        let columns = column_types
            .iter()
            .map(|t| ColumnBuilder::new(*t, BATCH_ROWS))
            .collect();
        Self {
            schema,
            column_types,
            columns,
            source_file: StringBuilder::new(),
            source_line: Int64Builder::with_capacity(BATCH_ROWS),
            load_id,
            loaded_at,
            rows: 0,
            file_label: String::new(),
        }
    }

    pub fn column_types(&self) -> &[ColumnType] {
        &self.column_types
    }

    /// Appends a row; `cells[i]` is the cell for data column `i`.
    pub fn append_row(&mut self, line: u64, cells: &[Cell<'_>]) {
        for (builder, cell) in self.columns.iter_mut().zip(cells) {
            builder.append(*cell);
        }
        self.source_file.append_value(&self.file_label);
        self.source_line.append_value(line as i64);
        self.rows += 1;
    }

    /// Whether the batch should be cut now.
    pub fn is_full(&self) -> bool {
        self.rows >= BATCH_ROWS
            || (self.rows.is_multiple_of(256)
                && self.columns.iter().map(ColumnBuilder::bytes).sum::<usize>() > BATCH_BYTES)
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The rows so far as a batch, casting to the target schema's exact types.
    pub fn finish(&mut self) -> arrow::error::Result<RecordBatch> {
        let rows = self.rows;
        self.rows = 0;
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for (builder, field) in self.columns.iter_mut().zip(self.schema.fields()) {
            let array = builder.finish();
            arrays.push(if array.data_type() == field.data_type() {
                array
            } else {
                arrow::compute::cast(&array, field.data_type())?
            });
        }
        arrays.push(Arc::new(self.source_file.finish()));
        arrays.push(Arc::new(self.source_line.finish()));
        arrays.push(Arc::new(arrow::array::StringArray::from(vec![
            self.load_id
                .as_str();
            rows
        ])));
        arrays.push(Arc::new(
            arrow::array::TimestampMicrosecondArray::from(vec![self.loaded_at; rows])
                .with_timezone("UTC"),
        ));
        RecordBatch::try_new(Arc::clone(&self.schema), arrays)
    }
}
