//! Writes the simulated company as files: Salesforce CSV exports, a Segment JSONL file and canonical
//! CSV/JSONL (Layout::Mixed), or canonical files only (Layout::Canonical), with the planned mess.

use std::io::{BufWriter, Write};
use std::path::Path;

use winsignal_core::rng::Rng;

use crate::error::{DemoError, Result};
use crate::product::{self, Event, ProductSink, ProductUser, Workspace};
use crate::table::{create_file, Corrupt, IdStyle, Table};
use crate::text::*;
use crate::world::{
    Kind, Outcome, Status, TouchIdent, World, PRIORITIES, STAGES, STAGE_PROBABILITY, TOUCH_KINDS,
};
use crate::DemoFile;

pub(crate) const ACCOUNT_SF: &[&str] = &[
    "Id",
    "Name",
    "Website",
    "Industry",
    "NumberOfEmployees",
    "AnnualRevenue",
    "BillingCountry",
    "ParentId",
    "CreatedDate",
    "Segment__c",
    "Region__c",
];
pub(crate) const CONTACT_SF: &[&str] = &[
    "Id",
    "AccountId",
    "Email",
    "FirstName",
    "LastName",
    "Title",
    "Department",
    "CreatedDate",
];
pub(crate) const USER_SF: &[&str] = &[
    "Id",
    "FirstName",
    "LastName",
    "Email",
    "Department",
    "ManagerId",
    "CreatedDate",
    "IsActive",
];
pub(crate) const OPPORTUNITY_SF: &[&str] = &[
    "Id",
    "AccountId",
    "OwnerId",
    "Name",
    "Type",
    "LeadSource",
    "Amount",
    "CurrencyIsoCode",
    "CreatedDate",
    "CloseDate",
    "StageName",
    "IsClosed",
    "IsWon",
    "Competitor__c",
    "Discount__c",
    "Probability",
    "ForecastCategoryName",
];
pub(crate) const HISTORY_SF: &[&str] = &[
    "Id",
    "OpportunityId",
    "StageName",
    "CreatedDate",
    "Amount",
    "CloseDate",
    "Probability",
    "ForecastCategory",
];
pub(crate) const ROLE_SF: &[&str] = &[
    "Id",
    "OpportunityId",
    "ContactId",
    "Role",
    "IsPrimary",
    "CreatedDate",
];
pub(crate) const TASK_SF: &[&str] = &[
    "Id",
    "WhoId",
    "WhatId",
    "AccountId",
    "OwnerId",
    "Subject",
    "Status",
    "ActivityDate",
    "TaskSubtype",
    "Type",
    "CallType",
    "CallDurationInSeconds",
    "CreatedDate",
    "CompletedDateTime",
    "Direction__c",
];
pub(crate) const EVENT_SF: &[&str] = &[
    "Id",
    "WhoId",
    "WhatId",
    "AccountId",
    "OwnerId",
    "Subject",
    "StartDateTime",
    "EndDateTime",
    "DurationInMinutes",
    "ActivityDateTime",
    "CreatedDate",
    "Status__c",
];
pub(crate) const ACCOUNTS_C: &[&str] = &[
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
    "region",
];
pub(crate) const CONTACTS_C: &[&str] = &[
    "contact_id",
    "account_id",
    "email",
    "name",
    "title",
    "department",
    "created_at",
];
pub(crate) const REPS_C: &[&str] = &["rep_id", "name", "email", "team", "manager_id", "hired_at"];
pub(crate) const OPPORTUNITIES_C: &[&str] = &[
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
    "competitor",
    "discount",
    "expected_close_at",
    "probability",
    "forecast_category",
];
pub(crate) const STAGE_HISTORY_C: &[&str] = &[
    "opportunity_id",
    "stage",
    "entered_at",
    "expected_close_at",
    "probability",
    "forecast_category",
];
pub(crate) const OPP_CONTACTS_C: &[&str] = &["opportunity_id", "contact_id", "role", "is_primary"];
pub(crate) const ACTIVITIES_C: &[&str] = &[
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
];
pub(crate) const PRODUCT_EVENTS_C: &[&str] = &[
    "event_id",
    "occurred_at",
    "event",
    "user_id",
    "user_email",
    "account_id",
    "account_domain",
    "properties",
];
pub(crate) const TOUCHES_C: &[&str] = &[
    "touch_id",
    "occurred_at",
    "kind",
    "contact_id",
    "email",
    "account_id",
    "channel",
    "campaign",
    "url",
];
pub(crate) const TICKETS_C: &[&str] = &[
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
];

/// How much mess to inject: every bad-row count at scale 1 is multiplied by this (at least one each).
pub(crate) struct MessPlan {
    pub on: bool,
    pub factor: f64,
}

impl MessPlan {
    pub fn n(&self, at_scale_1: u64) -> u64 {
        if !self.on {
            return 0;
        }
        ((at_scale_1 as f64 * self.factor).round() as u64).max(1)
    }
}

/// Counts of kept (not quarantined) mess, reported in docs/demo.md.
#[derive(Debug, Default, Clone)]
pub(crate) struct KeptMess {
    pub orphan_contacts: u64,
    pub orphan_tasks: u64,
    pub short_id_references: u64,
}

pub(crate) struct Writer<'a> {
    pub out_dir: &'a Path,
    pub world: &'a World,
    pub seed: u64,
    pub mess: MessPlan,
    pub kept: KeptMess,
    pub files: Vec<DemoFile>,
    /// Salesforce references are sometimes written in their 15-character form (Mixed layout only).
    pub short_refs: bool,
    ref_rng: Rng,
}

/// A Salesforce forecast category: its label (`ForecastCategoryName`) and API value
/// (`ForecastCategory`, which OpportunityHistory records).
#[derive(Clone, Copy, PartialEq)]
enum Category {
    Pipeline,
    BestCase,
    Commit,
    Closed,
    Omitted,
}

impl Category {
    fn label(self) -> &'static str {
        match self {
            Category::Pipeline => "Pipeline",
            Category::BestCase => "Best Case",
            Category::Commit => "Commit",
            Category::Closed => "Closed",
            Category::Omitted => "Omitted",
        }
    }
    fn api(self) -> &'static str {
        match self {
            Category::BestCase => "BestCase",
            Category::Commit => "Forecast",
            c => c.label(),
        }
    }
}

