//! Fixed-schema Arrow tables filled row by row: the clinical formats (HL7 v2, FHIR) know
//! their columns up front, so each table is declared once as a list of [`ColumnSpec`]s and rows
//! are pushed field by field in that order. The lineage columns are appended to every table.

use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder,
    ListBuilder, RecordBatch, StringBuilder, StructBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use chrono::{DateTime, NaiveDate, Utc};

use crate::Result;
use crate::infer::timestamp_type;
use crate::load::LINEAGE_COLUMNS;

/// The kind of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    Int,
    Float,
    Bool,
    Date,
    /// Timestamp in microseconds, UTC.
    Timestamp,
    /// A list of strings.
    TextList,
    /// A list of structs whose fields are all text; the field names follow.
    StructList(&'static [&'static str]),
}

/// One column of a fixed-schema table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ColumnSpec {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
}

/// Shorthand for a column spec.
pub(crate) const fn col(name: &'static str, kind: Kind) -> ColumnSpec {
    ColumnSpec { name, kind }
}

fn struct_fields(names: &[&str]) -> Fields {
    names
        .iter()
        .map(|n| Field::new(*n, DataType::Utf8, true))
        .collect()
}

fn data_type(kind: Kind) -> DataType {
    match kind {
        Kind::Text => DataType::Utf8,
        Kind::Int => DataType::Int64,
        Kind::Float => DataType::Float64,
        Kind::Bool => DataType::Boolean,
        Kind::Date => DataType::Date32,
        Kind::Timestamp => timestamp_type(),
        Kind::TextList => DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        Kind::StructList(names) => DataType::List(Arc::new(Field::new(
            "item",
            DataType::Struct(struct_fields(names)),
            true,
        ))),
    }
}

/// The Arrow schema of a table: its columns, then the lineage columns.
pub(crate) fn schema_of(columns: &[ColumnSpec]) -> SchemaRef {
    let mut fields: Vec<Field> = columns
        .iter()
        .map(|c| Field::new(c.name, data_type(c.kind), true))
        .collect();
    fields.push(Field::new(LINEAGE_COLUMNS[0], DataType::Utf8, true));
    fields.push(Field::new(LINEAGE_COLUMNS[1], DataType::Int64, true));
    fields.push(Field::new(LINEAGE_COLUMNS[2], DataType::Utf8, true));
    fields.push(Field::new(LINEAGE_COLUMNS[3], timestamp_type(), true));
    Arc::new(Schema::new(fields))
}

enum Builder {
    Text(StringBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
    Date(Date32Builder),
    Timestamp(TimestampMicrosecondBuilder),
    TextList(ListBuilder<StringBuilder>),
    StructList(ListBuilder<StructBuilder>, usize),
}

impl Builder {
    fn new(kind: Kind) -> Self {
        match kind {
            Kind::Text => Builder::Text(StringBuilder::new()),
            Kind::Int => Builder::Int(Int64Builder::new()),
            Kind::Float => Builder::Float(Float64Builder::new()),
            Kind::Bool => Builder::Bool(BooleanBuilder::new()),
            Kind::Date => Builder::Date(Date32Builder::new()),
            Kind::Timestamp => {
                Builder::Timestamp(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
            }
            Kind::TextList => Builder::TextList(ListBuilder::new(StringBuilder::new())),
            Kind::StructList(names) => {
                let fields = struct_fields(names);
                let builders: Vec<Box<dyn ArrayBuilder>> = names
                    .iter()
                    .map(|_| Box::new(StringBuilder::new()) as Box<dyn ArrayBuilder>)
                    .collect();
                Builder::StructList(
                    ListBuilder::new(StructBuilder::new(fields, builders)),
                    names.len(),
                )
            }
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Text(b) => Arc::new(b.finish()),
            Builder::Int(b) => Arc::new(b.finish()),
            Builder::Float(b) => Arc::new(b.finish()),
            Builder::Bool(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Timestamp(b) => Arc::new(b.finish()),
            Builder::TextList(b) => Arc::new(b.finish()),
            Builder::StructList(b, _) => Arc::new(b.finish()),
        }
    }

    fn kind_name(&self) -> &'static str {
        match self {
            Builder::Text(_) => "text",
            Builder::Int(_) => "int",
            Builder::Float(_) => "float",
            Builder::Bool(_) => "bool",
            Builder::Date(_) => "date",
            Builder::Timestamp(_) => "timestamp",
            Builder::TextList(_) => "text list",
            Builder::StructList(..) => "struct list",
        }
    }
}

/// Where a row came from: the lineage columns.
#[derive(Debug, Clone)]
pub(crate) struct Lineage<'a> {
    pub(crate) file: &'a str,
    pub(crate) line: i64,
    pub(crate) load_id: &'a str,
    pub(crate) loaded_at: i64,
}

/// Rows of one fixed-schema table, built column by column.
pub(crate) struct TableRows {
    schema: SchemaRef,
    builders: Vec<Builder>,
    lineage: [Builder; 4],
    rows: usize,
}

impl std::fmt::Debug for TableRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableRows")
            .field("columns", &self.builders.len())
            .field("rows", &self.rows)
            .finish()
    }
}

