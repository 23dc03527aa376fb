//! Human-readable and JSON output of the commands. JSON shapes are documented in docs/cli.md and kept
//! stable: fields are only ever added.

use std::collections::HashMap;

use serde::Serialize;
use winsignal_core::Kind;
use winsignal_ingest::quality::QualityReport;
use winsignal_ingest::IngestReport;
use winsignal_store::{LoadInfo, StoredRecord};

/// Text from the data made safe for a terminal: control characters other than newline and tab (C0,
/// DEL and C1, which carry the escape sequences that can retitle, recolour or clear a terminal) become
/// U+FFFD. Every `println!`/`eprintln!` of the binary goes through it (the macros in main.rs); JSON
/// needs nothing, as serde escapes control characters.
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if text.chars().any(unsafe_char) {
        std::borrow::Cow::Owned(
            text.chars()
                .map(|c| if unsafe_char(c) { '\u{fffd}' } else { c })
                .collect(),
        )
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// `println!` with [`terminal_safe`] text.
pub fn print_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let text = args.to_string();
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{}", terminal_safe(&text)) {
        // `winsignal … | head` closed stdout early: stop quietly, with SIGPIPE's status (as main.rs's
        // panic hook does for `println!`).
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        panic!("failed printing to stdout: {e}");
    }
}

/// `eprintln!` with [`terminal_safe`] text.
pub fn eprint_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let text = args.to_string();
    let _ = writeln!(std::io::stderr().lock(), "{}", terminal_safe(&text));
}