/// One row of a deal's history as the CRM keeps it: a stage entry, or a change of the close date
/// within a stage.
struct CrmRow {
    /// Whether the row enters its stage (else it pushes the close date within it).
    entry: bool,
    stage: &'static str,
    at: i64,
    close: i64,
    probability: u32,
    category: Category,
}

/// A deal's history as its rep keeps the CRM: at each stage entry an expected close date earlier
/// than the real one by the rep's optimism (a share of the time left, fixed per deal), pushed out
/// again (a row in the same stage) whenever the date passes with the deal still in the stage;
/// the stage's default probability; the forecast category by stage, a late-stage deal expected
/// within a month sometimes committed early. Closed deals end with their close.
fn crm_trail(o: &crate::world::Opp, data_end: i64, rng: &mut Rng) -> Vec<CrmRow> {
    let optimism = 0.55 + 0.45 * rng.f64();
    let expect =
        |from: i64| from + ((o.close - from) as f64 * optimism).max(7.0 * DAY as f64) as i64;
    let mut rows = Vec::new();
    for (k, &(s, at)) in o.stages.iter().enumerate() {
        let until = o.stages.get(k + 1).map_or(
            if o.outcome == Outcome::Open {
                data_end
            } else {
                o.close
            },
            |n| n.1,
        );
        let mut close = expect(at);
        let category = |close: i64, at: i64, rng: &mut Rng| match s {
            0..=2 => Category::Pipeline,
            3 if close - at < 30 * DAY && rng.chance(0.5) => Category::Commit,
            3 => Category::BestCase,
            _ => Category::Commit,
        };
        rows.push(CrmRow {
            entry: true,
            stage: STAGES[s],
            at,
            close,
            probability: STAGE_PROBABILITY[s],
            category: category(close, at, rng),
        });
        loop {
            let pushed_at = close + rng.range(0, 5) * DAY;
            if pushed_at >= until || pushed_at > data_end {
                break;
            }
            close = expect(pushed_at);
            rows.push(CrmRow {
                entry: false,
                stage: STAGES[s],
                at: pushed_at,
                close,
                probability: STAGE_PROBABILITY[s],
                category: category(close, pushed_at, rng),
            });
        }
    }
    match o.outcome {
        Outcome::Won => rows.push(CrmRow {
            entry: true,
            stage: "Closed Won",
            at: o.close,
            close: o.close,
            probability: 100,
            category: Category::Closed,
        }),
        Outcome::Lost => rows.push(CrmRow {
            entry: true,
            stage: "Closed Lost",
            at: o.close,
            close: o.close,
            probability: 0,
            category: Category::Omitted,
        }),
        Outcome::Open => {}
    }
    rows
}

/// The CRM's probability of the deal now (its history's last row).
fn probability_now(trail: &[CrmRow]) -> String {
    trail
        .last()
        .map(|r| r.probability.to_string())
        .unwrap_or_default()
}

/// The CRM's forecast category of the deal now, as its label.
fn category_now(trail: &[CrmRow]) -> String {
    trail.last().map_or("", |r| r.category.label()).to_string()
}

fn b(v: bool) -> &'static str {
    if v {
        "true"
    } else {
        "false"
    }
}

fn opt_ts(t: Option<i64>, f: fn(i64) -> String) -> String {
    t.map(f).unwrap_or_default()
}

impl<'a> Writer<'a> {
    pub fn new(
        out_dir: &'a Path,
        world: &'a World,
        seed: u64,
        mess: MessPlan,
        short_refs: bool,
    ) -> Self {
        Writer {
            out_dir,
            world,
            seed,
            mess,
            kept: KeptMess::default(),
            files: Vec::new(),
            short_refs,
            ref_rng: Rng::derive(seed, 77),
        }
    }

    fn rng(&self, label: u64) -> Rng {
        Rng::derive(self.seed, 500 + label)
    }

    /// Every deal's CRM history ([`crm_trail`]), the same in both layouts.
    fn crm_trails(&self, w: &World) -> Vec<Vec<CrmRow>> {
        let mut rng = self.rng(30);
        w.opps
            .iter()
            .map(|o| crm_trail(o, w.data_end, &mut rng))
            .collect()
    }

    /// A reference to a Salesforce record, in its 15-character form about 2% of the time.
    fn r(&mut self, id: &str) -> String {
        if self.short_refs && id.len() == 18 && self.ref_rng.chance(0.02) {
            self.kept.short_id_references += 1;
            id[..15].to_string()
        } else {
            id.to_string()
        }
    }

