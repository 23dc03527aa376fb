//! Line numbers and reading truthfully, for every connector (issue 14, items 0 and 2): a row's line is
//! the physical line it starts on (header = line 1) whatever the line endings (LF, CRLF, CR), with empty
//! lines, quoted line breaks and a byte-order mark; a stray quote is named with its line and does not
//! swallow the rest of the file; files that cannot be read safely are refused.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use winsignal_core::{Kind, Record, Ts};
use winsignal_ingest::{ingest, Format, IngestReport, IngestRequest};
use winsignal_store::{EmbeddedStore, StoreRead};

const ENDINGS: [(&str, &str); 3] = [("LF", "\n"), ("CRLF", "\r\n"), ("CR", "\r")];

fn now() -> Ts {
    Ts::parse("2026-11-01T00:00:00Z").unwrap()
}

/// The physical lines joined with `eol` (a quoted line break inside a row is written as two entries).
fn render(doc: &[&str], eol: &str, bom: bool) -> String {
    let mut text = if bom {
        "\u{feff}".to_string()
    } else {
        String::new()
    };
    for line in doc {
        text.push_str(line);
        text.push_str(eol);
    }
    text
}

struct Loaded {
    report: IngestReport,
    store: EmbeddedStore,
    _dir: tempfile::TempDir,
}

fn load(path: &Path, configure: &dyn Fn(&mut IngestRequest)) -> Loaded {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("ws")).unwrap();
    let mut req = IngestRequest::new(path);
    req.now = now();
    configure(&mut req);
    let report = ingest(&store, &req, &mut |_| {}).unwrap();
    Loaded {
        report,
        store,
        _dir: dir,
    }
}

impl Loaded {
    /// The line of every current record or event of `kind`, in order.
    fn lines_of(&self, kind: Kind) -> Vec<u64> {
        let mut lines: Vec<u64> = if kind.is_event() {
            self.store
                .events(&[kind])
                .unwrap()
                .map(|e| e.unwrap().origin.line)
                .collect()
        } else {
            self.store
                .records(kind)
                .unwrap()
                .into_iter()
                .filter(|r| r.current)
                .map(|r| r.origin.line)
                .collect()
        };
        lines.sort_unstable();
        lines
    }

    fn quarantined(&self) -> Vec<(u64, String)> {
        let mut rows: Vec<(u64, String)> = self
            .store
            .quarantine(None)
            .unwrap()
            .into_iter()
            .map(|q| (q.line, q.reasons.join("; ")))
            .collect();
        rows.sort();
        rows
    }

    fn quarantined_lines(&self) -> Vec<u64> {
        self.quarantined().into_iter().map(|(l, _)| l).collect()
    }

    fn rows_read(&self) -> u64 {
        self.report.loads.iter().map(|l| l.stats.rows_read).sum()
    }
}

/// Writes `doc` in every line ending, with and without a byte-order mark, loads it, and checks that
/// the accepted rows and the quarantined ones carry the physical lines given.
fn assert_true_lines(
    file_name: &str,
    doc: &[&str],
    configure: &dyn Fn(&mut IngestRequest),
    kind: Kind,
    accepted: &[u64],
    quarantined: &[u64],
) {
    for (ending, eol) in ENDINGS {
        for bom in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(file_name);
            std::fs::write(&path, render(doc, eol, bom)).unwrap();
            let loaded = load(&path, configure);
            let case = format!("{file_name}, {ending}, byte-order mark {bom}");
            assert_eq!(loaded.lines_of(kind), accepted, "{case}: accepted rows");
            assert_eq!(
                loaded.quarantined_lines(),
                quarantined,
                "{case}: quarantined rows {:?}",
                loaded.quarantined()
            );
            assert_eq!(
                loaded.rows_read(),
                (accepted.len() + quarantined.len()) as u64,
                "{case}: rows read"
            );
        }
    }
}

