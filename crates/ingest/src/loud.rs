//! Loud failures: a load that quarantines a large share of the rows of one field, or of the deals of one
//! outcome, says so with what to change in the mapping, instead of finishing quietly with exit status 0
//! (a timestamp layout nobody declared can quarantine every won deal). `ingest --strict` refuses such a
//! load. The threshold is documented in docs/formats.md ("Warnings and --strict").

use std::collections::BTreeMap;

use serde::Serialize;
use winsignal_core::{Outcome, Record};

/// A warning is given when a field's problems quarantine at least this share of a load's rows, or when
/// at least this share of the deals of one outcome is quarantined.
pub const WARN_SHARE: f64 = 0.10;

/// One warning about a load, as shown on stderr and in `ingest --json` (`loads[].warnings[]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadWarning {
    /// The canonical (or source) field whose problems quarantined the rows; `None` for an outcome warning
    /// and for unmatched quotes (the file's quoting, not a field's values, is at fault).
    pub field: Option<String>,
    /// The outcome (`won`, `lost`, `open`) whose deals were quarantined; `None` for a field warning.
    pub outcome: Option<String>,
    /// Rows quarantined (for a field: rows with a problem in that field).
    pub quarantined: u64,
    /// Out of: the load's rows for a field, the rows with that outcome for an outcome.
    pub of: u64,
    /// The warning in words, with an example problem and what to change.
    pub message: String,
}

#[derive(Debug, Default)]
struct FieldCount {
    rows: u64,
    example: Option<(u64, String)>,
}

#[derive(Debug, Default)]
struct OutcomeCount {
    accepted: u64,
    quarantined: u64,
    /// Field → quarantined rows of this outcome with a problem in it.
    fields: BTreeMap<String, u64>,
}

/// Counts kept while a load runs: quarantined rows per field and deals per outcome.
#[derive(Debug, Default)]
pub struct Tally {
    fields: BTreeMap<String, FieldCount>,
    outcomes: BTreeMap<Outcome, OutcomeCount>,
    /// The outcome of the row about to be quarantined, when its connector could read it.
    row_outcome: Option<Outcome>,
}

/// The field a problem names: the first `` field `name` `` in it (every connector words its problems so).
fn field_of(reason: &str) -> Option<&str> {
    let start = reason.find("field `")? + "field `".len();
    let len = reason[start..].find('`')?;
    Some(&reason[start..start + len])
}

/// The tally's key for unmatched quotes: the reason names the field the quote opened, but it is the
/// file's quoting that is at fault, not a value of that field.
const QUOTING: &str = "(quoting)";

/// What a problem is about, for the tally: unmatched quotes, else the field it names.
fn subject_of(reason: &str) -> Option<&str> {
    if reason.starts_with("unmatched quote") {
        Some(QUOTING)
    } else {
        field_of(reason)
    }
}

/// A subject of the tally in words.
fn described(subject: &str) -> String {
    if subject == QUOTING {
        "unmatched quotes".to_string()
    } else {
        format!("field `{subject}`")
    }
}

impl Tally {
    /// The outcome of the row that is about to be quarantined (a connector that read it says so first).
    pub fn row_outcome(&mut self, outcome: Option<Outcome>) {
        self.row_outcome = outcome;
    }

    pub fn accepted(&mut self, records: &[Record]) {
        self.row_outcome = None;
        for r in records {
            if let Record::Opportunities(o) = r {
                self.outcomes.entry(o.outcome).or_default().accepted += 1;
            }
        }
    }

    pub fn rejected(&mut self, line: u64, reasons: &[String]) {
        let mut fields: Vec<&str> = Vec::new();
        for reason in reasons {
            if let Some(f) = subject_of(reason) {
                if !fields.contains(&f) {
                    fields.push(f);
                    let c = self.fields.entry(f.to_string()).or_default();
                    c.rows += 1;
                    if c.example.is_none() {
                        c.example = Some((line, reason.clone()));
                    }
                }
            }
        }
        if let Some(o) = self.row_outcome.take() {
            let c = self.outcomes.entry(o).or_default();
            c.quarantined += 1;
            for f in fields {
                *c.fields.entry(f.to_string()).or_default() += 1;
            }
        }
    }

