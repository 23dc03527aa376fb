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