#[test]
fn canonical_csv_rows_carry_their_physical_line() {
    let doc = [
        "account_id,name,domain,industry",
        "A1,Acme,acme.com,Software",
        "",
        "A2,\"Beta",
        "Two\",beta.io,Retail",
        "",
        "A3,Gamma,gamma.org,Retail,EXTRA",
        "A4,Delta,delta.net,Finance",
    ];
    assert_true_lines(
        "accounts.csv",
        &doc,
        &|_| {},
        Kind::Accounts,
        &[2, 4, 8],
        &[7],
    );
}

#[test]
fn canonical_csv_events_carry_their_physical_line() {
    let doc = [
        "event_id,occurred_at,event,user_id",
        "P1,2024-03-02T10:00:00Z,Report Created,u1",
        "",
        "P2,2024-03-02T11:00:00Z,\"Dash",
        "board\",u2",
        "P3,not-a-date,Viewed,u3",
        "",
        "P4,2024-03-02T12:00:00Z,Viewed,u4",
    ];
    assert_true_lines(
        "product_events.csv",
        &doc,
        &|_| {},
        Kind::ProductEvents,
        &[2, 4, 8],
        &[6],
    );
}

#[test]
fn canonical_json_lines_carry_their_physical_line() {
    // The first line is empty: with a byte-order mark before it, it must not become a malformed row.
    let doc = [
        "",
        r#"{"account_id":"A1","name":"Acme"}"#,
        "",
        r#"{"account_id":"A2","name":"Beta"}"#,
        r#"{"account_id":"A3", not json"#,
        r#"{"account_id":"A4","name":"Delta"}"#,
    ];
    assert_true_lines(
        "accounts.jsonl",
        &doc,
        &|_| {},
        Kind::Accounts,
        &[2, 4, 6],
        &[5],
    );
}

#[test]
fn segment_messages_carry_their_physical_line() {
    let doc = [
        r#"{"type":"track","messageId":"m1","timestamp":"2024-03-01T10:00:00Z","userId":"u1","event":"Report Created"}"#,
        "",
        r#"{"type":"track","messageId":"m2","timestamp":"2024-03-01T10:00:01Z","userId":"u1","event":"Viewed"}"#,
        r#"{"type":"track","messageId":"m3","timestamp":"soon","userId":"u1","event":"Viewed"}"#,
        "",
        r#"{"type":"track","messageId":"m4","timestamp":"2024-03-01T10:00:02Z","userId":"u1","event":"Viewed"}"#,
    ];
    assert_true_lines(
        "events.jsonl",
        &doc,
        &|r| r.format = Some(Format::Segment),
        Kind::ProductEvents,
        &[1, 3, 6],
        &[4],
    );
}

#[test]
fn salesforce_rows_carry_their_physical_line() {
    let doc = [
        "Id,Name,Website,NumberOfEmployees,CreatedDate",
        "001Ax0000000001,Acme,acme.com,1200,2024-01-02T10:00:00.000Z",
        "",
        "001Ax0000000002,\"Beta",
        "Two\",beta.io,40,2024-02-01T10:00:00.000Z",
        "001Ax0000000003,Bad,bad.io,lots,2024-02-01T10:00:00.000Z",
        "",
        "001Ax0000000004,Delta,delta.net,10,2024-02-01T10:00:00.000Z",
    ];
    assert_true_lines(
        "Account.csv",
        &doc,
        &|r| r.format = Some(Format::Salesforce),
        Kind::Accounts,
        &[2, 4, 8],
        &[6],
    );
}

fn write_line_mapping(dir: &Path) -> PathBuf {
    let path = dir.join("lines.toml");
    std::fs::write(
        &path,
        r#"source = "test:lines"
[[output]]
kind = "accounts"
[output.fields]
account_id = { derive = "line", prefix = "L" }
name = "name"
employees = "employees"
"#,
    )
    .unwrap();
    path
}

