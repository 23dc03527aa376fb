//! The behaviour catalog: behaviours and features as data (TOML), validated with line-numbered errors.
//!
//! The language is documented in `docs/behaviours.md`; `catalog/default.toml` is the shipped catalog.

use crate::seniority::Seniority;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use toml::Spanned;
use winsignal_core::{ActivityStatus, ActivityType, Direction, Priority, TouchKind};

/// Snapshot columns a definition id must not take.
const RESERVED_COLUMNS: &[&str] = &[
    "opportunity_id",
    "landmark",
    "as_of",
    "account_id",
    "rep_id",
    "segment",
    "log_employees",
    "industry",
    "opportunity_type",
    "lead_source",
    "log_amount",
    "creation_quarter",
    "outcome",
    "won",
    "days_to_close",
    "days_observed",
    "amount",
    "age_days",
];

/// Whether a definition id would clash with a snapshot column (a fixed column name, or `…_measure`).
pub fn is_reserved_id(id: &str) -> bool {
    RESERVED_COLUMNS.contains(&id) || id.ends_with("_measure")
}

/// The catalog shipped with winsignal, used when no `--catalog` is given.
pub const DEFAULT_CATALOG: &str = include_str!("../catalog/default.toml");
pub const DEFAULT_CATALOG_NAME: &str = "default.toml (built in)";

/// A catalog that could not be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {field}: {message}")]
pub struct CatalogError {
    pub file: String,
    pub line: usize,
    /// `behaviour[<id>].<field>` or the TOML key that is wrong.
    pub field: String,
    pub message: String,
}

/// A validated catalog.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Catalog {
    pub name: String,
    /// The file the catalog was read from, as given (for errors found after parsing).
    #[serde(skip)]
    pub file: String,
    /// The TOML the catalog was parsed from (a win model keeps it, so scoring needs no `--catalog`).
    #[serde(skip)]
    pub source: String,
    pub landmarks: LandmarkSpec,
    pub controls: Vec<Control>,
    pub behaviours: Vec<Definition>,
}

/// Which landmarks each opportunity gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LandmarkSpec {
    /// One landmark per stage entered (from stage history).
    pub stages: bool,
    /// Fixed ages in days after creation.
    pub ages_days: Vec<u32>,
}

/// A control the analysis adjusts for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "name")]
pub enum Control {
    /// The account's segment field, else an employee band.
    Segment,
    LogEmployees,
    Industry,
    OpportunityType,
    LeadSource,
    LogAmount,
    CreationQuarter,
    /// A custom attribute of the opportunity (`opportunity.<name>`) or account (`account.<name>`).
    Attribute(AttributeRef),
}

impl Control {
    pub fn column(&self) -> String {
        match self {
            Control::Segment => "segment".into(),
            Control::LogEmployees => "log_employees".into(),
            Control::Industry => "industry".into(),
            Control::OpportunityType => "opportunity_type".into(),
            Control::LeadSource => "lead_source".into(),
            Control::LogAmount => "log_amount".into(),
            Control::CreationQuarter => "creation_quarter".into(),
            Control::Attribute(a) => format!("{}_{}", a.entity.as_str(), a.name),
        }
    }

    /// Whether the control is numeric (else categorical).
    pub fn is_numeric(&self) -> bool {
        matches!(self, Control::LogEmployees | Control::LogAmount)
    }
}

/// One behaviour or feature definition.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Definition {
    pub id: String,
    pub version: u32,
    pub title: String,
    pub description: String,
    pub family: String,
    pub reads: Reads,
    pub window: Window,
    pub aggregate: Aggregate,
    /// Present for yes/no behaviours; absent for continuous features.
    pub threshold: Option<Threshold>,
    /// When the source records the value: `before` (the default: the engine or the data say it was
    /// known before the landmark) or `at_outcome` (declared by the catalog's author: the value is only
    /// recorded once the outcome is known, as the length of the last call in the bank marketing data).
    /// Discovery flags `at_outcome` definitions as leakage. Not part of the fingerprint: it does not
    /// change the value, only how far it can be trusted.
    pub recorded: Recorded,
    /// For a yes/no definition made from one level of a categorical definition
    /// ([`Aggregate::Levels`], see [`crate::levels`]): the categorical definition and the level.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<LevelOf>,
    /// Line of the definition in its catalog file.
    #[serde(skip)]
    pub line: usize,
}

/// Which categorical definition, and which of its levels, a yes/no definition stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LevelOf {
    /// The id of the categorical definition (`industry`).
    pub definition: String,
    /// The level as the data spell it (`Retail`), or [`crate::levels::OTHER_LEVEL`] for the pooled
    /// rare levels.
    pub level: String,
}

impl Definition {
    pub fn is_behaviour(&self) -> bool {
        self.threshold.is_some()
    }

    /// A categorical definition: one yes/no definition per level once the levels are known from the
    /// data ([`crate::levels::resolve`]).
    pub fn is_categorical(&self) -> bool {
        self.aggregate == Aggregate::Levels
    }

    /// A hash of everything that gives the definition its meaning (not title, description or family):
    /// two definitions with the same id and version must have the same fingerprint.
    pub fn fingerprint(&self) -> String {
        let meaning = serde_json::json!({
            "reads": self.reads, "window": self.window, "aggregate": self.aggregate,
            "threshold": self.threshold,
        });
        winsignal_core::hash::hex(xxhash_rust::xxh3::xxh3_64(meaning.to_string().as_bytes()))
    }
}

