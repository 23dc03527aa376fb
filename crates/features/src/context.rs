//! The entities features are computed about — opportunities, accounts, contacts, reps, stage history,
//! contact roles — read once from the store (current versions), with dense indexes for the engine.

use crate::seniority::{classify_title, Seniority};
use winsignal_core::hash::FastMap;
use winsignal_core::sfdc::to_18;
use winsignal_core::{AttrValue, Attrs, Kind, Outcome, Record, Ts};
use winsignal_ingest::resolve::Resolver;
use winsignal_store::StoreRead;

pub const NONE: u32 = u32::MAX;

#[derive(Debug, Clone)]
pub struct OppInfo {
    pub id: String,
    pub account: u32,
    pub rep: Option<String>,
    pub created: Ts,
    pub closed: Option<Ts>,
    pub outcome: Outcome,
    pub amount: Option<f64>,
    pub opp_type: Option<String>,
    pub lead_source: Option<String>,
    pub stage: Option<String>,
    pub attrs: Attrs,
    /// Stage entries in time order.
    pub stages: Vec<(Ts, String)>,
    /// Contacts with a role on the deal.
    pub roles: Vec<u32>,
}

#[derive(Debug, Clone)]
pub struct AccountInfo {
    pub id: String,
    pub name: Option<String>,
    pub segment: Option<String>,
    pub employees: Option<f64>,
    pub annual_revenue: Option<f64>,
    pub industry: Option<String>,
    pub country: Option<String>,
    pub parent: u32,
    pub children: Vec<u32>,
    pub attrs: Attrs,
    pub opportunities: Vec<u32>,
    pub contacts: Vec<u32>,
}

#[derive(Debug, Clone)]
pub struct ContactInfo {
    pub id: String,
    pub account: u32,
    pub title: Option<String>,
    pub seniority: Seniority,
}

/// Everything features need besides the events, with indexes by id.
pub struct Context {
    pub opps: Vec<OppInfo>,
    pub accounts: Vec<AccountInfo>,
    pub contacts: Vec<ContactInfo>,
    opp_index: FastMap<String, u32>,
    account_index: FastMap<String, u32>,
    contact_index: FastMap<String, u32>,
    /// For each contact, the deals they hold a role on.
    pub roles_by_contact: Vec<Vec<u32>>,
    pub resolver: Resolver,
    /// The latest time anywhere in the entities (creation, close, stage entry).
    pub latest_entity_time: Ts,
    pub(crate) lookalike: crate::graph::Lookalike,
}

impl Context {
    /// Reads the current version of every entity.
    pub fn from_store(store: &dyn StoreRead) -> winsignal_ingest::Result<Context> {
        let resolver = Resolver::from_store(store)?;
        let mut accounts = Vec::new();
        let mut account_index = FastMap::default();
        let mut parents = Vec::new();
        for rec in store.records(Kind::Accounts)? {
            if let Record::Accounts(a) = rec.record {
                account_index.insert(a.account_id.clone(), accounts.len() as u32);
                parents.push(a.parent_account_id.clone());
                accounts.push(AccountInfo {
                    id: a.account_id,
                    name: a.name,
                    segment: a.segment,
                    employees: a.employees,
                    annual_revenue: a.annual_revenue,
                    industry: a.industry,
                    country: a.country,
                    parent: NONE,
                    children: Vec::new(),
                    attrs: a.attrs,
                    opportunities: Vec::new(),
                    contacts: Vec::new(),
                });
            }
        }
        let find = |index: &FastMap<String, u32>, id: &str| {
            index
                .get(id)
                .or_else(|| index.get(&to_18(id)))
                .copied()
                .unwrap_or(NONE)
        };
        for (i, p) in parents.iter().enumerate() {
            if let Some(p) = p {
                let pi = find(&account_index, p);
                if pi != NONE && pi as usize != i {
                    accounts[i].parent = pi;
                    accounts[pi as usize].children.push(i as u32);
                }
            }
        }
        let mut contacts = Vec::new();
        let mut contact_index = FastMap::default();
        for rec in store.records(Kind::Contacts)? {
            if let Record::Contacts(c) = rec.record {
                let account = resolver
                    .account_of_contact(&c.contact_id)
                    .map_or(NONE, |a| find(&account_index, &a));
                let idx = contacts.len() as u32;
                if account != NONE {
                    accounts[account as usize].contacts.push(idx);
                }
                contact_index.insert(c.contact_id.clone(), idx);
                contacts.push(ContactInfo {
                    id: c.contact_id,
                    account,
                    seniority: c
                        .title
                        .as_deref()
                        .map_or(Seniority::Unknown, classify_title),
                    title: c.title,
                });
            }
        }
        let mut opps = Vec::new();
        let mut opp_index = FastMap::default();
        let mut latest = Ts(i64::MIN);
        for rec in store.records(Kind::Opportunities)? {
            if let Record::Opportunities(o) = rec.record {
                let account = o
                    .account_id
                    .as_deref()
                    .map_or(NONE, |a| find(&account_index, a));
                let idx = opps.len() as u32;
                if account != NONE {
                    accounts[account as usize].opportunities.push(idx);
                }
                latest = latest
                    .max(o.created_at)
                    .max(o.closed_at.unwrap_or(o.created_at));
                opp_index.insert(o.opportunity_id.clone(), idx);
                opps.push(OppInfo {
                    id: o.opportunity_id,
                    account,
                    rep: o.rep_id.map(|r| resolver.rep(&r).unwrap_or(r)),
                    created: o.created_at,
                    closed: o.closed_at,
                    outcome: o.outcome,
                    amount: o.amount,
                    opp_type: o.opp_type,
                    lead_source: o.lead_source,
                    stage: o.stage,
                    attrs: o.attrs,
                    stages: Vec::new(),
                    roles: Vec::new(),
                });
            }
        }
        for rec in store.records(Kind::StageHistory)? {
            if let Record::StageHistory(s) = rec.record {
                let o = find(&opp_index, &s.opportunity_id);
                if o != NONE {
                    latest = latest.max(s.entered_at);
                    opps[o as usize].stages.push((s.entered_at, s.stage));
                }
            }
        }
        let mut roles_by_contact = vec![Vec::new(); contacts.len()];
        for rec in store.records(Kind::OpportunityContacts)? {
            if let Record::OpportunityContacts(r) = rec.record {
                let o = find(&opp_index, &r.opportunity_id);
                let c = find(&contact_index, &r.contact_id);
                if o != NONE && c != NONE {
                    opps[o as usize].roles.push(c);
                    roles_by_contact[c as usize].push(o);
                }
            }
        }
        for o in &mut opps {
            o.stages.sort();
            o.roles.sort_unstable();
            o.roles.dedup();
        }
        for r in &mut roles_by_contact {
            r.sort_unstable();
            r.dedup();
        }
        let lookalike = crate::graph::Lookalike::build(&opps, &accounts);
        Ok(Context {
            opps,
            accounts,
            contacts,
            opp_index,
            account_index,
            contact_index,
            roles_by_contact,
            resolver,
            latest_entity_time: latest,
            lookalike,
        })
    }

