//! `winsignal review`: the review queue of high-impact score changes, the decisions on it, and its
//! rules. The rules and the queue live in `winsignal_workspace::review`; this parses and prints. A
//! command run on the machine reviews as `local:<account>` with an admin's reach.

use anyhow::Result;
use clap::{ArgGroup, Args, Subcommand};
use winsignal_store::Store;
use winsignal_workspace::access::{Role, Scope};
use winsignal_workspace::audit;
use winsignal_workspace::review::{self, Ask, Reviewed, Rules, Verdict};

use crate::output;

#[derive(Subcommand)]
pub enum ReviewCommand {
    /// The items waiting for a decision (with --all, decided ones too, with their decisions).
    List {
        #[arg(long)]
        all: bool,
        /// Print as JSON (schema in docs/cli.md).
        #[arg(long)]
        json: bool,
    },
    /// Decide an item: accept, reject, or edit with the corrected P(win); with a reason code (agree,
    /// wrong_data, missing_context, model_error, other) and a comment.
    Decide(DecideArgs),
    /// Show or set what goes into the queue: large score changes, strategic accounts' actions, a team's
    /// coaching focus changing.
    Rules {
        /// A P(win) change of more than this many percentage points.
        #[arg(long, value_name = "POINTS")]
        score_change_points: Option<f64>,
        /// ... on a deal of at least this amount.
        #[arg(long, value_name = "AMOUNT")]
        min_amount: Option<f64>,
        /// An account whose deals' next actions are reviewed (repeat for several).
        #[arg(long = "strategic-account", value_name = "ID")]
        strategic_accounts: Vec<String>,
        /// Whether a team's coaching focus changing with new findings (another behaviour becoming the
        /// one its reps have the most to gain from, found by `reps` or the API's findings and
        /// scorecards) is reviewed: on or off.
        #[arg(long, value_name = "on|off", value_parser = parse_on_off)]
        coaching_changes: Option<bool>,
        /// Clear every rule (nothing is queued).
        #[arg(long, conflicts_with_all = ["score_change_points", "min_amount", "strategic_accounts", "coaching_changes"])]
        clear: bool,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
#[command(group(ArgGroup::new("verdict").required(true).args(["accept", "reject", "edit"])))]
pub struct DecideArgs {
    /// The item's number (`review list`).
    id: u64,
    /// Accept the change as it is.
    #[arg(long)]
    accept: bool,
    /// Reject it (the score is wrong for the reason given).
    #[arg(long)]
    reject: bool,
    /// Edit: the P(win) the deal should have (0 to 1), kept as the reviewer's override.
    #[arg(long, value_name = "P")]
    edit: Option<f64>,
    /// Why: agree, wrong_data, missing_context, model_error or other.
    #[arg(long, value_name = "CODE")]
    reason_code: String,
    /// What the reviewer saw, in words.
    #[arg(long, default_value = "")]
    comment: String,
}

fn print_item(r: &Reviewed) {
    match (&r.item.change, &r.item.coaching) {
        (Some(c), _) => println!(
            "{:>5}  {}  {:<18} rep {:<10} P(win) {} → {}  {}",
            r.item.id,
            r.item.created_at.to_rfc3339(),
            c.opportunity_id,
            c.rep_id.as_deref().unwrap_or("–"),
            c.before
                .map_or("–".into(), |p| format!("{:.0}%", 100.0 * p)),
            c.after.map_or("–".into(), |p| format!("{:.0}%", 100.0 * p)),
            r.item.why
        ),
        (None, Some(t)) => println!(
            "{:>5}  {}  team {:<13} {} reps  {}",
            r.item.id,
            r.item.created_at.to_rfc3339(),
            t.team,
            t.rep_ids.len(),
            r.item.why
        ),
        (None, None) => println!(
            "{:>5}  {}  {}",
            r.item.id,
            r.item.created_at.to_rfc3339(),
            r.item.why
        ),
    }
    if let Some(d) = &r.decision {
        println!(
            "       {:?} by {} ({}): {}{}",
            d.verdict,
            d.reviewer,
            d.reason_code,
            d.comment,
            d.corrected_p_win.map_or(String::new(), |p| format!(
                " — corrected to {:.0}%",
                100.0 * p
            ))
        );
    }
}

pub fn run(store: &dyn Store, command: ReviewCommand) -> Result<()> {
    let actor = audit::local_actor();
    match command {
        ReviewCommand::List { all, json } => {
            let items = review::list(store, &Scope::All, all)?;
            if json {
                return output::print_json(&serde_json::json!({ "items": items }));
            }
            if items.is_empty() {
                println!(
                    "No item{} in the review queue.",
                    if all { "" } else { " waiting" }
                );
            }
            for r in &items {
                print_item(r);
            }
            Ok(())
        }
        ReviewCommand::Decide(a) => {
            let verdict = if a.accept {
                Verdict::Accept
            } else if a.reject {
                Verdict::Reject
            } else {
                Verdict::Edit
            };
            let d = review::decide(
                store,
                a.id,
                &actor,
                Role::Admin,
                &Scope::All,
                &Ask {
                    verdict,
                    reason_code: &a.reason_code,
                    comment: &a.comment,
                    corrected_p_win: a.edit,
                },
            )?;
            println!(
                "Item {} decided: {:?} by {} ({}){}.",
                d.item,
                d.verdict,
                d.reviewer,
                d.reason_code,
                if d.model_id.is_empty() {
                    String::new()
                } else {
                    format!(", on model {}", d.model_id)
                }
            );
            Ok(())
        }
        ReviewCommand::Rules {
            score_change_points,
            min_amount,
            strategic_accounts,
            coaching_changes,
            clear,
            json,
        } => {
            let mut r = review::rules(store)?;
            let changing = clear
                || score_change_points.is_some()
                || min_amount.is_some()
                || !strategic_accounts.is_empty()
                || coaching_changes.is_some();
            if clear {
                r = Rules::default();
            }
            if score_change_points.is_some() {
                r.score_change_points = score_change_points;
            }
            if min_amount.is_some() {
                r.min_amount = min_amount;
            }
            if !strategic_accounts.is_empty() {
                r.strategic_accounts = strategic_accounts;
            }
            if let Some(on) = coaching_changes {
                r.coaching_changes = on;
            }
            if changing {
                review::set_rules(store, &actor, &r)?;
            }
            if json {
                return output::print_json(&r);
            }
            match r.score_change_points {
                Some(p) => println!(
                    "Score changes of more than {p} points{} are reviewed.",
                    r.min_amount
                        .map_or(String::new(), |m| format!(" on deals of at least {m}"))
                ),
                None => println!("Score changes are not reviewed."),
            }
            if r.strategic_accounts.is_empty() {
                println!("No strategic account.");
            } else {
                println!(
                    "Next actions for these accounts are reviewed: {}.",
                    r.strategic_accounts.join(", ")
                );
            }
            println!(
                "A team's coaching focus changing is {}reviewed.",
                if r.coaching_changes { "" } else { "not " }
            );
            Ok(())
        }
    }
}

fn parse_on_off(s: &str) -> std::result::Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("{s:?}: expected on or off")),
    }
}