    fn table(
        &self,
        rel: &str,
        format: &'static str,
        kind: &str,
        header: &'static [&'static str],
        id: Option<IdStyle>,
    ) -> Result<Table> {
        Table::create(self.out_dir, rel, format, kind, header, id)
    }

    fn done(&mut self, t: Table, progress: &mut dyn FnMut(&str, u64)) -> Result<()> {
        let f = t.finish()?;
        progress(&f.path.display().to_string(), f.rows);
        self.files.push(f);
        Ok(())
    }

    // ---------------------------------------------------------------- Salesforce (Mixed layout)

    pub fn salesforce(&mut self, progress: &mut dyn FnMut(&str, u64)) -> Result<()> {
        let w = self.world;
        // Users.
        let mut t = self.table("salesforce/User.csv", "salesforce", "User", USER_SF, None)?;
        for u in &w.users {
            let manager = u.manager.map(|m| w.users[m].id.clone()).unwrap_or_default();
            let team = crate::world::TEAMS[u.team].0;
            t.row(&[
                &u.id,
                u.first,
                u.last,
                &u.email,
                team,
                &manager,
                &sf_ts(u.hired),
                "true",
            ])?;
        }
        self.done(t, progress)?;

        // Accounts.
        let mut rng = self.rng(1);
        let mut t = self.table(
            "salesforce/Account.csv",
            "salesforce",
            "Account",
            ACCOUNT_SF,
            Some(IdStyle::Salesforce("001")),
        )?;
        let n = w.accounts.len() as u64;
        t.plan(&mut rng, n, Corrupt::Blank("Id"), self.mess.n(5));
        t.plan(
            &mut rng,
            n,
            Corrupt::Set(&["CreatedDate"], "31/02/2025"),
            self.mess.n(3),
        );
        for a in &w.accounts {
            let parent = a
                .parent
                .map(|p| w.accounts[p].id.clone())
                .unwrap_or_default();
            t.row(&[
                &a.id,
                &a.name,
                &a.website,
                a.industry,
                &a.employees.to_string(),
                &a.revenue.to_string(),
                a.country,
                &parent,
                &sf_ts(a.created),
                a.segment.label(),
                a.region,
            ])?;
        }
        self.done(t, progress)?;

        // Contacts, then later duplicates that change a field (quarantined: the first row of an id is
        // kept), and orphans (kept mess).
        let mut rng = self.rng(2);
        let mut t = self.table(
            "salesforce/Contact.csv",
            "salesforce",
            "Contact",
            CONTACT_SF,
            Some(IdStyle::Salesforce("003")),
        )?;
        let n = w.contacts.len() as u64;
        t.plan(&mut rng, n, Corrupt::Blank("Id"), self.mess.n(10));
        t.plan(
            &mut rng,
            n,
            Corrupt::Set(&["CreatedDate"], "yesterday"),
            self.mess.n(5),
        );
        t.plan(&mut rng, n, Corrupt::BadUtf8("LastName"), self.mess.n(1));
        for c in &w.contacts {
            let account = self.r(&w.accounts[c.account].id);
            t.row(&[
                &c.id,
                &account,
                &c.email,
                c.first,
                c.last,
                c.title,
                c.department,
                &sf_ts(c.created),
            ])?;
        }
        for k in 0..self.mess.n(20) {
            let c = &w.contacts[rng.below(n) as usize];
            let account = &w.accounts[c.account].id;
            let dept = if c.department == "Operations" {
                "Finance"
            } else {
                "Operations"
            };
            t.bad_row(&[
                &c.id,
                account,
                &c.email,
                c.first,
                c.last,
                c.title,
                dept,
                &sf_ts(c.created + DAY * (k as i64 + 1)),
            ])?;
        }
        for k in 0..self.mess.n(10) {
            let unknown_account = sf_id("001", BAD_ID_BASE + 1000 + k);
            let id = sf_id("003", BAD_ID_BASE + 1000 + k);
            let email = format!("orphan{k}@unknown-co.com");
            t.row(&[
                &id,
                &unknown_account,
                &email,
                "Pat",
                "Orphan",
                "",
                "",
                &sf_ts(w.data_start + DAY * k as i64),
            ])?;
            self.kept.orphan_contacts += 1;
        }
        self.done(t, progress)?;

        // Opportunities and later duplicates (quarantined: the first row of an id is kept).
        let mut rng = self.rng(3);
        let mut t = self.table(
            "salesforce/Opportunity.csv",
            "salesforce",
            "Opportunity",
            OPPORTUNITY_SF,
            Some(IdStyle::Salesforce("006")),
        )?;
        let n = w.opps.len() as u64;
        t.plan(
            &mut rng,
            n,
            Corrupt::Set(&["Amount"], "12,5k"),
            self.mess.n(5),
        );
        t.plan(
            &mut rng,
            n,
            Corrupt::Set(&["Amount"], "n/a"),
            self.mess.n(5),
        );
        t.plan(
            &mut rng,
            n,
            Corrupt::Set(&["CreatedDate"], "2031-05-01T10:00:00.000Z"),
            self.mess.n(5),
        );
        t.plan(
            &mut rng,
            n,
            Corrupt::Set(&["CloseDate"], "31/02/2025"),
            self.mess.n(3),
        );
        let trails = self.crm_trails(w);
        let mut opp_rows: Vec<Vec<String>> = Vec::with_capacity(w.opps.len());
        for (o, trail) in w.opps.iter().zip(&trails) {
            let (stage, closed, won) = match o.outcome {
                Outcome::Won => ("Closed Won".to_string(), true, true),
                Outcome::Lost => ("Closed Lost".to_string(), true, false),
                Outcome::Open => (
                    o.stages
                        .last()
                        .map_or("Prospecting", |s| STAGES[s.0])
                        .to_string(),
                    false,
                    false,
                ),
            };
            let row = vec![
                o.id.clone(),
                self.r(&w.accounts[o.account].id),
                self.r(&w.users[o.rep].id),
                o.name.clone(),
                o.kind.to_string(),
                o.source.to_string(),
                o.amount.map(|a| a.to_string()).unwrap_or_default(),
                "USD".to_string(),
                sf_ts(o.created),
                date(trail.last().map_or(o.close, |r| r.close)),
                stage,
                b(closed).to_string(),
                b(won).to_string(),
                o.competitor.to_string(),
                o.discount.map(|d| d.to_string()).unwrap_or_default(),
                probability_now(trail),
                category_now(trail),
            ];
            t.row(&row)?;
            opp_rows.push(row);
        }
        for _ in 0..self.mess.n(10) {
            let mut row = opp_rows[rng.below(n) as usize].clone();
            row[3].push_str(" (expanded scope)");
            row[14] = "5".to_string();
            t.bad_row(&row)?;
        }
        self.done(t, progress)?;

        // Stage history.
        let mut rng = self.rng(4);
        let n_hist: u64 = w
            .opps
            .iter()
            .map(|o| o.stages.len() as u64 + u64::from(o.outcome != Outcome::Open))
            .sum();
        let mut t = self.table(
            "salesforce/OpportunityHistory.csv",
            "salesforce",
            "OpportunityHistory",
            HISTORY_SF,
            Some(IdStyle::Salesforce("008")),
        )?;
        t.plan(
            &mut rng,
            n_hist,
            Corrupt::Blank("OpportunityId"),
            self.mess.n(5),
        );
        t.plan(
            &mut rng,
            n_hist,
            Corrupt::Set(&["CreatedDate"], "1985-01-01T00:00:00.000Z"),
            self.mess.n(5),
        );
        // The stage entries first, then the rows pushing a close date (after the rows the planned
        // mess picks from).
        let mut hist_id = 0u64;
        for entries in [true, false] {
            for (o, trail) in w.opps.iter().zip(&trails) {
                let amount = o.amount.map(|a| a.to_string()).unwrap_or_default();
                for r in trail.iter().filter(|r| r.entry == entries) {
                    hist_id += 1;
                    t.row(&[
                        &sf_id("008", hist_id),
                        &o.id,
                        r.stage,
                        &sf_ts(r.at),
                        &amount,
                        &date(r.close),
                        &r.probability.to_string(),
                        r.category.api(),
                    ])?;
                }
            }
        }
        self.done(t, progress)?;

        // Contact roles.
        let mut t = self.table(
            "salesforce/OpportunityContactRole.csv",
            "salesforce",
            "OpportunityContactRole",
            ROLE_SF,
            None,
        )?;
        for (k, r) in w.roles.iter().enumerate() {
            let opp = &w.opps[r.opp].id;
            let contact = &w.contacts[r.contact].id;
            t.row(&[
                &sf_id("00k", k as u64 + 1),
                opp,
                contact,
                r.role,
                b(r.primary),
                &sf_ts(r.created),
            ])?;
        }
        self.done(t, progress)?;

        self.sf_activities(progress)
    }

    fn sf_activities(&mut self, progress: &mut dyn FnMut(&str, u64)) -> Result<()> {
        let w = self.world;
        let mut rng = self.rng(5);
        let mut tasks = self.table(
            "salesforce/Task.csv",
            "salesforce",
            "Task",
            TASK_SF,
            Some(IdStyle::Salesforce("00T")),
        )?;
        let n_tasks = u64::from(w.n_tasks);
        // Bad calls are spoiled copies of calls, so plan them among the calls only.
        let n_calls = w.activities.iter().filter(|a| a.kind == Kind::Call).count() as u64;
        let mut call_plan = std::collections::BTreeMap::<u64, u64>::new();
        for _ in 0..self.mess.n(30) {
            *call_plan.entry(rng.below(n_calls.max(1))).or_default() += 1;
        }
        tasks.plan(&mut rng, n_tasks, Corrupt::Blank("Id"), self.mess.n(20));
        tasks.plan(
            &mut rng,
            n_tasks,
            Corrupt::Set(
                &["ActivityDate", "CreatedDate", "CompletedDateTime"],
                "yesterday",
            ),
            self.mess.n(20),
        );
        tasks.plan(&mut rng, n_tasks, Corrupt::Ragged, self.mess.n(1));
        let mut events = self.table(
            "salesforce/Event.csv",
            "salesforce",
            "Event",
            EVENT_SF,
            Some(IdStyle::Salesforce("00U")),
        )?;
        let n_events = u64::from(w.n_events);
        events.plan(
            &mut rng,
            n_events,
            Corrupt::Set(
                &["StartDateTime", "EndDateTime", "ActivityDateTime"],
                "2031-03-01T10:00:00.000Z",
            ),
            self.mess.n(10),
        );
        events.plan(&mut rng, n_events, Corrupt::Blank("Id"), self.mess.n(10));
        events.plan(&mut rng, n_events, Corrupt::Ragged, self.mess.n(1));
        let n_orphans = self.mess.n(20);
        let mut orphan_at: Vec<u64> = (0..n_orphans).map(|_| rng.below(n_tasks.max(1))).collect();
        orphan_at.sort_unstable();
        let (mut call_idx, mut task_idx) = (0u64, 0u64);
        let mut bad_calls = 0u64;
        for a in &w.activities {
            let who = self.r(&w.contacts[a.contact].id);
            let what = match a.opp {
                Some(o) => self.r(&w.opps[o].id),
                None => self.r(&w.accounts[a.account].id),
            };
            let account = self.r(&w.accounts[a.account].id);
            let owner = self.r(&w.users[a.rep].id);
            if a.kind == Kind::Meeting {
                let status = match a.status {
                    Status::Scheduled => "Scheduled",
                    Status::Canceled => "Canceled",
                    _ => "Completed",
                };
                let end = a.occurred + i64::from(a.duration_s) * SEC;
                events.row(&[
                    &sf_id("00U", u64::from(a.seq)),
                    &who,
                    &what,
                    &account,
                    &owner,
                    a.subject,
                    &sf_ts(a.occurred),
                    &sf_ts(end),
                    &(a.duration_s / 60).to_string(),
                    &sf_ts(a.occurred),
                    &sf_ts(a.created),
                    status,
                ])?;
                continue;
            }
            let (subtype, typ) = match a.kind {
                Kind::Call => ("Call", "Call"),
                Kind::Email => ("Email", "Email"),
                _ => ("Task", "Other"),
            };
            let direction = match a.kind {
                Kind::Task => "",
                _ if a.inbound => "Inbound",
                _ => "Outbound",
            };
            let status = match a.status {
                Status::NotStarted => "Not Started",
                Status::Deferred => "Deferred",
                _ => "Completed",
            };
            let completed = if a.status == Status::Completed {
                sf_ts(a.occurred)
            } else {
                String::new()
            };
            let duration = if a.kind == Kind::Call {
                a.duration_s.to_string()
            } else {
                String::new()
            };
            let id = sf_id("00T", u64::from(a.seq));
            let mut row = [
                id,
                who,
                what,
                account,
                owner,
                a.subject.to_string(),
                status.to_string(),
                date(a.occurred),
                subtype.to_string(),
                typ.to_string(),
                if a.kind == Kind::Call {
                    direction.to_string()
                } else {
                    String::new()
                },
                duration,
                sf_ts(a.created),
                completed,
                direction.to_string(),
            ];
            tasks.row(&row)?;
            if a.kind == Kind::Call {
                for _ in 0..call_plan.remove(&call_idx).unwrap_or(0) {
                    bad_calls += 1;
                    row[0] = sf_id("00T", BAD_ID_BASE + 5000 + bad_calls);
                    row[11] = if bad_calls & 1 == 0 { "12m" } else { "abc" }.to_string();
                    tasks.bad_row(&row)?;
                }
                call_idx += 1;
            }
            while orphan_at.first() == Some(&task_idx) {
                orphan_at.remove(0);
                row[0] = sf_id("00T", BAD_ID_BASE + 9000 + self.kept.orphan_tasks);
                row[2] = sf_id("006", BAD_ID_BASE + 9000 + self.kept.orphan_tasks);
                tasks.row(&row)?;
                self.kept.orphan_tasks += 1;
            }
            task_idx += 1;
        }
        self.done(tasks, progress)?;
        self.done(events, progress)
    }

    // ---------------------------------------------------------------- Canonical entity files

    pub fn canonical_entities(&mut self, progress: &mut dyn FnMut(&str, u64)) -> Result<()> {
        let w = self.world;
        let mut t = self.table("canonical/reps.csv", "canonical", "reps", REPS_C, None)?;
        for u in &w.users {
            let manager = u.manager.map(|m| w.users[m].id.clone()).unwrap_or_default();
            let name = format!("{} {}", u.first, u.last);
            t.row(&[
                &u.id,
                &name,
                &u.email,
                crate::world::TEAMS[u.team].0,
                &manager,
                &date(u.hired),
            ])?;
        }
        self.done(t, progress)?;

        let mut rng = self.rng(11);
        let mut t = self.table(
            "canonical/accounts.csv",
            "canonical",
            "accounts",
            ACCOUNTS_C,
            Some(IdStyle::Salesforce("001")),
        )?;
        let n = w.accounts.len() as u64;
        t.plan(&mut rng, n, Corrupt::Blank("account_id"), self.mess.n(5));
        t.plan(
            &mut rng,
            n,
            Corrupt::Set(&["created_at"], "31/02/2025"),
            self.mess.n(3),
        );
        for a in &w.accounts {
            let parent = a
                .parent
                .map(|p| w.accounts[p].id.clone())
                .unwrap_or_default();
            t.row(&[
                &a.id,
                &a.name,
                &a.website,
                a.industry,
                a.segment.label(),
                &a.employees.to_string(),
                &a.revenue.to_string(),
                a.country,
                &parent,
                &c_ts(a.created),
                a.region,
            ])?;
        }
        self.done(t, progress)?;

        let mut rng = self.rng(12);
        let mut t = self.table(
            "canonical/contacts.csv",
            "canonical",
            "contacts",
            CONTACTS_C,
            Some(IdStyle::Salesforce("003")),
        )?;
        let n = w.contacts.len() as u64;
        t.plan(&mut rng, n, Corrupt::Blank("contact_id"), self.mess.n(10));
        t.plan(
            &mut rng,
            n,
            Corrupt::Set(&["created_at"], "yesterday"),
            self.mess.n(5),
        );
        t.plan(&mut rng, n, Corrupt::BadUtf8("name"), self.mess.n(1));
        for c in &w.contacts {
            let name = format!("{} {}", c.first, c.last);
            t.row(&[
                &c.id,
                &w.accounts[c.account].id,
                &c.email,
                &name,
                c.title,
                c.department,
                &c_ts(c.created),
            ])?;
        }
        for k in 0..self.mess.n(20) {
            let c = &w.contacts[rng.below(n) as usize];
            let dept = if c.department == "Operations" {
                "Finance"
            } else {
                "Operations"
            };
            let name = format!("{} {}", c.first, c.last);
            t.bad_row(&[
                &c.id,
                &w.accounts[c.account].id,
                &c.email,
                &name,
                c.title,
                dept,
                &c_ts(c.created + DAY * (k as i64 + 1)),
            ])?;
        }
        for k in 0..self.mess.n(10) {
            let id = sf_id("003", BAD_ID_BASE + 1000 + k);
            t.row(&[
                &id,
                &sf_id("001", BAD_ID_BASE + 1000 + k),
                &format!("orphan{k}@unknown-co.com"),
                "Pat Orphan",
                "",
                "",
                &c_ts(w.data_start + DAY * k as i64),
            ])?;
            self.kept.orphan_contacts += 1;
        }
        self.done(t, progress)?;

        let mut rng = self.rng(13);
        let mut t = self.table(
            "canonical/opportunities.csv",
            "canonical",
            "opportunities",
            OPPORTUNITIES_C,
            Some(IdStyle::Salesforce("006")),
        )?;
        let n = w.opps.len() as u64;
        t.plan(
            &mut rng,
            n,
            Corrupt::Set(&["amount"], "12,5k"),
            self.mess.n(5),
        );
        t.plan(
            &mut rng,
            n,
            Corrupt::Set(&["amount"], "n/a"),
            self.mess.n(5),
        );
        t.plan(
            &mut rng,
            n,
            Corrupt::Set(&["created_at"], "2031-05-01T10:00:00Z"),
            self.mess.n(5),
        );
        t.plan(
            &mut rng,
            n,
            Corrupt::Set(&["outcome"], "maybe"),
            self.mess.n(3),
        );
        let trails = self.crm_trails(w);
        let mut rows = Vec::with_capacity(w.opps.len());
        for (o, trail) in w.opps.iter().zip(&trails) {
            let (outcome, stage, closed_at) = match o.outcome {
                Outcome::Won => ("won", "Closed Won", c_ts(o.close)),
                Outcome::Lost => ("lost", "Closed Lost", c_ts(o.close)),
                Outcome::Open => (
                    "open",
                    o.stages.last().map_or("Prospecting", |s| STAGES[s.0]),
                    String::new(),
                ),
            };
            let row = vec![
                o.id.clone(),
                w.accounts[o.account].id.clone(),
                w.users[o.rep].id.clone(),
                o.name.clone(),
                o.kind.to_string(),
                o.source.to_string(),
                o.amount.map(|a| a.to_string()).unwrap_or_default(),
                "USD".to_string(),
                c_ts(o.created),
                closed_at,
                outcome.to_string(),
                stage.to_string(),
                o.competitor.to_string(),
                o.discount.map(|d| d.to_string()).unwrap_or_default(),
                trail
                    .last()
                    .filter(|_| o.outcome == Outcome::Open)
                    .map(|r| c_ts(r.close))
                    .unwrap_or_default(),
                probability_now(trail),
                category_now(trail),
            ];
            t.row(&row)?;
            rows.push(row);
        }
        for _ in 0..self.mess.n(10) {
            let mut row = rows[rng.below(n) as usize].clone();
            row[3].push_str(" (expanded scope)");
            row[13] = "5".to_string();
            t.bad_row(&row)?;
        }
        self.done(t, progress)?;

        let mut t = self.table(
            "canonical/stage_history.csv",
            "canonical",
            "stage_history",
            STAGE_HISTORY_C,
            None,
        )?;
        for (o, trail) in w.opps.iter().zip(&trails) {
            for r in trail {
                t.row(&[
                    &o.id,
                    r.stage,
                    &c_ts(r.at),
                    &c_ts(r.close),
                    &r.probability.to_string(),
                    r.category.label(),
                ])?;
            }
        }
        self.done(t, progress)?;

        let mut t = self.table(
            "canonical/opportunity_contacts.csv",
            "canonical",
            "opportunity_contacts",
            OPP_CONTACTS_C,
            None,
        )?;
        for r in &w.roles {
            t.row(&[
                &w.opps[r.opp].id,
                &w.contacts[r.contact].id,
                r.role,
                b(r.primary),
            ])?;
        }
        self.done(t, progress)?;

        let mut rng = self.rng(14);
        let mut t = self.table(
            "canonical/activities.csv",
            "canonical",
            "activities",
            ACTIVITIES_C,
            Some(IdStyle::Salesforce("00T")),
        )?;
        let n = w.activities.len() as u64;
        t.plan(&mut rng, n, Corrupt::Blank("activity_id"), self.mess.n(20));
        t.plan(
            &mut rng,
            n,
            Corrupt::Set(&["occurred_at", "created_at"], "yesterday"),
            self.mess.n(20),
        );
        t.plan(
            &mut rng,
            n,
            Corrupt::Set(&["occurred_at"], "2031-03-01T10:00:00Z"),
            self.mess.n(10),
        );
        t.plan(
            &mut rng,
            n,
            Corrupt::Set(&["duration_s"], "abc"),
            self.mess.n(30),
        );
        t.plan(&mut rng, n, Corrupt::Set(&["type"], "fax"), self.mess.n(10));
        t.plan(&mut rng, n, Corrupt::Ragged, self.mess.n(1));
        let n_orphans = self.mess.n(20);
        let mut orphan_at: Vec<u64> = (0..n_orphans).map(|_| rng.below(n.max(1))).collect();
        orphan_at.sort_unstable();
        for (idx, a) in w.activities.iter().enumerate() {
            let (id, typ) = match a.kind {
                Kind::Meeting => (sf_id("00U", u64::from(a.seq)), "meeting"),
                Kind::Call => (sf_id("00T", u64::from(a.seq)), "call"),
                Kind::Email => (sf_id("00T", u64::from(a.seq)), "email"),
                Kind::Task => (sf_id("00T", u64::from(a.seq)), "task"),
            };
            let direction = match a.kind {
                Kind::Call | Kind::Email if a.inbound => "inbound",
                Kind::Call | Kind::Email => "outbound",
                _ => "",
            };
            let status = match a.status {
                Status::Completed => "completed",
                Status::Canceled => "canceled",
                _ => "scheduled",
            };
            let duration = match a.kind {
                Kind::Call | Kind::Meeting => a.duration_s.to_string(),
                _ => String::new(),
            };
            let mut row = [
                id,
                typ.to_string(),
                direction.to_string(),
                status.to_string(),
                w.users[a.rep].id.clone(),
                w.accounts[a.account].id.clone(),
                a.opp.map(|o| w.opps[o].id.clone()).unwrap_or_default(),
                w.contacts[a.contact].id.clone(),
                c_ts(a.occurred),
                c_ts(a.created),
                duration,
                a.subject.to_string(),
            ];
            t.row(&row)?;
            while orphan_at.first() == Some(&(idx as u64)) {
                orphan_at.remove(0);
                row[0] = sf_id("00T", BAD_ID_BASE + 9000 + self.kept.orphan_tasks);
                row[6] = sf_id("006", BAD_ID_BASE + 9000 + self.kept.orphan_tasks);
                t.row(&row)?;
                self.kept.orphan_tasks += 1;
            }
        }
        self.done(t, progress)
    }

    // ---------------------------------------------------------------- Files shared by both layouts

    pub fn touches(&mut self, progress: &mut dyn FnMut(&str, u64)) -> Result<()> {
        let w = self.world;
        let mut rng = self.rng(21);
        let mut t = self.table(
            "canonical/marketing_touches.csv",
            "canonical",
            "marketing_touches",
            TOUCHES_C,
            Some(IdStyle::Plain("mt_")),
        )?;
        let n = w.touches.len() as u64;
        t.plan(
            &mut rng,
            n,
            Corrupt::Set(&["kind"], "tweet"),
            self.mess.n(30),
        );
        t.plan(&mut rng, n, Corrupt::Blank("occurred_at"), self.mess.n(10));
        for (k, m) in w.touches.iter().enumerate() {
            let kind = TOUCH_KINDS[m.kind];
            let contact = &w.contacts[m.contact];
            let (cid, email, aid) = match m.ident {
                TouchIdent::Contact => (contact.id.as_str(), "", w.accounts[m.account].id.as_str()),
                TouchIdent::EmailOnly => ("", contact.email.as_str(), ""),
                TouchIdent::AccountOnly => ("", "", w.accounts[m.account].id.as_str()),
            };
            let channel = match m.kind {
                0..=2 => "email",
                3 | 4 => "web",
                5..=7 => "content",
                8 => "paid",
                _ => "events",
            };
            let url = match kind {
                "web_visit" => format!(
                    "{VENDOR_SITE}/{}",
                    ["pricing", "product", "customers", "blog/forecasting"][k % 4]
                ),
                "content_download" => format!("{VENDOR_SITE}/resources/modern-bi-whitepaper"),
                "form_fill" => format!("{VENDOR_SITE}/demo"),
                "ad_click" => format!("{VENDOR_SITE}/lp/analytics"),
                _ => String::new(),
            };
            t.row(&[
                &format!("mt_{:08}", k + 1),
                &c_ts(m.at),
                kind,
                cid,
                email,
                aid,
                channel,
                m.campaign,
                &url,
            ])?;
        }
        self.done(t, progress)
    }

    pub fn tickets(&mut self, progress: &mut dyn FnMut(&str, u64)) -> Result<()> {
        let w = self.world;
        let mut rng = self.rng(22);
        let mut t = self.table(
            "canonical/support_tickets.csv",
            "canonical",
            "support_tickets",
            TICKETS_C,
            Some(IdStyle::Plain("tk_")),
        )?;
        let n = w.tickets.len() as u64;
        t.plan(
            &mut rng,
            n,
            Corrupt::Set(&["priority"], "critical"),
            self.mess.n(10),
        );
        t.plan(
            &mut rng,
            n,
            Corrupt::Set(&["created_at"], "31/02/2025"),
            self.mess.n(5),
        );
        for (k, tk) in w.tickets.iter().enumerate() {
            let contact = &w.contacts[tk.contact];
            let status = match tk.solved {
                Some(s) if w.data_end - s > 7 * DAY => "closed",
                Some(_) => "solved",
                None if tk.first_response.is_some() && k % 2 == 0 => "pending",
                None => "open",
            };
            let (aid, cid) = if tk.email_only {
                ("", "")
            } else {
                (w.accounts[tk.account].id.as_str(), contact.id.as_str())
            };
            t.row(&[
                &format!("tk_{:08}", k + 1),
                &c_ts(tk.created),
                PRIORITIES[tk.priority],
                status,
                aid,
                cid,
                &contact.email,
                &opt_ts(tk.first_response, c_ts),
                &opt_ts(tk.solved, c_ts),
                &tk.csat.map(|c| c.to_string()).unwrap_or_default(),
                tk.subject,
            ])?;
        }
        self.done(t, progress)
    }

    pub fn transcripts(&mut self, progress: &mut dyn FnMut(&str, u64)) -> Result<()> {
        let w = self.world;
        let rel = "canonical/transcripts.jsonl";
        let (abs, file) = create_file(self.out_dir, rel)?;
        let io = |source| DemoError::Io {
            path: abs.clone(),
            source,
        };
        let mut out = BufWriter::new(file);
        let mut rng = self.rng(23);
        let n = w.transcripts.len() as u64;
        let n_bad = self.mess.n(3);
        let bad_at: Vec<u64> = (0..n_bad).map(|_| rng.below(n.max(1))).collect();
        let (mut rows, mut bad) = (0u64, 0u64);
        for (k, tr) in w.transcripts.iter().enumerate() {
            let a = &w.activities[tr.activity];
            let rep = &w.users[a.rep];
            let contact = &w.contacts[a.contact];
            let mut line = format!(
                "{{\"call_id\":\"call_{:06}\",\"started_at\":\"{}\",\"activity_id\":\"{}\",\"opportunity_id\":\"{}\",\"account_id\":\"{}\",\"turns\":[",
                k + 1,
                c_ts(a.occurred),
                sf_id("00T", u64::from(a.seq)),
                w.opps[tr.opp].id,
                w.accounts[a.account].id
            );
            for (i, turn) in tr.turns.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                let (speaker, role) = if turn.rep {
                    (format!("{} {}", rep.first, rep.last), "rep")
                } else {
                    (format!("{} {}", contact.first, contact.last), "customer")
                };
                line.push_str(&format!(
                    "{{\"speaker\":\"{speaker}\",\"role\":\"{role}\",\"start_s\":{},\"end_s\":{},\"text\":{}}}",
                    turn.start_s,
                    turn.end_s,
                    serde_json::Value::String(turn.text.clone())
                ));
            }
            line.push_str("]}\n");
            out.write_all(line.as_bytes()).map_err(io)?;
            rows += 1;
            for _ in bad_at.iter().filter(|&&b| b == k as u64) {
                // A truncated line, as left by an interrupted export.
                out.write_all(&line.as_bytes()[..line.len() / 2])
                    .map_err(io)?;
                out.write_all(b"\n").map_err(io)?;
                rows += 1;
                bad += 1;
            }
        }
        out.flush().map_err(io)?;
        progress(rel, rows);
        self.files.push(DemoFile {
            path: rel.into(),
            format: "canonical".into(),
            kind: Some("transcripts".into()),
            rows,
            injected_bad_rows: bad,
        });
        Ok(())
    }

    // ---------------------------------------------------------------- Product events

    pub fn product(&mut self, canonical: bool, progress: &mut dyn FnMut(&str, u64)) -> Result<u64> {
        let w = self.world;
        let mut rng = Rng::derive(self.seed, 8);
        let workspaces = product::plan(w, &mut rng);
        let target = 3_000_000.0 * self.scale_of_events();
        // Bad rows are placed after the first event of chosen workspaces.
        let n_ws = workspaces.len() as u64;
        let mut spoil = std::collections::BTreeMap::<usize, Vec<u8>>::new();
        let kinds: &[(u8, u64)] = if canonical {
            &[(0, 20), (1, 10), (2, 30)]
        } else {
            &[(0, 60), (1, 20), (2, 10)]
        };
        for &(kind, count) in kinds {
            for _ in 0..self.mess.n(count) {
                spoil
                    .entry(rng.below(n_ws.max(1)) as usize)
                    .or_default()
                    .push(kind);
            }
        }
        let n_events;
        let file = if canonical {
            let mut sink = CanonicalProduct {
                t: self.table(
                    "canonical/product_events.csv",
                    "canonical",
                    "product_events",
                    PRODUCT_EVENTS_C,
                    Some(IdStyle::Plain("ev_")),
                )?,
                world: w,
                spoil,
                n: 0,
                bad: 0,
            };
            n_events = product::stream(w, &workspaces, self.seed, target, &mut sink, progress)?;
            debug_assert!(sink.bad <= sink.n);
            sink.t.finish()?
        } else {
            let rel = "segment/events.jsonl";
            let (abs, file) = create_file(self.out_dir, rel)?;
            let mut sink = SegmentSink {
                out: BufWriter::with_capacity(1 << 20, file),
                abs,
                spoil,
                n: 0,
                rows: 0,
                bad: 0,
                line: String::with_capacity(512),
            };
            n_events = product::stream(w, &workspaces, self.seed, target, &mut sink, progress)?;
            sink.out.flush().map_err(|source| DemoError::Io {
                path: sink.abs.clone(),
                source,
            })?;
            DemoFile {
                path: rel.into(),
                format: "segment".into(),
                kind: None,
                rows: sink.rows,
                injected_bad_rows: sink.bad,
            }
        };
        progress(&file.path.display().to_string(), file.rows);
        self.files.push(file);
        Ok(n_events)
    }

    fn scale_of_events(&self) -> f64 {
        // The world was built at the configured scale; 8,000 deals per unit of scale.
        self.world.opps.len() as f64 / 8000.0
    }
}

