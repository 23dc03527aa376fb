//! Canonical records from named field values: one builder per kind, shared by every connector.
//! A connector only has to say which value each canonical field has; the builder checks required
//! fields, parses timestamps, numbers and vocabularies, and collects every problem of the row.

use std::collections::HashMap;

use winsignal_core::identity::{normalize_domain, normalize_email};
use winsignal_core::{
    Account, Activity, ActivityStatus, Attrs, Contact, CrmForecast, Kind, MarketingTouch,
    Opportunity, OpportunityContact, Outcome, Priority, ProductEvent, Record, Rep, StageEntry,
    SupportTicket, Ts, ValueType,
};

/// Field values of one row, by canonical field name. Empty strings count as absent.
pub trait Fields {
    fn get(&self, name: &str) -> Option<&str>;
}

impl Fields for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<&str> {
        HashMap::get(self, name)
            .map(String::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }
}

/// A few named field values, looked up by a scan: cheaper than a hash map for the handful a message has.
#[derive(Debug, Default)]
pub struct FieldList(pub Vec<(&'static str, String)>);

impl FieldList {
    /// Sets a field when it has a value.
    pub fn put(&mut self, name: &'static str, value: Option<String>) {
        if let Some(v) = value {
            self.0.retain(|(n, _)| *n != name);
            self.0.push((name, v));
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| *n == name)
    }
}

impl Fields for FieldList {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.trim())
            .filter(|s| !s.is_empty())
    }
}

/// The canonical fields of each kind, required ones first marked with `*` in docs/formats.md.
pub fn fields_of(kind: Kind) -> (&'static [&'static str], &'static [&'static str]) {
    match kind {
        Kind::Accounts => (
            &["account_id"],
            &[
                "account_id",
                "name",
                "domain",
                "industry",
                "segment",
                "employees",
                "annual_revenue",
                "country",
                "parent_account_id",
                "created_at",
            ],
        ),
        Kind::Contacts => (
            &["contact_id"],
            &[
                "contact_id",
                "account_id",
                "email",
                "name",
                "title",
                "department",
                "created_at",
            ],
        ),
        Kind::Reps => (
            &["rep_id"],
            &["rep_id", "name", "email", "team", "manager_id", "hired_at"],
        ),
        Kind::Opportunities => (
            &["opportunity_id", "created_at", "outcome"],
            &[
                "opportunity_id",
                "account_id",
                "rep_id",
                "name",
                "type",
                "lead_source",
                "amount",
                "currency",
                "created_at",
                "closed_at",
                "outcome",
                "stage",
                "expected_close_at",
                "probability",
                "forecast_category",
            ],
        ),
        Kind::StageHistory => (
            &["opportunity_id", "stage", "entered_at"],
            &[
                "opportunity_id",
                "stage",
                "entered_at",
                "expected_close_at",
                "probability",
                "forecast_category",
            ],
        ),
        Kind::OpportunityContacts => (
            &["opportunity_id", "contact_id"],
            &["opportunity_id", "contact_id", "role", "is_primary"],
        ),
        Kind::Activities => (
            &["activity_id", "type", "occurred_at"],
            &[
                "activity_id",
                "type",
                "direction",
                "status",
                "rep_id",
                "account_id",
                "opportunity_id",
                "contact_ids",
                "occurred_at",
                "created_at",
                "duration_s",
                "subject",
            ],
        ),
        Kind::ProductEvents => (
            &["occurred_at", "event"],
            &[
                "event_id",
                "occurred_at",
                "event",
                "user_id",
                "user_email",
                "account_id",
                "account_domain",
                "properties",
            ],
        ),
        Kind::MarketingTouches => (
            &["occurred_at", "kind"],
            &[
                "touch_id",
                "occurred_at",
                "kind",
                "contact_id",
                "email",
                "account_id",
                "channel",
                "campaign",
                "url",
            ],
        ),
        Kind::SupportTickets => (
            &["ticket_id", "created_at", "priority"],
            &[
                "ticket_id",
                "created_at",
                "priority",
                "status",
                "account_id",
                "contact_id",
                "requester_email",
                "first_response_at",
                "solved_at",
                "csat",
                "subject",
            ],
        ),
        Kind::Transcripts => (
            &["call_id", "started_at", "turns"],
            &[
                "call_id",
                "started_at",
                "activity_id",
                "opportunity_id",
                "account_id",
                "turns",
            ],
        ),
        Kind::ProductUsers => (
            &["link_id", "user_id"],
            &[
                "link_id",
                "user_id",
                "email",
                "group_id",
                "group_domain",
                "group_name",
                "seen_at",
            ],
        ),
    }
}

/// The earliest timestamp accepted; anything before is a data error.
pub fn earliest_plausible() -> Ts {
    Ts::from_ymd(1990, 1, 1).unwrap_or(Ts(631_152_000_000))
}

