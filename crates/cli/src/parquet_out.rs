//! Snapshots as Parquet, for data teams: one row group, UTF-8 strings, doubles, `as_of` as a UTC
//! millisecond timestamp, the catalog versions in the file's key-value metadata (`winsignal.catalog`).

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use parquet::basic::{LogicalType, Repetition, TimeUnit, Type as Physical};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

use crate::features::{columns, row, Cell, Computed};

#[derive(Clone, Copy, PartialEq)]
enum ColumnType {
    Text,
    Number,
    Timestamp,
}

pub fn write(c: &Computed, out: &Path) -> Result<()> {
    let names = columns(&c.catalog);
    let rows: Vec<Vec<Cell<'_>>> = c
        .snapshots
        .iter()
        .map(|s| {
            let mut r = row(&c.catalog, s);
            r[2] = Cell::Time(s.as_of.0);
            r
        })
        .collect();
    let meta = serde_json::json!({
        "catalog": c.catalog.name,
        "definitions": c.catalog.behaviours.iter().map(|d| serde_json::json!({
            "id": d.id, "version": d.version, "fingerprint": d.fingerprint(), "behaviour": d.is_behaviour()
        })).collect::<Vec<_>>(),
        "horizon": c.horizon.to_rfc3339(),
    });
    write_table(out, &names, &rows, &meta)
}

/// Writes a table: a column holding any text is a UTF-8 string column, any time a UTC millisecond
/// timestamp, else a double; every column is nullable. `meta` goes in the key-value metadata.
pub fn write_table(
    out: &Path,
    names: &[String],
    rows: &[Vec<Cell<'_>>],
    meta: &serde_json::Value,
) -> Result<()> {
    let types: Vec<ColumnType> = (0..names.len())
        .map(|i| {
            if rows.iter().any(|r| matches!(r[i], Cell::Time(_))) {
                ColumnType::Timestamp
            } else if rows
                .iter()
                .any(|r| matches!(r[i], Cell::Text(_) | Cell::Owned(_)))
            {
                ColumnType::Text
            } else {
                ColumnType::Number
            }
        })
        .collect();
    let fields = names
        .iter()
        .zip(&types)
        .map(|(name, t)| {
            let b = match t {
                ColumnType::Text => Type::primitive_type_builder(name, Physical::BYTE_ARRAY)
                    .with_logical_type(Some(LogicalType::String)),
                ColumnType::Number => Type::primitive_type_builder(name, Physical::DOUBLE),
                ColumnType::Timestamp => Type::primitive_type_builder(name, Physical::INT64)
                    .with_logical_type(Some(LogicalType::Timestamp {
                        is_adjusted_to_u_t_c: true,
                        unit: TimeUnit::MILLIS,
                    })),
            };
            b.with_repetition(Repetition::OPTIONAL)
                .build()
                .map(Arc::new)
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let schema = Arc::new(
        Type::group_type_builder("table")
            .with_fields(fields)
            .build()?,
    );
    let props = WriterProperties::builder()
        .set_created_by(format!("winsignal {}", env!("CARGO_PKG_VERSION")))
        .set_key_value_metadata(Some(vec![KeyValue::new(
            "winsignal".to_string(),
            meta.to_string(),
        )]))
        .build();
    crate::output::write_atomically(out, |file| write_groups(file, schema, props, rows, &types))
}

/// The row groups of [`write`], into `file`.
fn write_groups(
    file: &mut std::io::BufWriter<std::fs::File>,
    schema: Arc<parquet::schema::types::Type>,
    props: WriterProperties,
    rows: &[Vec<Cell<'_>>],
    types: &[ColumnType],
) -> Result<()> {
    let mut writer = SerializedFileWriter::new(file, schema, Arc::new(props))?;
    for chunk in rows.chunks(ROW_GROUP) {
        let mut group = writer.next_row_group()?;
        let mut i = 0;
        while let Some(mut col) = group.next_column()? {
            let mut defs: Vec<i16> = Vec::with_capacity(chunk.len());
            match types[i] {
                ColumnType::Text => {
                    let mut values = Vec::new();
                    for r in chunk {
                        let v = match &r[i] {
                            Cell::Text(t) => Some(ByteArray::from(t.as_bytes().to_vec())),
                            Cell::Owned(t) => Some(ByteArray::from(t.as_bytes().to_vec())),
                            Cell::Number(x) => Some(ByteArray::from(x.to_string().into_bytes())),
                            Cell::Time(t) => Some(ByteArray::from(
                                winsignal_core::Ts(*t).to_rfc3339().into_bytes(),
                            )),
                            Cell::Null => None,
                        };
                        defs.push(v.is_some() as i16);
                        values.extend(v);
                    }
                    col.typed::<ByteArrayType>()
                        .write_batch(&values, Some(&defs), None)?;
                }
                ColumnType::Number => {
                    let mut values = Vec::new();
                    for r in chunk {
                        let v = match r[i] {
                            Cell::Number(x) => Some(x),
                            _ => None,
                        };
                        defs.push(v.is_some() as i16);
                        values.extend(v);
                    }
                    col.typed::<DoubleType>()
                        .write_batch(&values, Some(&defs), None)?;
                }
                ColumnType::Timestamp => {
                    let mut values = Vec::new();
                    for r in chunk {
                        let v = match r[i] {
                            Cell::Time(t) => Some(t),
                            _ => None,
                        };
                        defs.push(v.is_some() as i16);
                        values.extend(v);
                    }
                    col.typed::<Int64Type>()
                        .write_batch(&values, Some(&defs), None)?;
                }
            }
            col.close()?;
            i += 1;
        }
        group.close()?;
    }
    writer.close()?;
    Ok(())
}

const ROW_GROUP: usize = 1 << 20;