    /// The warnings for a load of `rows_read` rows.
    pub fn warnings(&self, rows_read: u64) -> Vec<LoadWarning> {
        let mut out = Vec::new();
        for (field, c) in &self.fields {
            if rows_read == 0 || share(c.rows, rows_read) < WARN_SHARE {
                continue;
            }
            let example = c
                .example
                .as_ref()
                .map(|(line, r)| format!(" (e.g. line {line}: {r})"))
                .unwrap_or_default();
            out.push(LoadWarning {
                field: (field != QUOTING).then(|| field.clone()),
                outcome: None,
                quarantined: c.rows,
                of: rows_read,
                message: format!(
                    "{} of {rows_read} rows ({:.0}%) quarantined for {}{example}; {}",
                    c.rows,
                    100.0 * share(c.rows, rows_read),
                    described(field),
                    advice(field)
                ),
            });
        }
        for (outcome, c) in &self.outcomes {
            let of = c.accepted + c.quarantined;
            if c.quarantined == 0 || share(c.quarantined, of) < WARN_SHARE {
                continue;
            }
            let worst = c
                .fields
                .iter()
                .max_by_key(|(_, n)| **n)
                .map(|(f, n)| format!(", {n} of them for {} ({})", described(f), advice(f)))
                .unwrap_or_default();
            out.push(LoadWarning {
                field: None,
                outcome: Some(outcome.to_string()),
                quarantined: c.quarantined,
                of,
                message: format!(
                    "{} of {of} {outcome} deals ({:.0}%) quarantined{worst}: discovery and training see only the rest",
                    c.quarantined,
                    100.0 * share(c.quarantined, of),
                ),
            });
        }
        out
    }
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// What to change, by the kind of field.
fn advice(field: &str) -> &'static str {
    let lower = field.to_ascii_lowercase();
    if field == QUOTING {
        "check how the file quotes its fields: a quote inside a quoted field must be doubled (`\"\"`), and a field holding the delimiter or a line break must be quoted whole"
    } else if lower.ends_with("_at") || lower.contains("date") || lower.contains("time") {
        "if the values are times in another layout or without an offset, declare them in the file's mapping (`--mapping`): a `format` for the field (or a `date_format`) and a `timezone`"
    } else if matches!(
        lower.as_str(),
        "amount" | "employees" | "annual_revenue" | "csat" | "duration_s"
    ) || lower.contains("amount")
    {
        "if the values are numbers written with a decimal comma, declare `decimal = \",\"` in the file's mapping (`--mapping`)"
    } else {
        "check the column the mapping reads for it, or map its values with `values`"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_field_of_each_problem_once_per_row() {
        let mut t = Tally::default();
        t.row_outcome(Some(Outcome::Won));
        t.rejected(
            2,
            &[
                "field `closed_at`: bad".into(),
                "opportunities: field `closed_at`: also bad".into(),
                "missing required field `created_at`".into(),
            ],
        );
        t.accepted(&[]);
        let w = t.warnings(2);
        assert_eq!(w.len(), 3, "{w:?}");
        assert_eq!(w[0].field.as_deref(), Some("closed_at"));
        assert_eq!((w[0].quarantined, w[0].of), (1, 2));
        assert_eq!(w[2].outcome.as_deref(), Some("won"));
        assert_eq!((w[2].quarantined, w[2].of), (1, 1));
    }

    #[test]
    fn unmatched_quotes_are_blamed_on_the_quoting_not_on_the_field_they_opened() {
        let mut t = Tally::default();
        let reason = "unmatched quote: the quote opening field `name` (column 2) on line 2 never \
                      closes; read as a stray quote, so line 2 alone is quarantined and reading \
                      resumes at line 3";
        t.rejected(2, &[reason.into()]);
        let w = t.warnings(5);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].field, None);
        assert!(
            w[0].message.contains("quarantined for unmatched quotes"),
            "{}",
            w[0].message
        );
        assert!(w[0].message.contains("doubled"), "{}", w[0].message);
        assert!(!w[0].message.contains("`values`"), "{}", w[0].message);
    }

    #[test]
    fn below_the_threshold_is_quiet() {
        let mut t = Tally::default();
        t.rejected(2, &["field `amount`: expected a number".into()]);
        assert!(t.warnings(11).is_empty());
        assert_eq!(t.warnings(10).len(), 1);
    }
}
