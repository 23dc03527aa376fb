//! The canonical sales model: entity records (accounts, contacts, reps, opportunities and their stage
//! history and contact roles, tickets, transcripts) and time-stamped events (activities, product events,
//! marketing touches), each with the provenance of the source row it came from.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{CoreError, Result};
use crate::time::Ts;

/// Every kind of record winsignal holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Accounts,
    Contacts,
    Reps,
    Opportunities,
    StageHistory,
    OpportunityContacts,
    Activities,
    ProductEvents,
    MarketingTouches,
    SupportTickets,
    Transcripts,
    /// Links from a product user to an e-mail or a workspace/account (Segment `identify` and `group`).
    ProductUsers,
}

impl Kind {
    pub const ALL: [Kind; 12] = [
        Kind::Accounts,
        Kind::Contacts,
        Kind::Reps,
        Kind::Opportunities,
        Kind::StageHistory,
        Kind::OpportunityContacts,
        Kind::Activities,
        Kind::ProductEvents,
        Kind::MarketingTouches,
        Kind::SupportTickets,
        Kind::Transcripts,
        Kind::ProductUsers,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Accounts => "accounts",
            Kind::Contacts => "contacts",
            Kind::Reps => "reps",
            Kind::Opportunities => "opportunities",
            Kind::StageHistory => "stage_history",
            Kind::OpportunityContacts => "opportunity_contacts",
            Kind::Activities => "activities",
            Kind::ProductEvents => "product_events",
            Kind::MarketingTouches => "marketing_touches",
            Kind::SupportTickets => "support_tickets",
            Kind::Transcripts => "transcripts",
            Kind::ProductUsers => "product_users",
        }
    }

    /// Events are high-volume, time-stamped and append-mostly; they live in the event log.
    pub fn is_event(self) -> bool {
        matches!(
            self,
            Kind::Activities | Kind::ProductEvents | Kind::MarketingTouches
        )
    }

    /// Kinds whose extra columns become typed custom attributes.
    pub fn keeps_custom_attributes(self) -> bool {
        matches!(
            self,
            Kind::Accounts | Kind::Contacts | Kind::Reps | Kind::Opportunities
        )
    }

    /// The singular word used by `trace` (`trace opportunity ID`).
    pub fn singular(self) -> &'static str {
        match self {
            Kind::Accounts => "account",
            Kind::Contacts => "contact",
            Kind::Reps => "rep",
            Kind::Opportunities => "opportunity",
            Kind::StageHistory => "stage_history",
            Kind::OpportunityContacts => "opportunity_contact",
            Kind::Activities => "activity",
            Kind::ProductEvents => "product_event",
            Kind::MarketingTouches => "marketing_touch",
            Kind::SupportTickets => "support_ticket",
            Kind::Transcripts => "transcript",
            Kind::ProductUsers => "product_user",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase().replace('-', "_");
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s || k.singular() == s)
            .ok_or_else(|| CoreError::unparseable(format!("a record kind ({})", kind_list()), s))
    }
}

