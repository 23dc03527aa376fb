//! Outbound webhooks: which score changes go where, in which shape, and how far each has been
//! delivered. The rules live here; the server's outbox worker only sends what [`pending`] gives it and
//! reports back with [`advance`].
//!
//! The outbox is durable without a second copy of anything: every score change is recorded in the
//! journal [`crate::live::SCORE_HISTORY`] before the request that caused it is answered, and each
//! webhook keeps a cursor (the number of the last history entry it is done with) in the journal
//! [`DELIVERIES`], moved only after the receiver answered 2xx. A process that stops between a delivery
//! and its cursor sends that message again: delivery is at least once, and every message carries an
//! idempotency key (`<webhook>:<history number>`) the same on every attempt, so a receiver can drop
//! repeats.
//!
//! Every request is signed: `Winsignal-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` of
//! `"<t>.<body>"` with the webhook's secret (shown once, when the webhook is added). docs/api.md says
//! how to verify it.

use std::collections::BTreeMap;

use anyhow::{bail, Context as _, Result};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use winsignal_core::Ts;
use winsignal_store::{JournalQuery, Store, StoreRead};

use crate::live::{ScoreChange, SCORE_HISTORY};

/// The webhooks, among the store's named states.
pub const WEBHOOKS: &str = "webhooks";
/// The journal of delivery progress, keyed by webhook name.
pub const DELIVERIES: &str = "webhook-deliveries";
/// The journal of messages a receiver refused for good (a 4xx other than 408 and 429), keyed by
/// webhook name.
pub const REFUSED: &str = "webhook-refused";

/// The shape a webhook's messages take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// `{"id", "type": "score_change", "created_at", "data": <score change>}`, POSTed.
    Json,
    /// A Slack message (Block Kit) for an incoming-webhook URL, POSTed.
    Slack,
    /// A Salesforce sObject update of the configured fields, PATCHed to the URL with `{id}` replaced
    /// by the opportunity id.
    Salesforce,
    /// A Dynamics 365 `msdyn_predictivescore` record (score, trend, grade, reasons), POSTed.
    Dynamics,
}

impl Format {
    pub const ALL: [Format; 4] = [
        Format::Json,
        Format::Slack,
        Format::Salesforce,
        Format::Dynamics,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Slack => "slack",
            Format::Salesforce => "salesforce",
            Format::Dynamics => "dynamics",
        }
    }

    /// The trigger a webhook of this format has unless told otherwise.
    pub fn default_trigger(self) -> Trigger {
        match self {
            Format::Slack => Trigger::Drop { points: 10.0 },
            _ => Trigger::Change,
        }
    }
}

impl std::str::FromStr for Format {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Format> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .with_context(|| {
                format!("format {s:?}: expected one of json, slack, salesforce, dynamics")
            })
    }
}

/// Which score changes a webhook is sent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "on", rename_all = "snake_case")]
pub enum Trigger {
    /// Every change (first scores, moves, deals closing). CRM formats skip deals no longer open.
    Change,
    /// P(win) fell by more than `points` percentage points in one change.
    Drop { points: f64 },
    /// The deal entered a stage and lacks a proven behaviour (it has a next action).
    Missing,
    /// The open deal has been idle (no activity, call or stage entry) for `days` days: sent once,
    /// when it crosses that line (the clock's rescoring finds it; see `serve --rescore-every`).
    Stalled { days: f64 },
    /// Monitoring alerts ([`crate::alerts`]: live AUC below the floor with the rollback recommendation,
    /// drift in the latest window), when they start, change and end. No score change fires it.
    Alert,
}

impl Trigger {
    /// Whether `change` sets this trigger off.
    pub fn fires(&self, change: &ScoreChange) -> bool {
        match *self {
            Trigger::Change => true,
            Trigger::Drop { points } => match (change.before, change.after) {
                (Some(b), Some(a)) => (b - a) * 100.0 > points,
                _ => false,
            },
            Trigger::Missing => {
                change.after.is_some()
                    && change.next_action.is_some()
                    && change.stage.is_some()
                    && change.previous_stage.is_some()
                    && change.stage != change.previous_stage
            }
            Trigger::Stalled { days } => change.stalls(days),
            Trigger::Alert => false,
        }
    }
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trigger::Change => f.write_str("change"),
            Trigger::Drop { points } => write!(f, "drop:{points}"),
            Trigger::Missing => f.write_str("missing"),
            Trigger::Stalled { days } => write!(f, "stalled:{days}"),
            Trigger::Alert => f.write_str("alert"),
        }
    }
}

