//! docs/quickstart.md, run (issue 14, item 6): every `winsignal` command in its `sh` blocks, in order,
//! from a directory laid out as the page assumes — the repository's root (here: its `examples/`) with
//! `../shared` beside it — and each must succeed. A few of the page's claims about what the commands
//! print are checked as well, so that the prose stays true.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `winsignal …` lines of the page's ```sh blocks, split into arguments (the page uses no quotes,
/// globs, pipes or variables in them: checked).
fn commands(page: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut in_sh = false;
    for line in page.lines() {
        let t = line.trim();
        if t.starts_with("```") {
            in_sh = !in_sh && t == "```sh";
            continue;
        }
        if in_sh && t.starts_with("winsignal ") {
            assert!(
                !t.contains(['"', '\'', '*', '|', '$', '>', '<', '`']),
                "a command the test cannot run as written: {t}"
            );
            out.push(t.split_whitespace().skip(1).map(String::from).collect());
        }
    }
    out
}

#[test]
fn every_command_of_the_quickstart_runs() {
    let page = std::fs::read_to_string(repo().join("docs/quickstart.md")).unwrap();
    let commands = commands(&page);
    assert!(commands.len() >= 15, "{} commands found", commands.len());
    let shared = repo().join("../shared");
    assert!(
        shared.join("datasets").exists(),
        "{} is missing: the quickstart reads the shared datasets beside the repository",
        shared.display()
    );
    // <tmp>/repo is the working directory, with the repository's examples; <tmp>/shared the datasets.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    std::fs::create_dir_all(&root).unwrap();
    std::os::unix::fs::symlink(
        repo().join("examples").canonicalize().unwrap(),
        root.join("examples"),
    )
    .unwrap();
    std::os::unix::fs::symlink(shared.canonicalize().unwrap(), dir.path().join("shared")).unwrap();

    let mut printed = Vec::new();
    for args in &commands {
        let out = Command::new(env!("CARGO_BIN_EXE_winsignal"))
            .args(args)
            .current_dir(&root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "winsignal {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        printed.push((
            args.join(" "),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    let output = |prefix: &str| -> String {
        printed
            .iter()
            .filter(|(c, _, _)| c.starts_with(prefix))
            .map(|(_, o, e)| format!("{o}{e}"))
            .collect()
    };

    // What the page says the commands show.
    let maven_catalog = std::fs::read_to_string(root.join("ws/maven-catalog.toml")).unwrap();
    assert!(
        maven_catalog.contains("leakage suspect") && maven_catalog.contains("log_amount"),
        "suggest comments out the close value on Maven:\n{maven_catalog}"
    );
    let bank_catalog = std::fs::read_to_string(root.join("ws/bank-catalog.toml")).unwrap();
    let duration = bank_catalog
        .lines()
        .find(|l| l.contains("duration"))
        .unwrap();
    assert!(duration.trim_start().starts_with('#'), "{duration}");
    assert!(bank_catalog.contains("placeholder"), "{bank_catalog}");
    let bank = output("--data ws/bank discover");
    assert!(bank.contains("poutcome=success"), "{bank}");
    assert!(bank.contains("robust standard errors by deal"), "{bank}");
    assert!(
        output("--data ws/bank train").contains("stratified"),
        "the holdout is said to be a random split"
    );
    assert!(
        output("--data ws/maven discover").contains("clustered by rep"),
        "Maven has reps"
    );
    assert!(
        output("--data ws/maven train").contains("Warning"),
        "nothing predicts on Maven, and train warns"
    );
    assert!(output("--data ws/sf discover").contains("Discovery over"));
    for report in [
        "ws/maven-report.html",
        "ws/bank-report.html",
        "ws/sf-report.html",
    ] {
        let html = std::fs::read_to_string(root.join(report)).unwrap();
        assert!(html.len() > 10_000, "{report}");
    }
}
