//! A CSV output file that counts its rows and injects planned bad rows next to good ones.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use winsignal_core::rng::Rng;

use crate::error::{DemoError, Result};
use crate::text::{sf_id, BAD_ID_BASE};
use crate::DemoFile;

/// One way to spoil a copy of a good row; the copy gets a fresh id unless the id itself is blanked.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Corrupt {
    /// Empty the named column.
    Blank(&'static str),
    /// Put a value into each of the named columns.
    Set(&'static [&'static str], &'static str),
    /// Drop the last two fields (a short, ragged row).
    Ragged,
    /// Put invalid UTF-8 bytes into the named column.
    BadUtf8(&'static str),
}

/// How fresh ids for bad rows are made.
#[derive(Debug, Clone, Copy)]
pub(crate) enum IdStyle {
    Salesforce(&'static str),
    Plain(&'static str),
}

impl IdStyle {
    pub fn make(self, n: u64) -> String {
        match self {
            IdStyle::Salesforce(prefix) => sf_id(prefix, n),
            IdStyle::Plain(prefix) => format!("{prefix}{n:08}"),
        }
    }
}

pub(crate) struct Table {
    rel: PathBuf,
    abs: PathBuf,
    format: &'static str,
    kind: Option<String>,
    header: &'static [&'static str],
    w: csv::Writer<BufWriter<File>>,
    id_style: Option<IdStyle>,
    plan: BTreeMap<u64, Vec<Corrupt>>,
    n_good: u64,
    rows: u64,
    bad: u64,
}

pub(crate) fn create_file(out_dir: &Path, rel: &str) -> Result<(PathBuf, File)> {
    let abs = out_dir.join(rel);
    if let Some(dir) = abs.parent() {
        std::fs::create_dir_all(dir).map_err(|source| DemoError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let file = File::create(&abs).map_err(|source| DemoError::Io {
        path: abs.clone(),
        source,
    })?;
    Ok((abs, file))
}

impl Table {
    pub fn create(
        out_dir: &Path,
        rel: &str,
        format: &'static str,
        kind: &str,
        header: &'static [&'static str],
        id_style: Option<IdStyle>,
    ) -> Result<Table> {
        let (abs, file) = create_file(out_dir, rel)?;
        let w = csv::WriterBuilder::new()
            .flexible(true)
            .from_writer(BufWriter::with_capacity(1 << 20, file));
        let mut t = Table {
            rel: PathBuf::from(rel),
            abs,
            format,
            kind: Some(kind.to_string()),
            header,
            w,
            id_style,
            plan: BTreeMap::new(),
            n_good: 0,
            rows: 0,
            bad: 0,
        };
        t.w.write_record(header)
            .map_err(|source| t.csv_err(source))?;
        Ok(t)
    }

    fn csv_err(&self, source: csv::Error) -> DemoError {
        DemoError::Csv {
            path: self.abs.clone(),
            source,
        }
    }

    /// Plans `count` copies spoiled by `how`, placed after random good rows among the first `n_good`.
    pub fn plan(&mut self, rng: &mut Rng, n_good: u64, how: Corrupt, count: u64) {
        for _ in 0..count {
            self.plan
                .entry(rng.below(n_good.max(1)))
                .or_default()
                .push(how);
        }
    }

    /// Writes a row that is not counted as bad (good rows and kept mess alike).
    pub fn row<S: AsRef<[u8]>>(&mut self, rec: &[S]) -> Result<()> {
        self.w
            .write_record(rec)
            .map_err(|source| self.csv_err(source))?;
        self.rows += 1;
        if let Some(spoils) = self.plan.remove(&self.n_good) {
            for how in spoils {
                self.spoiled(rec, how)?;
            }
        }
        self.n_good += 1;
        Ok(())
    }

    /// A spoiled row built by the caller (counted as bad).
    pub fn bad_row<S: AsRef<[u8]>>(&mut self, rec: &[S]) -> Result<()> {
        self.w
            .write_record(rec)
            .map_err(|source| self.csv_err(source))?;
        self.rows += 1;
        self.bad += 1;
        Ok(())
    }

    fn col(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| *h == name)
    }

    fn spoiled<S: AsRef<[u8]>>(&mut self, rec: &[S], how: Corrupt) -> Result<()> {
        let mut fields: Vec<Vec<u8>> = rec.iter().map(|f| f.as_ref().to_vec()).collect();
        let blanks_id = matches!(how, Corrupt::Blank(c) if self.col(c) == Some(0));
        if let (Some(style), false) = (self.id_style, blanks_id) {
            fields[0] = style.make(BAD_ID_BASE + self.bad).into_bytes();
        }
        match how {
            Corrupt::Blank(c) => {
                if let Some(i) = self.col(c) {
                    fields[i].clear();
                }
            }
            Corrupt::Set(cols, value) => {
                for c in cols {
                    if let Some(i) = self.col(c) {
                        fields[i] = value.as_bytes().to_vec();
                    }
                }
            }
            Corrupt::Ragged => {
                let keep = fields.len().saturating_sub(2);
                fields.truncate(keep);
            }
            Corrupt::BadUtf8(c) => {
                if let Some(i) = self.col(c) {
                    fields[i].extend_from_slice(b"\xff\xfe\xc3");
                }
            }
        }
        self.w
            .write_record(&fields)
            .map_err(|source| self.csv_err(source))?;
        self.rows += 1;
        self.bad += 1;
        Ok(())
    }

    pub fn finish(mut self) -> Result<DemoFile> {
        // Spoils planned past the last row (only when fewer rows were written than planned for).
        let leftover: u64 = self.plan.values().map(|v| v.len() as u64).sum();
        debug_assert_eq!(leftover, 0, "{}", self.rel.display());
        self.w.flush().map_err(|source| DemoError::Io {
            path: self.abs.clone(),
            source,
        })?;
        Ok(DemoFile {
            path: self.rel,
            format: self.format.to_string(),
            kind: self.kind,
            rows: self.rows,
            injected_bad_rows: self.bad,
        })
    }
}