/// Scheduled activities may lie ahead; nothing else may be later than now plus this slack.
const FUTURE_SLACK_MS: i64 = 86_400_000;
const SCHEDULED_HORIZON_DAYS: f64 = 730.0;
/// How far ahead a CRM's expected close date may lie.
const EXPECTED_CLOSE_HORIZON_DAYS: f64 = 3650.0;

/// How numbers are written: the decimal separator and the thousands separator (valid only between
/// groups of three digits). The default reads `1,234.5`; a mapping may declare `decimal = ","` for
/// `1.234,5`. A value that does not fit the declared way is refused, never reinterpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumberFormat {
    pub decimal: char,
    pub thousands: Option<char>,
}

impl Default for NumberFormat {
    fn default() -> Self {
        NumberFormat {
            decimal: '.',
            thousands: Some(','),
        }
    }
}

impl NumberFormat {
    /// The format for a declared decimal separator (`.` or `,`) and, optionally, thousands separator
    /// (`,`, `.`, ` `, `'`, or empty for none); the thousands separator defaults to the other of `.`/`,`.
    pub fn declared(
        decimal: Option<&str>,
        thousands: Option<&str>,
    ) -> std::result::Result<Self, String> {
        let decimal = match decimal {
            None | Some(".") => '.',
            Some(",") => ',',
            Some(d) => return Err(format!("`decimal` must be \".\" or \",\", found {d:?}")),
        };
        let thousands = match thousands {
            None => Some(if decimal == '.' { ',' } else { '.' }),
            Some("") => None,
            Some(t) if [",", ".", " ", "'"].contains(&t) => t.chars().next(),
            Some(t) => {
                return Err(format!(
                    "`thousands` must be \",\", \".\", \" \", \"'\" or \"\" (none), found {t:?}"
                ))
            }
        };
        if thousands == Some(decimal) {
            return Err(format!(
                "`thousands` cannot be the decimal separator {decimal:?}"
            ));
        }
        Ok(NumberFormat { decimal, thousands })
    }

    fn is_grouping(&self, c: char) -> bool {
        c == '_'
            || self.thousands == Some(c)
            || (self.thousands == Some(' ') && (c == '\u{a0}' || c == '\u{202f}'))
    }

    /// Reads a number written this way; `$` before or after the digits is ignored. Returns why not.
    pub fn parse(&self, raw: &str) -> std::result::Result<f64, String> {
        let t = raw.trim();
        let (negative, t) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t.strip_prefix('+').unwrap_or(t)),
        };
        let t = t.strip_prefix('$').unwrap_or(t);
        let t = t.strip_suffix('$').unwrap_or(t).trim();
        let (negative, t) = match (negative, t.strip_prefix('-')) {
            (false, Some(rest)) => (true, rest),
            _ => (negative, t),
        };
        let (mantissa, exponent) = match t.find(['e', 'E']) {
            Some(i) => (&t[..i], Some(&t[i + 1..])),
            None => (t, None),
        };
        let (int_part, frac_part) = match mantissa.split_once(self.decimal) {
            Some((i, f)) => (i, Some(f)),
            None => (mantissa, None),
        };
        let fits = |why: &str| {
            format!(
                "{why}; numbers are read with {:?} as the decimal separator{}",
                self.decimal,
                match self.thousands {
                    Some(t) => format!(" and {t:?} between groups of three digits"),
                    None => String::new(),
                }
            )
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let mut normal = String::with_capacity(t.len() + 1);
        if negative {
            normal.push('-');
        }
        if int_part.chars().any(|c| self.is_grouping(c)) {
            if exponent.is_some() {
                return Err(fits("a thousands separator in a number with an exponent"));
            }
            let mut groups = int_part.split(|c| self.is_grouping(c));
            let first = groups.next().unwrap_or("");
            if !digits(first) || first.len() > 3 {
                return Err(fits(
                    "a thousands separator not between groups of three digits",
                ));
            }
            // "0,125" has no thousands: it is a decimal comma (or a typo), never 125.
            if first.starts_with('0') {
                return Err(fits(
                    "a leading zero before a thousands separator (a decimal separator?)",
                ));
            }
            normal.push_str(first);
            for g in groups {
                if !(digits(g) && g.len() == 3) {
                    return Err(fits(
                        "a thousands separator not between groups of three digits",
                    ));
                }
                normal.push_str(g);
            }
        } else if int_part.is_empty() && frac_part.is_some_and(digits) {
            normal.push('0');
        } else if digits(int_part) {
            normal.push_str(int_part);
        } else {
            return Err(fits("not a number"));
        }
        if let Some(f) = frac_part {
            if !(f.is_empty() || digits(f)) {
                return Err(fits("a second separator after the decimal separator"));
            }
            normal.push('.');
            normal.push_str(f);
        }
        if let Some(e) = exponent {
            let e = e.strip_prefix('+').unwrap_or(e);
            if !digits(e.strip_prefix('-').unwrap_or(e)) {
                return Err(fits("not a number"));
            }
            normal.push('e');
            normal.push_str(e);
        }
        match normal.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err(fits("not a finite number")),
        }
    }
}