impl TableRows {
    pub(crate) fn new(columns: &[ColumnSpec]) -> Self {
        Self {
            schema: schema_of(columns),
            builders: columns.iter().map(|c| Builder::new(c.kind)).collect(),
            lineage: [
                Builder::new(Kind::Text),
                Builder::new(Kind::Int),
                Builder::new(Kind::Text),
                Builder::new(Kind::Timestamp),
            ],
            rows: 0,
        }
    }

    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    pub(crate) fn len(&self) -> usize {
        self.rows
    }

    /// Starts a row; push every column in order, then call [`Row::end`].
    pub(crate) fn row(&mut self) -> Row<'_> {
        Row {
            table: self,
            next: 0,
        }
    }

    /// The rows so far as a batch; the builder starts again empty.
    pub(crate) fn finish(&mut self) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = self.builders.iter_mut().map(Builder::finish).collect();
        columns.extend(self.lineage.iter_mut().map(Builder::finish));
        self.rows = 0;
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

/// One row being pushed. Pushing a value of the wrong kind for its column is a programming
/// error caught by the tests of each table; it panics with the column's name.
pub(crate) struct Row<'a> {
    table: &'a mut TableRows,
    next: usize,
}

impl Row<'_> {
    fn next_builder(&mut self) -> (&mut Builder, &str) {
        let i = self.next;
        self.next += 1;
        let name = self.table.schema.field(i).name().as_str();
        (&mut self.table.builders[i], name)
    }

    fn mismatch(name: &str, builder: &Builder, pushed: &str) -> ! {
        panic!(
            "column {name} is {}, but a {pushed} was pushed",
            builder.kind_name()
        )
    }

    pub(crate) fn text(&mut self, value: Option<&str>) -> &mut Self {
        let (builder, name) = self.next_builder();
        match builder {
            Builder::Text(b) => b.append_option(value.filter(|v| !v.is_empty())),
            other => Self::mismatch(name, other, "text"),
        }
        self
    }

    pub(crate) fn int(&mut self, value: Option<i64>) -> &mut Self {
        let (builder, name) = self.next_builder();
        match builder {
            Builder::Int(b) => b.append_option(value),
            other => Self::mismatch(name, other, "int"),
        }
        self
    }

    pub(crate) fn float(&mut self, value: Option<f64>) -> &mut Self {
        let (builder, name) = self.next_builder();
        match builder {
            Builder::Float(b) => b.append_option(value.filter(|v| v.is_finite())),
            other => Self::mismatch(name, other, "float"),
        }
        self
    }

    pub(crate) fn bool(&mut self, value: Option<bool>) -> &mut Self {
        let (builder, name) = self.next_builder();
        match builder {
            Builder::Bool(b) => b.append_option(value),
            other => Self::mismatch(name, other, "bool"),
        }
        self
    }

    pub(crate) fn date(&mut self, value: Option<NaiveDate>) -> &mut Self {
        let (builder, name) = self.next_builder();
        match builder {
            Builder::Date(b) => b.append_option(value.map(days_since_epoch)),
            other => Self::mismatch(name, other, "date"),
        }
        self
    }

    pub(crate) fn timestamp(&mut self, value: Option<DateTime<Utc>>) -> &mut Self {
        let (builder, name) = self.next_builder();
        match builder {
            Builder::Timestamp(b) => b.append_option(value.map(|t| t.timestamp_micros())),
            other => Self::mismatch(name, other, "timestamp"),
        }
        self
    }

    pub(crate) fn text_list<'v>(&mut self, values: impl IntoIterator<Item = &'v str>) -> &mut Self {
        let (builder, name) = self.next_builder();
        match builder {
            Builder::TextList(b) => {
                for v in values {
                    b.values().append_value(v);
                }
                b.append(true);
            }
            other => Self::mismatch(name, other, "text list"),
        }
        self
    }

    /// A list of structs; each item gives the struct's fields in order.
    pub(crate) fn struct_list<'v, I>(&mut self, items: I) -> &mut Self
    where
        I: IntoIterator<Item = Vec<Option<&'v str>>>,
    {
        let (builder, name) = self.next_builder();
        match builder {
            Builder::StructList(b, width) => {
                let width = *width;
                for item in items {
                    let values = b.values();
                    for i in 0..width {
                        let v = item.get(i).copied().flatten().filter(|v| !v.is_empty());
                        if let Some(field) = values.field_builder::<StringBuilder>(i) {
                            field.append_option(v);
                        }
                    }
                    values.append(true);
                }
                b.append(true);
            }
            other => Self::mismatch(name, other, "struct list"),
        }
        self
    }

    /// Ends the row with its lineage.
    pub(crate) fn end(&mut self, lineage: &Lineage<'_>) {
        assert_eq!(
            self.next,
            self.table.builders.len(),
            "row ended after {} of {} columns",
            self.next,
            self.table.builders.len()
        );
        let [file, line, load_id, loaded_at] = &mut self.table.lineage;
        if let Builder::Text(b) = file {
            b.append_value(lineage.file);
        }
        if let Builder::Int(b) = line {
            b.append_value(lineage.line);
        }
        if let Builder::Text(b) = load_id {
            b.append_value(lineage.load_id);
        }
        if let Builder::Timestamp(b) = loaded_at {
            b.append_value(lineage.loaded_at);
        }
        self.table.rows += 1;
    }
}

