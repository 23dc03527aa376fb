//! The simulated company held in memory: reps, accounts, contacts, deals with their planted behaviours,
//! activities, tickets, marketing touches and transcripts. Product events are streamed by `product`.

use winsignal_core::rng::Rng;

use crate::text::*;

pub(crate) const STAGES: &[&str] = &[
    "Prospecting",
    "Qualification",
    "Discovery",
    "Proposal",
    "Negotiation",
];
pub(crate) const STAGE_PROBABILITY: &[u32] = &[10, 20, 40, 60, 80];
/// When each stage is entered, as a fraction of the deal's cycle.
const STAGE_AT: &[f64] = &[0.0, 0.10, 0.25, 0.50, 0.75];

pub(crate) const TEAMS: &[(&str, Segment, &str)] = &[
    ("West SMB", Segment::Smb, "West"),
    ("East SMB", Segment::Smb, "East"),
    ("West Mid-Market", Segment::Mid, "West"),
    ("East Mid-Market", Segment::Mid, "East"),
    ("Enterprise", Segment::Ent, ""),
];

/// The ground truth: every number the analysis is expected to recover (see docs/demo.md).
pub(crate) mod truth {
    pub const BASE_LOG_ODDS: f64 = -1.5;
    pub const SEGMENT_LOG_ODDS: [f64; 3] = [0.3, 0.0, -0.5];
    pub const REP_SKILL_SD: f64 = 0.35;
    pub const STRONGEST_SKILL: f64 = 1.0;
    pub const WEAKEST_SKILL: f64 = -1.0;
    /// The strongest rep also works the winning behaviours more than most reps do, as top reps tend to:
    /// their adoption propensity is at least this far above the base rate on the log-odds scale (one
    /// spread of `REP_ADOPTION_SD`). Skill is still what sets them apart after adjusting for behaviours.
    pub const STRONGEST_MIN_PROPENSITY: f64 = 0.8;
    pub const EXEC_ENGAGED: f64 = 0.9;
    pub const MULTITHREADED: f64 = 0.7;
    pub const PRODUCT_ACTIVE: f64 = 0.8;
    pub const FAST_FOLLOW_UP: f64 = 0.5;
    pub const NEXT_STEP_SCHEDULED: f64 = 0.4;
    pub const URGENT_TICKET_OPEN: f64 = -0.9;
    pub const MEDIAN_CYCLE_DAYS: [f64; 3] = [45.0, 75.0, 120.0];
    pub const CYCLE_SIGMA: f64 = 0.45;
    pub const MIN_CYCLE_DAYS: f64 = 20.0;
    pub const CYCLE_EXEC: f64 = 0.8;
    pub const CYCLE_FAST_FOLLOW_UP: f64 = 0.75;
    pub const LOST_CYCLE_FACTOR: f64 = 0.9;
    pub const MEDIAN_AMOUNT: [f64; 3] = [12_000.0, 45_000.0, 150_000.0];
    pub const AMOUNT_SIGMA: f64 = 0.5;
    pub const AMOUNT_EXEC: f64 = 1.25;
    pub const AMOUNT_MULTITHREADED: f64 = 1.2;
    /// Base adoption rates (probability for an average rep) of the rep-driven behaviours, in the order
    /// exec_engaged, multithreaded, product_active (trial), fast_follow_up, next_step_scheduled, responsive.
    pub const ADOPTION: [f64; 6] = [0.40, 0.45, 0.30, 0.45, 0.50, 0.50];
    /// Spread of a rep's adoption propensity around the base, on the log-odds scale.
    pub const REP_ADOPTION_SD: f64 = 0.8;
    pub const URGENT_TICKET_RATE: f64 = 0.12;
    pub const MARKETING_RATE: [f64; 3] = [0.65, 0.40, 0.15];
    /// Share of deals without a trial whose account explores the product with 1–2 users.
    pub const EXPLORATION_RATE: f64 = 0.85;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Segment {
    Smb,
    Mid,
    Ent,
}

impl Segment {
    pub fn idx(self) -> usize {
        match self {
            Segment::Smb => 0,
            Segment::Mid => 1,
            Segment::Ent => 2,
        }
    }
    pub fn label(self) -> &'static str {
        ["SMB", "Mid-Market", "Enterprise"][self.idx()]
    }
}

pub(crate) struct User {
    pub id: String,
    pub first: &'static str,
    pub last: &'static str,
    pub email: String,
    pub team: usize,
    pub manager: Option<usize>,
    pub hired: i64,
    pub skill: f64,
    /// Log-odds offsets of this rep's adoption of each rep-driven behaviour.
    pub propensity: [f64; 6],
    pub talk_ratio: f64,
    pub questions_per_hour: f64,
}

pub(crate) struct Account {
    pub id: String,
    pub name: String,
    pub domain: String,
    pub website: String,
    pub industry: &'static str,
    pub employees: u32,
    pub revenue: u64,
    pub country: &'static str,
    pub parent: Option<usize>,
    pub created: i64,
    pub segment: Segment,
    pub region: &'static str,
    pub contacts: Vec<usize>,
    pub customer_since: Option<i64>,
    /// When dense post-win product usage starts.
    pub usage_start: Option<i64>,
    /// Dense usage may not start before this (a deal without a trial is in its first 45 days).
    pub no_usage_until: i64,
    /// Trials: window start and the number of users taking part.
    pub trials: Vec<(i64, u32)>,
    /// Windows in which no webinar/content touch may appear (deals without `marketing_engaged`).
    pub no_marketing: Vec<(i64, i64)>,
}

