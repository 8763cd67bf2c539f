//! The Parquet side of the export: the published record's fields as columns, one file
//! per UTC day per run, written in row groups of a bounded size under a temporary name
//! and renamed into place once durable.
//!
//! Written with the parquet crate's low-level column writers, without arrow: the rows
//! come one at a time from the stream, and four column kinds need nothing more.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chokepoint_contract::published::{self, Field, Kind, Value, FIELDS};
use parquet::basic::{Compression, LogicalType, Repetition, TimeUnit, Type as Physical};
use parquet::column::writer::ColumnWriter;
use parquet::data_type::ByteArray;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{WriterProperties, WriterPropertiesPtr};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::{Type, TypePtr};

use super::sync_dir;

/// The published record's timestamp. Stored as the int64 the record carries (ms since
/// the epoch, so the values equal the published record's and OTLP's), annotated as
/// TIMESTAMP(MILLIS, UTC): DuckDB reads it as TIMESTAMP WITH TIME ZONE and Spark as a
/// TimestampType, so `date_trunc('hour', ...)` and time filters work without a cast,
/// where a bare int64 would need `epoch_ms()` / `timestamp_millis()` in every query, and
/// a second, derived column would be a field the published schema does not have.
pub const TIME_FIELD: &str = "chokepoint.time_unix_ms";

/// The table's schema and writer settings, shared by every file of a run.
pub struct Table {
    schema: TypePtr,
    properties: WriterPropertiesPtr,
}

impl Table {
    pub fn new() -> Result<Self, String> {
        let columns = FIELDS
            .iter()
            .map(column_type)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| format!("cannot build the Parquet schema: {err}"))?;
        let schema = Type::group_type_builder("chokepoint_usage")
            .with_fields(columns)
            .build()
            .map_err(|err| format!("cannot build the Parquet schema: {err}"))?;
        let properties = WriterProperties::builder()
            // Snappy: every reader has it, and it costs a small pure-Rust crate.
            .set_compression(Compression::SNAPPY)
            .set_created_by(format!("chokepoint-policy {}", env!("CARGO_PKG_VERSION")))
            .set_key_value_metadata(Some(vec![KeyValue::new(
                "chokepoint.schema_version".to_owned(),
                published::VERSION.to_string(),
            )]))
            .build();
        Ok(Self {
            schema: Arc::new(schema),
            properties: Arc::new(properties),
        })
    }
}

/// A nullable column per field: strings and lists of strings as UTF-8 byte arrays,
/// integers as int64, booleans; lists in the standard three-level LIST layout.
fn column_type(field: &Field) -> parquet::errors::Result<TypePtr> {
    let primitive = |physical| {
        Type::primitive_type_builder(field.name, physical).with_repetition(Repetition::OPTIONAL)
    };
    let built = match field.kind {
        Kind::Str => primitive(Physical::BYTE_ARRAY)
            .with_logical_type(Some(LogicalType::String))
            .build()?,
        Kind::Int if field.name == TIME_FIELD => primitive(Physical::INT64)
            .with_logical_type(Some(LogicalType::timestamp(true, TimeUnit::MILLIS)))
            .build()?,
        Kind::Int => primitive(Physical::INT64).build()?,
        Kind::Bool => primitive(Physical::BOOLEAN).build()?,
        Kind::StrList => {
            let element = Type::primitive_type_builder("element", Physical::BYTE_ARRAY)
                .with_repetition(Repetition::REQUIRED)
                .with_logical_type(Some(LogicalType::String))
                .build()?;
            let list = Type::group_type_builder("list")
                .with_repetition(Repetition::REPEATED)
                .with_fields(vec![Arc::new(element)])
                .build()?;
            Type::group_type_builder(field.name)
                .with_repetition(Repetition::OPTIONAL)
                .with_logical_type(Some(LogicalType::List))
                .with_fields(vec![Arc::new(list)])
                .build()?
        }
    };
    Ok(Arc::new(built))
}

