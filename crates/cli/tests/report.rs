//! The HTML report renders in a real browser: headless Chromium (Debian's `chromium` package, installed
//! by `.ci/run`) opens the file from disk with no network, runs its scripts, and the test asserts that the
//! charts exist and that nothing was written to the console (no errors, no warnings).
//!
//! Without Chromium the test fails, naming the package; set `WINSIGNAL_SKIP_BROWSER=1` to skip it
//! explicitly on a machine that cannot have a browser.
#![allow(clippy::unwrap_used)]

mod common;
use common::winsignal;

use std::process::Command;

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

#[test]
fn the_report_renders_its_charts_without_console_messages() {
    let Some(browser) = chromium() else {
        if std::env::var_os("WINSIGNAL_SKIP_BROWSER").is_some() {
            eprintln!("skipped: WINSIGNAL_SKIP_BROWSER is set and no Chromium is installed");
            return;
        }
        panic!("headless Chromium is needed (Debian: apt-get install chromium); set WINSIGNAL_SKIP_BROWSER=1 to skip");
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ws");
    winsignal(&data, &["demo", "--scale", "0.25", "--seed", "5"]);
    // The demo writes the report into the workspace; `report` writes one where asked.
    assert!(data.join("report.html").exists());
    let out = dir.path().join("report.html");
    winsignal(&data, &["report", "--out", out.to_str().unwrap()]);
    let html = std::fs::read_to_string(&out).unwrap();
    for external in [
        "src=\"http",
        "href=\"http",
        "<script src",
        "@import",
        "<link ",
    ] {
        assert!(
            !html.contains(external),
            "the report loads something from outside: {external}"
        );
    }

    let run = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("file://{}", out.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&run.stdout);
    let log = String::from_utf8_lossy(&run.stderr);
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(
        console.is_empty(),
        "the page wrote to the console:\n{}",
        console.join("\n")
    );
    assert!(
        dom.contains("data-rendered=\"yes\""),
        "the report's script did not finish:\n{log}"
    );

    // One forest plot plus three charts (survival, adoption, reps) per yes/no behaviour.
    let d: serde_json::Value =
        serde_json::from_str(&winsignal(&data, &["discover", "--json"])).unwrap();
    let behaviours = d["details"].as_array().unwrap().len();
    assert!(behaviours >= 10, "{behaviours} behaviours with details");
    let charts: usize = dom
        .split("data-charts=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert_eq!(charts, 1 + 3 * behaviours);
    assert_eq!(dom.matches("<canvas").count(), 1 + 3 * behaviours);
    for id in [
        "forest",
        "km-0",
        "adoption-0",
        "reps-0",
        "scorecard-table",
        "behaviour-exec_engaged",
    ] {
        assert!(dom.contains(&format!("id=\"{id}\"")), "no element {id}");
    }
    // The scorecard and headlines are filled in from the data.
    assert!(dom.contains("Executive engaged (exec_engaged v1)"));
    assert!(dom.matches("<li>").count() > 5);
}
