//! `winsignal audit`: the workspace's audit log, and the check that no entry of it was changed,
//! removed or moved. The log and its rules live in `winsignal_workspace::audit`; this prints.

use anyhow::{bail, Result};
use clap::Subcommand;
use winsignal_workspace::audit;

use crate::{open_store, output, Global};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// The entries in order: number, time, actor, action, subject and details.
    List {
        /// Only the entries numbered after N.
        #[arg(long, value_name = "N", default_value_t = 0)]
        after: u64,
        /// At most N entries.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Print as JSON (schema in docs/cli.md).
        #[arg(long)]
        json: bool,
    },
    /// Check the hash chain from the first entry to the recorded head. Exits with status 1 and names
    /// each entry that was changed, removed or moved; prints the head, to keep elsewhere.
    Verify {
        /// Print as JSON (schema in docs/cli.md).
        #[arg(long)]
        json: bool,
    },
}

pub fn run(global: &Global, command: AuditCommand) -> Result<()> {
    let store = open_store(global)?;
    match command {
        AuditCommand::List { after, limit, json } => {
            let entries = audit::entries(&store, after, limit)?;
            if json {
                return output::print_json(&serde_json::json!({ "entries": entries }));
            }
            if entries.is_empty() {
                println!(
                    "No audit entries{}.",
                    if after > 0 { " after that" } else { "" }
                );
            }
            for e in &entries {
                println!(
                    "{:>6}  {}  {:<20} {:<13} {}  {}",
                    e.seq,
                    e.at.to_rfc3339(),
                    e.actor,
                    e.action,
                    e.subject,
                    e.details
                );
            }
            Ok(())
        }
        AuditCommand::Verify { json } => {
            let v = audit::verify(&store)?;
            if json {
                output::print_json(&v)?;
            } else {
                for p in &v.problems {
                    println!("entry {}: {}", p.seq, p.what);
                }
                match &v.head {
                    Some(h) if v.intact() => println!(
                        "The audit log is intact: {} entries; head entry {} with hash {}.",
                        v.entries, h.seq, h.hash
                    ),
                    None if v.intact() => println!("The audit log is empty."),
                    _ => println!(
                        "The audit log was tampered with: {} problem{} in {} entries.",
                        v.problems.len(),
                        if v.problems.len() == 1 { "" } else { "s" },
                        v.entries
                    ),
                }
            }
            if !v.intact() {
                bail!("the audit log does not verify");
            }
            Ok(())
        }
    }
}
