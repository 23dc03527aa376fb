//! The engine checkpoint (a named state of the store, `<DATA>/state/engine-state.state`) is checked
//! before use (issue 15): a flipped bit in it used to be decoded as a different state and silently
//! change the results (5 of 16 flips in one fault test). The store checks its checksum as it is read,
//! and a checkpoint that does not match is replayed from the store, never read.
#![allow(clippy::unwrap_used)]

mod common;
use common::winsignal;

use std::path::Path;

#[test]
fn a_damaged_checkpoint_is_replayed_never_read_as_another_state() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ws");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/canonical");
    winsignal(&data, &["ingest", examples.to_str().unwrap()]);
    // The first feature command replays the events and saves the checkpoint; the second reads it.
    let expected = winsignal(&data, &["snapshots", "--json"]);
    assert_eq!(winsignal(&data, &["snapshots", "--json"]), expected);
    let path = data.join("state/engine-state.state");
    let good = std::fs::read(&path).unwrap();
    assert!(good.len() > 64, "{} bytes", good.len());
    // Flip bits all through the file: its header and key, the state, the checksum.
    let flips = 64;
    for i in 0..flips {
        let at = i * (good.len() - 1) / (flips - 1);
        let mut bad = good.clone();
        bad[at] ^= 1 << (i % 8);
        std::fs::write(&path, &bad).unwrap();
        assert_eq!(
            winsignal(&data, &["snapshots", "--json"]),
            expected,
            "bit {} of byte {at} (of {}) flipped",
            i % 8,
            good.len()
        );
        // The damaged file was not used: the state was replayed and a good checkpoint saved again.
        assert!(
            std::fs::read(&path).unwrap() == good,
            "byte {at}: the damaged checkpoint was read and kept"
        );
    }
}