#[test]
fn mapped_rows_and_line_derived_ids_use_the_physical_line() {
    let mapping_dir = tempfile::tempdir().unwrap();
    let mapping = write_line_mapping(mapping_dir.path());
    let doc = [
        "name,employees",
        "Acme,10",
        "",
        "\"Beta",
        "Two\",20",
        "Bad,lots",
        "",
        "Delta,30",
    ];
    let configure = |r: &mut IngestRequest| r.mapping = Some(mapping.clone());
    assert_true_lines(
        "companies.csv",
        &doc,
        &configure,
        Kind::Accounts,
        &[2, 4, 8],
        &[6],
    );
    // The same data with LF and CRLF endings derives the same ids.
    let mut ids_per_ending = Vec::new();
    for (_, eol) in ENDINGS {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("companies.csv");
        std::fs::write(&path, render(&doc, eol, false)).unwrap();
        let loaded = load(&path, &configure);
        let mut ids: Vec<String> = loaded
            .store
            .records(Kind::Accounts)
            .unwrap()
            .into_iter()
            .map(|r| match r.record {
                Record::Accounts(a) => a.account_id,
                other => panic!("not an account: {other:?}"),
            })
            .collect();
        ids.sort();
        ids_per_ending.push(ids);
    }
    assert_eq!(ids_per_ending[0], ["L2", "L4", "L8"]);
    assert!(ids_per_ending.iter().all(|ids| *ids == ids_per_ending[0]));
}

/// A canonical accounts file of `n` rows after the header, row `i` on line `i + 2`.
fn accounts_csv(n: usize, edit: &dyn Fn(usize, String) -> String) -> String {
    let mut text = String::from("account_id,name,domain,industry\n");
    for i in 0..n {
        let row = format!("A{i},Company {i},c{i}.com,Software");
        text.push_str(&edit(i, row));
        text.push('\n');
    }
    text
}

#[test]
fn a_stray_quote_is_named_with_its_line_and_the_rest_of_the_file_is_read() {
    // An unterminated quote on line 2 of a 1,000-row file, in every line ending.
    for (ending, eol) in ENDINGS {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accounts.csv");
        let text = accounts_csv(1000, &|i, row| {
            if i == 0 {
                row.replace("Company 0", "\"Company 0")
            } else {
                row
            }
        });
        std::fs::write(&path, text.replace('\n', eol)).unwrap();
        let loaded = load(&path, &|_| {});
        assert_eq!(loaded.rows_read(), 1000, "{ending}");
        let quarantined = loaded.quarantined();
        assert_eq!(quarantined.len(), 1, "{ending}: {quarantined:?}");
        let (line, reason) = &quarantined[0];
        assert_eq!(*line, 2, "{ending}");
        assert!(
            reason.contains("quote") && reason.contains("line 2") && reason.contains("`name`"),
            "{ending}: {reason}"
        );
        let accepted = loaded.lines_of(Kind::Accounts);
        assert_eq!(accepted, (3..=1001).collect::<Vec<u64>>(), "{ending}");
    }
}

#[test]
fn two_stray_quotes_do_not_swallow_the_rows_between_them() {
    // The quote opened on line 3 is "closed" by the stray one on line 6: rows 4 and 5 must not become
    // part of a name. A quote opening a field on line 6 is a stray of its own (quarantined); one at the
    // end of a field there is text, as in any unquoted field.
    let cases: [(&str, &[u64], &[u64]); 2] = [
        ("\"Company 4", &[2, 4, 5, 7, 8, 9], &[3, 6]),
        ("Company 4\"", &[2, 4, 5, 6, 7, 8, 9], &[3]),
    ];
    for (closing, accepted, quarantined) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accounts.csv");
        let text = accounts_csv(8, &|i, row| match i {
            1 => row.replace("Company 1", "\"Company 1"),
            4 => row.replace("Company 4", closing),
            _ => row,
        });
        std::fs::write(&path, text).unwrap();
        let loaded = load(&path, &|_| {});
        let q = loaded.quarantined();
        assert_eq!(loaded.quarantined_lines(), quarantined, "{closing}: {q:?}");
        assert!(
            q.iter().all(|(_, reason)| reason.contains("quote")),
            "{closing}: {q:?}"
        );
        assert!(q[0].1.contains("on line 3"), "{closing}: {q:?}");
        assert_eq!(
            loaded.lines_of(Kind::Accounts),
            accepted,
            "{closing}: {q:?}"
        );
        assert_eq!(loaded.rows_read(), 8, "{closing}");
    }
}