struct SegmentSink {
    out: BufWriter<std::fs::File>,
    abs: std::path::PathBuf,
    spoil: std::collections::BTreeMap<usize, Vec<u8>>,
    n: u64,
    rows: u64,
    bad: u64,
    line: String,
}

impl SegmentSink {
    fn emit(&mut self) -> Result<()> {
        self.line.push('\n');
        self.out
            .write_all(self.line.as_bytes())
            .map_err(|source| DemoError::Io {
                path: self.abs.clone(),
                source,
            })?;
        self.rows += 1;
        Ok(())
    }

    fn message_id(&mut self) -> String {
        self.n += 1;
        format!(
            "msg-{:010x}",
            self.n.wrapping_mul(0x9E37_79B9) & 0xFF_FFFF_FFFF
        )
    }
}

impl ProductSink for SegmentSink {
    fn user(&mut self, ws: &Workspace, user: &ProductUser, ts: i64) -> Result<()> {
        let id = self.message_id();
        self.line.clear();
        self.line.push_str(&format!(
            "{{\"type\":\"identify\",\"messageId\":\"{id}\",\"timestamp\":\"{}\",\"userId\":\"{}\",\"traits\":{{\"email\":\"{}\",\"name\":\"{}\"}}}}",
            c_ts(ts), user.id, user.email, user.name
        ));
        self.emit()?;
        let id = self.message_id();
        self.line.clear();
        self.line.push_str(&format!(
            "{{\"type\":\"group\",\"messageId\":\"{id}\",\"timestamp\":\"{}\",\"userId\":\"{}\",\"groupId\":\"{}\",\"traits\":{{\"name\":\"{}\",\"website\":\"{}\"}}}}",
            c_ts(ts + SEC), user.id, ws.group_id, ws.name, ws.website
        ));
        self.emit()
    }