impl std::str::FromStr for Trigger {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Trigger> {
        let expected =
            "expected change, missing, alert, drop:<points> (e.g. drop:10) or stalled:<days> (e.g. stalled:14)";
        match s.split_once(':') {
            None if s == "change" => Ok(Trigger::Change),
            None if s == "alert" => Ok(Trigger::Alert),
            None if s == "missing" => Ok(Trigger::Missing),
            Some(("drop", points)) => {
                let points: f64 = points
                    .parse()
                    .with_context(|| format!("trigger {s:?}: {points:?} is not a number"))?;
                if !(points.is_finite() && (0.0..100.0).contains(&points)) {
                    bail!("trigger {s:?}: the points must be at least 0 and under 100");
                }
                Ok(Trigger::Drop { points })
            }
            Some(("stalled", days)) => {
                let days: f64 = days
                    .parse()
                    .with_context(|| format!("trigger {s:?}: {days:?} is not a number"))?;
                if !(days.is_finite() && days > 0.0 && days <= 3650.0) {
                    bail!("trigger {s:?}: the days must be over 0 and at most 3650");
                }
                Ok(Trigger::Stalled { days })
            }
            _ => bail!("trigger {s:?}: {expected}"),
        }
    }
}

/// A webhook as the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hook {
    pub name: String,
    pub url: String,
    pub format: Format,
    pub trigger: Trigger,
    /// The signing secret (`whsec_` and 64 hex digits). The server needs it to sign, so it is kept as
    /// is; it is shown once, when the webhook is added, and never listed or logged.
    pub secret: String,
    /// Extra request headers (e.g. the CRM's `Authorization`). Their values are never listed or logged.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// For `salesforce`: which sObject field receives what (`score`, `reasons`, `next_action`).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    pub created_at: Ts,
    /// Score changes recorded up to this history number were made before the webhook existed: it is
    /// not sent them.
    pub start_after: u64,
}

impl Hook {
    /// The journal the webhook's messages are made from: monitoring alerts for the `alert` trigger,
    /// else the score history.
    pub fn journal(&self) -> &'static str {
        journal_of(self.trigger)
    }
}

fn journal_of(trigger: Trigger) -> &'static str {
    match trigger {
        Trigger::Alert => crate::alerts::ALERTS,
        _ => SCORE_HISTORY,
    }
}

/// Every webhook, by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hooks {
    pub hooks: BTreeMap<String, Hook>,
}

/// What `winsignal webhooks add` asks for.
#[derive(Debug, Clone)]
pub struct NewHook {
    pub name: String,
    pub url: String,
    pub format: Format,
    pub trigger: Option<Trigger>,
    pub headers: Vec<(String, String)>,
    pub fields: BTreeMap<String, String>,
}

/// The Salesforce fields written unless configured (custom fields an admin adds to Opportunity).
pub const SALESFORCE_FIELDS: [(&str, &str); 3] = [
    ("score", "Winsignal_Score__c"),
    ("reasons", "Winsignal_Reasons__c"),
    ("next_action", "Winsignal_Next_Action__c"),
];

/// The webhooks as the store holds them (none yet: empty).
pub fn hooks(store: &dyn Store) -> Result<Hooks> {
    match store.state(WEBHOOKS)? {
        Some(state) => crate::access::read_json_state(state, "webhooks"),
        None => Ok(Hooks::default()),
    }
}

