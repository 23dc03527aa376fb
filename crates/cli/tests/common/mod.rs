//! Shared by the end-to-end tests: run the binary against a workspace.

use std::path::Path;
use std::process::Command;

/// Runs `winsignal --data DATA --quiet ARGS…`, asserts it succeeds, and returns its stdout.
pub fn winsignal(data: &Path, args: &[&str]) -> String {
    #[allow(clippy::unwrap_used)]
    let out = Command::new(env!("CARGO_BIN_EXE_winsignal"))
        .arg("--data")
        .arg(data)
        .arg("--quiet")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "winsignal {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    #[allow(clippy::unwrap_used)]
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `winsignal --data DATA --quiet ARGS…` as the account `user` (`USER`: who the audit log and the
/// two-person rule name, `local:<user>`), asserts it succeeds, and returns its stdout.
#[allow(dead_code, clippy::unwrap_used)]
pub fn winsignal_as(data: &Path, user: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_winsignal"))
        .arg("--data")
        .arg(data)
        .arg("--quiet")
        .args(args)
        .env("USER", user)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "winsignal {args:?} as {user} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `winsignal --data DATA --quiet ARGS…` and returns its status and output, whatever they are.
#[allow(dead_code)]
pub fn winsignal_output(data: &Path, args: &[&str]) -> std::process::Output {
    #[allow(clippy::unwrap_used)]
    Command::new(env!("CARGO_BIN_EXE_winsignal"))
        .arg("--data")
        .arg(data)
        .arg("--quiet")
        .args(args)
        .output()
        .unwrap()
}

/// Runs `winsignal --data DATA --quiet ARGS…`, asserts it fails with status 1, and returns its stderr.
#[allow(dead_code)]
pub fn winsignal_fails(data: &Path, args: &[&str]) -> String {
    #[allow(clippy::unwrap_used)]
    let out = Command::new(env!("CARGO_BIN_EXE_winsignal"))
        .arg("--data")
        .arg(data)
        .arg("--quiet")
        .args(args)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "winsignal {args:?} should fail; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `winsignal --data DATA --quiet ARGS…`, asserts it succeeds, and returns stdout and stderr.
#[allow(dead_code)]
pub fn winsignal_both(data: &Path, args: &[&str]) -> (String, String) {
    #[allow(clippy::unwrap_used)]
    let out = Command::new(env!("CARGO_BIN_EXE_winsignal"))
        .arg("--data")
        .arg(data)
        .arg("--quiet")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "winsignal {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `YYYY-MM-DD` of a Unix time in seconds (civil-from-days, proleptic Gregorian; Howard Hinnant's
/// algorithm), to keep the tests free of a date crate.
#[allow(dead_code)]
pub fn date_of_secs(secs: i64) -> String {
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DD` moved by `days` days.
#[allow(dead_code)]
pub fn shift_days(date: &str, days: i64) -> String {
    let secs = secs_of(date);
    date_of_secs(secs + days * 86_400)
}

/// Unix seconds of `YYYY-MM-DD` at midnight UTC (days-from-civil).
#[allow(dead_code)]
pub fn secs_of(date: &str) -> i64 {
    let parse = |i: std::ops::Range<usize>| date[i].parse::<i64>().unwrap();
    let (y, m, d) = (parse(0..4), parse(5..7), parse(8..10));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) * 86_400
}

/// Closes every open deal of a demo workspace ten days after the data's end, the wrong way round for
/// its active model: the half it likes most lost, the rest won. Written as the CRM's own export
/// (`<dir>/Opportunity.csv`) and ingested with the demo's Salesforce mapping. Returns how many closed.
#[allow(dead_code, clippy::unwrap_used)]
pub fn close_open_deals_the_wrong_way(data: &Path, dir: &Path) -> usize {
    let scored: serde_json::Value =
        serde_json::from_str(&winsignal(data, &["score", "--json"])).unwrap();
    let mut by_p = p_wins(&scored["deals"]);
    by_p.sort_by(|a, b| b.1.total_cmp(&a.1));
    let lost: std::collections::HashSet<&str> = by_p[..by_p.len() / 2]
        .iter()
        .map(|(id, _)| id.as_str())
        .collect();
    let end_secs = secs_of(scored["as_of"].as_str().unwrap());
    let close_date = date_of_secs(end_secs + 10 * 86_400);
    let source = data.join("demo-input/salesforce/Opportunity.csv");
    let mut reader = csv::Reader::from_path(&source).unwrap();
    let header = reader.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (id, closed, won, stage, close_at) = (
        col("Id"),
        col("IsClosed"),
        col("IsWon"),
        col("StageName"),
        col("CloseDate"),
    );
    std::fs::create_dir_all(dir).unwrap();
    let mut writer = csv::Writer::from_path(dir.join("Opportunity.csv")).unwrap();
    writer.write_record(&header).unwrap();
    let mut closed_now = 0;
    for row in reader.records() {
        let row = row.unwrap();
        if &row[closed] == "true" || !by_p.iter().any(|(o, _)| o.as_str() == &row[id]) {
            continue;
        }
        let is_lost = lost.contains(&row[id]);
        let mut out: Vec<String> = row.iter().map(str::to_string).collect();
        out[closed] = "true".into();
        out[won] = (!is_lost).to_string();
        out[stage] = if is_lost { "Closed Lost" } else { "Closed Won" }.into();
        out[close_at] = close_date.clone();
        writer.write_record(&out).unwrap();
        closed_now += 1;
    }
    writer.flush().unwrap();
    assert_eq!(closed_now, by_p.len());
    let config = data.join("demo-input/salesforce-config.toml");
    winsignal(
        data,
        &[
            "ingest",
            dir.to_str().unwrap(),
            "--salesforce-config",
            config.to_str().unwrap(),
        ],
    );
    closed_now
}

/// P(win) by deal of a list of scored deals (`score --json`'s `deals`), in deal order.
#[allow(dead_code, clippy::unwrap_used)]
pub fn p_wins(deals: &serde_json::Value) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = deals
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["opportunity_id"].as_str().unwrap().to_string(),
                d["p_win"].as_f64().unwrap(),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}
