//! The audit log: who did what to the workspace and when — loads, models trained, users and tokens —
//! append-only and hash-chained.
//!
//! Each entry is a journal entry of the stream `audit` (the store numbers them from 1) whose body
//! holds its number, time, actor, action, subject and details, the hash of the entry before it
//! (`prev`, empty for the first) and its own hash: the SHA-256 of the entry's JSON with `hash` empty.
//! An edited entry no longer matches its hash; a removed or moved one breaks the numbering and the
//! next entry's `prev`. Removing the last entries breaks nothing before them, so the head (the last
//! number and hash) is also kept as the named state `audit-head`, updated after every append:
//! [`verify`] checks the log reaches it. A log rewritten whole from some entry on, head included, is
//! only caught against a head kept elsewhere: `winsignal audit verify` prints it for that.

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use winsignal_core::Ts;
use winsignal_store::{JournalEntry, JournalQuery, Store, StoreRead};

/// The journal stream the log is kept in.
pub const STREAM: &str = "audit";

/// The named state holding the log's head.
pub const HEAD: &str = "audit-head";

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    pub at: Ts,
    /// Who: a user of the API by name, or `local:<account>` for a command run on the machine.
    pub actor: String,
    /// What was done: `load`, `model.train`, `user.add`, `token.add`, `token.revoke`.
    pub action: String,
    /// What it was done to: a load's id, a model's id, a user's name.
    pub subject: String,
    pub details: serde_json::Value,
    /// The hash of the entry before (empty for the first).
    pub prev: String,
    /// SHA-256 (hex) of this entry's JSON with `hash` empty.
    pub hash: String,
}

impl Entry {
    fn digest(&self) -> String {
        let unhashed = Entry {
            hash: String::new(),
            ..self.clone()
        };
        let bytes = serde_json::to_vec(&unhashed).unwrap_or_default();
        hex(&Sha256::digest(&bytes))
    }
}

/// The last entry's number and hash.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

/// The actor of a command run on this machine: `local:` and the account running it.
pub fn local_actor() -> String {
    let account = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("local:{account}")
}

/// Appends an entry, linked to the one before it, and moves the head to it.
pub fn record(
    store: &dyn Store,
    actor: &str,
    action: &str,
    subject: &str,
    details: serde_json::Value,
) -> Result<Entry> {
    let at = Ts::now();
    let mut made: Option<Entry> = None;
    store.append_linked(STREAM, at, subject, &mut |last: Option<&JournalEntry>| {
        let prev = last
            .and_then(|e| serde_json::from_slice::<Entry>(&e.body).ok())
            .map(|e| e.hash)
            .unwrap_or_default();
        let mut entry = Entry {
            seq: last.map_or(0, |e| e.seq) + 1,
            at,
            actor: actor.to_string(),
            action: action.to_string(),
            subject: subject.to_string(),
            details: details.clone(),
            prev,
            hash: String::new(),
        };
        entry.hash = entry.digest();
        let body = serde_json::to_vec(&entry).unwrap_or_default();
        made = Some(entry);
        body
    })?;
    let entry = made.context("the audit entry was not made")?;
    // Appends from several processes may move the head in any order: it keeps the highest.
    crate::access::change_json_state(store, HEAD, "audit head", |head: &mut Head| {
        if entry.seq > head.seq {
            *head = Head {
                seq: entry.seq,
                hash: entry.hash.clone(),
            };
        }
        Ok(())
    })?;
    Ok(entry)
}