/// One column's values of the rows buffered for the next row group, with their
/// definition levels (0: null; for a list 1: empty, 2: an element) and, for lists,
/// repetition levels (0: a row's first element, 1: a further one).
enum Column {
    Str(Vec<ByteArray>, Vec<i16>),
    Int(Vec<i64>, Vec<i16>),
    Bool(Vec<bool>, Vec<i16>),
    List(Vec<ByteArray>, Vec<i16>, Vec<i16>),
}

impl Column {
    fn new(kind: Kind) -> Self {
        match kind {
            Kind::Str => Column::Str(Vec::new(), Vec::new()),
            Kind::Int => Column::Int(Vec::new(), Vec::new()),
            Kind::Bool => Column::Bool(Vec::new(), Vec::new()),
            Kind::StrList => Column::List(Vec::new(), Vec::new(), Vec::new()),
        }
    }

    /// Appends one row's value (`None`: null). A value of another kind than the
    /// column's is a contract bug; it is written as null rather than stop the export.
    fn push(&mut self, value: Option<&Value<'_>>) {
        match (self, value) {
            (Column::Str(values, defs), Some(Value::Str(text))) => {
                values.push(ByteArray::from(text.as_bytes().to_vec()));
                defs.push(1);
            }
            (Column::Int(values, defs), Some(Value::Int(n))) => {
                values.push(*n);
                defs.push(1);
            }
            (Column::Bool(values, defs), Some(Value::Bool(b))) => {
                values.push(*b);
                defs.push(1);
            }
            (Column::List(values, defs, reps), Some(Value::StrList(items))) => {
                if items.is_empty() {
                    defs.push(1);
                    reps.push(0);
                }
                for (i, item) in items.iter().enumerate() {
                    values.push(ByteArray::from(item.as_bytes().to_vec()));
                    defs.push(2);
                    reps.push(i16::from(i > 0));
                }
            }
            (Column::List(_, defs, reps), _) => {
                defs.push(0);
                reps.push(0);
            }
            (Column::Str(_, defs) | Column::Int(_, defs) | Column::Bool(_, defs), _) => {
                defs.push(0);
            }
        }
    }

    fn clear(&mut self) {
        match self {
            Column::Str(values, defs) => {
                values.clear();
                defs.clear();
            }
            Column::Int(values, defs) => {
                values.clear();
                defs.clear();
            }
            Column::Bool(values, defs) => {
                values.clear();
                defs.clear();
            }
            Column::List(values, defs, reps) => {
                values.clear();
                defs.clear();
                reps.clear();
            }
        }
    }

    fn write(&self, writer: &mut ColumnWriter<'_>) -> parquet::errors::Result<()> {
        let written = match (self, writer) {
            (Column::Str(values, defs), ColumnWriter::ByteArrayColumnWriter(w)) => {
                w.write_batch(values, Some(defs), None)
            }
            (Column::Int(values, defs), ColumnWriter::Int64ColumnWriter(w)) => {
                w.write_batch(values, Some(defs), None)
            }
            (Column::Bool(values, defs), ColumnWriter::BoolColumnWriter(w)) => {
                w.write_batch(values, Some(defs), None)
            }
            (Column::List(values, defs, reps), ColumnWriter::ByteArrayColumnWriter(w)) => {
                w.write_batch(values, Some(defs), Some(reps))
            }
            _ => {
                return Err(parquet::errors::ParquetError::General(
                    "a column's values do not match its writer".to_owned(),
                ))
            }
        };
        written.map(|_| ())
    }
}

/// One day's file of a run: rows buffered into columns, written a row group at a time.
pub struct DayFile {
    tmp: PathBuf,
    path: PathBuf,
    writer: SerializedFileWriter<BufWriter<File>>,
    columns: Vec<Column>,
    /// Rows buffered, not yet in a row group.
    pub buffered: usize,
    /// Rows in the file, buffered ones included.
    pub rows: u64,
}

