//! `winsignal users`: who may use the workspace's API, with which role, and their tokens. The rules
//! (hashing, roles, scope) live in `winsignal_workspace::access`; this parses and prints.

use anyhow::Result;
use clap::Subcommand;
use serde::Serialize;
use winsignal_core::Ts;
use winsignal_workspace::access::{self, Role};
use winsignal_workspace::audit;

use crate::{open_store, output, Global};

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Add a user and print their first token. The token is shown once: the workspace keeps only its
    /// SHA-256 and public id.
    Add {
        /// The user's name: letters, digits, '.', '_', '-' and '@'.
        name: String,
        /// admin (everything, users included), revops (every deal, rep and setting), manager (their
        /// team's deals: every rep whose chain of managers reaches theirs), rep (their own deals).
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// The CRM rep this user is (managers and reps; `winsignal reps` lists the ids).
        #[arg(long, value_name = "ID")]
        rep_id: Option<String>,
    },
    /// Make another token for a user and print it (shown once).
    Token { name: String },
    /// Revoke a user's tokens: all of them, or the one given.
    Revoke {
        name: String,
        /// The public id of the token to revoke (the 8 characters after `wst_`; `users list` shows
        /// them).
        #[arg(long, value_name = "ID")]
        token: Option<String>,
    },
    /// Every user with their role, rep and tokens (public ids only).
    List {
        /// Print as JSON (schema in docs/cli.md).
        #[arg(long)]
        json: bool,
    },
}

fn parse_role(s: &str) -> std::result::Result<Role, String> {
    s.parse().map_err(|e: anyhow::Error| e.to_string())
}

/// `users list --json`: one entry per user.
#[derive(Serialize)]
struct Listed {
    name: String,
    role: Role,
    rep_id: Option<String>,
    created_at: String,
    tokens: Vec<ListedToken>,
}

#[derive(Serialize)]
struct ListedToken {
    id: String,
    created_at: String,
    revoked_at: Option<String>,
}

pub fn run(global: &Global, command: UsersCommand) -> Result<()> {
    let store = open_store(global)?;
    match command {
        UsersCommand::Add { name, role, rep_id } => {
            let token = access::add_user(
                &store,
                &audit::local_actor(),
                &name,
                role,
                rep_id.as_deref(),
                Ts::now(),
            )?;
            print_token(&name, &token, global.quiet);
        }
        UsersCommand::Token { name } => {
            let token = access::add_token(&store, &audit::local_actor(), &name, Ts::now())?;
            print_token(&name, &token, global.quiet);
        }
        UsersCommand::Revoke { name, token } => {
            let n = access::revoke(
                &store,
                &audit::local_actor(),
                &name,
                token.as_deref(),
                Ts::now(),
            )?;
            println!(
                "Revoked {n} token{} of {name}.",
                if n == 1 { "" } else { "s" }
            );
        }
        UsersCommand::List { json } => {
            let users = access::users(&store)?;
            let listed: Vec<Listed> = users
                .users
                .into_values()
                .map(|u| Listed {
                    name: u.name,
                    role: u.role,
                    rep_id: u.rep_id,
                    created_at: u.created_at.to_rfc3339(),
                    tokens: u
                        .tokens
                        .into_iter()
                        .map(|t| ListedToken {
                            id: t.id,
                            created_at: t.created_at.to_rfc3339(),
                            revoked_at: t.revoked_at.map(Ts::to_rfc3339),
                        })
                        .collect(),
                })
                .collect();
            if json {
                return output::print_json(&serde_json::json!({ "users": listed }));
            }
            if listed.is_empty() {
                println!("No users yet: `winsignal users add NAME --role admin` adds the first.");
            }
            for u in &listed {
                let active = u.tokens.iter().filter(|t| t.revoked_at.is_none()).count();
                println!(
                    "{:<24} {:<8} {:<20} {} active token{} (of {})",
                    u.name,
                    u.role.as_str(),
                    u.rep_id.as_deref().unwrap_or("-"),
                    active,
                    if active == 1 { "" } else { "s" },
                    u.tokens.len()
                );
                for t in &u.tokens {
                    match &t.revoked_at {
                        None => println!("    {}  made {}", t.id, t.created_at),
                        Some(r) => println!("    {}  made {}, revoked {r}", t.id, t.created_at),
                    }
                }
            }
        }
    }
    Ok(())
}

/// The token on stdout alone (for scripts); what it is on stderr unless quiet.
fn print_token(name: &str, token: &str, quiet: bool) {
    println!("{token}");
    if !quiet {
        eprintln!(
            "The API token of {name}, shown this once (the workspace keeps only its hash). Send it as \
             `Authorization: Bearer <token>`."
        );
    }
}