/// Layouts of a time without an offset read in a declared timezone when no `format` is given.
const LOCAL_TIME_LAYOUTS: [&str; 4] = [
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
];

/// Whether a strftime format reads a time of day but no offset (so a declared timezone applies).
fn has_time_without_offset(fmt: &str) -> bool {
    let has = |d: &[&str]| d.iter().any(|x| fmt.contains(x));
    has(&["%H", "%I", "%k", "%l", "%T", "%R", "%X", "%r", "%c"]) && !has(&["z", "%s", "%+"])
}

/// Parses a declared timezone: `UTC`/`Z`, or a fixed offset `+HH:MM` / `-HH:MM` / `+HHMM`. Returns the
/// offset in seconds east of UTC.
pub fn parse_timezone(text: &str) -> std::result::Result<i32, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("utc") || t.eq_ignore_ascii_case("z") || t.eq_ignore_ascii_case("gmt")
    {
        return Ok(0);
    }
    let expected = || {
        format!(
            "`timezone` must be \"UTC\" or a fixed offset such as \"+02:00\" or \"-05:00\" (zones with daylight saving time are not supported: give the offset the file's times were written in), found {text:?}"
        )
    };
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'+') => (1, &t[1..]),
        Some(b'-') => (-1, &t[1..]),
        _ => return Err(expected()),
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(expected());
    }
    let hours: i32 = digits[..2].parse().map_err(|_| expected())?;
    let minutes: i32 = digits[2..].parse().map_err(|_| expected())?;
    if hours > 14 || minutes > 59 {
        return Err(expected());
    }
    Ok(sign * (hours * 3600 + minutes * 60))
}

/// Reads the fields of one row, collecting problems instead of stopping at the first.
pub struct FieldReader<'a> {
    fields: &'a dyn Fields,
    now: Ts,
    date_formats: Option<&'a HashMap<String, String>>,
    number_formats: Option<&'a HashMap<String, NumberFormat>>,
    /// Fixed offset from UTC, in seconds, of times written without one (a mapping's `timezone`).
    timezone_s: Option<i32>,
    pub problems: Vec<String>,
    /// Accepted-with-a-note findings: (code, message).
    pub notes: Vec<(String, String)>,
}