    fn event(
        &mut self,
        ws_idx: usize,
        ws: &Workspace,
        user: &ProductUser,
        ts: i64,
        ev: &Event,
    ) -> Result<()> {
        let id = self.message_id();
        let write_one = |line: &mut String, ts_text: Option<&str>| {
            line.clear();
            line.push_str(if ev.page {
                "{\"type\":\"page\""
            } else {
                "{\"type\":\"track\""
            });
            line.push_str(",\"messageId\":\"");
            line.push_str(&id);
            line.push('"');
            if let Some(t) = ts_text {
                line.push_str(",\"timestamp\":\"");
                line.push_str(t);
                line.push('"');
            }
            line.push_str(",\"userId\":\"");
            line.push_str(&user.id);
            line.push_str(if ev.page {
                "\",\"name\":\""
            } else {
                "\",\"event\":\""
            });
            line.push_str(ev.name);
            line.push_str("\",\"properties\":");
            line.push_str(ev.props);
            if ev.with_group {
                line.push_str(",\"context\":{\"groupId\":\"");
                line.push_str(&ws.group_id);
                line.push_str("\"}");
            }
            line.push('}');
        };
        let mut ts_text = String::with_capacity(20);
        push_ts(&mut ts_text, ts, false);
        let mut line = std::mem::take(&mut self.line);
        write_one(&mut line, Some(&ts_text));
        self.line = line;
        self.emit()?;
        if let Some(kinds) = self.spoil.remove(&ws_idx) {
            for kind in kinds {
                let mut line = std::mem::take(&mut self.line);
                match kind {
                    0 => {
                        write_one(&mut line, Some(&ts_text));
                        let cut = line.len() * 2 / 3;
                        line.truncate(cut);
                    }
                    1 => write_one(&mut line, None),
                    _ => write_one(&mut line, Some("2031-01-15T10:00:00Z")),
                }
                self.line = line;
                self.emit()?;
                self.bad += 1;
            }
        }
        let _ = ev.path;
        Ok(())
    }
}