/// What a definition reads, with its filters.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reads {
    Activities {
        scope: Scope,
        filter: ActivityFilter,
    },
    ProductEvents {
        events: Vec<String>,
    },
    MarketingTouches {
        touch_kinds: Vec<TouchKind>,
    },
    SupportTickets {
        priority: Vec<Priority>,
    },
    Transcripts,
    /// Opportunities and accounts as a graph: contacts, earlier deals, parent and child accounts.
    Graph,
    /// A field or custom attribute of the opportunity or its account.
    Attribute {
        attribute: AttributeRef,
        /// For a categorical attribute: the value that counts as "yes" (1), anything else is 0.
        equals: Option<String>,
        /// Values that mean "no value" (placeholders such as `Select`, `N/A`, `-`), compared trimmed and
        /// ignoring case: the value is undefined. Left out of the fingerprint when empty, so catalogs
        /// written before the key existed keep theirs.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        missing: Vec<String>,
        /// Only for the pooled level of a categorical definition: 1 when the value is present and is
        /// none of these (the levels kept on their own; none when every level was pooled), else 0.
        #[serde(skip_serializing_if = "Option::is_none")]
        other_than: Option<Vec<String>>,
    },
}

impl Reads {
    pub fn kind_name(&self) -> &'static str {
        match self {
            Reads::Activities { .. } => "activities",
            Reads::ProductEvents { .. } => "product_events",
            Reads::MarketingTouches { .. } => "marketing_touches",
            Reads::SupportTickets { .. } => "support_tickets",
            Reads::Transcripts => "transcripts",
            Reads::Graph => "graph",
            Reads::Attribute { attribute, .. } => attribute.entity.as_str(),
        }
    }
}

/// Which activities count: the deal's own, or everything at its account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Deal,
    Account,
}

/// Filters on activities; an empty list means "any".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ActivityFilter {
    pub types: Vec<ActivityType>,
    pub direction: Vec<Direction>,
    pub status: Vec<ActivityStatus>,
    pub seniority: Vec<Seniority>,
}

/// A field of the opportunity or account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttributeRef {
    pub entity: Entity,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    Opportunity,
    Account,
}

impl Entity {
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Opportunity => "opportunity",
            Entity::Account => "account",
        }
    }
}

/// Which events, by time, a definition reads. Always only events known strictly before the landmark.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Window {
    /// Since the opportunity was created (deal-scoped activities: everything on the deal).
    DealToDate,
    /// The last N days before the landmark.
    Trailing { days: f64 },
    /// Every earlier event, weighted 2^(−age / half-life).
    Decayed { half_life_days: f64 },
    /// Every earlier event.
    AllHistory,
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::DealToDate => f.write_str("deal_to_date"),
            Window::Trailing { days } => write!(f, "trailing_days:{days}"),
            Window::Decayed { half_life_days } => write!(f, "half_life_days:{half_life_days}"),
            Window::AllHistory => f.write_str("all_history"),
        }
    }
}

/// How matched events become one number.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Aggregate {
    Count,
    Exists,
    DistinctContacts,
    DistinctUsers,
    /// Sum of a numeric field (`duration_s`), decayed if the window is.
    Sum {
        field: String,
    },
    Median {
        field: String,
    },
    /// Matched events as a share of all events of the kind in scope and window.
    Share,
    /// The latest matched event's numeric field.
    Latest {
        field: String,
    },
    /// Days from the latest matched event to the landmark.
    DaysSince,
    /// Meetings booked before the landmark that take place after it.
    ScheduledAfter,
    /// Share of matched events followed within `within_hours` by an activity matching `then`.
    FollowUpShare {
        within_hours: f64,
        then: ActivityFilter,
        then_scope: Scope,
    },
    /// Median hours from a matched (inbound) activity to the next activity matching `then`.
    ReplyHoursMedian {
        then: ActivityFilter,
        then_scope: Scope,
    },
    /// Count in the window minus the count in the equally long window before it.
    Growth,
    /// Tickets open at the landmark.
    OpenAt,
    /// Rep share of talk time over the deal's transcribed calls.
    RepTalkShare,
    /// Rep questions per transcribed hour.
    QuestionsPerHour,
    /// Contacts engaged on this deal who held a role on an earlier won deal.
    ChampionReuse,
    /// Won deals at this account closed before the landmark.
    PriorWins,
    /// Won deals at the parent, sibling or child accounts closed before the landmark.
    FamilyPriorWins,
    /// Distinct seniority levels among contacts engaged on the deal.
    SeniorityCoverage,
    /// Cosine similarity of the account to the centroid of accounts with an earlier won deal.
    Lookalike,
    /// The attribute's value (numeric, boolean as 0/1, or 1/0 against `equals`).
    Value,
    /// A categorical attribute: one yes/no definition per level, the levels found from the data.
    Levels,
}