impl<'a> FieldReader<'a> {
    pub fn new(
        fields: &'a dyn Fields,
        now: Ts,
        date_formats: Option<&'a HashMap<String, String>>,
    ) -> Self {
        FieldReader {
            fields,
            now,
            date_formats,
            number_formats: None,
            timezone_s: None,
            problems: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// How the numbers of some fields are written (the others are read the default way).
    pub fn with_number_formats(mut self, formats: &'a HashMap<String, NumberFormat>) -> Self {
        self.number_formats = Some(formats);
        self
    }

    /// Reads times without an offset as local times at this fixed offset from UTC (seconds).
    pub fn with_timezone(mut self, offset_s: Option<i32>) -> Self {
        self.timezone_s = offset_s;
        self
    }

    pub fn text(&mut self, name: &str) -> Option<String> {
        self.fields.get(name).map(str::to_string)
    }

    pub fn required_text(&mut self, name: &str) -> String {
        match self.fields.get(name) {
            Some(v) => v.to_string(),
            None => {
                self.problems
                    .push(format!("missing required field `{name}`"));
                String::new()
            }
        }
    }

    fn parse_ts(&mut self, name: &str, raw: &str) -> Option<Ts> {
        let parsed = match (self.date_formats.and_then(|f| f.get(name)), self.timezone_s) {
            (Some(fmt), Some(offset_s)) if has_time_without_offset(fmt) => {
                Ts::parse_with_format(raw, fmt)
                    .map(|ts| ts.plus_millis(-i64::from(offset_s) * 1000))
            }
            (Some(fmt), _) => Ts::parse_with_format(raw, fmt),
            (None, Some(offset_s)) => Ts::parse(raw).or_else(|e| {
                LOCAL_TIME_LAYOUTS
                    .iter()
                    .find_map(|f| Ts::parse_with_format(raw, f).ok())
                    .map(|ts| ts.plus_millis(-i64::from(offset_s) * 1000))
                    .ok_or(e)
            }),
            (None, None) => Ts::parse(raw),
        };
        match parsed {
            Ok(ts) => Some(ts),
            Err(e) => {
                self.problems.push(format!("field `{name}`: {e}"));
                None
            }
        }
    }

    /// A timestamp that must not be in the future or before 1990.
    pub fn ts(&mut self, name: &str) -> Option<Ts> {
        self.ts_until(name, self.now.plus_millis(FUTURE_SLACK_MS))
    }

    /// A timestamp that may lie ahead of now up to `latest`.
    pub fn ts_until(&mut self, name: &str, latest: Ts) -> Option<Ts> {
        let raw = self.fields.get(name)?.to_string();
        let ts = self.parse_ts(name, &raw)?;
        if ts < earliest_plausible() {
            self.problems
                .push(format!("field `{name}`: {raw:?} is before 1990"));
            return None;
        }
        if ts > latest {
            self.problems.push(format!(
                "field `{name}`: {raw:?} is in the future (now is {})",
                self.now
            ));
            return None;
        }
        Some(ts)
    }

    pub fn required_ts(&mut self, name: &str) -> Ts {
        if self.fields.get(name).is_none() {
            self.problems
                .push(format!("missing required field `{name}`"));
            return Ts(0);
        }
        self.ts(name).unwrap_or(Ts(0))
    }

    pub fn number(&mut self, name: &str) -> Option<f64> {
        let raw = self.fields.get(name)?;
        let format = self
            .number_formats
            .and_then(|f| f.get(name))
            .copied()
            .unwrap_or_default();
        match format.parse(raw) {
            Ok(v) => Some(v),
            Err(why) => {
                let hint = if format.decimal == '.' && raw.contains(',') {
                    " (a file that writes a decimal comma needs `decimal = \",\"` in its mapping)"
                } else {
                    ""
                };
                self.problems.push(format!(
                    "field `{name}`: expected a number, found {raw:?}: {why}{hint}"
                ));
                None
            }
        }
    }

    /// The CRM's forecast fields. A value that cannot be read is left out with a note rather than
    /// refusing the row: the deal is still a deal without its CRM's forecast.
    pub fn crm_forecast(&mut self) -> CrmForecast {
        let latest = self.now.plus_days(EXPECTED_CLOSE_HORIZON_DAYS);
        let expected_close_at = self.soft("expected_close_at", |r| {
            r.ts_until("expected_close_at", latest)
        });
        let probability = self
            .soft("probability", |r| r.number("probability"))
            .and_then(|p| {
                if (0.0..=100.0).contains(&p) {
                    Some(p)
                } else {
                    self.notes.push((
                        "probability_out_of_range".into(),
                        format!(
                            "probability {p} is not a percentage from 0 to 100; it is left out"
                        ),
                    ));
                    None
                }
            });
        CrmForecast {
            expected_close_at,
            probability,
            forecast_category: self.text("forecast_category"),
        }
    }

    /// Reads one field with `read`, turning the problems it finds into a note (`unreadable_<field>`)
    /// that the value is left out.
    fn soft<T>(&mut self, field: &str, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        let before = self.problems.len();
        let value = read(self);
        for problem in self.problems.split_off(before) {
            self.notes.push((
                format!("unreadable_{field}"),
                format!("{problem}; the value is left out and the row kept"),
            ));
        }
        value
    }

    pub fn boolean(&mut self, name: &str) -> Option<bool> {
        let raw = self.fields.get(name)?;
        match winsignal_core::parse_bool(raw).or(match raw {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        }) {
            Some(b) => Some(b),
            None => {
                self.problems.push(format!(
                    "field `{name}`: expected true or false, found {raw:?}"
                ));
                None
            }
        }
    }

    pub fn vocab<T: std::str::FromStr<Err = winsignal_core::CoreError>>(
        &mut self,
        name: &str,
    ) -> Option<T> {
        let raw = self.fields.get(name)?;
        match raw.parse::<T>() {
            Ok(v) => Some(v),
            Err(e) => {
                self.problems.push(format!("field `{name}`: {e}"));
                None
            }
        }
    }

    pub fn required_vocab<T: std::str::FromStr<Err = winsignal_core::CoreError>>(
        &mut self,
        name: &str,
    ) -> Option<T> {
        if self.fields.get(name).is_none() {
            self.problems
                .push(format!("missing required field `{name}`"));
            return None;
        }
        self.vocab(name)
    }

    /// A normalised e-mail; an unusable value is kept out and noted, not silently dropped.
    pub fn email(&mut self, name: &str) -> Option<String> {
        let raw = self.fields.get(name)?;
        let e = normalize_email(raw);
        if e.is_none() {
            self.notes.push((
                "invalid_email".into(),
                format!("field `{name}`: {raw:?} is not an e-mail address; left empty"),
            ));
        }
        e
    }

    pub fn domain(&mut self, name: &str) -> Option<String> {
        let raw = self.fields.get(name)?;
        let d = normalize_domain(raw);
        if d.is_none() {
            self.notes.push((
                "invalid_domain".into(),
                format!("field `{name}`: {raw:?} is not a web domain; left empty"),
            ));
        }
        d
    }

    pub fn id_list(&mut self, name: &str) -> Vec<String> {
        self.fields
            .get(name)
            .map(|v| {
                v.split(';')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Builds the record of `kind` (not transcripts or product users, which have their own shapes).
/// Returns the record, or the problems that quarantine the row.
pub fn build(kind: Kind, r: &mut FieldReader<'_>, attrs: Attrs) -> Option<Record> {
    let record = match kind {
        Kind::Accounts => Record::Accounts(Account {
            account_id: r.required_text("account_id"),
            name: r.text("name"),
            domain: r.domain("domain"),
            industry: r.text("industry"),
            segment: r.text("segment"),
            employees: r.number("employees"),
            annual_revenue: r.number("annual_revenue"),
            country: r.text("country"),
            parent_account_id: r.text("parent_account_id"),
            created_at: r.ts("created_at"),
            attrs,
        }),
        Kind::Contacts => Record::Contacts(Contact {
            contact_id: r.required_text("contact_id"),
            account_id: r.text("account_id"),
            email: r.email("email"),
            name: r.text("name"),
            title: r.text("title"),
            department: r.text("department"),
            created_at: r.ts("created_at"),
            attrs,
        }),
        Kind::Reps => Record::Reps(Rep {
            rep_id: r.required_text("rep_id"),
            name: r.text("name"),
            email: r.email("email"),
            team: r.text("team"),
            manager_id: r.text("manager_id"),
            hired_at: r.ts("hired_at"),
            attrs,
        }),
        Kind::Opportunities => {
            let opp = Opportunity {
                opportunity_id: r.required_text("opportunity_id"),
                account_id: r.text("account_id"),
                rep_id: r.text("rep_id"),
                name: r.text("name"),
                opp_type: r.text("type"),
                lead_source: r.text("lead_source"),
                amount: r.number("amount"),
                currency: r.text("currency"),
                created_at: r.required_ts("created_at"),
                closed_at: r.ts("closed_at"),
                outcome: r
                    .required_vocab::<Outcome>("outcome")
                    .unwrap_or(Outcome::Open),
                stage: r.text("stage"),
                crm: r.crm_forecast(),
                attrs,
            };
            if opp.outcome == Outcome::Won && opp.amount.is_none_or(|a| a <= 0.0) {
                r.notes.push((
                    "won_without_amount".into(),
                    "won deal with a missing or non-positive amount".into(),
                ));
            }
            if opp.outcome != Outcome::Open && opp.closed_at.is_none() {
                r.notes.push((
                    "closed_without_date".into(),
                    format!("{} deal without closed_at", opp.outcome),
                ));
            }
            if opp.outcome == Outcome::Open && opp.closed_at.is_some() {
                r.notes.push((
                    "open_with_close_date".into(),
                    "open deal with a closed_at; it stays open".into(),
                ));
            }
            if let Some(c) = opp.closed_at {
                if c < opp.created_at {
                    r.notes.push((
                        "closed_before_created".into(),
                        "closed_at is before created_at".into(),
                    ));
                } else if c == opp.created_at {
                    r.notes.push((
                        "closed_at_creation".into(),
                        "closed_at equals created_at (a same-day close in a date-only export?): the deal was never open, so discovery and training leave it out".into(),
                    ));
                }
            }
            if opp.account_id.is_none() {
                r.notes
                    .push(("no_account".into(), "deal without an account".into()));
            }
            if opp.rep_id.is_none() {
                r.notes.push(("no_rep".into(), "deal without a rep".into()));
            }
            Record::Opportunities(opp)
        }
        Kind::StageHistory => Record::StageHistory(StageEntry {
            opportunity_id: r.required_text("opportunity_id"),
            stage: r.required_text("stage"),
            entered_at: r.required_ts("entered_at"),
            crm: r.crm_forecast(),
        }),
        Kind::OpportunityContacts => Record::OpportunityContacts(OpportunityContact {
            opportunity_id: r.required_text("opportunity_id"),
            contact_id: r.required_text("contact_id"),
            role: r.text("role"),
            is_primary: r.boolean("is_primary"),
        }),
        Kind::Activities => {
            let activity_id = r.required_text("activity_id");
            let activity_type = r.required_vocab("type");
            let status: Option<ActivityStatus> = r.vocab("status");
            let latest = if status == Some(ActivityStatus::Scheduled) {
                r.now.plus_days(SCHEDULED_HORIZON_DAYS)
            } else {
                r.now.plus_millis(FUTURE_SLACK_MS)
            };
            let occurred_at = if r.fields.get("occurred_at").is_none() {
                r.problems
                    .push("missing required field `occurred_at`".into());
                None
            } else {
                r.ts_until("occurred_at", latest)
            };
            // Read every field before giving up on the row, so all of its problems are reported.
            let direction = r.vocab("direction");
            let rep_id = r.text("rep_id");
            let account_id = r.text("account_id");
            let opportunity_id = r.text("opportunity_id");
            let contact_ids = r.id_list("contact_ids");
            let created_at = r.ts("created_at");
            let duration_s = r.number("duration_s");
            let subject = r.text("subject");
            let activity = Activity {
                activity_id,
                activity_type: activity_type?,
                direction,
                status,
                rep_id,
                account_id,
                opportunity_id,
                contact_ids,
                occurred_at: occurred_at?,
                created_at,
                duration_s,
                subject,
            };
            if activity.duration_s.is_some_and(|d| d < 0.0) {
                r.problems
                    .push("field `duration_s`: must not be negative".into());
            }
            Record::Activities(activity)
        }
        Kind::ProductEvents => Record::ProductEvents(ProductEvent {
            event_id: r.text("event_id"),
            occurred_at: r.required_ts("occurred_at"),
            event: r.required_text("event"),
            user_id: r.text("user_id"),
            user_email: r.email("user_email"),
            account_id: r.text("account_id"),
            account_domain: r.domain("account_domain"),
            properties: properties(r),
        }),
        Kind::MarketingTouches => {
            let touch_id = r.text("touch_id");
            let occurred_at = r.required_ts("occurred_at");
            let kind = r.required_vocab("kind");
            let contact_id = r.text("contact_id");
            let email = r.email("email");
            let account_id = r.text("account_id");
            let channel = r.text("channel");
            let campaign = r.text("campaign");
            let url = r.text("url");
            Record::MarketingTouches(MarketingTouch {
                touch_id,
                occurred_at,
                kind: kind?,
                contact_id,
                email,
                account_id,
                channel,
                campaign,
                url,
            })
        }
        Kind::SupportTickets => {
            let ticket = SupportTicket {
                ticket_id: r.required_text("ticket_id"),
                created_at: r.required_ts("created_at"),
                priority: r
                    .required_vocab::<Priority>("priority")
                    .unwrap_or(Priority::Normal),
                status: r.text("status").map(|s| s.to_ascii_lowercase()),
                account_id: r.text("account_id"),
                contact_id: r.text("contact_id"),
                requester_email: r.email("requester_email"),
                first_response_at: r.ts("first_response_at"),
                solved_at: r.ts("solved_at"),
                csat: r.number("csat"),
                subject: r.text("subject"),
            };
            if ticket.solved_at.is_some_and(|s| s < ticket.created_at) {
                r.notes.push((
                    "solved_before_created".into(),
                    "solved_at is before created_at".into(),
                ));
            }
            Record::SupportTickets(ticket)
        }
        Kind::Transcripts | Kind::ProductUsers => {
            r.problems
                .push(format!("{kind} cannot be read from flat fields"));
            return None;
        }
    };
    r.problems.is_empty().then_some(record)
}

/// An entity record as the canonical field values [`build`] reads back into the same record (times as
/// RFC 3339, numbers as Rust writes them), with its custom attributes. Used to merge an update onto
/// the version held. Kinds without one id field give no fields.
pub fn record_fields(record: &Record) -> (HashMap<String, String>, Attrs) {
    let mut f = HashMap::new();
    let mut put = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            f.insert(name.to_string(), v);
        }
    };
    let ts = |t: Option<Ts>| t.map(Ts::to_rfc3339);
    let num = |n: Option<f64>| n.map(|v| v.to_string());
    let attrs = match record {
        Record::Accounts(a) => {
            put("account_id", Some(a.account_id.clone()));
            put("name", a.name.clone());
            put("domain", a.domain.clone());
            put("industry", a.industry.clone());
            put("segment", a.segment.clone());
            put("employees", num(a.employees));
            put("annual_revenue", num(a.annual_revenue));
            put("country", a.country.clone());
            put("parent_account_id", a.parent_account_id.clone());
            put("created_at", ts(a.created_at));
            a.attrs.clone()
        }
        Record::Contacts(c) => {
            put("contact_id", Some(c.contact_id.clone()));
            put("account_id", c.account_id.clone());
            put("email", c.email.clone());
            put("name", c.name.clone());
            put("title", c.title.clone());
            put("department", c.department.clone());
            put("created_at", ts(c.created_at));
            c.attrs.clone()
        }
        Record::Reps(r) => {
            put("rep_id", Some(r.rep_id.clone()));
            put("name", r.name.clone());
            put("email", r.email.clone());
            put("team", r.team.clone());
            put("manager_id", r.manager_id.clone());
            put("hired_at", ts(r.hired_at));
            r.attrs.clone()
        }
        Record::Opportunities(o) => {
            put("opportunity_id", Some(o.opportunity_id.clone()));
            put("account_id", o.account_id.clone());
            put("rep_id", o.rep_id.clone());
            put("name", o.name.clone());
            put("type", o.opp_type.clone());
            put("lead_source", o.lead_source.clone());
            put("amount", num(o.amount));
            put("currency", o.currency.clone());
            put("created_at", ts(Some(o.created_at)));
            put("closed_at", ts(o.closed_at));
            put("outcome", Some(o.outcome.to_string()));
            put("stage", o.stage.clone());
            o.attrs.clone()
        }
        Record::SupportTickets(t) => {
            put("ticket_id", Some(t.ticket_id.clone()));
            put("created_at", ts(Some(t.created_at)));
            put("priority", Some(t.priority.to_string()));
            put("status", t.status.clone());
            put("account_id", t.account_id.clone());
            put("contact_id", t.contact_id.clone());
            put("requester_email", t.requester_email.clone());
            put("first_response_at", ts(t.first_response_at));
            put("solved_at", ts(t.solved_at));
            put("csat", num(t.csat));
            put("subject", t.subject.clone());
            Attrs::new()
        }
        _ => Attrs::new(),
    };
    (f, attrs)
}

fn properties(r: &mut FieldReader<'_>) -> Option<String> {
    let raw = r.fields.get("properties")?;
    // Validated without building a tree (millions of rows); the user's text is kept as given.
    let is_object = raw.trim_start().starts_with('{')
        && serde_json::from_str::<serde::de::IgnoredAny>(raw).is_ok();
    match is_object {
        true => Some(raw.trim().to_string()),
        false => {
            r.problems.push(format!(
                "field `properties`: expected a JSON object, found {}",
                preview(raw)
            ));
            None
        }
    }
}

/// A value shortened for messages.
pub fn preview(raw: &str) -> String {
    if raw.chars().count() > 60 {
        format!("{:?}…", raw.chars().take(60).collect::<String>())
    } else {
        format!("{raw:?}")
    }
}

/// Per-column type inference over a whole file, for custom attributes and schema drift.
#[derive(Debug, Clone, Default)]
pub struct ColumnTypes {
    pub names: Vec<String>,
    pub types: Vec<ValueType>,
}

impl ColumnTypes {
    pub fn new(names: Vec<String>) -> Self {
        let types = vec![ValueType::Empty; names.len()];
        ColumnTypes { names, types }
    }

    pub fn observe(&mut self, idx: usize, value: &str) {
        if let Some(t) = self.types.get_mut(idx) {
            if *t != ValueType::Text {
                *t = t.unify(ValueType::of_value(value));
            }
        }
    }

    pub fn columns(&self) -> Vec<winsignal_store::Column> {
        self.names
            .iter()
            .zip(&self.types)
            .map(|(n, t)| winsignal_store::Column {
                name: n.clone(),
                value_type: *t,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn now() -> Ts {
        Ts::parse("2026-01-01T00:00:00Z").unwrap()
    }

    #[test]
    fn numbers_are_read_as_declared_or_refused() {
        let point = NumberFormat::default();
        let comma = NumberFormat::declared(Some(","), None).unwrap();
        let swiss = NumberFormat::declared(Some("."), Some("'")).unwrap();
        let spaced = NumberFormat::declared(Some(","), Some(" ")).unwrap();
        for (f, raw, want) in [
            (point, "1,234.5", 1234.5),
            (point, "-1,234,567", -1_234_567.0),
            (point, "$120,000", 120_000.0),
            (point, "-$5", -5.0),
            (point, "$-5", -5.0),
            (point, "12$", 12.0),
            (point, ".5", 0.5),
            (point, "1e6", 1e6),
            (point, "1_000", 1000.0),
            (comma, "1.234,56", 1234.56),
            (comma, "12,5", 12.5),
            (comma, "-0,5", -0.5),
            (swiss, "1'234.5", 1234.5),
            (spaced, "1 234,5", 1234.5),
            (spaced, "1\u{a0}234,5", 1234.5),
        ] {
            assert_eq!(f.parse(raw), Ok(want), "{raw} with {f:?}");
        }
        for (f, raw) in [
            (point, "1.234,56"),
            (point, "1,2,3"),
            (point, "0,125"),
            (point, "-0,500"),
            (comma, "0.125"),
            (point, "12,50"),
            (point, "1,2345"),
            (point, ",123"),
            (point, "1,234e3"),
            (point, "1.2.3"),
            (point, "inf"),
            (point, "NaN"),
            (point, "12.5k"),
            (point, "€12"),
            (point, ""),
            (point, "-"),
            (comma, "1,234.5"),
            (comma, "1.2.3"),
            (comma, "1.23,4"),
        ] {
            assert!(f.parse(raw).is_err(), "{raw:?} with {f:?} must be refused");
        }
        assert!(NumberFormat::declared(Some(";"), None).is_err());
        assert!(NumberFormat::declared(Some(","), Some(",")).is_err());
        assert_eq!(
            NumberFormat::declared(Some("."), Some(""))
                .unwrap()
                .parse("1,234"),
            Err("not a number; numbers are read with '.' as the decimal separator".to_string())
        );
    }

    #[test]
    fn timezones_are_fixed_offsets() {
        assert_eq!(parse_timezone("UTC"), Ok(0));
        assert_eq!(parse_timezone("+02:00"), Ok(7200));
        assert_eq!(parse_timezone("-0530"), Ok(-19_800));
        assert!(parse_timezone("Europe/Berlin").is_err());
        assert!(parse_timezone("+25:00").is_err());
    }

    #[test]
    fn a_record_read_back_from_its_fields_is_the_same_record() {
        let f = fields(&[
            ("opportunity_id", "O1"),
            ("created_at", "2025-01-01T10:00:00.250Z"),
            ("closed_at", "2025-02-01"),
            ("outcome", "won"),
            ("amount", "1234.5678"),
            ("type", "New"),
        ]);
        let mut r = FieldReader::new(&f, now(), None);
        let rec = build(Kind::Opportunities, &mut r, Attrs::new()).unwrap();
        let (again, _) = record_fields(&rec);
        let mut r = FieldReader::new(&again, now(), None);
        assert_eq!(build(Kind::Opportunities, &mut r, Attrs::new()), Some(rec));
    }

    #[test]
    fn collects_every_problem_of_a_row() {
        let f = fields(&[
            ("opportunity_id", ""),
            ("created_at", "31/02/2025"),
            ("outcome", "maybe"),
            ("amount", "lots"),
        ]);
        let mut r = FieldReader::new(&f, now(), None);
        assert!(build(Kind::Opportunities, &mut r, Attrs::new()).is_none());
        let all = r.problems.join(" | ");
        assert!(
            all.contains("missing required field `opportunity_id`"),
            "{all}"
        );
        assert!(
            all.contains("`created_at`") && all.contains("31/02/2025"),
            "{all}"
        );
        assert!(all.contains("`outcome`") && all.contains("maybe"), "{all}");
        assert!(
            all.contains("`amount`: expected a number, found \"lots\""),
            "{all}"
        );
    }

    #[test]
    fn future_and_ancient_timestamps_are_refused_but_scheduled_meetings_may_lie_ahead() {
        let f = fields(&[
            ("ticket_id", "T1"),
            ("created_at", "2031-01-01"),
            ("priority", "low"),
        ]);
        let mut r = FieldReader::new(&f, now(), None);
        assert!(build(Kind::SupportTickets, &mut r, Attrs::new()).is_none());
        assert!(r.problems[0].contains("in the future"), "{:?}", r.problems);
        let f = fields(&[
            ("ticket_id", "T1"),
            ("created_at", "1989-12-31"),
            ("priority", "low"),
        ]);
        let mut r = FieldReader::new(&f, now(), None);
        assert!(build(Kind::SupportTickets, &mut r, Attrs::new()).is_none());
        assert!(r.problems[0].contains("before 1990"));
        let f = fields(&[
            ("activity_id", "M1"),
            ("type", "meeting"),
            ("status", "scheduled"),
            ("occurred_at", "2026-02-01T10:00:00Z"),
        ]);
        let mut r = FieldReader::new(&f, now(), None);
        assert!(
            build(Kind::Activities, &mut r, Attrs::new()).is_some(),
            "{:?}",
            r.problems
        );
        let f = fields(&[
            ("activity_id", "M1"),
            ("type", "meeting"),
            ("status", "completed"),
            ("occurred_at", "2026-02-01T10:00:00Z"),
        ]);
        let mut r = FieldReader::new(&f, now(), None);
        assert!(build(Kind::Activities, &mut r, Attrs::new()).is_none());
    }

    #[test]
    fn an_activity_row_reports_every_problem_not_just_the_first() {
        let f = fields(&[
            ("activity_id", "X"),
            ("type", "tweet"),
            ("occurred_at", "soon"),
            ("duration_s", "long"),
        ]);
        let mut r = FieldReader::new(&f, now(), None);
        assert!(build(Kind::Activities, &mut r, Attrs::new()).is_none());
        assert_eq!(r.problems.len(), 3, "{:?}", r.problems);
    }

    #[test]
    fn won_without_amount_is_kept_and_noted() {
        let f = fields(&[
            ("opportunity_id", "O1"),
            ("created_at", "2025-01-01"),
            ("outcome", "won"),
            ("closed_at", "2025-02-01"),
        ]);
        let mut r = FieldReader::new(&f, now(), None);
        assert!(build(Kind::Opportunities, &mut r, Attrs::new()).is_some());
        assert!(r.notes.iter().any(|(c, _)| c == "won_without_amount"));
    }

    #[test]
    fn invalid_email_is_noted_not_fatal() {
        let f = fields(&[("contact_id", "C1"), ("email", "n/a")]);
        let mut r = FieldReader::new(&f, now(), None);
        let rec = build(Kind::Contacts, &mut r, Attrs::new()).unwrap();
        assert!(matches!(rec, Record::Contacts(Contact { email: None, .. })));
        assert_eq!(r.notes[0].0, "invalid_email");
    }
}