fn days_since_epoch(date: NaiveDate) -> i32 {
    (date - NaiveDate::default()).num_days() as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_a_batch_with_lineage() {
        const COLUMNS: &[ColumnSpec] = &[
            col("name", Kind::Text),
            col("n", Kind::Int),
            col("born", Kind::Date),
            col("tags", Kind::TextList),
            col("ids", Kind::StructList(&["id", "system"])),
        ];
        let mut rows = TableRows::new(COLUMNS);
        let lineage = Lineage {
            file: "f.hl7",
            line: 3,
            load_id: "L",
            loaded_at: 0,
        };
        rows.row()
            .text(Some("a"))
            .int(Some(1))
            .date(NaiveDate::from_ymd_opt(1970, 1, 2))
            .text_list(["x", "y"])
            .struct_list([vec![Some("1"), Some("MR")], vec![Some("2"), None]])
            .end(&lineage);
        rows.row()
            .text(Some(""))
            .int(None)
            .date(None)
            .text_list([])
            .struct_list([])
            .end(&lineage);
        let batch = rows.finish().unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.num_columns(), COLUMNS.len() + 4);
        let text = arrow::util::pretty::pretty_format_batches(&[batch])
            .unwrap()
            .to_string();
        assert!(
            text.contains("[{id: 1, system: MR}, {id: 2, system: }]"),
            "{text}"
        );
        assert!(text.contains("1970-01-02"), "{text}");
    }

    #[test]
    #[should_panic(expected = "column n is int")]
    fn wrong_kind_names_the_column() {
        let mut rows = TableRows::new(&[col("n", Kind::Int)]);
        rows.row().text(Some("x"));
    }
}