/// Ingests `req` ([`winsignal_ingest::ingest`]) and records each load it committed, by `actor`.
pub fn ingest(
    store: &dyn Store,
    req: &winsignal_ingest::IngestRequest,
    actor: &str,
    progress: &mut dyn FnMut(winsignal_ingest::Progress<'_>),
) -> Result<winsignal_ingest::IngestReport> {
    let report = winsignal_ingest::ingest(store, req, progress)?;
    for load in &report.loads {
        record(
            store,
            actor,
            "load",
            &load.load_id.to_string(),
            serde_json::json!({
                "source": load.source,
                "path": load.path,
                "identity": load.identity,
                "rows_read": load.stats.rows_read,
                "accepted": load.stats.accepted,
                "quarantined": load.stats.quarantined,
            }),
        )?;
    }
    Ok(report)
}

/// The log's entries in order (`after`: only those numbered after it; `limit`: at most this many).
pub fn entries(read: &dyn StoreRead, after: u64, limit: Option<usize>) -> Result<Vec<Entry>> {
    let query = JournalQuery {
        key: None,
        after,
        limit,
    };
    read.journal(STREAM, &query)?
        .iter()
        .map(|e| {
            serde_json::from_slice(&e.body)
                .with_context(|| format!("audit entry {} is not readable", e.seq))
        })
        .collect()
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verification {
    pub entries: u64,
    /// Every break found, in log order: the entry's number and what is wrong with it.
    pub problems: Vec<Problem>,
    /// The head as the log ends and as it was recorded.
    pub head: Option<Head>,
    pub recorded_head: Option<Head>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub seq: u64,
    pub what: String,
}

impl Verification {
    pub fn intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Walks the log from its first entry: each entry must be readable, numbered one after the entry
/// before it, link to that entry's hash and match its own; the last must be the recorded head.
pub fn verify(store: &dyn Store) -> Result<Verification> {
    let raw = store.journal(STREAM, &JournalQuery::default())?;
    let mut problems = Vec::new();
    let mut expected_seq = 1u64;
    let mut prev = String::new();
    let mut head = None;
    for j in &raw {
        let mut broke = |what: String| problems.push(Problem { seq: j.seq, what });
        let entry: Entry = match serde_json::from_slice(&j.body) {
            Ok(e) => e,
            Err(e) => {
                broke(format!("not readable as an audit entry: {e}"));
                expected_seq = j.seq + 1;
                prev = String::new();
                continue;
            }
        };
        if entry.seq != j.seq {
            broke(format!(
                "says it is entry {} but is stored as entry {}",
                entry.seq, j.seq
            ));
        }
        if entry.seq != expected_seq {
            broke(format!(
                "comes where entry {expected_seq} was expected: entries were removed or moved"
            ));
        }
        if entry.prev != prev {
            broke(format!(
                "links to {} but the entry before it hashes to {}",
                short(&entry.prev),
                short(&prev)
            ));
        }
        let digest = entry.digest();
        if digest != entry.hash {
            broke(format!(
                "was changed after it was written: it hashes to {}, not the {} it records",
                short(&digest),
                short(&entry.hash)
            ));
        }
        expected_seq = entry.seq + 1;
        prev = entry.hash.clone();
        head = Some(Head {
            seq: entry.seq,
            hash: entry.hash,
        });
    }
    let recorded_head: Option<Head> = match store.state(HEAD)? {
        Some(state) => Some(crate::access::read_json_state(state, "audit head")?),
        None => None,
    };
    match (&head, &recorded_head) {
        (_, None) => {}
        (None, Some(r)) => problems.push(Problem {
            seq: r.seq,
            what: format!("the log is empty but its head was entry {}", r.seq),
        }),
        (Some(h), Some(r)) if h.seq < r.seq => problems.push(Problem {
            seq: h.seq,
            what: format!(
                "the log ends at entry {} but reached entry {}: its last entries were removed",
                h.seq, r.seq
            ),
        }),
        (Some(h), Some(r)) if h.seq == r.seq && h.hash != r.hash => problems.push(Problem {
            seq: h.seq,
            what: "the last entry is not the one the head recorded".into(),
        }),
        // A head behind the log: an append whose head update was interrupted; the chain covers it.
        _ => {}
    }
    Ok(Verification {
        entries: raw.len() as u64,
        problems,
        head,
        recorded_head,
    })
}

fn short(hash: &str) -> String {
    if hash.is_empty() {
        "nothing".into()
    } else {
        hash.chars().take(12).collect()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use winsignal_store::EmbeddedStore;

    fn store_with(n: u64) -> (tempfile::TempDir, EmbeddedStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("ws")).unwrap();
        for i in 1..=n {
            record(
                &store,
                "local:test",
                "user.add",
                &format!("user{i}"),
                serde_json::json!({"role": "rep"}),
            )
            .unwrap();
        }
        (dir, store)
    }

    fn sql(dir: &tempfile::TempDir, statement: &str) {
        let conn = rusqlite::Connection::open(dir.path().join("ws").join("store.sqlite")).unwrap();
        let changed = conn.execute(statement, []).unwrap();
        assert!(changed > 0, "{statement} changed nothing");
    }

    #[test]
    fn an_untouched_log_verifies_and_its_entries_link() {
        let (_dir, store) = store_with(5);
        let v = verify(&store).unwrap();
        assert!(v.intact(), "{v:?}");
        assert_eq!(v.entries, 5);
        assert_eq!(v.head, v.recorded_head);
        let e = entries(&store, 0, None).unwrap();
        assert_eq!(e[0].prev, "");
        for w in e.windows(2) {
            assert_eq!(w[1].prev, w[0].hash);
            assert_eq!(w[1].seq, w[0].seq + 1);
        }
    }

    /// Every way of tampering with one entry of the file, on every entry: each is found, naming it.
    #[test]
    fn editing_removing_or_moving_any_one_entry_is_found() {
        let n = 5;
        for target in 1..=n {
            let tampering = [
                format!(
                    "UPDATE journal SET body = CAST(replace(CAST(body AS TEXT), 'user{target}', 'mallory') AS BLOB) WHERE stream = 'audit' AND seq = {target}"
                ),
                format!(
                    "UPDATE journal SET body = CAST(replace(CAST(body AS TEXT), '\"rep\"', '\"admin\"') AS BLOB) WHERE stream = 'audit' AND seq = {target}"
                ),
                format!("DELETE FROM journal WHERE stream = 'audit' AND seq = {target}"),
            ];
            for statement in tampering {
                let (dir, store) = store_with(n);
                sql(&dir, &statement);
                let v = verify(&store).unwrap();
                assert!(!v.intact(), "not found: {statement}");
                // An edited entry is named; a removed one by the entry after it (or the head).
                assert!(
                    v.problems
                        .iter()
                        .any(|p| p.seq == target || p.seq + 1 == target || p.seq == target + 1),
                    "{statement}: {v:?}"
                );
            }
        }
        // An edit whose hash is recomputed to match: the next entry still names the old hash.
        for target in 1..n {
            let (dir, store) = store_with(n);
            let mut entry = entries(&store, target - 1, Some(1)).unwrap().remove(0);
            entry.subject = "mallory".into();
            entry.hash = entry.digest();
            let conn =
                rusqlite::Connection::open(dir.path().join("ws").join("store.sqlite")).unwrap();
            conn.execute(
                "UPDATE journal SET body = ?1 WHERE stream = 'audit' AND seq = ?2",
                rusqlite::params![serde_json::to_vec(&entry).unwrap(), target as i64],
            )
            .unwrap();
            let v = verify(&store).unwrap();
            assert!(
                v.problems.iter().any(|p| p.seq == target + 1),
                "a rehashed edit of {target} not found: {v:?}"
            );
        }
        // Moving: two entries swap places (their numbers in the store swapped).
        for target in 1..n {
            let (dir, store) = store_with(n);
            let next = target + 1;
            sql(
                &dir,
                &format!("UPDATE journal SET seq = -1 WHERE stream = 'audit' AND seq = {target}"),
            );
            sql(
                &dir,
                &format!(
                    "UPDATE journal SET seq = {target} WHERE stream = 'audit' AND seq = {next}"
                ),
            );
            sql(
                &dir,
                &format!("UPDATE journal SET seq = {next} WHERE stream = 'audit' AND seq = -1"),
            );
            let v = verify(&store).unwrap();
            assert!(!v.intact(), "swapping {target} and {next} not found");
        }
    }

    #[test]
    fn appends_from_many_threads_keep_one_chain() {
        let (_dir, store) = store_with(0);
        std::thread::scope(|s| {
            for t in 0..4 {
                let store = &store;
                s.spawn(move || {
                    for i in 0..5 {
                        record(
                            store,
                            "local:test",
                            "load",
                            &format!("{t}-{i}"),
                            serde_json::json!({}),
                        )
                        .unwrap();
                    }
                });
            }
        });
        let v = verify(&store).unwrap();
        assert!(v.intact(), "{v:?}");
        assert_eq!((v.entries, v.recorded_head.unwrap().seq), (20, 20));
    }
}