impl DayFile {
    /// Starts `<dir>/<name>` as `<dir>/.<name>.tmp`, which readers skip (Spark, Hive
    /// and DuckDB's `*.parquet` globs alike).
    pub fn create(table: &Table, dir: &Path, name: &str) -> Result<Self, String> {
        fs::create_dir_all(dir).map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        let file =
            File::create(&tmp).map_err(|err| format!("cannot create {}: {err}", tmp.display()))?;
        let writer = SerializedFileWriter::new(
            BufWriter::new(file),
            table.schema.clone(),
            table.properties.clone(),
        )
        .map_err(|err| format!("cannot start {}: {err}", tmp.display()))?;
        Ok(Self {
            tmp,
            path,
            writer,
            columns: FIELDS.iter().map(|f| Column::new(f.kind)).collect(),
            buffered: 0,
            rows: 0,
        })
    }

    /// Buffers one row: `attributes` are a record's present fields in FIELDS order.
    pub fn push(&mut self, attributes: &[(&'static str, Value<'_>)]) {
        let mut present = attributes.iter().peekable();
        for (field, column) in FIELDS.iter().zip(&mut self.columns) {
            let value = present
                .next_if(|(name, _)| *name == field.name)
                .map(|(_, value)| value);
            column.push(value);
        }
        self.buffered += 1;
        self.rows += 1;
    }

    /// Writes the buffered rows as one row group.
    pub fn flush(&mut self) -> Result<(), String> {
        if self.buffered == 0 {
            return Ok(());
        }
        let failed = |err: parquet::errors::ParquetError| {
            format!("cannot write {}: {err}", self.tmp.display())
        };
        let mut group = self.writer.next_row_group().map_err(failed)?;
        for column in &mut self.columns {
            let Some(mut writer) = group.next_column().map_err(failed)? else {
                return Err(failed(parquet::errors::ParquetError::General(
                    "fewer columns in the schema than buffered".to_owned(),
                )));
            };
            column.write(writer.untyped()).map_err(failed)?;
            writer.close().map_err(failed)?;
            column.clear();
        }
        group.close().map_err(failed)?;
        self.buffered = 0;
        Ok(())
    }

    /// Writes the rest and the footer, syncs the file and renames it into place; its
    /// rows and final path.
    pub fn finish(mut self) -> Result<(u64, PathBuf), String> {
        self.flush()?;
        let tmp = self.tmp.clone();
        let failed = |err: String| format!("cannot finish {}: {err}", tmp.display());
        let buffered = self
            .writer
            .into_inner()
            .map_err(|err| failed(err.to_string()))?;
        let file = buffered
            .into_inner()
            .map_err(|err| failed(err.error().to_string()))?;
        file.sync_all().map_err(|err| failed(err.to_string()))?;
        fs::rename(&self.tmp, &self.path).map_err(|err| failed(err.to_string()))?;
        if let Some(dir) = self.path.parent() {
            sync_dir(dir)?;
        }
        Ok((self.rows, self.path))
    }
}

/// The day files of one run, and a bound on the rows they buffer together: when it is
/// reached the largest buffer becomes a row group, so memory stays bounded however
/// many days a run spans.
pub struct DayFiles {
    table: Table,
    root: PathBuf,
    name: String,
    row_group_rows: usize,
    files: HashMap<String, DayFile>,
}

impl DayFiles {
    /// Files named `name` under `<root>/date=<day>/`.
    pub fn new(table: Table, root: &Path, name: String, row_group_rows: usize) -> Self {
        Self {
            table,
            root: root.to_owned(),
            name,
            row_group_rows,
            files: HashMap::new(),
        }
    }