/// Adds a webhook, sent the score changes recorded from now on. Returns it with its secret (the only
/// time the secret is shown).
pub fn add(store: &dyn Store, new: NewHook, now: Ts) -> Result<Hook> {
    check_name(&new.name)?;
    check_url(&new.url)?;
    for (name, _) in &new.headers {
        let plain = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !plain {
            bail!("header name {name:?}: use letters, digits, '-' and '_'");
        }
    }
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    if new.format == Format::Salesforce {
        fields.extend(
            SALESFORCE_FIELDS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
    }
    for (what, field) in new.fields {
        if new.format != Format::Salesforce {
            bail!("--field is for salesforce webhooks (which fields receive the score, reasons and next action)");
        }
        if !SALESFORCE_FIELDS.iter().any(|(k, _)| *k == what) {
            bail!("--field {what}=…: expected score, reasons or next_action");
        }
        fields.insert(what, field);
    }
    if new.format == Format::Salesforce && !new.url.contains("{id}") {
        bail!("a salesforce webhook's URL names the record with {{id}}, e.g. https://<instance>/services/data/v62.0/sobjects/Opportunity/{{id}}");
    }
    let trigger = new.trigger.unwrap_or(new.format.default_trigger());
    if trigger == Trigger::Alert && !matches!(new.format, Format::Json | Format::Slack) {
        bail!(
            "the alert trigger is for json and slack webhooks: a {} webhook writes deal scores",
            new.format.as_str()
        );
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("no randomness for a secret: {e}"))?;
    let start_after = store
        .journal_latest(journal_of(trigger))?
        .iter()
        .map(|e| e.seq)
        .max()
        .unwrap_or(0);
    let hook = Hook {
        trigger,
        name: new.name,
        url: new.url,
        format: new.format,
        secret: format!("whsec_{}", crate::access::hex(&secret)),
        headers: new.headers,
        fields,
        created_at: now,
        start_after,
    };
    crate::access::change_json_state(store, WEBHOOKS, "webhooks", |hooks: &mut Hooks| {
        if hooks.hooks.contains_key(&hook.name) {
            bail!(
                "a webhook named {:?} exists; remove it first or choose another name",
                hook.name
            );
        }
        hooks.hooks.insert(hook.name.clone(), hook.clone());
        Ok(())
    })?;
    Ok(hook)
}

/// Removes a webhook; its undelivered messages are dropped with it. Returns whether it existed.
pub fn remove(store: &dyn Store, name: &str) -> Result<bool> {
    crate::access::change_json_state(store, WEBHOOKS, "webhooks", |hooks: &mut Hooks| {
        Ok(hooks.hooks.remove(name).is_some())
    })
}

fn check_name(name: &str) -> Result<()> {
    let plain = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !plain {
        bail!("webhook name {name:?}: use letters, digits, '.', '_' and '-' (at most 64)");
    }
    Ok(())
}

fn check_url(url: &str) -> Result<()> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .with_context(|| format!("URL {url:?}: expected http:// or https://"))?;
    if rest.is_empty() || rest.starts_with('/') || url.chars().any(char::is_whitespace) {
        bail!("URL {url:?}: expected http(s)://host[:port]/path");
    }
    Ok(())
}

/// How far a webhook's delivery has come, as recorded in [`DELIVERIES`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Every score change numbered up to this one is done with (delivered, not for this webhook, or
    /// refused for good).
    pub through: u64,
    /// Messages delivered, in all.
    pub delivered: u64,
    /// Messages the receiver refused for good, in all.
    pub refused: u64,
    /// When the webhook this progress is of was added: a webhook removed and added again under its
    /// name starts afresh instead of inheriting the old one's progress.
    #[serde(default)]
    pub hook_created_at: Option<Ts>,
}

/// A webhook's recorded progress (none yet: from where it started).
pub fn progress(read: &dyn StoreRead, hook: &Hook) -> Result<Progress> {
    let last = read.journal_latest(DELIVERIES)?;
    let mine = last.iter().find(|e| e.key == hook.name);
    let recorded: Option<Progress> = mine
        .map(|e| serde_json::from_slice(&e.body))
        .transpose()
        .with_context(|| {
            format!(
                "the delivery progress of webhook {:?} is damaged",
                hook.name
            )
        })?;
    // A webhook removed and added again under its name starts over.
    Ok(match recorded {
        Some(p) if p.hook_created_at == Some(hook.created_at) && p.through >= hook.start_after => p,
        _ => Progress {
            through: hook.start_after,
            hook_created_at: Some(hook.created_at),
            ..Progress::default()
        },
    })
}

/// One message to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The score history number of the change it is about.
    pub seq: u64,
    /// The same on every attempt: `<webhook>:<seq>`.
    pub idempotency_key: String,
    pub method: &'static str,
    pub url: String,
    pub body: Vec<u8>,
}