fn kind_list() -> String {
    Kind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Declares a closed vocabulary parsed case-insensitively from its snake_case names.
macro_rules! vocabulary {
    ($(#[$m:meta])* $name:ident, $what:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = CoreError;
            fn from_str(s: &str) -> Result<Self> {
                let t = s.trim();
                $(if t.eq_ignore_ascii_case($text) { return Ok($name::$variant); })+
                Err(CoreError::unparseable(
                    concat!($what, " (one of ", $($text, " "),+, ")").replace(" )", ")"),
                    s,
                ))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

vocabulary!(Outcome, "an outcome", { Won => "won", Lost => "lost", Open => "open" });
vocabulary!(ActivityType, "an activity type", {
    Call => "call", Email => "email", Meeting => "meeting", Task => "task", Note => "note"
});
vocabulary!(Direction, "a direction", { Inbound => "inbound", Outbound => "outbound" });
vocabulary!(ActivityStatus, "an activity status", {
    Completed => "completed", Scheduled => "scheduled", Canceled => "canceled"
});
vocabulary!(TouchKind, "a marketing touch kind", {
    EmailSent => "email_sent", EmailOpen => "email_open", EmailClick => "email_click",
    WebVisit => "web_visit", FormFill => "form_fill", WebinarRegistered => "webinar_registered",
    WebinarAttended => "webinar_attended", ContentDownload => "content_download", AdClick => "ad_click",
    EventAttended => "event_attended"
});
vocabulary!(Priority, "a ticket priority", { Low => "low", Normal => "normal", High => "high", Urgent => "urgent" });
vocabulary!(SpeakerRole, "a speaker role", { Rep => "rep", Customer => "customer" });

/// A custom attribute's value, typed by inference over its column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum AttrValue {
    Number(f64),
    Boolean(bool),
    Date(Ts),
    Text(String),
}

/// The type of a column or attribute, as inferred and as recorded for schema drift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    Empty,
    Number,
    Boolean,
    Date,
    Text,
}

impl ValueType {
    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::Empty => "empty",
            ValueType::Number => "number",
            ValueType::Boolean => "boolean",
            ValueType::Date => "date",
            ValueType::Text => "text",
        }
    }

    /// The narrowest type one non-empty value fits.
    pub fn of_value(v: &str) -> ValueType {
        let t = v.trim();
        if t.is_empty() {
            ValueType::Empty
        } else if parse_bool(t).is_some() {
            ValueType::Boolean
        } else if t.parse::<f64>().is_ok_and(f64::is_finite) {
            ValueType::Number
        } else if Ts::parse(t).is_ok() {
            ValueType::Date
        } else {
            ValueType::Text
        }
    }

    /// The narrowest type that holds values of both types.
    pub fn unify(self, other: ValueType) -> ValueType {
        match (self, other) {
            (a, b) if a == b => a,
            (ValueType::Empty, b) => b,
            (a, ValueType::Empty) => a,
            _ => ValueType::Text,
        }
    }

    /// Reads a value as this type (a column inferred as number holds only numbers, so this succeeds
    /// for every value the inference saw).
    pub fn read(self, v: &str) -> Option<AttrValue> {
        let t = v.trim();
        if t.is_empty() {
            return None;
        }
        Some(match self {
            ValueType::Number => t
                .parse::<f64>()
                .map(AttrValue::Number)
                .unwrap_or_else(|_| AttrValue::Text(t.into())),
            ValueType::Boolean => {
                parse_bool(t).map_or_else(|| AttrValue::Text(t.into()), AttrValue::Boolean)
            }
            ValueType::Date => {
                Ts::parse(t).map_or_else(|_| AttrValue::Text(t.into()), AttrValue::Date)
            }
            ValueType::Empty | ValueType::Text => AttrValue::Text(t.into()),
        })
    }
}

/// `true/false`, `yes/no` (case-insensitive); 0/1 are numbers, not booleans.
pub fn parse_bool(t: &str) -> Option<bool> {
    let t = t.trim();
    if t.eq_ignore_ascii_case("true") || t.eq_ignore_ascii_case("yes") {
        Some(true)
    } else if t.eq_ignore_ascii_case("false") || t.eq_ignore_ascii_case("no") {
        Some(false)
    } else {
        None
    }
}

pub type Attrs = BTreeMap<String, AttrValue>;

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Account {
    pub account_id: String,
    pub name: Option<String>,
    /// Normalised web domain (scheme, `www.`, path stripped).
    pub domain: Option<String>,
    pub industry: Option<String>,
    pub segment: Option<String>,
    pub employees: Option<f64>,
    pub annual_revenue: Option<f64>,
    pub country: Option<String>,
    pub parent_account_id: Option<String>,
    pub created_at: Option<Ts>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attrs: Attrs,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Contact {
    pub contact_id: String,
    pub account_id: Option<String>,
    /// Normalised e-mail (lower-case, trimmed).
    pub email: Option<String>,
    pub name: Option<String>,
    pub title: Option<String>,
    pub department: Option<String>,
    pub created_at: Option<Ts>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attrs: Attrs,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Rep {
    pub rep_id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub team: Option<String>,
    pub manager_id: Option<String>,
    pub hired_at: Option<Ts>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attrs: Attrs,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Opportunity {
    pub opportunity_id: String,
    pub account_id: Option<String>,
    pub rep_id: Option<String>,
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub opp_type: Option<String>,
    pub lead_source: Option<String>,
    pub amount: Option<f64>,
    pub currency: Option<String>,
    pub created_at: Ts,
    pub closed_at: Option<Ts>,
    pub outcome: Outcome,
    pub stage: Option<String>,
    /// The CRM's own forecast fields as they stand now (Salesforce `CloseDate` of an open deal,
    /// `Probability`, `ForecastCategoryName`); what they were earlier is on the stage history.
    #[serde(flatten)]
    pub crm: CrmForecast,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attrs: Attrs,
}

/// What a CRM records about when and how likely a deal closes: the rep's expected close date, the
/// probability (in percent, 0–100) and the forecast category (`Pipeline`, `Best Case`, `Commit`, …).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CrmForecast {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_close_at: Option<Ts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast_category: Option<String>,
}

impl CrmForecast {
    pub fn is_empty(&self) -> bool {
        self.expected_close_at.is_none()
            && self.probability.is_none()
            && self.forecast_category.is_none()
    }

    /// Whether the forecast category is the commit ([`is_commit_category`]).
    pub fn is_commit(&self) -> bool {
        self.forecast_category
            .as_deref()
            .is_some_and(is_commit_category)
    }
}

/// Whether a forecast category names the commit: Salesforce's `Commit` (its API value is
/// `Forecast`), HubSpot's `commit`, Dynamics 365's `Committed`, compared without case or spaces.
pub fn is_commit_category(category: &str) -> bool {
    let c: String = category
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    matches!(c.as_str(), "commit" | "committed" | "forecast")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageEntry {
    pub opportunity_id: String,
    pub stage: String,
    /// When the row was written. A row keeping the stage of the deal's previous row records a change
    /// of the CRM's forecast fields within the stage, not a new entry into it.
    pub entered_at: Ts,
    /// The CRM's forecast fields as they were from `entered_at` on.
    #[serde(flatten)]
    pub crm: CrmForecast,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpportunityContact {
    pub opportunity_id: String,
    pub contact_id: String,
    pub role: Option<String>,
    pub is_primary: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    pub activity_id: String,
    #[serde(rename = "type")]
    pub activity_type: ActivityType,
    pub direction: Option<Direction>,
    pub status: Option<ActivityStatus>,
    pub rep_id: Option<String>,
    pub account_id: Option<String>,
    pub opportunity_id: Option<String>,
    pub contact_ids: Vec<String>,
    pub occurred_at: Ts,
    pub created_at: Option<Ts>,
    pub duration_s: Option<f64>,
    pub subject: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductEvent {
    pub event_id: Option<String>,
    pub occurred_at: Ts,
    pub event: String,
    pub user_id: Option<String>,
    pub user_email: Option<String>,
    pub account_id: Option<String>,
    pub account_domain: Option<String>,
    /// The properties object as compact JSON text.
    pub properties: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarketingTouch {
    pub touch_id: Option<String>,
    pub occurred_at: Ts,
    pub kind: TouchKind,
    pub contact_id: Option<String>,
    pub email: Option<String>,
    pub account_id: Option<String>,
    pub channel: Option<String>,
    pub campaign: Option<String>,
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SupportTicket {
    pub ticket_id: String,
    pub created_at: Ts,
    pub priority: Priority,
    pub status: Option<String>,
    pub account_id: Option<String>,
    pub contact_id: Option<String>,
    pub requester_email: Option<String>,
    pub first_response_at: Option<Ts>,
    pub solved_at: Option<Ts>,
    pub csat: Option<f64>,
    pub subject: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub speaker: Option<String>,
    pub role: SpeakerRole,
    pub start_s: f64,
    pub end_s: f64,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    pub call_id: String,
    pub started_at: Ts,
    pub activity_id: Option<String>,
    pub opportunity_id: Option<String>,
    pub account_id: Option<String>,
    pub turns: Vec<Turn>,
}

/// What a product-analytics source says about one user: their e-mail (Segment `identify`) or the
/// workspace/account they belong to (Segment `group`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductUser {
    pub link_id: String,
    pub user_id: String,
    pub email: Option<String>,
    pub group_id: Option<String>,
    pub group_domain: Option<String>,
    pub group_name: Option<String>,
    pub seen_at: Ts,
}

/// One canonical record of any kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "record", rename_all = "snake_case")]
pub enum Record {
    Accounts(Account),
    Contacts(Contact),
    Reps(Rep),
    Opportunities(Opportunity),
    StageHistory(StageEntry),
    OpportunityContacts(OpportunityContact),
    Activities(Activity),
    ProductEvents(ProductEvent),
    MarketingTouches(MarketingTouch),
    SupportTickets(SupportTicket),
    Transcripts(Transcript),
    ProductUsers(ProductUser),
}

impl Record {
    pub fn kind(&self) -> Kind {
        match self {
            Record::Accounts(_) => Kind::Accounts,
            Record::Contacts(_) => Kind::Contacts,
            Record::Reps(_) => Kind::Reps,
            Record::Opportunities(_) => Kind::Opportunities,
            Record::StageHistory(_) => Kind::StageHistory,
            Record::OpportunityContacts(_) => Kind::OpportunityContacts,
            Record::Activities(_) => Kind::Activities,
            Record::ProductEvents(_) => Kind::ProductEvents,
            Record::MarketingTouches(_) => Kind::MarketingTouches,
            Record::SupportTickets(_) => Kind::SupportTickets,
            Record::Transcripts(_) => Kind::Transcripts,
            Record::ProductUsers(_) => Kind::ProductUsers,
        }
    }

    /// The record's own id where the kind has one, or a natural key built from its fields
    /// (stage history: opportunity + stage + time). `None` for events that carry no id: the store
    /// then keys them by content.
    pub fn natural_key(&self) -> Option<String> {
        self.natural_key_ref().map(std::borrow::Cow::into_owned)
    }

    /// [`Record::natural_key`] without a copy when the key is one field.
    pub fn natural_key_ref(&self) -> Option<std::borrow::Cow<'_, str>> {
        use std::borrow::Cow::{Borrowed, Owned};
        match self {
            Record::Accounts(r) => Some(Borrowed(&r.account_id)),
            Record::Contacts(r) => Some(Borrowed(&r.contact_id)),
            Record::Reps(r) => Some(Borrowed(&r.rep_id)),
            Record::Opportunities(r) => Some(Borrowed(&r.opportunity_id)),
            Record::StageHistory(r) => Some(Owned(format!(
                "{}|{}|{}",
                r.opportunity_id, r.stage, r.entered_at.0
            ))),
            Record::OpportunityContacts(r) => {
                Some(Owned(format!("{}|{}", r.opportunity_id, r.contact_id)))
            }
            Record::Activities(r) => Some(Borrowed(&r.activity_id)),
            Record::ProductEvents(r) => r.event_id.as_deref().map(Borrowed),
            Record::MarketingTouches(r) => r.touch_id.as_deref().map(Borrowed),
            Record::SupportTickets(r) => Some(Borrowed(&r.ticket_id)),
            Record::Transcripts(r) => Some(Borrowed(&r.call_id)),
            Record::ProductUsers(r) => Some(Borrowed(&r.link_id)),
        }
    }

    /// The event time of an event record; `None` for entities.
    pub fn event_time(&self) -> Option<Ts> {
        match self {
            Record::Activities(r) => Some(r.occurred_at),
            Record::ProductEvents(r) => Some(r.occurred_at),
            Record::MarketingTouches(r) => Some(r.occurred_at),
            _ => None,
        }
    }
}

/// Where a record came from: enough to find the source row again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The source name, e.g. `salesforce:Opportunity` or `canonical:activities`.
    pub source: String,
    pub load_id: u64,
    pub file: String,
    /// 1-based line of the row (header is line 1 in CSV).
    pub line: u64,
    /// The source system's own id for the row, when it has one.
    pub source_record_id: Option<String>,
    /// Hex content hash of the canonical record.
    pub content_hash: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabularies_parse_case_insensitively_and_explain_failures() {
        assert_eq!("WON".parse::<Outcome>().unwrap(), Outcome::Won);
        assert_eq!(
            " webinar_attended ".parse::<TouchKind>().unwrap(),
            TouchKind::WebinarAttended
        );
        let err = "critical".parse::<Priority>().unwrap_err().to_string();
        assert!(err.contains("low normal high urgent"), "{err}");
        assert!(err.contains("critical"), "{err}");
    }

    #[test]
    fn kinds_round_trip() {
        for k in Kind::ALL {
            assert_eq!(k.as_str().parse::<Kind>().unwrap(), k);
            assert_eq!(k.singular().parse::<Kind>().unwrap(), k);
        }
    }

    #[test]
    fn value_types() {
        assert_eq!(ValueType::of_value("12.5"), ValueType::Number);
        assert_eq!(ValueType::of_value("Yes"), ValueType::Boolean);
        assert_eq!(ValueType::of_value("2024-01-01"), ValueType::Date);
        assert_eq!(ValueType::of_value("GTX Pro"), ValueType::Text);
        assert_eq!(ValueType::Number.unify(ValueType::Empty), ValueType::Number);
        assert_eq!(ValueType::Number.unify(ValueType::Date), ValueType::Text);
    }
}