pub(crate) struct Contact {
    pub id: String,
    pub account: usize,
    pub email: String,
    pub first: &'static str,
    pub last: &'static str,
    pub title: &'static str,
    pub department: &'static str,
    pub created: i64,
    pub exec: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Won,
    Lost,
    Open,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Flags {
    pub exec_engaged: bool,
    pub multithreaded: bool,
    pub product_active: bool,
    pub fast_follow_up: bool,
    pub next_step_scheduled: bool,
    pub urgent_ticket_open: bool,
    pub marketing_engaged: bool,
    pub responsive: bool,
}

pub(crate) struct Opp {
    pub id: String,
    pub account: usize,
    pub rep: usize,
    pub name: String,
    pub kind: &'static str,
    pub source: &'static str,
    pub amount: Option<u64>,
    pub created: i64,
    /// Actual close (closed deals) or expected close date (open deals).
    pub close: i64,
    pub outcome: Outcome,
    /// Stages entered (index into STAGES) with entry time; the closing stage is implied by `outcome`.
    pub stages: Vec<(usize, i64)>,
    pub competitor: &'static str,
    pub discount: Option<f64>,
    pub flags: Flags,
}

pub(crate) struct Role {
    pub opp: usize,
    pub contact: usize,
    pub role: &'static str,
    pub primary: bool,
    pub created: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Call,
    Email,
    Task,
    Meeting,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Completed,
    NotStarted,
    Deferred,
    Scheduled,
    Canceled,
}

pub(crate) struct Activity {
    /// Counter of the Task (calls, e-mails, tasks) or Event (meetings) id.
    pub seq: u32,
    pub kind: Kind,
    pub inbound: bool,
    pub status: Status,
    pub rep: usize,
    pub account: usize,
    pub opp: Option<usize>,
    pub contact: usize,
    pub occurred: i64,
    pub created: i64,
    pub duration_s: u32,
    pub subject: &'static str,
}

pub(crate) const PRIORITIES: &[&str] = &["low", "normal", "high", "urgent"];

pub(crate) struct Ticket {
    pub created: i64,
    pub priority: usize,
    pub account: usize,
    pub contact: usize,
    pub email_only: bool,
    pub first_response: Option<i64>,
    pub solved: Option<i64>,
    pub csat: Option<u8>,
    pub subject: &'static str,
}

pub(crate) const TOUCH_KINDS: &[&str] = &[
    "email_sent",
    "email_open",
    "email_click",
    "web_visit",
    "form_fill",
    "webinar_registered",
    "webinar_attended",
    "content_download",
    "ad_click",
    "event_attended",
];
const TOUCH_WEIGHTS: &[f64] = &[0.34, 0.20, 0.07, 0.20, 0.02, 0.03, 0.02, 0.03, 0.07, 0.02];
pub(crate) const WEBINAR_ATTENDED: usize = 6;
pub(crate) const CONTENT_DOWNLOAD: usize = 7;

/// How a marketing touch identifies its person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TouchIdent {
    Contact,
    EmailOnly,
    AccountOnly,
}

pub(crate) struct Touch {
    pub at: i64,
    pub kind: usize,
    pub contact: usize,
    pub account: usize,
    pub ident: TouchIdent,
    pub campaign: &'static str,
}

pub(crate) struct Turn {
    pub rep: bool,
    pub start_s: u32,
    pub end_s: u32,
    pub text: String,
}

pub(crate) struct Transcript {
    pub activity: usize,
    pub opp: usize,
    pub turns: Vec<Turn>,
}

pub(crate) struct World {
    pub data_start: i64,
    pub data_end: i64,
    pub users: Vec<User>,
    pub reps: Vec<usize>,
    pub strongest: usize,
    pub weakest: usize,
    pub accounts: Vec<Account>,
    pub contacts: Vec<Contact>,
    pub opps: Vec<Opp>,
    pub roles: Vec<Role>,
    pub activities: Vec<Activity>,
    pub n_tasks: u32,
    pub n_events: u32,
    pub tickets: Vec<Ticket>,
    pub touches: Vec<Touch>,
    pub transcripts: Vec<Transcript>,
    /// The seed, for streams derived per deal.
    pub seed: u64,
}

fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

fn scaled(n: f64, scale: f64, min: u64) -> u64 {
    ((n * scale).round() as u64).max(min)
}

/// A working-hours moment on the given day (08:00–18:00 UTC, whole minutes).
fn work_time(day_start: i64, rng: &mut Rng) -> i64 {
    day_start.div_euclid(DAY) * DAY + 8 * HOUR + rng.below(600) as i64 * MIN
}