/// The messages of the score changes recorded after `after`, at most `limit` changes read, and the
/// number of the last change read (to move the cursor over changes that fire nothing).
pub fn pending(
    read: &dyn StoreRead,
    hook: &Hook,
    after: u64,
    limit: usize,
) -> Result<(Vec<Message>, u64)> {
    let entries = read.journal(
        hook.journal(),
        &JournalQuery {
            key: None,
            after,
            limit: Some(limit),
        },
    )?;
    let through = entries.last().map_or(after, |e| e.seq);
    let mut out = Vec::new();
    if hook.trigger == Trigger::Alert {
        for e in entries {
            let alert: crate::alerts::Alert = serde_json::from_slice(&e.body)
                .with_context(|| format!("monitoring alert entry {} cannot be read", e.seq))?;
            out.push(render_alert(hook, e.seq, e.at, &alert)?);
        }
        return Ok((out, through));
    }
    for e in entries {
        let change: ScoreChange = serde_json::from_slice(&e.body)
            .with_context(|| format!("score history entry {} cannot be read", e.seq))?;
        if let Some(m) = render(hook, e.seq, e.at, &change)? {
            out.push(m);
        }
    }
    Ok((out, through))
}

/// The message `hook` is sent for the change numbered `seq` (recorded at `at`), if the change sets its
/// trigger off and the format has something to say about it.
pub fn render(hook: &Hook, seq: u64, at: Ts, change: &ScoreChange) -> Result<Option<Message>> {
    if !hook.trigger.fires(change) {
        return Ok(None);
    }
    let id = format!("{}:{seq}", hook.name);
    let (method, url, body) = match hook.format {
        Format::Json => (
            "POST",
            hook.url.clone(),
            serde_json::json!({
                "id": id,
                "type": "score_change",
                "created_at": at.to_rfc3339(),
                "data": change,
            }),
        ),
        Format::Slack => ("POST", hook.url.clone(), slack(hook, change)),
        Format::Salesforce => {
            let Some(after) = change.after else {
                return Ok(None);
            };
            let field = |k: &str| hook.fields.get(k).cloned().unwrap_or_default();
            let mut body = serde_json::Map::new();
            body.insert(field("score"), serde_json::json!(points(after)));
            body.insert(field("reasons"), change.reasons.join("; ").into());
            body.insert(
                field("next_action"),
                change
                    .next_action
                    .as_ref()
                    .map_or(serde_json::Value::Null, |a| a.title.clone().into()),
            );
            let url = hook
                .url
                .replace("{id}", &percent_encode(&change.opportunity_id));
            ("PATCH", url, serde_json::Value::Object(body))
        }
        Format::Dynamics => {
            let Some(after) = change.after else {
                return Ok(None);
            };
            let score = (after * 100.0).round() as i64;
            // msdyn_scoretrend: 0 improving, 1 steady, 2 declining, 3 not enough info.
            let trend = match change.before {
                None => 3,
                Some(b) if (after - b) * 100.0 >= 1.0 => 0,
                Some(b) if (b - after) * 100.0 >= 1.0 => 2,
                Some(_) => 1,
            };
            (
                "POST",
                hook.url.clone(),
                serde_json::json!({
                    "msdyn_name": format!("winsignal {}", change.opportunity_id),
                    "msdyn_entityid": change.opportunity_id,
                    "msdyn_entitytype": "opportunity",
                    "msdyn_score": score,
                    "msdyn_scoretrend": trend,
                    "msdyn_grade": grade(after),
                    "msdyn_scorereasons": change.reasons.join("\n"),
                    "msdyn_scoredon": change.as_of.to_rfc3339(),
                }),
            )
        }
    };
    Ok(Some(Message {
        seq,
        idempotency_key: id,
        method,
        url,
        body: serde_json::to_vec(&body)?,
    }))
}

/// The message `hook` (trigger `alert`) is sent for the alert numbered `seq` (recorded at `at`).
pub fn render_alert(
    hook: &Hook,
    seq: u64,
    at: Ts,
    alert: &crate::alerts::Alert,
) -> Result<Message> {
    let id = format!("{}:{seq}", hook.name);
    let body = match hook.format {
        Format::Slack => slack_alert(alert),
        _ => serde_json::json!({
            "id": id,
            "type": "monitor_alert",
            "created_at": at.to_rfc3339(),
            "data": alert,
        }),
    };
    Ok(Message {
        seq,
        idempotency_key: id,
        method: "POST",
        url: hook.url.clone(),
        body: serde_json::to_vec(&body)?,
    })
}