impl Aggregate {
    pub fn name(&self) -> &'static str {
        match self {
            Aggregate::Count => "count",
            Aggregate::Exists => "exists",
            Aggregate::DistinctContacts => "distinct_contacts",
            Aggregate::DistinctUsers => "distinct_users",
            Aggregate::Sum { .. } => "sum",
            Aggregate::Median { .. } => "median",
            Aggregate::Share => "share",
            Aggregate::Latest { .. } => "latest",
            Aggregate::DaysSince => "days_since",
            Aggregate::ScheduledAfter => "scheduled_after",
            Aggregate::FollowUpShare { .. } => "follow_up_share",
            Aggregate::ReplyHoursMedian { .. } => "reply_hours_median",
            Aggregate::Growth => "growth",
            Aggregate::OpenAt => "open_at",
            Aggregate::RepTalkShare => "rep_talk_share",
            Aggregate::QuestionsPerHour => "questions_per_hour",
            Aggregate::ChampionReuse => "champion_reuse",
            Aggregate::PriorWins => "prior_wins",
            Aggregate::FamilyPriorWins => "family_prior_wins",
            Aggregate::SeniorityCoverage => "seniority_coverage",
            Aggregate::Lookalike => "lookalike",
            Aggregate::Value => "value",
            Aggregate::Levels => "levels",
        }
    }
}

/// Turns a measure into yes/no.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Threshold {
    AtLeast {
        value: f64,
    },
    Above {
        value: f64,
    },
    AtMost {
        value: f64,
    },
    Below {
        value: f64,
    },
    Equals {
        value: f64,
    },
    /// Inclusive range.
    Between {
        low: f64,
        high: f64,
    },
}

impl Threshold {
    /// Whether a measure passes; an undefined measure (NaN) gives no answer.
    pub fn test(self, v: f64) -> Option<bool> {
        if v.is_nan() {
            return None;
        }
        Some(match self {
            Threshold::AtLeast { value } => v >= value,
            Threshold::Above { value } => v > value,
            Threshold::AtMost { value } => v <= value,
            Threshold::Below { value } => v < value,
            Threshold::Equals { value } => v == value,
            Threshold::Between { low, high } => v >= low && v <= high,
        })
    }

    fn parse(text: &str) -> Result<Threshold, String> {
        let t = text.trim();
        let num = |s: &str| {
            s.trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("expected a number, got {:?}", s.trim()))
        };
        if let Some(rest) = t.strip_prefix("between") {
            let (a, b) = rest
                .split_once(" and ")
                .ok_or_else(|| format!("expected \"between LOW and HIGH\", got {t:?}"))?;
            let (low, high) = (num(a)?, num(b)?);
            if low > high {
                return Err(format!("the range {low}..{high} is empty"));
            }
            return Ok(Threshold::Between { low, high });
        }
        let ops: [(&str, fn(f64) -> Threshold); 5] = [
            (">=", |value| Threshold::AtLeast { value }),
            ("<=", |value| Threshold::AtMost { value }),
            ("==", |value| Threshold::Equals { value }),
            (">", |value| Threshold::Above { value }),
            ("<", |value| Threshold::Below { value }),
        ];
        for (op, make) in ops {
            if let Some(rest) = t.strip_prefix(op) {
                return Ok(make(num(rest)?));
            }
        }
        Err(format!(
            "expected \">= N\", \"> N\", \"<= N\", \"< N\", \"== N\" or \"between LOW and HIGH\", got {t:?}"
        ))
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Threshold::AtLeast { value } => write!(f, ">= {value}"),
            Threshold::Above { value } => write!(f, "> {value}"),
            Threshold::AtMost { value } => write!(f, "<= {value}"),
            Threshold::Below { value } => write!(f, "< {value}"),
            Threshold::Equals { value } => write!(f, "== {value}"),
            Threshold::Between { low, high } => write!(f, "between {low} and {high}"),
        }
    }
}

// ---- the TOML shape, before validation ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    name: Option<String>,
    landmarks: Option<Spanned<RawLandmarks>>,
    controls: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    behaviour: Vec<Spanned<RawDefinition>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLandmarks {
    stages: Option<bool>,
    ages_days: Option<Vec<i64>>,
}

