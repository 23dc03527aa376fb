//! `winsignal export`: the resolved data the engine computes from, as Parquet tables, so that data teams
//! (and the DuckDB comparison in bench/) can query exactly what winsignal sees.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Args;
use winsignal_features::context::NONE;
use winsignal_features::engine::Act;
use winsignal_features::snapshot;
use winsignal_store::Store;
use winsignal_workspace::pipeline::Reading;

use crate::features::{CatalogArg, Cell};
use crate::parquet_out::write_table;
use crate::progress::Bar;
use crate::Global;

#[derive(Args)]
pub struct ExportArgs {
    /// Directory to write activities, product_events, marketing_touches, support_tickets, contacts,
    /// opportunities and landmarks .parquet into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Catalog whose landmark settings decide landmarks.parquet (default: the built-in catalog).
    #[command(flatten)]
    catalog: CatalogArg,
}

fn text(s: &str) -> Cell<'_> {
    Cell::Text(s)
}

fn opt(s: Option<&str>) -> Cell<'_> {
    s.map_or(Cell::Null, Cell::Text)
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

pub fn run(global: &Global, store: &dyn Store, args: &ExportArgs) -> Result<()> {
    let catalog = args.catalog.load()?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let reading = Reading::open(store)?;
    let ctx = &reading.ctx;
    let engine = reading.engine(&mut Bar::new(global.quiet))?;
    let meta = serde_json::json!({ "exported_by": "winsignal export" });
    let account_id = |a: u32| (a != NONE).then(|| ctx.accounts[a as usize].id.as_str());
    let contact_id = |c: u32| (c != NONE).then(|| ctx.contacts[c as usize].id.as_str());
    let opp_id = |o: u32| (o != NONE).then(|| ctx.opps[o as usize].id.as_str());
    let path = |name: &str| -> PathBuf { args.out.join(format!("{name}.parquet")) };
    let mut written: Vec<(String, usize)> = Vec::new();
    let mut put = |name: &str, cols: &[&str], rows: Vec<Vec<Cell<'_>>>| -> Result<()> {
        write_table(&path(name), &names(cols), &rows, &meta)?;
        written.push((name.to_string(), rows.len()));
        Ok(())
    };

    // Activities: every one once, with the account it was resolved to.
    let mut acts: Vec<(u32, &Act)> = Vec::new();
    for (a, st) in engine.accounts().iter().enumerate() {
        acts.extend(st.acts().iter().map(|x| (a as u32, x)));
    }
    for d in engine.deals() {
        for x in d.acts() {
            if ctx.opps[x.opp as usize].account == NONE {
                acts.push((NONE, x));
            }
        }
    }
    acts.sort_by_key(|(_, x)| (x.at, x.seq));
    let rows = acts
        .iter()
        .map(|(a, x)| {
            vec![
                Cell::Number(x.seq as f64),
                opt(opp_id(x.opp)),
                opt(account_id(*a)),
                opt(contact_id(x.contact)),
                text(x.ty.as_str()),
                opt(x.dir.map(|d| d.as_str())),
                opt(x.status.map(|s| s.as_str())),
                Cell::Time(x.at),
                Cell::Time(x.created),
                Cell::Time(x.known),
                Cell::Number(x.duration_s as f64),
            ]
        })
        .collect();
    put(
        "activities",
        &[
            "seq",
            "opportunity_id",
            "account_id",
            "contact_id",
            "type",
            "direction",
            "status",
            "occurred_at",
            "created_at",
            "known_at",
            "duration_s",
        ],
        rows,
    )?;

    let mut rows = Vec::new();
    let mut touches = Vec::new();
    let mut tickets = Vec::new();
    for (a, st) in engine.accounts().iter().enumerate() {
        let id = ctx.accounts[a].id.as_str();
        for u in st.usage() {
            rows.push(vec![
                Cell::Number(u.seq as f64),
                text(id),
                opt(engine.user_name(engine.user_of(u))),
                opt(engine.event_name(u.event)),
                Cell::Time(u.at),
            ]);
        }
        for t in st.touches() {
            touches.push(vec![
                Cell::Number(t.seq as f64),
                text(id),
                opt(contact_id(t.contact)),
                text(t.kind.as_str()),
                Cell::Time(t.at),
            ]);
        }
        for t in st.tickets() {
            tickets.push(vec![
                Cell::Text(&t.id),
                text(id),
                text(t.priority.as_str()),
                Cell::Time(t.created),
                t.solved.map_or(Cell::Null, Cell::Time),
            ]);
        }
    }
    put(
        "product_events",
        &["seq", "account_id", "user_id", "event", "occurred_at"],
        rows,
    )?;
    put(
        "marketing_touches",
        &["seq", "account_id", "contact_id", "kind", "occurred_at"],
        touches,
    )?;
    put(
        "support_tickets",
        &[
            "ticket_id",
            "account_id",
            "priority",
            "created_at",
            "solved_at",
        ],
        tickets,
    )?;

    let rows = ctx
        .contacts
        .iter()
        .map(|c| {
            vec![
                text(&c.id),
                opt(account_id(c.account)),
                opt(c.title.as_deref()),
                text(c.seniority.as_str()),
            ]
        })
        .collect();
    put(
        "contacts",
        &["contact_id", "account_id", "title", "seniority"],
        rows,
    )?;
    let rows = ctx
        .opps
        .iter()
        .map(|o| {
            vec![
                text(&o.id),
                opt(account_id(o.account)),
                opt(o.rep.as_deref()),
                Cell::Time(o.created.0),
                o.closed.map_or(Cell::Null, |c| Cell::Time(c.0)),
                text(o.outcome.as_str()),
                o.amount.map_or(Cell::Null, Cell::Number),
            ]
        })
        .collect();
    put(
        "opportunities",
        &[
            "opportunity_id",
            "account_id",
            "rep_id",
            "created_at",
            "closed_at",
            "outcome",
            "amount",
        ],
        rows,
    )?;
    let horizon = snapshot::horizon(&engine);
    let lms = snapshot::landmarks(ctx, &catalog, horizon);
    let rows = lms
        .items
        .iter()
        .map(|l| {
            vec![
                text(&ctx.opps[l.opp as usize].id),
                opt(account_id(ctx.opps[l.opp as usize].account)),
                Cell::Text(&lms.names[l.name as usize]),
                Cell::Time(l.as_of.0),
            ]
        })
        .collect();
    put(
        "landmarks",
        &["opportunity_id", "account_id", "landmark", "as_of"],
        rows,
    )?;
    for (name, n) in &written {
        println!("{:<20} {:>10} rows  {}", name, n, path(name).display());
    }
    Ok(())
}