fn pick_str(rng: &mut Rng, items: &[&'static str]) -> &'static str {
    items[rng.below(items.len() as u64) as usize]
}

impl World {
    pub fn generate(seed: u64, scale: f64, data_start: i64, data_end: i64) -> World {
        let mut w = World {
            data_start,
            data_end,
            users: Vec::new(),
            reps: Vec::new(),
            strongest: 0,
            weakest: 0,
            accounts: Vec::new(),
            contacts: Vec::new(),
            opps: Vec::new(),
            roles: Vec::new(),
            activities: Vec::new(),
            n_tasks: 0,
            n_events: 0,
            tickets: Vec::new(),
            touches: Vec::new(),
            transcripts: Vec::new(),
            seed,
        };
        w.make_users(&mut Rng::derive(seed, 1), scaled(40.0, scale, 4) as usize);
        w.make_accounts(
            &mut Rng::derive(seed, 2),
            scaled(2000.0, scale, 50) as usize,
        );
        w.make_deals(
            &mut Rng::derive(seed, 3),
            scaled(8000.0, scale, 20) as usize,
        );
        w.make_account_activities(&mut Rng::derive(seed, 4));
        w.make_tickets(&mut Rng::derive(seed, 5), scaled(10_000.0, scale, 20));
        w.make_touches(&mut Rng::derive(seed, 6), scaled(200_000.0, scale, 100));
        w.make_transcripts(&mut Rng::derive(seed, 7), scaled(300.0, scale, 30) as usize);
        w
    }

    fn make_users(&mut self, rng: &mut Rng, n_reps: usize) {
        let mut manager_of_team = [None; 5];
        for (team, slot) in manager_of_team.iter_mut().enumerate() {
            if team >= n_reps {
                break;
            }
            *slot = Some(self.users.len());
            let user = self.new_user(rng, team, None);
            self.users.push(user);
        }
        self.strongest = self.users.len();
        self.weakest = self.users.len() + if n_reps > 5 { 5 } else { 1 };
        for i in 0..n_reps {
            let team = i % TEAMS.len();
            let idx = self.users.len();
            let mut user = self.new_user(rng, team, manager_of_team[team]);
            if idx == self.strongest {
                for p in user.propensity.iter_mut() {
                    *p = p.max(truth::STRONGEST_MIN_PROPENSITY);
                }
            }
            user.skill = if idx == self.strongest {
                truth::STRONGEST_SKILL
            } else if idx == self.weakest {
                truth::WEAKEST_SKILL
            } else {
                (truth::REP_SKILL_SD * rng.normal()).clamp(-0.6, 0.6)
            };
            self.reps.push(idx);
            self.users.push(user);
        }
    }

    fn new_user(&mut self, rng: &mut Rng, team: usize, manager: Option<usize>) -> User {
        let n = self.users.len() as u64 + 1;
        let first = pick_str(rng, FIRST_NAMES);
        let last = pick_str(rng, LAST_NAMES);
        let mut propensity = [0.0; 6];
        for p in propensity.iter_mut() {
            *p = truth::REP_ADOPTION_SD * rng.normal();
        }
        User {
            id: sf_id("005", n),
            first,
            last,
            email: format!(
                "{}.{}{}@lumenmetrics.com",
                first.to_lowercase(),
                last.to_lowercase(),
                n
            ),
            team,
            manager,
            hired: self.data_start - rng.range(60, 1500) * DAY,
            skill: 0.0,
            propensity,
            talk_ratio: 0.35 + 0.35 * rng.f64(),
            questions_per_hour: 6.0 + 24.0 * rng.f64(),
        }
    }

    fn make_accounts(&mut self, rng: &mut Rng, n: usize) {
        let mut used = std::collections::BTreeSet::new();
        for i in 0..n {
            let segment =
                [Segment::Smb, Segment::Mid, Segment::Ent][rng.weighted(&[0.5, 0.32, 0.18])];
            let (a, b) = (pick_str(rng, COMPANY_A), pick_str(rng, COMPANY_B));
            let mut name = format!("{a} {b}");
            let mut stem = format!("{}{}", a.to_lowercase(), b.to_lowercase());
            let tld = pick_str(rng, TLDS);
            let mut k = 2;
            let mut suffix = String::new();
            while !used.insert(format!("{stem}.{tld}")) {
                name = format!("{a} {b} {k}");
                suffix = k.to_string();
                stem = format!("{}{}{k}", a.to_lowercase(), b.to_lowercase());
                k += 1;
            }
            let domain = format!("{stem}.{tld}");
            let website = match rng.below(5) {
                0 | 1 => format!("https://www.{domain}/"),
                2 => domain.clone(),
                3 => format!("http://{a}{b}{suffix}.{tld}"),
                _ => format!("www.{domain}"),
            };
            let employees = match segment {
                Segment::Smb => rng.range(10, 200),
                Segment::Mid => rng.range(200, 2000),
                Segment::Ent => rng.range(2000, 60_000),
            } as u32;
            let countries: Vec<f64> = COUNTRIES.iter().map(|c| c.1).collect();
            let country = COUNTRIES[rng.weighted(&countries)].0;
            let region = if rng.chance(0.5) { "West" } else { "East" };
            // A few subsidiaries of an earlier enterprise account.
            let parent = if i > 20 && rng.chance(0.03) {
                let p = rng.below(i as u64) as usize;
                (self.accounts[p].segment == Segment::Ent && self.accounts[p].parent.is_none())
                    .then_some(p)
            } else {
                None
            };
            let created = self.data_start - rng.range(10, 3 * 365) * DAY + rng.range(8, 17) * HOUR;
            let account = Account {
                id: sf_id("001", i as u64 + 1),
                name,
                domain,
                website,
                industry: pick_str(rng, INDUSTRIES),
                employees,
                revenue: (f64::from(employees) * rng.lognormal(180_000.0, 0.4)).round() as u64
                    / 1000
                    * 1000,
                country,
                parent,
                created,
                segment,
                region,
                contacts: Vec::new(),
                customer_since: None,
                usage_start: None,
                no_usage_until: i64::MIN,
                trials: Vec::new(),
                no_marketing: Vec::new(),
            };
            self.accounts.push(account);
            self.make_contacts(rng, i);
        }
    }

    fn make_contacts(&mut self, rng: &mut Rng, account_idx: usize) {
        let extra = [1.0, 3.0, 6.0][self.accounts[account_idx].segment.idx()];
        let n = 5 + rng.poisson(extra) as usize;
        let mut used = std::collections::BTreeSet::new();
        for k in 0..n {
            // Slot 0 is the champion, slot 1 an executive; slots 2 and 3 are non-executives so that
            // every deal can be single- or multithreaded without an executive.
            let exec = match k {
                0 | 2 | 3 => false,
                1 => true,
                _ => rng.chance(0.3),
            };
            let (title, department) = if exec {
                EXEC_TITLES[rng.below(EXEC_TITLES.len() as u64) as usize]
            } else if k == 0 {
                OTHER_TITLES[rng.below(OTHER_TITLES.len() as u64 - 1) as usize]
            } else {
                OTHER_TITLES[rng.below(OTHER_TITLES.len() as u64) as usize]
            };
            let (mut first, mut last) = (pick_str(rng, FIRST_NAMES), pick_str(rng, LAST_NAMES));
            while !used.insert((first, last)) {
                first = pick_str(rng, FIRST_NAMES);
                last = pick_str(rng, LAST_NAMES);
            }
            let acct = &self.accounts[account_idx];
            let local = match rng.below(3) {
                0 => format!("{}.{}", first.to_lowercase(), last.to_lowercase()),
                1 => format!("{}{}", &first[..1].to_lowercase(), last.to_lowercase()),
                _ => format!("{}_{}", first.to_lowercase(), last.to_lowercase()),
            };
            let email = if rng.chance(0.03) {
                format!("{local}{}@{}", rng.range(1, 99), pick_str(rng, FREE_MAIL))
            } else {
                format!("{local}@{}", acct.domain)
            };
            let created = acct.created
                + ((self.data_start - 5 * DAY - acct.created) as f64 * rng.f64()) as i64;
            let idx = self.contacts.len();
            self.contacts.push(Contact {
                id: sf_id("003", idx as u64 + 1),
                account: account_idx,
                email,
                first,
                last,
                title,
                department,
                created: created / MIN * MIN,
                exec,
            });
            self.accounts[account_idx].contacts.push(idx);
        }
    }

    fn push_activity(&mut self, mut a: Activity) {
        if a.kind == Kind::Meeting {
            self.n_events += 1;
            a.seq = self.n_events;
        } else {
            self.n_tasks += 1;
            a.seq = self.n_tasks;
        }
        self.activities.push(a);
    }

    fn make_deals(&mut self, rng: &mut Rng, n_opps: usize) {
        let span = self.data_end - self.data_start;
        let mut created: Vec<i64> = (0..n_opps)
            .map(|_| work_time(self.data_start + (rng.f64() * span as f64) as i64, rng))
            .collect();
        created.sort_unstable();
        let seg_weight = [1.0, 1.1, 1.4];
        let acct_weights: Vec<f64> = self
            .accounts
            .iter()
            .map(|a| seg_weight[a.segment.idx()])
            .collect();
        for (deal_idx, t0) in created.into_iter().enumerate() {
            let account = rng.weighted(&acct_weights);
            self.make_deal(rng, deal_idx, account, t0);
        }
    }

    fn pick_rep(&self, rng: &mut Rng, account: usize) -> usize {
        let acct = &self.accounts[account];
        let team = TEAMS
            .iter()
            .position(|t| t.1 == acct.segment && (t.2.is_empty() || t.2 == acct.region))
            .unwrap_or(0);
        let team_reps: Vec<usize> = self
            .reps
            .iter()
            .copied()
            .filter(|&r| self.users[r].team == team)
            .collect();
        if team_reps.is_empty() {
            *rng.pick(&self.reps)
        } else {
            *rng.pick(&team_reps)
        }
    }

    fn make_deal(&mut self, rng: &mut Rng, deal_idx: usize, account: usize, t0: i64) {
        let rep = self.pick_rep(rng, account);
        let seg = self.accounts[account].segment;
        let prop = self.users[rep].propensity;
        let adopt =
            |rng: &mut Rng, b: usize| rng.chance(logistic(logit(truth::ADOPTION[b]) + prop[b]));
        let mut f = Flags {
            exec_engaged: adopt(rng, 0),
            multithreaded: adopt(rng, 1),
            product_active: false,
            fast_follow_up: adopt(rng, 3),
            next_step_scheduled: adopt(rng, 4),
            urgent_ticket_open: rng.chance(truth::URGENT_TICKET_RATE),
            marketing_engaged: rng.chance(truth::MARKETING_RATE[seg.idx()]),
            responsive: adopt(rng, 5),
        };
        let trial = adopt(rng, 2);
        // Existing customers use the product anyway: the deal is product-active whatever the rep does.
        let acct = &self.accounts[account];
        let window_end = t0 + 45 * DAY;
        let busy = acct.usage_start.is_some_and(|u| u < window_end)
            || acct
                .trials
                .iter()
                .any(|&(s, users)| users >= 3 && s < window_end && s + 14 * DAY > t0);
        let kind = if acct.customer_since.is_some_and(|c| c < t0) {
            if rng.chance(0.7) {
                "Existing Business"
            } else {
                "Renewal"
            }
        } else {
            "New Business"
        };
        if busy {
            f.product_active = true;
        } else if trial && t0 + 20 * DAY > acct.no_usage_until {
            f.product_active = true;
            let start = (t0 + rng.range(3, 25) * DAY).max(acct.no_usage_until + DAY);
            let users = rng.range(3, 6) as u32;
            self.accounts[account]
                .trials
                .push((start / DAY * DAY, users));
        } else {
            // Without a trial the account still explores the product, with 1–2 users (too few to be
            // product-active) and the same timing as a trial, so that usage growing is not a proxy for
            // a trial (truth: usage_growing has no effect). Drawn from a stream of its own, so the rest
            // of the world is unchanged.
            let mut ex = Rng::derive(self.seed, 1_000_000 + deal_idx as u64);
            let a = &mut self.accounts[account];
            if t0 + 20 * DAY > a.no_usage_until && ex.chance(truth::EXPLORATION_RATE) {
                let start = (t0 + ex.range(3, 25) * DAY).max(a.no_usage_until + DAY);
                a.trials.push((start / DAY * DAY, ex.range(1, 2) as u32));
            }
            a.no_usage_until = a.no_usage_until.max(window_end);
        }
        if !f.marketing_engaged {
            self.accounts[account]
                .no_marketing
                .push((t0 - 30 * DAY, t0 + 31 * DAY));
        }

        // Outcome, cycle and size.
        let skill = self.users[rep].skill;
        let mut log_odds = truth::BASE_LOG_ODDS + truth::SEGMENT_LOG_ODDS[seg.idx()] + skill;
        for (on, effect) in [
            (f.exec_engaged, truth::EXEC_ENGAGED),
            (f.multithreaded, truth::MULTITHREADED),
            (f.product_active, truth::PRODUCT_ACTIVE),
            (f.fast_follow_up, truth::FAST_FOLLOW_UP),
            (f.next_step_scheduled, truth::NEXT_STEP_SCHEDULED),
            (f.urgent_ticket_open, truth::URGENT_TICKET_OPEN),
        ] {
            if on {
                log_odds += effect;
            }
        }
        let won = rng.chance(logistic(log_odds));
        let mut median = truth::MEDIAN_CYCLE_DAYS[seg.idx()];
        if f.exec_engaged {
            median *= truth::CYCLE_EXEC;
        }
        if f.fast_follow_up {
            median *= truth::CYCLE_FAST_FOLLOW_UP;
        }
        if !won {
            median *= truth::LOST_CYCLE_FACTOR;
        }
        let cycle_days = rng
            .lognormal(median, truth::CYCLE_SIGMA)
            .max(truth::MIN_CYCLE_DAYS);
        let planned_close = work_time(t0 + (cycle_days * DAY as f64) as i64, rng);
        let mut amount_median = truth::MEDIAN_AMOUNT[seg.idx()];
        if f.exec_engaged {
            amount_median *= truth::AMOUNT_EXEC;
        }
        if f.multithreaded {
            amount_median *= truth::AMOUNT_MULTITHREADED;
        }
        let amount =
            (rng.lognormal(amount_median, truth::AMOUNT_SIGMA) / 100.0).round() as u64 * 100;
        let outcome = if planned_close > self.data_end {
            Outcome::Open
        } else if won {
            Outcome::Won
        } else {
            Outcome::Lost
        };
        let n_stages = match outcome {
            Outcome::Won | Outcome::Open => 5,
            Outcome::Lost => 1 + rng.weighted(&[0.15, 0.2, 0.25, 0.2, 0.2]),
        };
        let cycle_ms = (planned_close - t0) as f64;
        let mut stages = Vec::with_capacity(n_stages);
        for (s, at) in STAGE_AT.iter().enumerate().take(n_stages) {
            let jitter = if s == 0 {
                0.0
            } else {
                0.04 * (rng.f64() - 0.5)
            };
            let t = if s == 0 {
                t0
            } else {
                t0 + ((at + jitter) * cycle_ms) as i64 / MIN * MIN
            };
            if t <= self.data_end {
                stages.push((s, t));
            }
        }
        if outcome == Outcome::Won {
            let a = &mut self.accounts[account];
            a.customer_since = Some(
                a.customer_since
                    .map_or(planned_close, |c| c.min(planned_close)),
            );
            let start = (planned_close + rng.range(7, 30) * DAY).max(a.no_usage_until + DAY);
            if start < self.data_end {
                a.usage_start = Some(a.usage_start.map_or(start, |u| u.min(start)));
            }
        }
        let account_name = self.accounts[account].name.clone();
        let product = pick_str(rng, PRODUCTS);
        let opp = Opp {
            id: sf_id("006", deal_idx as u64 + 1),
            account,
            rep,
            name: format!("{account_name} - {product}"),
            kind,
            source: ["Web", "Partner", "Outbound", "Event", "Referral"]
                [rng.weighted(&[0.3, 0.12, 0.35, 0.1, 0.13])],
            amount: Some(amount),
            created: t0,
            close: planned_close,
            outcome,
            stages,
            competitor: if rng.chance(0.45) {
                pick_str(rng, COMPETITORS)
            } else {
                ""
            },
            discount: match outcome {
                Outcome::Won => Some((rng.f64() * 25.0 * 10.0).round() / 10.0),
                _ if rng.chance(0.3) => Some((rng.f64() * 15.0 * 10.0).round() / 10.0),
                _ => None,
            },
            flags: f,
        };
        self.opps.push(opp);
        self.make_deal_activities(rng, deal_idx);
    }

    fn make_deal_activities(&mut self, rng: &mut Rng, deal_idx: usize) {
        let opp = &self.opps[deal_idx];
        let (account, rep, t0, f) = (opp.account, opp.rep, opp.created, opp.flags);
        let end = if opp.outcome == Outcome::Open {
            self.data_end
        } else {
            opp.close
        };
        let dur_days = (end - t0) as f64 / DAY as f64;
        let day30 = t0 + 30 * DAY;
        let plant_by = t0 + ((28.0f64).min(0.85 * dur_days) * DAY as f64) as i64;
        let contacts = self.accounts[account].contacts.clone();
        let champion = contacts[0];
        let execs: Vec<usize> = contacts
            .iter()
            .copied()
            .filter(|&c| self.contacts[c].exec)
            .collect();
        let others: Vec<usize> = contacts[1..]
            .iter()
            .copied()
            .filter(|&c| !self.contacts[c].exec)
            .collect();
        // Contacts the deal talks to in its first 30 days.
        let mut early = vec![champion];
        if f.exec_engaged {
            early.push(*rng.pick(&execs));
        }
        let want = if f.multithreaded {
            3 + rng.below(3) as usize
        } else {
            1 + rng.below(2) as usize
        };
        let want = if f.multithreaded { want } else { want.min(2) };
        let mut pool = others.clone();
        while early.len() < want && !pool.is_empty() {
            let k = rng.below(pool.len() as u64) as usize;
            early.push(pool.swap_remove(k));
        }
        let pick_contact = |rng: &mut Rng, t: i64| -> usize {
            if t < day30 {
                early[rng.below(early.len() as u64) as usize]
            } else if rng.chance(0.4) {
                champion
            } else {
                contacts[rng.below(contacts.len() as u64) as usize]
            }
        };
        let mut acts: Vec<Activity> = Vec::new();
        let base = |kind, t: i64, contact, subject| Activity {
            seq: 0,
            kind,
            inbound: false,
            status: Status::Completed,
            rep,
            account,
            opp: Some(deal_idx),
            contact,
            occurred: t,
            created: t,
            duration_s: 0,
            subject,
        };
        let uniform_time = |rng: &mut Rng, from: i64, to: i64| -> i64 {
            let t = work_time(from + (rng.f64() * (to - from).max(0) as f64) as i64, rng);
            t.clamp(from, to.max(from))
        };

        // Meetings: a discovery meeting, the executive meeting, then a spread over the deal.
        let mut meeting_times = vec![uniform_time(
            rng,
            t0 + DAY,
            t0 + ((12.0f64).min(0.5 * dur_days) * DAY as f64) as i64,
        )];
        let exec_meeting = f
            .exec_engaged
            .then(|| uniform_time(rng, t0 + 3 * DAY, plant_by));
        if let Some(t) = exec_meeting {
            meeting_times.push(t);
        }
        let n_more = rng.poisson(dur_days / 25.0) as usize;
        for _ in 0..n_more {
            meeting_times.push(uniform_time(rng, t0 + DAY, end));
        }
        let booked_ahead_probe = f.next_step_scheduled && dur_days > 46.0;
        if booked_ahead_probe {
            meeting_times.push(uniform_time(rng, t0 + 31 * DAY, t0 + 45 * DAY));
        }
        meeting_times.sort_unstable();
        let mut completed_meetings = Vec::new();
        for (k, &t) in meeting_times.iter().enumerate() {
            let is_exec = exec_meeting == Some(t);
            let contact = if is_exec {
                early[1]
            } else {
                pick_contact(rng, t)
            };
            // Early meetings never involve an executive unless the deal is exec-engaged.
            let contact = if !f.exec_engaged && t < day30 && self.contacts[contact].exec {
                champion
            } else {
                contact
            };
            let created = if f.next_step_scheduled {
                (t - rng.range(2, 12) * DAY - rng.range(0, 8) * HOUR).max(t0.min(t - HOUR))
            } else {
                t - rng.range(30, 300) * MIN
            };
            let created = if booked_ahead_probe && t > t0 + 30 * DAY && t < t0 + 46 * DAY {
                t0 + rng.range(15, 29) * DAY + rng.range(9, 17) * HOUR
            } else {
                created
            };
            let canceled = k > 0 && !is_exec && rng.chance(0.05);
            let mut m = base(
                Kind::Meeting,
                t,
                contact,
                if is_exec {
                    "Executive briefing"
                } else {
                    MEETING_SUBJECTS[k.min(MEETING_SUBJECTS.len() - 1)]
                },
            );
            m.created = created.min(t);
            m.duration_s = [1800, 2700, 3600][rng.below(3) as usize];
            if canceled {
                m.status = Status::Canceled;
            } else {
                completed_meetings.push(t);
            }
            acts.push(m);
        }
        // Next meeting already booked for open deals that schedule ahead (may lie after data_end).
        if f.next_step_scheduled && self.opps[deal_idx].outcome == Outcome::Open {
            let t = work_time(self.data_end + rng.range(1, 25) * DAY, rng);
            let mut m = base(Kind::Meeting, t, pick_contact(rng, t), "Next steps");
            m.created = (self.data_end - rng.range(1, 10) * DAY - rng.range(1, 8) * HOUR).max(t0);
            m.status = Status::Scheduled;
            m.duration_s = 1800;
            acts.push(m);
        }

        // Fast follow-up: an outbound e-mail within 24 h of every completed meeting.
        if f.fast_follow_up {
            for &t in &completed_meetings {
                let room = (self.data_end - t).min(20 * HOUR);
                let at = t + HOUR + (rng.f64() * (room - HOUR).max(0) as f64) as i64;
                let at = at.min(self.data_end) / MIN * MIN;
                let mut e = base(
                    Kind::Email,
                    at,
                    pick_contact(rng, at),
                    "Follow-up: recap and next steps",
                );
                e.created = at;
                acts.push(e);
            }
        }
        let avoid = |t: i64| {
            !f.fast_follow_up
                && completed_meetings
                    .iter()
                    .any(|&m| t > m && t <= m + 30 * HOUR)
        };
        // Multithreading: one completed touch with each early contact before day 30.
        for &c in &early {
            let t = uniform_time(rng, t0 + 2 * DAY, plant_by);
            let kind = if rng.chance(0.5) || avoid(t) {
                Kind::Call
            } else {
                Kind::Email
            };
            let mut a = base(
                kind,
                t,
                c,
                if kind == Kind::Call {
                    "Discovery call"
                } else {
                    "Intro and agenda"
                },
            );
            if kind == Kind::Call {
                a.duration_s = rng.range(300, 1800) as u32;
            }
            acts.push(a);
        }

        // Background: e-mails, calls and tasks over the life of the deal.
        let n_bg = rng.poisson(8.0 + 0.65 * dur_days) as usize;
        let reply_median_h = if f.responsive { 2.0 } else { 20.0 };
        for _ in 0..n_bg {
            let t = uniform_time(rng, t0, end);
            let contact = pick_contact(rng, t);
            match rng.weighted(&[0.36, 0.16, 0.26, 0.22]) {
                0 => {
                    let t = if avoid(t) { t + 36 * HOUR } else { t };
                    if t <= end && !avoid(t) {
                        acts.push(base(
                            Kind::Email,
                            t,
                            contact,
                            pick_str(rng, EMAIL_OUT_SUBJECTS),
                        ));
                    }
                }
                1 => {
                    let mut e = base(Kind::Email, t, contact, pick_str(rng, EMAIL_IN_SUBJECTS));
                    e.inbound = true;
                    acts.push(e);
                    let reply =
                        t + (rng.lognormal(reply_median_h, 0.6) * HOUR as f64) as i64 / MIN * MIN;
                    if reply <= end && !avoid(reply) {
                        acts.push(base(Kind::Email, reply, contact, "Re: your question"));
                    }
                }
                2 => {
                    let mut c = base(Kind::Call, t, contact, pick_str(rng, CALL_SUBJECTS));
                    c.inbound = rng.chance(0.15);
                    // A third of calls reach voicemail; the rest last minutes.
                    c.duration_s = if rng.chance(0.33) {
                        rng.range(5, 40) as u32
                    } else {
                        rng.lognormal(900.0, 0.6).min(5400.0) as u32
                    };
                    // An unanswered call to an executive is not an engagement, but keep it clean anyway.
                    if !(t < day30 && self.contacts[contact].exec && !f.exec_engaged) {
                        acts.push(c);
                    }
                }
                _ => {
                    let mut task = base(Kind::Task, t, contact, pick_str(rng, TASK_SUBJECTS));
                    task.status = match rng.weighted(&[0.8, 0.12, 0.08]) {
                        0 => Status::Completed,
                        1 => Status::NotStarted,
                        _ => Status::Deferred,
                    };
                    task.created = t - rng.range(0, 5) * DAY;
                    task.created = task.created.max(t0);
                    acts.push(task);
                }
            }
        }
        // Plants squeezed into very short or very late deals may land past the deal's end: drop them.
        let last = end.min(self.data_end);
        acts.retain(|a| a.status == Status::Scheduled || a.occurred <= last);
        acts.sort_by_key(|a| a.occurred);
        for a in acts {
            self.push_activity(a);
        }

        // Contact roles.
        let roles = [
            "Decision Maker",
            "Economic Buyer",
            "Evaluator",
            "Influencer",
            "Technical Buyer",
        ];
        let mut role_contacts = early.clone();
        if rng.chance(0.5) {
            let c = contacts[rng.below(contacts.len() as u64) as usize];
            if !role_contacts.contains(&c) {
                role_contacts.push(c);
            }
        }
        for (k, &c) in role_contacts.iter().enumerate() {
            let role = if self.contacts[c].exec {
                pick_str(rng, &roles[..2])
            } else {
                pick_str(rng, &roles[2..])
            };
            self.roles.push(Role {
                opp: deal_idx,
                contact: c,
                role,
                primary: k == 0,
                created: (t0 + rng.range(0, 10) * DAY + rng.range(0, 8) * HOUR).min(end),
            });
        }

        // Planted ticket: urgent or high, opened in the first 30 days, solved after day 45.
        if f.urgent_ticket_open && t0 + 3 * DAY < self.data_end {
            let created = uniform_time(rng, t0 + 2 * DAY, plant_by).min(self.data_end);
            let solved = work_time(t0 + rng.range(46, 80) * DAY, rng);
            let first_response = created + rng.range(10, 240) * MIN;
            self.tickets.push(Ticket {
                created,
                priority: if rng.chance(0.6) { 3 } else { 2 },
                account,
                contact: early[rng.below(early.len() as u64) as usize],
                email_only: false,
                first_response: (first_response <= self.data_end).then_some(first_response),
                solved: (solved <= self.data_end).then_some(solved),
                csat: (solved <= self.data_end && rng.chance(0.6)).then(|| rng.range(1, 3) as u8),
                subject: pick_str(rng, TICKET_SUBJECTS),
            });
        }
        // Planted marketing: webinar attended or content downloaded around the deal's start.
        if f.marketing_engaged {
            for _ in 0..1 + rng.below(2) {
                let at = work_time(t0 + rng.range(-25, 25) * DAY, rng);
                self.touches.push(Touch {
                    at: at.min(self.data_end),
                    kind: if rng.chance(0.5) {
                        WEBINAR_ATTENDED
                    } else {
                        CONTENT_DOWNLOAD
                    },
                    contact: contacts[rng.below(contacts.len() as u64) as usize],
                    account,
                    ident: if rng.chance(0.85) {
                        TouchIdent::Contact
                    } else {
                        TouchIdent::EmailOnly
                    },
                    campaign: if rng.chance(0.5) {
                        CAMPAIGNS[1]
                    } else {
                        CAMPAIGNS[4]
                    },
                });
            }
        }
    }

    /// Customer-success calls and tasks on customer accounts (WhatId is the account).
    fn make_account_activities(&mut self, rng: &mut Rng) {
        for account in 0..self.accounts.len() {
            let Some(since) = self.accounts[account].customer_since else {
                continue;
            };
            let champion = self.accounts[account].contacts[0];
            let rep = self
                .opps
                .iter()
                .find(|o| o.account == account)
                .map_or(self.reps[0], |o| o.rep);
            let mut t = since + rng.range(14, 40) * DAY;
            while t < self.data_end {
                let kind = if rng.chance(0.6) {
                    Kind::Call
                } else {
                    Kind::Task
                };
                let at = work_time(t, rng);
                if at <= self.data_end {
                    self.push_activity(Activity {
                        seq: 0,
                        kind,
                        inbound: false,
                        status: Status::Completed,
                        rep,
                        account,
                        opp: None,
                        contact: champion,
                        occurred: at,
                        created: at,
                        duration_s: if kind == Kind::Call {
                            rng.range(300, 1500) as u32
                        } else {
                            0
                        },
                        subject: if kind == Kind::Call {
                            "Customer check-in"
                        } else {
                            "Quarterly business review prep"
                        },
                    });
                }
                t += rng.range(20, 45) * DAY;
            }
        }
    }

    fn make_tickets(&mut self, rng: &mut Rng, target: u64) {
        let planted = self.tickets.len() as u64;
        let n = target.saturating_sub(planted);
        let customers: Vec<usize> = (0..self.accounts.len())
            .filter(|&a| self.accounts[a].customer_since.is_some())
            .collect();
        let weights: Vec<f64> = customers
            .iter()
            .map(|&a| {
                let since = self.accounts[a].customer_since.unwrap_or(self.data_end);
                ((self.data_end - since) as f64 / DAY as f64).max(1.0)
                    * [1.0, 2.0, 4.0][self.accounts[a].segment.idx()]
            })
            .collect();
        for _ in 0..n {
            let (account, from) = if !customers.is_empty() && rng.chance(0.85) {
                let a = customers[rng.weighted(&weights)];
                (
                    a,
                    self.accounts[a].customer_since.unwrap_or(self.data_start),
                )
            } else {
                (
                    rng.below(self.accounts.len() as u64) as usize,
                    self.data_start,
                )
            };
            let created = work_time(
                from + (rng.f64() * (self.data_end - from) as f64) as i64,
                rng,
            )
            .min(self.data_end);
            let mut priority = rng.weighted(&[0.30, 0.45, 0.17, 0.08]);
            // Background urgent/high tickets are solved within days, so they never look like a planted one.
            let resolve_days = if priority >= 2 {
                rng.range(1, 120) as f64 / 24.0
            } else {
                rng.exp(4.0) + 0.1
            };
            let solved = created + (resolve_days * DAY as f64) as i64 / MIN * MIN;
            if priority >= 2 && solved > self.data_end {
                priority = 1;
            }
            let first_response = created + rng.range(5, 600) * MIN;
            let contacts = &self.accounts[account].contacts;
            let solved_in_window = solved <= self.data_end;
            self.tickets.push(Ticket {
                created,
                priority,
                account,
                contact: contacts[rng.below(contacts.len() as u64) as usize],
                email_only: rng.chance(0.12),
                first_response: (first_response <= self.data_end).then_some(first_response),
                solved: solved_in_window.then_some(solved),
                csat: (solved_in_window && rng.chance(0.6))
                    .then(|| [1, 2, 3, 4, 5][rng.weighted(&[0.05, 0.07, 0.15, 0.33, 0.4])]),
                subject: pick_str(rng, TICKET_SUBJECTS),
            });
        }
        self.tickets.sort_by_key(|t| t.created);
    }

    fn make_touches(&mut self, rng: &mut Rng, target: u64) {
        let n = target.saturating_sub(self.touches.len() as u64);
        let weights: Vec<f64> = self
            .accounts
            .iter()
            .map(|a| [1.0, 1.3, 1.8][a.segment.idx()])
            .collect();
        for _ in 0..n {
            let account = rng.weighted(&weights);
            let acct = &self.accounts[account];
            let at = work_time(
                self.data_start + (rng.f64() * (self.data_end - self.data_start) as f64) as i64,
                rng,
            ) + rng.range(-6, 4) * HOUR;
            let at = at.clamp(self.data_start, self.data_end);
            let mut kind = rng.weighted(TOUCH_WEIGHTS);
            if (kind == WEBINAR_ATTENDED || kind == CONTENT_DOWNLOAD)
                && acct.no_marketing.iter().any(|&(s, e)| at >= s && at < e)
            {
                kind = 1; // an e-mail open instead: such deals must not look marketing-engaged
            }
            let ident = match rng.weighted(&[0.75, 0.15, 0.10]) {
                2 if kind == 3 || kind == 8 => TouchIdent::AccountOnly,
                1 | 2 => TouchIdent::EmailOnly,
                _ => TouchIdent::Contact,
            };
            let campaign = match kind {
                5 | 6 => CAMPAIGNS[1],
                7 => CAMPAIGNS[4],
                9 => CAMPAIGNS[2],
                3 => "",
                _ => pick_str(rng, CAMPAIGNS),
            };
            self.touches.push(Touch {
                at,
                kind,
                contact: acct.contacts[rng.below(acct.contacts.len() as u64) as usize],
                account,
                ident,
                campaign,
            });
        }
        self.touches.sort_by_key(|t| t.at);
    }

    fn make_transcripts(&mut self, rng: &mut Rng, n: usize) {
        let calls: Vec<usize> = (0..self.activities.len())
            .filter(|&i| {
                let a = &self.activities[i];
                a.kind == Kind::Call
                    && a.opp.is_some()
                    && a.duration_s >= 600
                    && a.status == Status::Completed
            })
            .collect();
        let mut chosen = std::collections::BTreeSet::new();
        let mut guard = 0;
        while chosen.len() < n.min(calls.len()) && guard < n * 50 {
            chosen.insert(calls[rng.below(calls.len() as u64) as usize]);
            guard += 1;
        }
        for activity in chosen {
            let a = &self.activities[activity];
            let rep = &self.users[a.rep];
            let turns =
                crate::dialogue::turns(rng, a.duration_s, rep.talk_ratio, rep.questions_per_hour);
            let Some(opp) = a.opp else { continue };
            self.transcripts.push(Transcript {
                activity,
                opp,
                turns,
            });
        }
    }
}