#[test]
fn a_stray_quote_is_named_by_the_salesforce_and_mapping_connectors() {
    let dir = tempfile::tempdir().unwrap();
    let sf = dir.path().join("Account.csv");
    let mut text = String::from("Id,Name,NumberOfEmployees\n");
    for i in 0..100 {
        let name = if i == 0 {
            "\"Acme".to_string()
        } else {
            format!("Co {i}")
        };
        text.push_str(&format!("001Ax{i:010},{name},10\n"));
    }
    std::fs::write(&sf, text).unwrap();
    let loaded = load(&sf, &|r| r.format = Some(Format::Salesforce));
    assert_eq!(loaded.rows_read(), 100);
    let q = loaded.quarantined();
    assert!(
        q.len() == 1 && q[0].0 == 2 && q[0].1.contains("quote"),
        "{q:?}"
    );

    let mapping = write_line_mapping(dir.path());
    let csv = dir.path().join("companies.csv");
    let mut text = String::from("name,employees\n");
    for i in 0..100 {
        let name = if i == 0 {
            "\"Acme".to_string()
        } else {
            format!("Co {i}")
        };
        text.push_str(&format!("{name},10\n"));
    }
    std::fs::write(&csv, text).unwrap();
    let loaded = load(&csv, &|r| r.mapping = Some(mapping.clone()));
    assert_eq!(loaded.rows_read(), 100);
    let q = loaded.quarantined();
    assert!(
        q.len() == 1 && q[0].0 == 2 && q[0].1.contains("quote"),
        "{q:?}"
    );
}

#[test]
fn json_lines_with_cr_only_endings_are_one_row_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accounts.jsonl");
    let text: String = (0..1000)
        .map(|i| format!("{{\"account_id\":\"A{i}\",\"name\":\"Co {i}\"}}\r"))
        .collect();
    std::fs::write(&path, text).unwrap();
    let loaded = load(&path, &|_| {});
    assert_eq!(loaded.rows_read(), 1000);
    assert_eq!(
        loaded.lines_of(Kind::Accounts),
        (1..=1000).collect::<Vec<u64>>()
    );
}

#[test]
fn a_segment_properties_that_is_not_an_object_is_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    std::fs::write(
        &path,
        concat!(
            r#"{"type":"track","messageId":"m1","timestamp":"2024-03-01T10:00:00Z","userId":"u1","event":"Viewed","properties":{"plan":"pro"}}"#,
            "\n",
            r#"{"type":"track","messageId":"m2","timestamp":"2024-03-01T10:00:00Z","userId":"u1","event":"Viewed","properties":"plan=pro"}"#,
            "\n",
            r#"{"type":"track","messageId":"m3","timestamp":"2024-03-01T10:00:00Z","userId":"u1","event":"Viewed","properties":[1,2]}"#,
            "\n",
        ),
    )
    .unwrap();
    let loaded = load(&path, &|r| r.format = Some(Format::Segment));
    let q = loaded.quarantined();
    assert_eq!(
        q.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
        [2, 3],
        "{q:?}"
    );
    assert!(q.iter().all(|(_, r)| r.contains("`properties`")), "{q:?}");
    assert_eq!(loaded.lines_of(Kind::ProductEvents), [1]);
}