/// When a definition's value is recorded (see [`Definition::recorded`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Recorded {
    #[default]
    Before,
    AtOutcome,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefinition {
    id: Option<Spanned<String>>,
    version: Option<Spanned<i64>>,
    title: Option<Spanned<String>>,
    description: Option<Spanned<String>>,
    family: Option<Spanned<String>>,
    reads: Option<Spanned<RawReads>>,
    window: Option<Spanned<String>>,
    aggregate: Option<Spanned<String>>,
    field: Option<Spanned<String>>,
    within_hours: Option<Spanned<f64>>,
    then: Option<Spanned<RawFilter>>,
    threshold: Option<Spanned<String>>,
    recorded: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReads {
    kind: Option<Spanned<String>>,
    scope: Option<Spanned<String>>,
    types: Option<Spanned<Vec<String>>>,
    direction: Option<Spanned<Vec<String>>>,
    status: Option<Spanned<Vec<String>>>,
    seniority: Option<Spanned<Vec<String>>>,
    priority: Option<Spanned<Vec<String>>>,
    touch_kinds: Option<Spanned<Vec<String>>>,
    events: Option<Spanned<Vec<String>>>,
    attribute: Option<Spanned<String>>,
    equals: Option<Spanned<String>>,
    missing: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFilter {
    scope: Option<Spanned<String>>,
    types: Option<Spanned<Vec<String>>>,
    direction: Option<Spanned<Vec<String>>>,
    status: Option<Spanned<Vec<String>>>,
    seniority: Option<Spanned<Vec<String>>>,
}

/// Parses and validates a catalog; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Catalog, CatalogError> {
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let raw: RawCatalog = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |s| line_of(s.start));
        let message = e.message().to_string();
        let field = unknown_field_name(&message).unwrap_or_else(|| "toml".into());
        CatalogError {
            file: file.into(),
            line,
            field,
            message,
        }
    })?;
    let err = |offset: usize, field: String, message: String| CatalogError {
        file: file.into(),
        line: line_of(offset),
        field,
        message,
    };

    let landmarks = match &raw.landmarks {
        None => LandmarkSpec {
            stages: true,
            ages_days: vec![14, 30, 60],
        },
        Some(l) => {
            let v = l.get_ref();
            let ages = v.ages_days.clone().unwrap_or_else(|| vec![14, 30, 60]);
            let mut ages_days = Vec::new();
            for a in ages {
                if !(0..=3650).contains(&a) {
                    return Err(err(
                        l.span().start,
                        "landmarks.ages_days".into(),
                        format!("expected ages between 0 and 3650 days, got {a}"),
                    ));
                }
                ages_days.push(a as u32);
            }
            ages_days.sort_unstable();
            ages_days.dedup();
            LandmarkSpec {
                stages: v.stages.unwrap_or(true),
                ages_days,
            }
        }
    };

    let controls = match &raw.controls {
        None => default_controls(),
        Some(list) => {
            let mut out = Vec::new();
            for c in list.get_ref() {
                let control = parse_control(c.get_ref())
                    .map_err(|m| err(c.span().start, "controls".into(), m))?;
                if out.contains(&control) {
                    return Err(err(
                        c.span().start,
                        "controls".into(),
                        format!("{:?} is listed twice", c.get_ref()),
                    ));
                }
                out.push(control);
            }
            out
        }
    };

    let mut behaviours = Vec::new();
    let mut ids = BTreeSet::new();
    for entry in &raw.behaviour {
        let at = entry.span().start;
        let def = definition(entry.get_ref(), at, &err)?;
        // A categorical definition has no column of its own (its levels are `<id>=<level>`), so it
        // may take a control's name: `industry` with levels `industry=Retail`, ….
        if is_reserved_id(&def.id) && !def.is_categorical() {
            return Err(err(
                at,
                format!("behaviour[{}].id", def.id),
                "this id would clash with a snapshot column; choose another (ids must not be a fixed column name \
                 or end in _measure)"
                    .into(),
            ));
        }
        if !ids.insert(def.id.clone()) {
            return Err(err(
                at,
                format!("behaviour[{}].id", def.id),
                "this id is defined twice".into(),
            ));
        }
        behaviours.push(Definition {
            line: line_of(at),
            ..def
        });
    }
    if behaviours.is_empty() {
        return Err(err(
            0,
            "behaviour".into(),
            "the catalog defines no [[behaviour]]".into(),
        ));
    }
    Ok(Catalog {
        name: raw.name.unwrap_or_else(|| file.to_string()),
        file: file.to_string(),
        source: text.to_string(),
        landmarks,
        controls,
        behaviours,
    })
}

/// The catalog shipped with winsignal.
pub fn default_catalog() -> Catalog {
    #[allow(clippy::expect_used)]
    parse(DEFAULT_CATALOG, DEFAULT_CATALOG_NAME).expect("the built-in catalog is valid (tested)")
}

fn unknown_field_name(message: &str) -> Option<String> {
    let rest = message.split("unknown field `").nth(1)?;
    Some(rest.split('`').next()?.to_string())
}

fn default_controls() -> Vec<Control> {
    vec![
        Control::Segment,
        Control::LogEmployees,
        Control::Industry,
        Control::OpportunityType,
        Control::LeadSource,
        Control::LogAmount,
        Control::CreationQuarter,
    ]
}

fn parse_control(name: &str) -> Result<Control, String> {
    Ok(match name {
        "segment" => Control::Segment,
        "log_employees" => Control::LogEmployees,
        "industry" => Control::Industry,
        "opportunity_type" => Control::OpportunityType,
        "lead_source" => Control::LeadSource,
        "log_amount" => Control::LogAmount,
        "creation_quarter" => Control::CreationQuarter,
        other => match parse_attribute(other) {
            Ok(a) => Control::Attribute(a),
            Err(_) => {
                return Err(format!(
                    "expected segment, log_employees, industry, opportunity_type, lead_source, log_amount, \
                     creation_quarter or opportunity.<attribute> / account.<attribute>, got {other:?}"
                ))
            }
        },
    })
}

fn parse_attribute(text: &str) -> Result<AttributeRef, String> {
    let (entity, name) = text
        .split_once('.')
        .ok_or_else(|| format!("expected opportunity.<name> or account.<name>, got {text:?}"))?;
    let entity = match entity {
        "opportunity" => Entity::Opportunity,
        "account" => Entity::Account,
        _ => {
            return Err(format!(
                "expected opportunity.<name> or account.<name>, got {text:?}"
            ))
        }
    };
    if name.trim().is_empty() {
        return Err(format!(
            "expected an attribute name after {:?}",
            format!("{}.", entity.as_str())
        ));
    }
    Ok(AttributeRef {
        entity,
        name: name.trim().to_string(),
    })
}

fn parse_list<T: std::str::FromStr>(
    list: &Option<Spanned<Vec<String>>>,
) -> Result<Vec<T>, (usize, String)>
where
    T::Err: fmt::Display,
{
    let Some(l) = list else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for s in l.get_ref() {
        out.push(
            s.parse::<T>()
                .map_err(|e| (l.span().start, e.to_string()))?,
        );
    }
    Ok(out)
}