    pub fn push(
        &mut self,
        day: &str,
        attributes: &[(&'static str, Value<'_>)],
    ) -> Result<(), String> {
        if !self.files.contains_key(day) {
            let dir = self.root.join(format!("date={day}"));
            let file = DayFile::create(&self.table, &dir, &self.name)?;
            self.files.insert(day.to_owned(), file);
        }
        if let Some(file) = self.files.get_mut(day) {
            file.push(attributes);
        }
        let buffered: usize = self.files.values().map(|f| f.buffered).sum();
        if buffered >= self.row_group_rows {
            if let Some(largest) = self.files.values_mut().max_by_key(|f| f.buffered) {
                largest.flush()?;
            }
        }
        Ok(())
    }

    /// Finishes every file; (day, rows, path) for each, by day.
    pub fn finish(self) -> Result<Vec<(String, u64, PathBuf)>, String> {
        let mut done = Vec::new();
        for (day, file) in self.files {
            let (rows, path) = file.finish()?;
            done.push((day, rows, path));
        }
        done.sort();
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field as Read;

    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "chokepoint-export-table-{name}-{}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    /// Rows written through `DayFiles` come back from the crate's own reader as written:
    /// nulls, lists empty and not, the timestamp, and in row groups no larger than the
    /// bound.
    #[test]
    fn writes_rows_readers_read_back() {
        let dir = temp_dir("round-trip");
        let groups = ["eng".to_owned(), "ml".to_owned()];
        let rows: Vec<Vec<(&'static str, Value<'_>)>> = vec![
            vec![("chokepoint.request_id", Value::Str(Cow::Borrowed("r1")))],
            vec![
                ("chokepoint.request_id", Value::Str(Cow::Borrowed("r2"))),
                (TIME_FIELD, Value::Int(1_796_637_600_000)),
                ("chokepoint.groups", Value::StrList(Cow::Borrowed(&groups))),
                ("chokepoint.stream", Value::Bool(true)),
                ("chokepoint.cost_micros", Value::Int(42)),
            ],
            vec![
                ("chokepoint.request_id", Value::Str(Cow::Borrowed("r3"))),
                ("chokepoint.groups", Value::StrList(Cow::Borrowed(&[]))),
                // A value of another kind than its column's is written as null.
                ("chokepoint.cost_micros", Value::Bool(true)),
            ],
        ];
        let mut files = DayFiles::new(
            Table::new().expect("table"),
            &dir,
            "part-1-0.parquet".to_owned(),
            2,
        );
        for row in &rows {
            files.push("2026-12-07", row).expect("push");
        }
        let done = files.finish().expect("finish");
        let path = dir.join("date=2026-12-07/part-1-0.parquet");
        assert_eq!(done, vec![("2026-12-07".to_owned(), 3, path.clone())]);
        assert!(!dir.join("date=2026-12-07/.part-1-0.parquet.tmp").exists());

        let reader = SerializedFileReader::new(File::open(&path).expect("open")).expect("read");
        let sizes: Vec<i64> = reader
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows())
            .collect();
        assert_eq!(sizes, [2, 1]);
        let read: Vec<HashMap<String, Read>> = reader
            .get_row_iter(None)
            .expect("rows")
            .map(|row| row.expect("row").into_columns().into_iter().collect())
            .collect();
        assert_eq!(read.len(), 3);
        assert_eq!(read[0].len(), FIELDS.len(), "a column per published field");
        let cases = [
            (0, "chokepoint.request_id", "\"r1\""),
            (0, "chokepoint.groups", "null"),
            (0, TIME_FIELD, "null"),
            (0, "chokepoint.stream", "null"),
            (1, "chokepoint.groups", "[\"eng\", \"ml\"]"),
            (1, "chokepoint.stream", "true"),
            (1, "chokepoint.cost_micros", "42"),
            (2, "chokepoint.groups", "[]"),
            (2, "chokepoint.cost_micros", "null"),
        ];
        for (row, column, expected) in cases {
            assert_eq!(
                read[row][column].to_string(),
                expected,
                "row {row} {column}"
            );
        }
        assert_eq!(
            read[1][TIME_FIELD],
            Read::TimestampMillis(1_796_637_600_000)
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