/// A monitoring alert in Block Kit: the headline, the recommendation, the figures.
fn slack_alert(a: &crate::alerts::Alert) -> serde_json::Value {
    use crate::alerts::{Kind, State};
    let what = match a.kind {
        Kind::Performance => "Win model below its performance floor",
        Kind::Drift => "Drift in the latest window",
    };
    let headline = match a.state {
        State::Firing => format!(":warning: {what}"),
        State::Resolved => format!(":white_check_mark: Resolved: {what}"),
    };
    let mut blocks = vec![serde_json::json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": format!("*{headline}*\n{}", esc(&a.summary))},
    })];
    if let Some(r) = &a.recommendation {
        blocks.push(serde_json::json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": format!("*Recommendation*: {}", esc(r))},
        }));
    }
    blocks.push(serde_json::json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": format!("winsignal · model {} · checked {}", esc(&a.model_id), a.checked_at.to_rfc3339())}],
    }));
    serde_json::json!({ "text": format!("{headline}: {}", esc(&a.summary)), "blocks": blocks })
}

/// P(win) in percentage points, to one decimal.
fn points(p: f64) -> f64 {
    (p * 1000.0).round() / 10.0
}

/// The Dynamics 365 grade (`msdyn_grade`: 0 A, 1 B, 2 C, 3 D) of a P(win): A from 75 %, B from 50 %,
/// C from 25 %, D below.
pub fn grade(p_win: f64) -> u8 {
    match p_win {
        p if p >= 0.75 => 0,
        p if p >= 0.50 => 1,
        p if p >= 0.25 => 2,
        _ => 3,
    }
}

/// A Slack message in Block Kit: a headline (the deal and the move), the reasons, the next action.
fn slack(hook: &Hook, c: &ScoreChange) -> serde_json::Value {
    let deal = esc(&c.opportunity_id);
    let pct = |p: Option<f64>| p.map_or("–".to_string(), |p| format!("{:.0}%", p * 100.0));
    let headline = match hook.trigger {
        Trigger::Missing => format!(
            "Deal {deal} entered {} without {}",
            esc(c.stage.as_deref().unwrap_or("a new stage")),
            esc(c.next_action.as_ref().map_or("", |a| a.title.as_str())),
        ),
        Trigger::Stalled { .. } => format!(
            "Deal {deal} has stalled: no activity for {:.0} days (P(win) {})",
            c.idle_days.unwrap_or_default().floor(),
            pct(c.after),
        ),
        _ => match (c.before, c.after) {
            (Some(b), Some(a)) => format!(
                "Deal {deal}: P(win) {} → {} ({:+.0} pts)",
                pct(Some(b)),
                pct(Some(a)),
                (a - b) * 100.0
            ),
            (None, Some(a)) => format!("Deal {deal} scored: P(win) {}", pct(Some(a))),
            (_, None) => format!("Deal {deal} is no longer open"),
        },
    };
    let mut facts = Vec::new();
    if let Some(s) = &c.stage {
        facts.push(format!("Stage: {}", esc(s)));
    }
    if let Some(a) = c.amount {
        facts.push(format!("Amount: {a:.0}"));
    }
    if let Some(r) = &c.rep_id {
        facts.push(format!("Rep: {}", esc(r)));
    }
    let mut blocks = vec![serde_json::json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": format!("*{headline}*\n{}", facts.join(" · "))},
    })];
    if !c.reasons.is_empty() {
        let lines: Vec<String> = c.reasons.iter().map(|r| format!("• {}", esc(r))).collect();
        blocks.push(serde_json::json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": format!("*Why*\n{}", lines.join("\n"))},
        }));
    }
    if let Some(a) = &c.next_action {
        blocks.push(serde_json::json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": format!("*Next action*: {} ({:+.0} pts)", esc(&a.title), a.uplift_points)},
        }));
    }
    blocks.push(serde_json::json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": format!("winsignal · model {} · as of {}", esc(&c.model_id), c.as_of.to_rfc3339())}],
    }));
    serde_json::json!({ "text": headline, "blocks": blocks })
}