fn definition(
    raw: &RawDefinition,
    at: usize,
    err: &dyn Fn(usize, String, String) -> CatalogError,
) -> Result<Definition, CatalogError> {
    let id = raw.id.as_ref().ok_or_else(|| {
        err(
            at,
            "behaviour.id".into(),
            "missing; every definition needs an id".into(),
        )
    })?;
    let id_text = id.get_ref().trim().to_string();
    let valid_id = !id_text.is_empty()
        && id_text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && id_text.starts_with(|c: char| c.is_ascii_lowercase());
    if !valid_id {
        return Err(err(
            id.span().start,
            "behaviour.id".into(),
            format!("expected snake_case (a-z, 0-9, _; starting with a letter), got {id_text:?}"),
        ));
    }
    let field = |name: &str| format!("behaviour[{id_text}].{name}");
    let missing = |name: &str| err(at, field(name), "missing".into());
    let fail = |off: usize, name: &str, m: String| err(off, field(name), m);

    let version = raw.version.as_ref().ok_or_else(|| missing("version"))?;
    if *version.get_ref() < 1 || *version.get_ref() > u32::MAX as i64 {
        return Err(fail(
            version.span().start,
            "version",
            format!("expected a positive integer, got {}", version.get_ref()),
        ));
    }
    let text_of = |v: &Option<Spanned<String>>, name: &str| -> Result<String, CatalogError> {
        let s = v.as_ref().ok_or_else(|| missing(name))?;
        if s.get_ref().trim().is_empty() {
            return Err(fail(s.span().start, name, "must not be blank".into()));
        }
        Ok(s.get_ref().trim().to_string())
    };
    let title = text_of(&raw.title, "title")?;
    let description = text_of(&raw.description, "description")?;
    let family = raw
        .family
        .as_ref()
        .map_or_else(|| "other".to_string(), |f| f.get_ref().clone());

    let reads_raw = raw.reads.as_ref().ok_or_else(|| missing("reads"))?;
    let r = reads_raw.get_ref();
    let kind = r.kind.as_ref().ok_or_else(|| {
        err(
            reads_raw.span().start,
            field("reads.kind"),
            "missing".into(),
        )
    })?;
    let kind_at = kind.span().start;
    let lists = |name: &str, present: bool, allowed: bool| -> Result<(), CatalogError> {
        if present && !allowed {
            return Err(fail(
                kind_at,
                &format!("reads.{name}"),
                format!("does not apply to reads.kind = {:?}", kind.get_ref()),
            ));
        }
        Ok(())
    };
    let is = |k: &str| kind.get_ref() == k;
    lists("scope", r.scope.is_some(), is("activities"))?;
    lists("types", r.types.is_some(), is("activities"))?;
    lists("direction", r.direction.is_some(), is("activities"))?;
    lists("status", r.status.is_some(), is("activities"))?;
    lists("seniority", r.seniority.is_some(), is("activities"))?;
    lists("priority", r.priority.is_some(), is("support_tickets"))?;
    lists(
        "touch_kinds",
        r.touch_kinds.is_some(),
        is("marketing_touches"),
    )?;
    lists("events", r.events.is_some(), is("product_events"))?;
    lists("attribute", r.attribute.is_some(), is("attribute"))?;
    lists("equals", r.equals.is_some(), is("attribute"))?;
    lists("missing", r.missing.is_some(), is("attribute"))?;
    let bad_list = |name: &'static str| {
        move |(off, m): (usize, String)| fail(off, &format!("reads.{name}"), m)
    };
    let reads = match kind.get_ref().as_str() {
        "activities" => Reads::Activities {
            scope: parse_scope(&r.scope).map_err(bad_list("scope"))?,
            filter: ActivityFilter {
                types: parse_list(&r.types).map_err(bad_list("types"))?,
                direction: parse_list(&r.direction).map_err(bad_list("direction"))?,
                status: parse_list(&r.status).map_err(bad_list("status"))?,
                seniority: parse_list(&r.seniority).map_err(bad_list("seniority"))?,
            },
        },
        "product_events" => Reads::ProductEvents {
            events: r.events.as_ref().map(|e| e.get_ref().clone()).unwrap_or_default(),
        },
        "marketing_touches" => Reads::MarketingTouches {
            touch_kinds: parse_list(&r.touch_kinds).map_err(bad_list("touch_kinds"))?,
        },
        "support_tickets" => Reads::SupportTickets { priority: parse_list(&r.priority).map_err(bad_list("priority"))? },
        "transcripts" => Reads::Transcripts,
        "graph" => Reads::Graph,
        "attribute" => {
            let a = r
                .attribute
                .as_ref()
                .ok_or_else(|| fail(kind_at, "reads.attribute", "missing; expected opportunity.<name> or account.<name>".into()))?;
            let missing: Vec<String> = r
                .missing
                .as_ref()
                .map(|m| m.get_ref().iter().map(|v| v.trim().to_string()).collect())
                .unwrap_or_default();
            if let Some(m) = r.missing.as_ref() {
                if let Some(e) = r.equals.as_ref().filter(|e| missing.iter().any(|v| v.eq_ignore_ascii_case(e.get_ref().trim()))) {
                    return Err(fail(
                        m.span().start,
                        "reads.missing",
                        format!("{:?} is both the value `equals` asks for and a missing marker", e.get_ref()),
                    ));
                }
            }
            Reads::Attribute {
                attribute: parse_attribute(a.get_ref()).map_err(|m| fail(a.span().start, "reads.attribute", m))?,
                equals: r.equals.as_ref().map(|e| e.get_ref().clone()),
                missing,
                other_than: None,
            }
        }
        other => {
            return Err(fail(
                kind_at,
                "reads.kind",
                format!(
                    "expected activities, product_events, marketing_touches, support_tickets, transcripts, graph \
                     or attribute, got {other:?}"
                ),
            ))
        }
    };

    let window_raw = raw.window.as_ref();
    let window = match window_raw {
        None => Window::DealToDate,
        Some(w) => parse_window(w.get_ref()).map_err(|m| fail(w.span().start, "window", m))?,
    };

    let agg_raw = raw.aggregate.as_ref().ok_or_else(|| missing("aggregate"))?;
    let agg_at = agg_raw.span().start;
    let numeric_field = || -> Result<String, CatalogError> {
        let f = raw.field.as_ref().ok_or_else(|| {
            fail(
                agg_at,
                "field",
                format!(
                    "aggregate {:?} needs a field (duration_s)",
                    agg_raw.get_ref()
                ),
            )
        })?;
        match f.get_ref().as_str() {
            "duration_s" => Ok("duration_s".into()),
            other => Err(fail(
                f.span().start,
                "field",
                format!("expected duration_s (the numeric activity field), got {other:?}"),
            )),
        }
    };
    let then = || -> Result<(ActivityFilter, Scope), CatalogError> {
        let t = raw.then.as_ref().ok_or_else(|| {
            fail(
                agg_at,
                "then",
                "missing; this aggregate needs a `then` filter on activities".into(),
            )
        })?;
        let v = t.get_ref();
        let bad = |name: &'static str| {
            move |(off, m): (usize, String)| fail(off, &format!("then.{name}"), m)
        };
        Ok((
            ActivityFilter {
                types: parse_list(&v.types).map_err(bad("types"))?,
                direction: parse_list(&v.direction).map_err(bad("direction"))?,
                status: parse_list(&v.status).map_err(bad("status"))?,
                seniority: parse_list(&v.seniority).map_err(bad("seniority"))?,
            },
            parse_scope(&v.scope).map_err(bad("scope"))?,
        ))
    };
    let aggregate = match agg_raw.get_ref().as_str() {
        "count" => Aggregate::Count,
        "exists" => Aggregate::Exists,
        "distinct_contacts" => Aggregate::DistinctContacts,
        "distinct_users" => Aggregate::DistinctUsers,
        "sum" => Aggregate::Sum {
            field: numeric_field()?,
        },
        "median" => Aggregate::Median {
            field: numeric_field()?,
        },
        "share" => Aggregate::Share,
        "latest" => Aggregate::Latest {
            field: numeric_field()?,
        },
        "days_since" => Aggregate::DaysSince,
        "scheduled_after" => Aggregate::ScheduledAfter,
        "follow_up_share" => {
            let w = raw.within_hours.as_ref().ok_or_else(|| {
                fail(
                    agg_at,
                    "within_hours",
                    "missing; follow_up_share needs within_hours".into(),
                )
            })?;
            if !(*w.get_ref() > 0.0 && w.get_ref().is_finite()) {
                return Err(fail(
                    w.span().start,
                    "within_hours",
                    format!("expected a positive number of hours, got {}", w.get_ref()),
                ));
            }
            let (then, then_scope) = then()?;
            Aggregate::FollowUpShare {
                within_hours: *w.get_ref(),
                then,
                then_scope,
            }
        }
        "reply_hours_median" => {
            let (then, then_scope) = then()?;
            Aggregate::ReplyHoursMedian { then, then_scope }
        }
        "growth" => Aggregate::Growth,
        "open_at" => Aggregate::OpenAt,
        "rep_talk_share" => Aggregate::RepTalkShare,
        "questions_per_hour" => Aggregate::QuestionsPerHour,
        "champion_reuse" => Aggregate::ChampionReuse,
        "prior_wins" => Aggregate::PriorWins,
        "family_prior_wins" => Aggregate::FamilyPriorWins,
        "seniority_coverage" => Aggregate::SeniorityCoverage,
        "lookalike" => Aggregate::Lookalike,
        "value" => Aggregate::Value,
        "levels" => Aggregate::Levels,
        other => {
            return Err(fail(
                agg_at,
                "aggregate",
                format!("unknown aggregate {other:?}; see docs/behaviours.md for the list"),
            ))
        }
    };
    if raw.field.is_some()
        && !matches!(
            aggregate,
            Aggregate::Sum { .. } | Aggregate::Median { .. } | Aggregate::Latest { .. }
        )
    {
        return Err(fail(
            agg_at,
            "field",
            format!("aggregate {:?} takes no field", aggregate.name()),
        ));
    }
    if raw.within_hours.is_some() && !matches!(aggregate, Aggregate::FollowUpShare { .. }) {
        return Err(fail(
            agg_at,
            "within_hours",
            format!("aggregate {:?} takes no within_hours", aggregate.name()),
        ));
    }
    if raw.then.is_some()
        && !matches!(
            aggregate,
            Aggregate::FollowUpShare { .. } | Aggregate::ReplyHoursMedian { .. }
        )
    {
        return Err(fail(
            agg_at,
            "then",
            format!("aggregate {:?} takes no then", aggregate.name()),
        ));
    }
    check_combination(&reads, &window, &aggregate).map_err(|m| fail(agg_at, "aggregate", m))?;

    if aggregate == Aggregate::Levels {
        if let Some(t) = &raw.threshold {
            return Err(fail(
                t.span().start,
                "threshold",
                "a categorical definition (aggregate = \"levels\") takes no threshold: each level is a yes/no behaviour of its own".into(),
            ));
        }
        if let Reads::Attribute {
            equals: Some(_), ..
        } = &reads
        {
            return Err(fail(
                agg_at,
                "reads.equals",
                "a categorical definition (aggregate = \"levels\") reads every level; leave out `equals` (or use aggregate = \"value\" for one level)".into(),
            ));
        }
    }
    let threshold = match &raw.threshold {
        None => None,
        Some(t) => {
            Some(Threshold::parse(t.get_ref()).map_err(|m| fail(t.span().start, "threshold", m))?)
        }
    };
    let recorded = match raw.recorded.as_ref() {
        None => Recorded::Before,
        Some(r) => match r.get_ref().as_str() {
            "before" => Recorded::Before,
            "at_outcome" => Recorded::AtOutcome,
            other => {
                return Err(fail(
                    r.span().start,
                    "recorded",
                    format!("expected \"before\" or \"at_outcome\", got {other:?}"),
                ))
            }
        },
    };
    Ok(Definition {
        id: id_text.clone(),
        version: *version.get_ref() as u32,
        title,
        description,
        family,
        reads,
        window,
        aggregate,
        threshold,
        recorded,
        level: None,
        line: 0,
    })
}