#[cfg(unix)]
#[test]
fn a_fifo_as_input_is_refused_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("accounts.csv");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let ws = dir.path().join("ws");
    let (tx, rx) = std::sync::mpsc::channel();
    let path = fifo.clone();
    // On failure the load would wait forever for a writer: the answer is awaited in a thread, and a
    // writer is opened after the wait so that a hung read ends and the test can report it.
    std::thread::spawn(move || {
        let store = EmbeddedStore::open(&ws).unwrap();
        let mut req = IngestRequest::new(&path);
        req.now = now();
        let _ = tx.send(ingest(&store, &req, &mut |_| {}).map(|_| ()));
    });
    let answer = rx.recv_timeout(std::time::Duration::from_secs(20));
    if answer.is_err() {
        let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
    }
    let err = answer
        .expect("the load waited on the FIFO instead of refusing it")
        .expect_err("a FIFO must be refused");
    let message = err.to_string();
    assert!(message.contains("not a regular file"), "{message}");
}

#[test]
fn rows_that_span_lines_are_noted_so_rows_read_can_be_checked_against_lines() {
    // A row whose quoted field holds line breaks, well formed, as a stray quote closed on the next
    // line can also make one: the note on the load says which lines it spans.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accounts.csv");
    let text = accounts_csv(6, &|i, row| match i {
        1 => "A1,\"Company 1".to_string(),
        2 => "continued\",c1.com,Software".to_string(),
        _ => row,
    });
    std::fs::write(&path, text).unwrap();
    let loaded = load(&path, &|_| {});
    assert_eq!(loaded.rows_read(), 5);
    let flags: Vec<(u64, String)> = loaded
        .store
        .flags()
        .unwrap()
        .into_iter()
        .filter(|f| f.code == "multiline_rows")
        .map(|f| (f.line, f.message))
        .collect();
    assert_eq!(flags.len(), 1, "{flags:?}");
    assert_eq!(flags[0].0, 3);
    assert!(
        flags[0].1.starts_with("1 row holds line breaks") && flags[0].1.contains("lines 3–4"),
        "{}",
        flags[0].1
    );
    // A file without quoted line breaks has no such note, in every connector's reader.
    let plain = dir.path().join("plain").join("accounts.csv");
    std::fs::create_dir_all(plain.parent().unwrap()).unwrap();
    std::fs::write(&plain, accounts_csv(6, &|_, row| row)).unwrap();
    let loaded = load(&plain, &|_| {});
    assert!(loaded
        .store
        .flags()
        .unwrap()
        .iter()
        .all(|f| f.code != "multiline_rows"));
}

#[test]
fn a_note_whose_last_line_has_a_comma_stays_one_field() {
    // A real multi-line note, well formed, whose last line holds a comma with no space after it (a
    // number with a thousands separator): it used to be read as a stray quote, the row quarantined and
    // its second line accepted as a record that is not in the file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accounts.csv");
    let text = accounts_csv(4, &|i, row| match i {
        1 => "A1,\"Company 1".to_string(),
        2 => "budget 1,500\",c1.com,Software".to_string(),
        _ => row,
    });
    std::fs::write(&path, text).unwrap();
    let loaded = load(&path, &|_| {});
    assert!(
        loaded.quarantined().is_empty(),
        "{:?}",
        loaded.quarantined()
    );
    assert_eq!(loaded.rows_read(), 3);
    assert_eq!(loaded.lines_of(Kind::Accounts), vec![2, 3, 5]);
}

#[test]
fn a_mapping_with_a_quote_as_delimiter_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mapping = dir.path().join("m.toml");
    std::fs::write(
        &mapping,
        "source = \"t\"\ndelimiter = '\"'\n[[output]]\nkind = \"accounts\"\n[output.fields]\naccount_id = \"id\"\n",
    )
    .unwrap();
    let csv = dir.path().join("a.csv");
    std::fs::write(&csv, "id\n1\n").unwrap();
    let store = EmbeddedStore::open(&dir.path().join("ws")).unwrap();
    let mut req = IngestRequest::new(&csv);
    req.now = now();
    req.mapping = Some(mapping);
    let err = ingest(&store, &req, &mut |_| {}).unwrap_err().to_string();
    assert!(err.contains("delimiter"), "{err}");
}