/// Text for Slack's mrkdwn: `&`, `<` and `>` escaped, as Slack asks.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// An id for a URL path segment: everything but unreserved characters percent-encoded.
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The `Winsignal-Signature` header of `body` sent at `unix_seconds`:
/// `t=<unix_seconds>,v1=<hex HMAC-SHA256(secret, "<unix_seconds>.<body>")>`.
pub fn signature(secret: &str, unix_seconds: i64, body: &[u8]) -> String {
    format!(
        "t={unix_seconds},v1={}",
        hmac_hex(secret, unix_seconds, body)
    )
}

fn hmac_hex(secret: &str, unix_seconds: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    crate::access::hex(&mac.finalize().into_bytes())
}

/// Records that `hook` is done with every change up to `through`, having delivered `delivered` more
/// messages and had `refused` refused for good (each also recorded in [`REFUSED`]).
pub fn advance(
    store: &dyn Store,
    hook: &Hook,
    from: &Progress,
    through: u64,
    delivered: u64,
    refused: &[Refusal],
) -> Result<Progress> {
    let progress = Progress {
        through,
        delivered: from.delivered + delivered,
        refused: from.refused + refused.len() as u64,
        hook_created_at: Some(hook.created_at),
    };
    let now = Ts::now();
    if !refused.is_empty() {
        let entries = refused
            .iter()
            .map(|r| Ok((hook.name.clone(), serde_json::to_vec(r)?)))
            .collect::<Result<Vec<_>>>()?;
        store.append(REFUSED, now, &entries)?;
    }
    store.append(
        DELIVERIES,
        now,
        &[(hook.name.clone(), serde_json::to_vec(&progress)?)],
    )?;
    Ok(progress)
}

/// A message a receiver refused for good.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    pub seq: u64,
    pub status: u16,
    /// The start of the receiver's answer.
    pub answer: String,
}

/// Whether a receiver's answer `status` asks for the message again later (a timeout, a rate limit, a
/// server error) rather than refusing it for good (any other 4xx).
pub fn retry_on(status: u16) -> bool {
    matches!(status, 408 | 429) || status >= 500
}

/// How long to wait before attempt `n` (1 for the first retry) of a message: 0.5 s doubling each
/// time, at most 60 s.
pub fn backoff(n: u32) -> std::time::Duration {
    let ms = 500u64.saturating_mul(1u64 << n.saturating_sub(1).min(20));
    std::time::Duration::from_millis(ms.min(60_000))
}

/// A webhook as listed: everything but its secret and header values.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub name: String,
    /// Scheme and host only ([`shown_url`]).
    pub url: String,
    pub format: Format,
    pub trigger: String,
    /// Names of the extra headers sent (values are never shown).
    pub headers: Vec<String>,
    pub fields: BTreeMap<String, String>,
    pub created_at: String,
    pub delivered: u64,
    pub refused: u64,
    /// Score changes (alerts, for the `alert` trigger) recorded that the webhook has not been through
    /// yet.
    pub backlog: u64,
}

/// The webhooks with their delivery progress.
pub fn list(store: &dyn Store) -> Result<Vec<Listed>> {
    let hooks = hooks(store)?;
    let mut out = Vec::new();
    for hook in hooks.hooks.values() {
        let p = progress(store, hook)?;
        out.push(Listed {
            name: hook.name.clone(),
            url: shown_url(&hook.url),
            format: hook.format,
            trigger: hook.trigger.to_string(),
            headers: hook.headers.iter().map(|(k, _)| k.clone()).collect(),
            fields: hook.fields.clone(),
            created_at: hook.created_at.to_rfc3339(),
            delivered: p.delivered,
            refused: p.refused,
            backlog: backlog(store, hook, p.through)?,
        });
    }
    Ok(out)
}

/// A URL as listed: its scheme and host, the rest elided (a Slack webhook's path is its secret).
pub fn shown_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    if host.len() < rest.len() {
        format!("{scheme}://{host}/…")
    } else {
        format!("{scheme}://{host}")
    }
}

