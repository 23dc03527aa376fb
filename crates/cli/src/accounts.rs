//! `winsignal accounts --prioritise`: the accounts without an open deal, ranked for outreach by how
//! much they look like accounts we have won, how engaged they are now and who they are related to,
//! with the reasons in plain words.

use crate::features::CatalogArg;
use crate::output::n;
use crate::progress::Bar;
use crate::Global;
use anyhow::{bail, Result};
use clap::Args;
use winsignal_features::snapshot;
use winsignal_score::accounts::AccountPriority;
use winsignal_store::Store;
use winsignal_workspace::pipeline::Reading;

#[derive(Args)]
pub struct AccountsArgs {
    /// Rank the accounts without an open deal for outreach (the only mode for now, so required).
    #[arg(long)]
    pub prioritise: bool,
    /// How many accounts to list (text and JSON).
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Print the ranking as JSON (schema in docs/cli.md).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub catalog: CatalogArg,
}

pub fn run(global: &Global, store: &dyn Store, args: &AccountsArgs) -> Result<()> {
    if !args.prioritise {
        bail!(
            "`winsignal accounts` ranks the accounts that have no open deal for outreach: how much \
             they look like accounts you have won, their recent product use, sales activities and \
             marketing touches, and related accounts that are customers. Run it as \
             `winsignal accounts --prioritise` (options: --top N, --json)."
        );
    }
    // Checked so a broken catalog fails here as in every feature command; prioritisation itself
    // reads no behaviour definitions.
    args.catalog.load()?;
    let reading = Reading::open(store)?;
    let ctx = &reading.ctx;
    let engine = reading.engine(&mut Bar::new(global.quiet))?;
    if ctx.accounts.is_empty() {
        bail!("no accounts in {}", global.data.display());
    }
    let as_of = snapshot::horizon(&engine);
    let mut p = winsignal_workspace::scoring::account_priorities(&engine);
    let rest = p.ranked.split_off(args.top.min(p.ranked.len()));
    if args.json {
        return crate::output::print_json(&p);
    }
    println!(
        "Accounts to contact: {} of {} accounts have no open deal; ranked as of {} (top {}).",
        n(p.candidates as u64),
        n(p.accounts as u64),
        as_of.to_date_string(),
        p.ranked.len()
    );
    println!(
        "Score 0–100 = {:.0} × fit (looks like won accounts) + {:.0} × engagement (decayed, half-life \
         {:.0} days) + {:.0} × relationship (customer, or a related account is).",
        100.0 * p.options.weight_fit,
        100.0 * p.options.weight_engagement,
        p.options.half_life_days,
        100.0 * p.options.weight_relationship
    );
    for a in &p.ranked {
        print_account(a);
    }
    // Customers usually lead (they are warm and use the product); show the best accounts that are
    // not customers yet too, so new business is not hidden below them.
    let prospects: Vec<&AccountPriority> = rest
        .iter()
        .filter(|a| a.status != "customer")
        .take(5.min(args.top))
        .collect();
    if !prospects.is_empty() {
        println!();
        println!("Best-ranked accounts that are not customers yet:");
        for a in prospects {
            print_account(a);
        }
    }
    Ok(())
}

fn print_account(a: &AccountPriority) {
    println!();
    println!(
        "{:>4}. {:>5.1}  {}  {}  ({}, {}; {})",
        a.rank,
        a.score,
        a.account_id,
        a.name.as_deref().unwrap_or(""),
        a.segment.as_deref().unwrap_or("size unknown"),
        a.industry.as_deref().unwrap_or("industry unknown"),
        a.status.replace('_', " ")
    );
    for r in &a.reasons {
        println!("        - {r}");
    }
}
