//! `winsignal webhooks`: where `winsignal serve` sends score changes (a JSON receiver, Slack, a CRM),
//! on which trigger. The rules (triggers, payloads, signatures, delivery progress) live in
//! `winsignal_workspace::hooks`; this parses and prints.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use clap::Subcommand;
use winsignal_core::Ts;
use winsignal_workspace::hooks::{self, Format, NewHook, Trigger};

use crate::{open_store, output, Global};

#[derive(Subcommand)]
pub enum WebhooksCommand {
    /// Add a webhook and print its signing secret (shown once). It is sent the score changes (or, with
    /// `--on alert`, the monitoring alerts) recorded from now on, by `winsignal serve`, signed
    /// (`Winsignal-Signature`, docs/api.md), at least once.
    Add {
        /// The webhook's name: letters, digits, '.', '_' and '-'.
        name: String,
        /// Where to send: http(s)://host[:port]/path. For salesforce, the record's URL with `{id}` for
        /// the opportunity id, e.g. https://<instance>/services/data/v62.0/sobjects/Opportunity/{id}.
        #[arg(long)]
        url: String,
        /// json (the score change), slack (a Block Kit message for an incoming webhook), salesforce
        /// (an sObject PATCH of the score, reasons and next action), dynamics (an
        /// msdyn_predictivescore record: score, trend, grade, reasons).
        #[arg(long, default_value = "json", value_parser = parse_format)]
        format: Format,
        /// Which changes to send: change (every one), drop:<points> (P(win) fell by more than that
        /// many points), missing (the deal entered a stage without a proven behaviour),
        /// stalled:<days> (the open deal has had no activity, call or stage entry for that many days;
        /// sent once, when it crosses the line), alert (monitoring alerts from `winsignal monitor
        /// check` or `serve --monitor-every`: live AUC below the floor with the rollback
        /// recommendation, drift; json and slack only). Default: drop:10 for slack, change otherwise.
        #[arg(long = "on", value_name = "TRIGGER", value_parser = parse_trigger)]
        trigger: Option<Trigger>,
        /// An extra request header, `Name: value` (e.g. the CRM's Authorization); repeatable. Values
        /// are kept in the workspace and never listed or logged.
        #[arg(long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
        headers: Vec<(String, String)>,
        /// For salesforce: which field receives what, `score=Field__c`, `reasons=Field__c`,
        /// `next_action=Field__c`; repeatable. Default: Winsignal_Score__c, Winsignal_Reasons__c,
        /// Winsignal_Next_Action__c.
        #[arg(long = "field", value_name = "WHAT=FIELD", value_parser = parse_field)]
        fields: Vec<(String, String)>,
    },
    /// Remove a webhook; what it had not been sent yet is dropped with it.
    Remove { name: String },
    /// Every webhook with its trigger and delivery progress (URLs shortened to their host: a Slack
    /// webhook's path is its secret).
    List {
        /// Print as JSON (schema in docs/cli.md).
        #[arg(long)]
        json: bool,
    },
}

fn parse_format(s: &str) -> std::result::Result<Format, String> {
    s.parse().map_err(|e: anyhow::Error| e.to_string())
}

fn parse_trigger(s: &str) -> std::result::Result<Trigger, String> {
    s.parse().map_err(|e: anyhow::Error| e.to_string())
}

fn parse_header(s: &str) -> std::result::Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("header {s:?}: expected `Name: value`"))?;
    Ok((name.trim().to_string(), value.trim().to_string()))
}

fn parse_field(s: &str) -> std::result::Result<(String, String), String> {
    let (what, field) = s
        .split_once('=')
        .ok_or_else(|| format!("field {s:?}: expected WHAT=FIELD, e.g. score=Win_Score__c"))?;
    Ok((what.trim().to_string(), field.trim().to_string()))
}

pub fn run(global: &Global, command: WebhooksCommand) -> Result<()> {
    let store = open_store(global)?;
    match command {
        WebhooksCommand::Add {
            name,
            url,
            format,
            trigger,
            headers,
            fields,
        } => {
            let hook = hooks::add(
                &store,
                NewHook {
                    name,
                    url,
                    format,
                    trigger,
                    headers,
                    fields: fields.into_iter().collect::<BTreeMap<_, _>>(),
                },
                Ts::now(),
            )
            .context("cannot add the webhook")?;
            println!("{}", hook.secret);
            if !global.quiet {
                eprintln!(
                    "The signing secret of webhook {}, shown this once. Verify `Winsignal-Signature` \
                     with it (docs/api.md). Sent on: {}.",
                    hook.name, hook.trigger
                );
            }
        }
        WebhooksCommand::Remove { name } => {
            if hooks::remove(&store, &name)? {
                println!("Removed webhook {name}.");
            } else {
                anyhow::bail!("no webhook named {name:?} (`winsignal webhooks list` lists them)");
            }
        }
        WebhooksCommand::List { json } => {
            let listed = hooks::list(&store)?;
            if json {
                return output::print_json(&serde_json::json!({ "webhooks": listed }));
            }
            if listed.is_empty() {
                println!("No webhooks: `winsignal webhooks add NAME --url URL` adds one.");
            }
            for h in &listed {
                println!(
                    "{:<20} {:<10} on {:<10} {}  delivered {}, refused {}, backlog {}",
                    h.name,
                    h.format.as_str(),
                    h.trigger,
                    h.url,
                    h.delivered,
                    h.refused,
                    h.backlog
                );
            }
        }
    }
    Ok(())
}