fn parse_scope(s: &Option<Spanned<String>>) -> Result<Scope, (usize, String)> {
    match s {
        None => Ok(Scope::Deal),
        Some(v) => match v.get_ref().as_str() {
            "deal" => Ok(Scope::Deal),
            "account" => Ok(Scope::Account),
            other => Err((
                v.span().start,
                format!("expected deal or account, got {other:?}"),
            )),
        },
    }
}

fn parse_window(text: &str) -> Result<Window, String> {
    let t = text.trim();
    let days = |s: &str| {
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|d| *d > 0.0 && d.is_finite() && *d <= 3650.0)
            .ok_or_else(|| {
                format!(
                    "expected a number of days between 0 and 3650 after ':', got {:?}",
                    s.trim()
                )
            })
    };
    match t {
        "deal_to_date" => Ok(Window::DealToDate),
        "all_history" => Ok(Window::AllHistory),
        _ => {
            if let Some(d) = t.strip_prefix("trailing_days:") {
                Ok(Window::Trailing { days: days(d)? })
            } else if let Some(d) = t.strip_prefix("half_life_days:") {
                Ok(Window::Decayed {
                    half_life_days: days(d)?,
                })
            } else {
                Err(format!(
                    "expected deal_to_date, all_history, trailing_days:N or half_life_days:N, got {t:?}"
                ))
            }
        }
    }
}