/// How many score changes (alerts, for the `alert` trigger) were recorded after `through`.
pub fn backlog(read: &dyn StoreRead, hook: &Hook, through: u64) -> Result<u64> {
    Ok(read
        .journal(
            hook.journal(),
            &JournalQuery {
                key: None,
                after: through,
                limit: None,
            },
        )?
        .len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(before: Option<f64>, after: Option<f64>) -> ScoreChange {
        ScoreChange {
            opportunity_id: "006A".into(),
            position: 3,
            rep_id: Some("r1".into()),
            model_id: "m1".into(),
            as_of: Ts(1_700_000_000_000),
            before,
            after,
            moved_by: Vec::new(),
            stage: Some("Negotiation".into()),
            previous_stage: Some("Proposal".into()),
            account_id: Some("a1".into()),
            amount: Some(5000.0),
            reasons: vec!["Executive engaged: no → -9 pts".into(), "<b> & co".into()],
            next_action: Some(crate::live::NextAction {
                behaviour: "exec".into(),
                title: "Engage an executive".into(),
                uplift_points: 9.0,
            }),
            idle_days: after.map(|_| 3.0),
            previous_idle_days: before.map(|_| 2.0),
        }
    }

    fn hook(format: Format, trigger: Trigger) -> Hook {
        Hook {
            name: "h".into(),
            url: "http://127.0.0.1:9/x/{id}".into(),
            format,
            trigger,
            secret: "whsec_test".into(),
            headers: Vec::new(),
            fields: SALESFORCE_FIELDS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            created_at: Ts(0),
            start_after: 0,
        }
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_time_and_the_body() {
        // RFC 4231, test case 2 (key "Jefe"), on the HMAC the signature is made with.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            crate::access::hex(&mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // From Python: hmac.new(b"whsec_test", b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
        assert_eq!(
            signature("whsec_test", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
        assert_ne!(
            signature("whsec_test", 1_700_000_000, br#"{"a":1}"#),
            signature("whsec_test", 1_700_000_001, br#"{"a":1}"#)
        );
    }

    #[test]
    fn triggers_fire_on_what_they_name() {
        let drop10: Trigger = "drop:10".parse().unwrap();
        assert!(drop10.fires(&change(Some(0.60), Some(0.45))));
        assert!(!drop10.fires(&change(Some(0.60), Some(0.55))));
        assert!(!drop10.fires(&change(Some(0.40), Some(0.60))));
        assert!(!drop10.fires(&change(None, Some(0.1))));
        assert!(!drop10.fires(&change(Some(0.9), None)));
        let missing: Trigger = "missing".parse().unwrap();
        assert!(missing.fires(&change(Some(0.5), Some(0.5))));
        let mut same_stage = change(Some(0.5), Some(0.4));
        same_stage.previous_stage = same_stage.stage.clone();
        assert!(!missing.fires(&same_stage));
        let mut nothing_missing = change(Some(0.5), Some(0.4));
        nothing_missing.next_action = None;
        assert!(!missing.fires(&nothing_missing));
        assert!("change"
            .parse::<Trigger>()
            .unwrap()
            .fires(&change(Some(0.1), None)));
        for bad in [
            "drop",
            "drop:x",
            "drop:-1",
            "drop:100",
            "fall:3",
            "",
            "stalled",
            "stalled:0",
            "stalled:-3",
            "stalled:NaN",
            "stalled:x",
        ] {
            assert!(bad.parse::<Trigger>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_stalled_trigger_fires_once_when_a_deal_crosses_its_line() {
        let stalled: Trigger = "stalled:14".parse().unwrap();
        assert_eq!(stalled.to_string(), "stalled:14");
        let idle = |before: Option<f64>, after: Option<f64>| {
            let mut c = change(Some(0.5), Some(0.5));
            c.previous_idle_days = before;
            c.idle_days = after;
            c
        };
        assert!(stalled.fires(&idle(Some(13.9), Some(14.0))));
        assert!(stalled.fires(&idle(Some(3.0), Some(40.0))));
        // Already stalled before, not yet stalled, or active again: nothing.
        assert!(!stalled.fires(&idle(Some(14.0), Some(15.0))));
        assert!(!stalled.fires(&idle(Some(10.0), Some(13.9))));
        assert!(!stalled.fires(&idle(Some(20.0), Some(0.0))));
        // A deal first scored already idle that long is stalled; a deal no longer open is not.
        assert!(stalled.fires(&idle(None, Some(30.0))));
        let mut closed = idle(Some(10.0), Some(30.0));
        closed.after = None;
        assert!(!stalled.fires(&closed));
        let message = render(
            &hook(Format::Slack, stalled),
            4,
            Ts(0),
            &idle(Some(10.0), Some(31.5)),
        )
        .unwrap()
        .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&message.body).unwrap();
        let text = body["text"].as_str().unwrap();
        assert!(
            text.contains("has stalled: no activity for 31 days"),
            "{text}"
        );
    }

    #[test]
    fn crm_payloads_carry_the_score_the_reasons_and_the_next_action() {
        let c = change(Some(0.62), Some(0.48));
        let m = render(&hook(Format::Salesforce, Trigger::Change), 7, Ts(0), &c)
            .unwrap()
            .unwrap();
        assert_eq!(
            (m.method, m.url.as_str()),
            ("PATCH", "http://127.0.0.1:9/x/006A")
        );
        assert_eq!(m.idempotency_key, "h:7");
        let body: serde_json::Value = serde_json::from_slice(&m.body).unwrap();
        assert_eq!(body["Winsignal_Score__c"], 48.0);
        assert_eq!(body["Winsignal_Next_Action__c"], "Engage an executive");
        assert!(body["Winsignal_Reasons__c"]
            .as_str()
            .unwrap()
            .starts_with("Executive engaged"));
        let d = render(&hook(Format::Dynamics, Trigger::Change), 7, Ts(0), &c)
            .unwrap()
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&d.body).unwrap();
        assert_eq!(body["msdyn_score"], 48);
        assert_eq!(body["msdyn_scoretrend"], 2); // declining
        assert_eq!(body["msdyn_grade"], 2); // C: 25–50 %
        assert_eq!(body["msdyn_entitytype"], "opportunity");
        // A deal no longer open has no score to write back.
        let closed = change(Some(0.5), None);
        assert!(render(
            &hook(Format::Salesforce, Trigger::Change),
            8,
            Ts(0),
            &closed
        )
        .unwrap()
        .is_none());
    }

    #[test]
    fn slack_messages_are_block_kit_with_the_text_escaped() {
        let c = change(Some(0.62), Some(0.48));
        let m = render(
            &hook(Format::Slack, Trigger::Drop { points: 10.0 }),
            7,
            Ts(0),
            &c,
        )
        .unwrap()
        .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&m.body).unwrap();
        assert_eq!(body["text"], "Deal 006A: P(win) 62% → 48% (-14 pts)");
        let text = body["blocks"][1]["text"]["text"].as_str().unwrap();
        assert!(text.contains("&lt;b&gt; &amp; co"), "{text}");
        assert_eq!(body["blocks"][0]["type"], "section");
        assert!(body["blocks"][2]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("Engage an executive"));
    }

    #[test]
    fn a_webhook_added_again_under_its_name_starts_afresh() {
        let store = winsignal_store::MemoryStore::new();
        let new = || NewHook {
            name: "h".into(),
            url: "http://127.0.0.1:9/x".into(),
            format: Format::Json,
            trigger: None,
            headers: Vec::new(),
            fields: BTreeMap::new(),
        };
        let first = add(&store, new(), Ts(1)).unwrap();
        let p = progress(&store, &first).unwrap();
        let done = advance(&store, &first, &p, 0, 5, &[]).unwrap();
        assert_eq!(progress(&store, &first).unwrap(), done);
        assert_eq!(done.delivered, 5);
        assert!(remove(&store, "h").unwrap());
        let second = add(&store, new(), Ts(2)).unwrap();
        assert_ne!(first.secret, second.secret);
        let fresh = progress(&store, &second).unwrap();
        assert_eq!((fresh.delivered, fresh.through), (0, second.start_after));
        assert!(
            add(&store, new(), Ts(3)).is_err(),
            "a name that exists is refused"
        );
    }

    #[test]
    fn listed_urls_keep_only_the_scheme_and_host() {
        assert_eq!(
            shown_url("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(shown_url("http://u:pw@h:8080/x?k=1"), "http://h:8080/…");
        assert_eq!(shown_url("http://h:8080"), "http://h:8080");
    }

    #[test]
    fn retries_back_off_to_a_minute() {
        assert_eq!(backoff(1).as_millis(), 500);
        assert_eq!(backoff(2).as_millis(), 1000);
        assert_eq!(backoff(8).as_millis(), 60_000);
        assert_eq!(backoff(100).as_millis(), 60_000);
        assert!(retry_on(503) && retry_on(429) && retry_on(408));
        assert!(!retry_on(400) && !retry_on(404) && !retry_on(410));
    }
}