    pub fn opportunity(&self, id: &str) -> Option<u32> {
        lookup(&self.opp_index, id)
    }

    pub fn account(&self, id: &str) -> Option<u32> {
        lookup(&self.account_index, id)
    }

    pub fn contact(&self, id: &str) -> Option<u32> {
        lookup(&self.contact_index, id)
    }

    /// The segment control: the account's segment field, else an employee band.
    pub fn segment_of(&self, account: u32) -> Option<String> {
        let a = self.accounts.get(account as usize)?;
        if let Some(s) = a.segment.as_deref().filter(|s| !s.trim().is_empty()) {
            return Some(s.trim().to_string());
        }
        a.employees.map(|e| employee_band(e).to_string())
    }

    /// The value of a field or custom attribute, as a number (booleans 0/1), or as text.
    pub fn attribute(
        &self,
        opp: u32,
        entity: crate::catalog::Entity,
        name: &str,
    ) -> Option<AttrValue> {
        use crate::catalog::Entity;
        let o = &self.opps[opp as usize];
        let text = |s: &Option<String>| s.clone().map(AttrValue::Text);
        let num = |v: Option<f64>| v.map(AttrValue::Number);
        match entity {
            Entity::Opportunity => match name {
                "amount" => num(o.amount),
                "type" | "opportunity_type" => text(&o.opp_type),
                "lead_source" => text(&o.lead_source),
                "rep_id" => text(&o.rep),
                _ => custom(&o.attrs, name),
            },
            Entity::Account => {
                let a = self.accounts.get(o.account as usize)?;
                match name {
                    "segment" => self.segment_of(o.account).map(AttrValue::Text),
                    "employees" => num(a.employees),
                    "annual_revenue" => num(a.annual_revenue),
                    "industry" => text(&a.industry),
                    "country" => text(&a.country),
                    _ => custom(&a.attrs, name),
                }
            }
        }
    }
}

fn custom(attrs: &Attrs, name: &str) -> Option<AttrValue> {
    attrs
        .get(name)
        .or_else(|| {
            attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
        .cloned()
}

fn lookup(index: &FastMap<String, u32>, id: &str) -> Option<u32> {
    index.get(id).or_else(|| index.get(&to_18(id))).copied()
}

/// Employee bands used as the segment when an account has no segment field.
pub fn employee_band(employees: f64) -> &'static str {
    match employees {
        e if e < 50.0 => "1-49 employees",
        e if e < 250.0 => "50-249 employees",
        e if e < 1000.0 => "250-999 employees",
        e if e < 5000.0 => "1000-4999 employees",
        _ => "5000+ employees",
    }
}
