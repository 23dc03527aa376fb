//! `winsignal feedback`: what reps said of the next-best actions ("done", "not relevant"), summed per
//! behaviour, or every piece on one deal. Given in the dashboard or the API
//! (`POST /v1/deals/{id}/feedback`); kept by `winsignal_workspace::feedback`.

use anyhow::Result;
use clap::Args;
use winsignal_store::Store;
use winsignal_workspace::feedback;

use crate::output;

#[derive(Args)]
pub struct FeedbackArgs {
    /// Every piece of feedback on this deal instead of the summary.
    #[arg(long, value_name = "OPPORTUNITY_ID")]
    deal: Option<String>,
    /// Print as JSON (schema in docs/cli.md).
    #[arg(long)]
    json: bool,
}

pub fn run(store: &dyn Store, args: FeedbackArgs) -> Result<()> {
    if let Some(deal) = &args.deal {
        let long = winsignal_core::sfdc::to_18(deal);
        let mut given = feedback::list(store, Some(deal))?;
        if given.is_empty() && long != *deal {
            given = feedback::list(store, Some(&long))?;
        }
        if args.json {
            return output::print_json(&serde_json::json!({ "feedback": given }));
        }
        if given.is_empty() {
            println!("No feedback on {deal}.");
        }
        for f in &given {
            println!(
                "{}  {:<24} {:<13} by {} (P(win) {:.0}%, model {}){}",
                f.at.to_rfc3339(),
                f.behaviour,
                match f.verdict {
                    feedback::Verdict::Done => "done",
                    feedback::Verdict::NotRelevant => "not relevant",
                },
                f.user,
                100.0 * f.p_win,
                f.model_id,
                if f.comment.is_empty() {
                    String::new()
                } else {
                    format!(": {}", f.comment)
                }
            );
        }
        return Ok(());
    }
    let summary = feedback::summary(store)?;
    if args.json {
        return output::print_json(&serde_json::json!({ "behaviours": summary }));
    }
    if summary.is_empty() {
        println!("No feedback on actions yet.");
        return Ok(());
    }
    println!(
        "{:<28} {:>6} {:>6} {:>13} {:>14}",
        "behaviour", "deals", "done", "not relevant", "not relevant %"
    );
    for b in &summary {
        println!(
            "{:<28} {:>6} {:>6} {:>13} {:>13.0}%",
            b.behaviour,
            b.deals,
            b.done,
            b.not_relevant,
            100.0 * b.not_relevant_share
        );
    }
    Ok(())
}