struct CanonicalProduct<'w> {
    t: Table,
    world: &'w World,
    spoil: std::collections::BTreeMap<usize, Vec<u8>>,
    n: u64,
    bad: u64,
}

impl ProductSink for CanonicalProduct<'_> {
    fn user(&mut self, _ws: &Workspace, _user: &ProductUser, _ts: i64) -> Result<()> {
        Ok(())
    }

    fn event(
        &mut self,
        ws_idx: usize,
        ws: &Workspace,
        user: &ProductUser,
        ts: i64,
        ev: &Event,
    ) -> Result<()> {
        self.n += 1;
        let account_id = match ws.account {
            Some(a) if ws.group_id.starts_with("001") => self.world.accounts[a].id.as_str(),
            _ => "",
        };
        let name = if ev.page { "Page Viewed" } else { ev.name };
        let mut row = [
            format!("ev_{:09}", self.n),
            c_ts(ts),
            name.to_string(),
            user.id.clone(),
            user.email.clone(),
            account_id.to_string(),
            ws.domain.clone(),
            ev.props.to_string(),
        ];
        self.t.row(&row)?;
        if let Some(kinds) = self.spoil.remove(&ws_idx) {
            for kind in kinds {
                self.n += 1;
                row[0] = format!("ev_{:09}", self.n);
                match kind {
                    0 => row[0].clear(),
                    1 => row[1] = "yesterday".to_string(),
                    _ => row[1] = "1985-06-01T10:00:00Z".to_string(),
                }
                self.t.bad_row(&row)?;
                self.bad += 1;
            }
        }
        Ok(())
    }
}