/// Which aggregates make sense for which reads and windows.
fn check_combination(reads: &Reads, window: &Window, agg: &Aggregate) -> Result<(), String> {
    use Aggregate as A;
    let kind = reads.kind_name();
    let ok = match reads {
        Reads::Activities { .. } => matches!(
            agg,
            A::Count
                | A::Exists
                | A::DistinctContacts
                | A::Sum { .. }
                | A::Median { .. }
                | A::Share
                | A::Latest { .. }
                | A::DaysSince
                | A::ScheduledAfter
                | A::FollowUpShare { .. }
                | A::ReplyHoursMedian { .. }
                | A::Growth
                | A::SeniorityCoverage
        ),
        Reads::ProductEvents { .. } => {
            matches!(
                agg,
                A::Count | A::Exists | A::DistinctUsers | A::DaysSince | A::Growth | A::Share
            )
        }
        Reads::MarketingTouches { .. } => {
            matches!(
                agg,
                A::Count | A::Exists | A::DistinctContacts | A::DaysSince | A::Growth | A::Share
            )
        }
        Reads::SupportTickets { .. } => matches!(
            agg,
            A::Count | A::Exists | A::DaysSince | A::OpenAt | A::Share
        ),
        Reads::Transcripts => matches!(agg, A::RepTalkShare | A::QuestionsPerHour | A::Count),
        Reads::Graph => matches!(
            agg,
            A::ChampionReuse | A::PriorWins | A::FamilyPriorWins | A::Lookalike
        ),
        Reads::Attribute { .. } => matches!(agg, A::Value | A::Levels),
    };
    if !ok {
        return Err(format!(
            "aggregate {:?} does not apply to reads.kind = {kind:?}",
            agg.name()
        ));
    }
    let decayed_ok = matches!(agg, A::Count | A::Exists | A::Sum { .. });
    if matches!(window, Window::Decayed { .. }) && !decayed_ok {
        return Err(format!(
            "a half_life_days window weights events, which only count, exists and sum use; {:?} does not",
            agg.name()
        ));
    }
    let timeless = matches!(
        reads,
        Reads::Transcripts | Reads::Graph | Reads::Attribute { .. }
    ) || matches!(agg, A::OpenAt | A::ScheduledAfter);
    if timeless && !matches!(window, Window::DealToDate | Window::AllHistory) {
        return Err(format!(
            "{:?} on {kind:?} reads everything known before the landmark; its window must be deal_to_date or \
             all_history, not {window}",
            agg.name()
        ));
    }
    if matches!(agg, A::Growth) && !matches!(window, Window::Trailing { .. }) {
        return Err(
            "growth compares two trailing windows; use window = \"trailing_days:N\"".into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_catalog_is_valid_and_has_the_required_behaviours() {
        let c = default_catalog();
        for id in [
            "exec_engaged",
            "multithreaded",
            "next_step_scheduled",
            "fast_follow_up",
            "responsive",
            "product_active",
            "usage_growing",
            "marketing_engaged",
            "urgent_ticket_open",
            "talk_ratio_balanced",
            "asks_questions",
            "champion_reused",
        ] {
            let d = c
                .behaviours
                .iter()
                .find(|d| d.id == id)
                .unwrap_or_else(|| panic!("{id} missing"));
            assert!(d.is_behaviour(), "{id} should be yes/no");
        }
        assert_eq!(c.landmarks.ages_days, vec![14, 30, 60]);
        assert_eq!(c.controls, default_controls());
    }

    fn bad(body: &str) -> CatalogError {
        parse(body, "x.toml").expect_err("should be refused")
    }

    const OK: &str = "[[behaviour]]\nid = \"a\"\nversion = 1\ntitle = \"A\"\ndescription = \"d\"\n\
                      reads = { kind = \"activities\" }\naggregate = \"count\"\n";

    #[test]
    fn errors_name_line_and_field() {
        assert!(parse(OK, "x.toml").is_ok());
        let e = bad(&OK.replace("aggregate = \"count\"", "aggregate = \"mean\""));
        assert_eq!((e.line, e.field.as_str()), (7, "behaviour[a].aggregate"));
        assert!(e.message.contains("unknown aggregate \"mean\""), "{e}");

        let e = bad(&OK.replace("version = 1", "version = 0"));
        assert_eq!((e.line, e.field.as_str()), (3, "behaviour[a].version"));

        let e = bad(&OK.replace(
            "{ kind = \"activities\" }",
            "{ kind = \"activities\", types = [\"fax\"] }",
        ));
        assert_eq!((e.line, e.field.as_str()), (6, "behaviour[a].reads.types"));
        assert!(e.message.contains("fax"), "{e}");

        let e = bad(&OK.replace(
            "aggregate = \"count\"",
            "aggregate = \"count\"\nwindow = \"last week\"",
        ));
        assert_eq!((e.line, e.field.as_str()), (8, "behaviour[a].window"));

        let e = bad(&OK.replace(
            "aggregate = \"count\"",
            "aggregate = \"count\"\nthreshold = \"about 3\"",
        ));
        assert_eq!((e.line, e.field.as_str()), (8, "behaviour[a].threshold"));

        let e = bad(&OK.replace("title = \"A\"\n", ""));
        assert_eq!((e.line, e.field.as_str()), (1, "behaviour[a].title"));

        let e = bad(&OK.replace(
            "aggregate = \"count\"",
            "aggregate = \"count\"\ncolour = \"red\"",
        ));
        assert_eq!((e.line, e.field.as_str()), (8, "colour"));

        let e = bad(&format!("{OK}\n{OK}"));
        assert_eq!((e.line, e.field.as_str()), (9, "behaviour[a].id"));
        assert!(e.message.contains("twice"));

        let e = bad(&OK.replace("\"count\"", "\"open_at\""));
        assert!(e.message.contains("does not apply"), "{e}");

        let e = bad(&OK.replace(
            "\"count\"",
            "\"distinct_contacts\"\nwindow = \"half_life_days:7\"",
        ));
        assert_eq!(e.field, "behaviour[a].aggregate");

        let e = bad(&OK.replace("id = \"a\"", "id = \"Exec Engaged\""));
        assert_eq!((e.line, e.field.as_str()), (2, "behaviour.id"));

        let e = bad(&OK.replace("id = \"a\"", "id = \"outcome\""));
        assert!(e.message.contains("clash"), "{e}");
        let e = bad(&OK
            .replace("{ kind = \"activities\" }", "{ kind = \"transcripts\" }")
            .replace("\"count\"", "\"count\"\nwindow = \"trailing_days:30\""));
        assert!(e.message.contains("deal_to_date or all_history"), "{e}");

        let e = bad("name = \"empty\"\n");
        assert!(e.message.contains("no [[behaviour]]"));
    }

    #[test]
    fn thresholds_parse_and_test() {
        assert_eq!(
            Threshold::parse(">= 3"),
            Ok(Threshold::AtLeast { value: 3.0 })
        );
        assert_eq!(Threshold::parse("> 0"), Ok(Threshold::Above { value: 0.0 }));
        assert_eq!(
            Threshold::parse("between 0.4 and 0.65"),
            Ok(Threshold::Between {
                low: 0.4,
                high: 0.65
            })
        );
        assert!(Threshold::parse("between 2 and 1").is_err());
        assert!(Threshold::parse("=> 3").is_err());
        let t = Threshold::Between {
            low: 0.4,
            high: 0.65,
        };
        assert_eq!(t.test(0.4), Some(true));
        assert_eq!(t.test(0.65), Some(true));
        assert_eq!(t.test(0.66), Some(false));
        assert_eq!(t.test(f64::NAN), None);
    }

    #[test]
    fn fingerprints_follow_meaning_not_wording() {
        let a = parse(OK, "x.toml").unwrap().behaviours.remove(0);
        let b = parse(
            &OK.replace("title = \"A\"", "title = \"Another\""),
            "x.toml",
        )
        .unwrap()
        .behaviours
        .remove(0);
        let c = parse(&OK.replace("\"count\"", "\"exists\""), "x.toml")
            .unwrap()
            .behaviours
            .remove(0);
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
    }
}