/// A text cell for a CSV file a spreadsheet may open: a cell starting with `=`, `+`, `-`, `@`, a tab or
/// a carriage return would be read as a formula (CSV injection), so it gets a leading apostrophe, as
/// OWASP recommends and spreadsheets show as text. Numbers are written as numbers, never through this.
pub fn spreadsheet_safe(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

pub use winsignal_workspace::files::write_atomically;
pub use winsignal_workspace::text::n;

pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub fn print_ingest(report: &IngestReport) {
    println!(
        "{:<34} {:>10} {:>10} {:>8} {:>9} {:>10} {:>11} {:>8}",
        "source", "rows", "accepted", "new", "updated", "unchanged", "quarantined", "flagged"
    );
    for l in &report.loads {
        let s = &l.stats;
        println!(
            "{:<34} {:>10} {:>10} {:>8} {:>9} {:>10} {:>11} {:>8}",
            l.source,
            n(s.rows_read),
            n(s.accepted),
            n(s.new),
            n(s.updated),
            n(s.unchanged),
            n(s.quarantined),
            n(s.flagged)
        );
    }
    for f in &report.skipped_files {
        println!("not loaded (no connector reads it): {f}");
    }
    let q: u64 = report.loads.iter().map(|l| l.stats.quarantined).sum();
    if q > 0 {
        println!("{} rows quarantined; `winsignal quality` shows why.", n(q));
    }
}

/// The loads' warnings on stderr, whatever the output format: a load that quarantined a large share of
/// a field or an outcome must not pass unnoticed.
pub fn warn_ingest(report: &IngestReport) {
    for l in &report.loads {
        for w in &l.warnings {
            eprintln!("WARNING: {} ({}): {}", l.path, l.source, w.message);
        }
    }
    if report.loads.iter().any(|l| !l.warnings.is_empty()) {
        eprintln!("WARNING: the load was kept; `winsignal quality` lists the rows, and `ingest --strict` refuses such a load.");
    }
}

pub fn print_quality(r: &QualityReport) {
    println!("LOADS");
    println!(
        "  {:>4}  {:<34} {:>10} {:>10} {:>11} {:>8}  file",
        "id", "source", "read", "accepted", "quarantined", "flagged"
    );
    for l in &r.loads {
        let ok = if l.balanced { "" } else { "  (UNBALANCED)" };
        println!(
            "  {:>4}  {:<34} {:>10} {:>10} {:>11} {:>8}  {}{ok}",
            l.load_id,
            l.source,
            n(l.stats.rows_read),
            n(l.stats.accepted),
            n(l.stats.quarantined),
            n(l.stats.flagged),
            l.path
        );
    }
    println!("\nRECORDS NOW HELD");
    for (kind, count) in &r.totals {
        if *count > 0 {
            println!("  {kind:<22} {:>12}", n(*count));
        }
    }
    // Of the latest load of each file; what earlier loads of the same files refused is history.
    let earlier = match r.quarantine.in_earlier_loads {
        0 => String::new(),
        k => format!(
            "; {} more refused by earlier loads of files loaded again since",
            n(k)
        ),
    };
    println!(
        "\nQUARANTINED: {} rows (of {} read by the latest load of each file{earlier})",
        n(r.quarantine.total),
        n(r.quarantine.rows_read)
    );
    for c in &r.quarantine.by_reason {
        println!("  {:>7}  {}", n(c.count), c.code);
    }
    if !r.quarantine.examples.is_empty() {
        println!("  examples:");
        for e in r.quarantine.examples.iter().take(10) {
            println!("    {}:{}  {}", e.file, e.line, e.reasons.join("; "));
        }
    }
    println!("\nACCEPTED WITH A NOTE");
    if r.flags.is_empty() {
        println!("  none");
    }
    for c in &r.flags {
        println!("  {:>7}  {:<26} e.g. {}", n(c.count), c.code, c.example);
    }
    println!("\nIDENTITY: records tied to an account");
    println!(
        "  {:<34} {:<20} {:>10} {:>10} {:>7}  how",
        "source", "kind", "records", "matched", "rate"
    );
    for m in &r.identity {
        let how: Vec<String> = m
            .by_method
            .iter()
            .map(|(k, v)| format!("{k} {}", n(*v)))
            .collect();
        println!(
            "  {:<34} {:<20} {:>10} {:>10} {:>6.1}%  {}",
            m.source,
            m.kind.as_str(),
            n(m.total),
            n(m.matched),
            m.rate * 100.0,
            how.join(", ")
        );
    }
    if !r.unmatched.is_empty() {
        println!("\nUNMATCHED (kept, not tied to any account)");
        for u in &r.unmatched {
            println!(
                "  {} {} from {}; e.g. {}",
                n(u.count),
                u.kind,
                u.source,
                u.examples
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
    }
    println!("\nORPHANS (kept and flagged: references to records not held)");
    if r.orphans.is_empty() {
        println!("  none");
    }
    for o in &r.orphans {
        println!(
            "  {:>7}  {}.{} → {}; e.g. {}",
            n(o.count),
            o.kind,
            o.field,
            o.refers_to,
            o.examples
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    println!("\nSCHEMA DRIFT (against the previous load of the same source)");
    if r.drift.is_empty() {
        println!("  none");
    }
    for d in &r.drift {
        let mut parts = Vec::new();
        if !d.added.is_empty() {
            parts.push(format!("added {}", d.added.join(", ")));
        }
        if !d.missing.is_empty() {
            parts.push(format!("missing {}", d.missing.join(", ")));
        }
        for t in &d.retyped {
            parts.push(format!(
                "{} {}→{}",
                t.column,
                t.from.as_str(),
                t.to.as_str()
            ));
        }
        println!(
            "  {} (load {} vs {}): {}",
            d.source,
            d.load_id,
            d.previous_load_id,
            parts.join("; ")
        );
    }
}

#[derive(Serialize)]
pub struct TraceVersion<'a> {
    pub version: u64,
    pub current: bool,
    pub source: &'a str,
    pub load_id: u64,
    pub file: &'a str,
    pub line: u64,
    pub source_record_id: Option<&'a str>,
    pub content_hash: String,
    pub loaded_at: String,
    /// The fields this version set (changed from the version before; every field for the first):
    /// a field's current value comes from the latest version listing it.
    pub fields_set: Vec<String>,
    pub record: &'a winsignal_core::Record,
}

pub fn trace_json<'a>(
    versions: &'a [StoredRecord],
    loads: &'a [LoadInfo],
) -> Vec<TraceVersion<'a>> {
    let by_id: HashMap<u64, &LoadInfo> = loads.iter().map(|l| (l.load_id, l)).collect();
    let fields_set = winsignal_ingest::provenance::fields_set(versions);
    versions
        .iter()
        .zip(fields_set)
        .map(|(v, fields_set)| {
            let load = by_id.get(&v.origin.load_id);
            TraceVersion {
                version: v.version,
                current: v.current,
                source: load.map_or("", |l| l.source.as_str()),
                load_id: v.origin.load_id,
                file: load.map_or("", |l| l.path.as_str()),
                line: v.origin.line,
                source_record_id: v.origin.source_record_id.as_deref(),
                content_hash: winsignal_core::hash::hex(v.content_hash),
                loaded_at: load.map_or_else(String::new, |l| l.finished_at.to_rfc3339()),
                fields_set,
                record: &v.record,
            }
        })
        .collect()
}

pub fn print_trace(kind: Kind, versions: &[StoredRecord], loads: &[LoadInfo]) {
    let rows = trace_json(versions, loads);
    println!(
        "{} {} — {} version(s)",
        kind.singular(),
        versions[0].id,
        rows.len()
    );
    for v in rows {
        println!(
            "\nversion {}{}\n  source      {}\n  load        {} at {}\n  file        {}:{}\n  source id   {}\n  content     {}\n  fields set  {}",
            v.version,
            if v.current { " (current)" } else { "" },
            v.source,
            v.load_id,
            v.loaded_at,
            v.file,
            v.line,
            v.source_record_id.unwrap_or("-"),
            v.content_hash,
            if v.fields_set.is_empty() {
                "none".to_string()
            } else {
                v.fields_set.join(", ")
            }
        );
        if let Ok(body) = serde_json::to_string_pretty(v.record) {
            for line in body.lines() {
                println!("  | {line}");
            }
        }
    }
}

/// Fails early (before any long work) when the directory `out` would be written in does not exist.
pub fn check_out_dir(out: &std::path::Path, flag: &str) -> anyhow::Result<()> {
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    if !dir.is_dir() {
        anyhow::bail!(
            "{flag} {}: the directory {} does not exist",
            out.display(),
            dir.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn a_failed_write_leaves_the_earlier_file_and_no_partial_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.html");
        std::fs::write(&path, "the earlier report").unwrap();
        let err = write_atomically(&path, |w| {
            w.write_all(&[b'x'; 3 << 20])?;
            anyhow::bail!("the disk is full")
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("the disk is full"), "{err:#}");
        assert!(format!("{err:#}").contains("unchanged"), "{err:#}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "the earlier report"
        );
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "only the earlier file is there");

        write_atomically(&path, |w| Ok(w.write_all(b"the new report")?)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "the new report");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
