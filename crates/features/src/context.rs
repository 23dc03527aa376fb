//! The entities features are computed about — opportunities, accounts, contacts, reps, stage history,
//! contact roles — with dense indexes for the engine. Entities can arrive and change at any time: each
//! keeps the slot it was first given, and everything derived from them (accounts' children, contacts
//! and deals, roles by contact, the identity resolver, the lookalike profiles) is rebuilt after a change,
//! listed in id order, so the result does not depend on the order records arrived in.

use crate::seniority::{classify_title, Seniority};
use std::collections::BTreeMap;
use winsignal_core::hash::FastMap;
use winsignal_core::resolve::Resolver;
use winsignal_core::sfdc::to_18;
use winsignal_core::{
    Account, AttrValue, Attrs, Contact, Kind, Opportunity, OpportunityContact, Outcome, Record,
    StageEntry, Ts,
};
use winsignal_store::StoreRead;

pub const NONE: u32 = u32::MAX;

#[derive(Debug, Clone, PartialEq)]
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

#[derive(Debug, Clone, PartialEq)]
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

#[derive(Debug, Clone, PartialEq)]
pub struct ContactInfo {
    pub id: String,
    pub account: u32,
    pub title: Option<String>,
    pub seniority: Seniority,
}

/// Everything features need besides the events, with indexes by id.
#[derive(Debug, Clone)]
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
    // The current records everything above is derived from: one per slot for the dense kinds, by id for
    // the others.
    opp_records: Vec<Opportunity>,
    account_records: Vec<Account>,
    contact_records: Vec<Contact>,
    stage_records: BTreeMap<String, StageEntry>,
    role_records: BTreeMap<String, OpportunityContact>,
}

impl Default for Context {
    fn default() -> Context {
        Context {
            opps: Vec::new(),
            accounts: Vec::new(),
            contacts: Vec::new(),
            opp_index: FastMap::default(),
            account_index: FastMap::default(),
            contact_index: FastMap::default(),
            roles_by_contact: Vec::new(),
            resolver: Resolver::default(),
            latest_entity_time: Ts(i64::MIN),
            lookalike: crate::graph::Lookalike::default(),
            opp_records: Vec::new(),
            account_records: Vec::new(),
            contact_records: Vec::new(),
            stage_records: BTreeMap::new(),
            role_records: BTreeMap::new(),
        }
    }
}

/// What the derived entities were before a change.
#[derive(Debug, Clone, Default)]
pub(crate) struct Previous {
    pub opps: Vec<OppInfo>,
    pub accounts: Vec<AccountInfo>,
    pub contacts: Vec<ContactInfo>,
}

/// What a change of entity records changed in a [`Context`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Changed {
    /// Some record was new or different.
    pub any: bool,
    /// Something identity resolution reads changed (accounts, contacts, opportunities, product users).
    pub identities: bool,
    /// Of those, only opportunities changed: then only the hints that name one of
    /// [`Changed::opportunities`] can resolve differently.
    pub only_opportunities: bool,
    /// The ids of the opportunities that were new or different, in the 18-character form, lower case.
    pub opportunities: Vec<String>,
}

impl Context {
    /// An empty context: no entities yet.
    pub fn new() -> Context {
        Context::default()
    }

    /// The kinds of entity record a context reads.
    pub const READS: [Kind; 7] = [
        Kind::Accounts,
        Kind::Contacts,
        Kind::Reps,
        Kind::Opportunities,
        Kind::StageHistory,
        Kind::OpportunityContacts,
        Kind::ProductUsers,
    ];

    /// Reads the current version of every entity (from a store or, for one consistent state, a
    /// snapshot of it).
    pub fn from_store(store: &(impl StoreRead + ?Sized)) -> winsignal_store::Result<Context> {
        // One kind's records at a time: the context and the resolver keep what they need of each.
        let mut ctx = Context::default();
        let mut resolver = Resolver::new();
        {
            let mut batch = resolver.batch();
            for kind in Context::READS {
                store.each_record(kind, &mut |rec| {
                    ctx.put(&rec.record);
                    batch.add(&rec.record);
                    Ok(())
                })?;
            }
        }
        ctx.resolver = resolver;
        ctx.derive();
        Ok(ctx)
    }

    /// A context over these entity records (events are skipped). Slots are given in the order records
    /// come, so records listed in id order (as a store lists them) get slots in id order.
    pub fn from_records<'a>(records: impl IntoIterator<Item = &'a Record>) -> Context {
        let mut ctx = Context::default();
        ctx.upsert(records);
        ctx
    }

    /// Adds records or replaces earlier versions with the same id, then brings everything derived up
    /// to date (only when something changed).
    /// Returns what changed and, when anything did, the derived entities as they were.
    pub(crate) fn upsert<'a>(
        &mut self,
        records: impl IntoIterator<Item = &'a Record>,
    ) -> (Changed, Option<Previous>) {
        let mut changed = Changed {
            only_opportunities: true,
            ..Changed::default()
        };
        let mut for_resolver = Vec::new();
        for r in records {
            if self.put(r) {
                changed.any = true;
                if Resolver::reads(r.kind()) {
                    for_resolver.push(r);
                }
                match r {
                    Record::Opportunities(o) => {
                        changed.identities = true;
                        changed.opportunities.push(
                            winsignal_core::sfdc::to_18(&o.opportunity_id).to_ascii_lowercase(),
                        );
                    }
                    Record::Accounts(_) | Record::Contacts(_) | Record::ProductUsers(_) => {
                        changed.identities = true;
                        changed.only_opportunities = false;
                    }
                    _ => {}
                }
            }
        }
        if !changed.any {
            return (changed, None);
        }
        let previous = Previous {
            opps: std::mem::take(&mut self.opps),
            accounts: std::mem::take(&mut self.accounts),
            contacts: std::mem::take(&mut self.contacts),
        };
        self.resolver.upsert_all(for_resolver);
        self.derive();
        (changed, Some(previous))
    }

    /// Stores one record; whether it was new or different.
    fn put(&mut self, record: &Record) -> bool {
        fn slot<T: PartialEq + Clone>(
            index: &mut FastMap<String, u32>,
            records: &mut Vec<T>,
            id: &str,
            r: &T,
        ) -> bool {
            match index.get(id) {
                Some(&i) if records[i as usize] == *r => false,
                Some(&i) => {
                    records[i as usize] = r.clone();
                    true
                }
                None => {
                    index.insert(id.to_string(), records.len() as u32);
                    records.push(r.clone());
                    true
                }
            }
        }
        fn by_id<T: PartialEq + Clone>(map: &mut BTreeMap<String, T>, id: String, r: &T) -> bool {
            match map.get(&id) {
                Some(old) if old == r => false,
                _ => {
                    map.insert(id, r.clone());
                    true
                }
            }
        }
        match record {
            Record::Accounts(a) => slot(
                &mut self.account_index,
                &mut self.account_records,
                &a.account_id,
                a,
            ),
            Record::Contacts(c) => slot(
                &mut self.contact_index,
                &mut self.contact_records,
                &c.contact_id,
                c,
            ),
            Record::Opportunities(o) => slot(
                &mut self.opp_index,
                &mut self.opp_records,
                &o.opportunity_id,
                o,
            ),
            Record::StageHistory(s) => {
                let id = record.natural_key().unwrap_or_default();
                by_id(&mut self.stage_records, id, s)
            }
            Record::OpportunityContacts(c) => {
                let id = record.natural_key().unwrap_or_default();
                by_id(&mut self.role_records, id, c)
            }
            // Reps and product users are read through the resolver only.
            Record::Reps(_) | Record::ProductUsers(_) => !self.resolver.holds(record),
            _ => false,
        }
    }

    /// Rebuilds everything derived from the records. Lists of entities are kept in id order.
    fn derive(&mut self) {
        let find = |index: &FastMap<String, u32>, id: &str| lookup(index, id).unwrap_or(NONE);
        let resolver = &self.resolver;
        let mut accounts: Vec<AccountInfo> = self
            .account_records
            .iter()
            .map(|a| AccountInfo {
                id: a.account_id.clone(),
                name: a.name.clone(),
                segment: a.segment.clone(),
                employees: a.employees,
                annual_revenue: a.annual_revenue,
                industry: a.industry.clone(),
                country: a.country.clone(),
                parent: NONE,
                children: Vec::new(),
                attrs: a.attrs.clone(),
                opportunities: Vec::new(),
                contacts: Vec::new(),
            })
            .collect();
        for (i, a) in self.account_records.iter().enumerate() {
            if let Some(p) = &a.parent_account_id {
                let pi = find(&self.account_index, p);
                if pi != NONE && pi as usize != i {
                    accounts[i].parent = pi;
                    accounts[pi as usize].children.push(i as u32);
                }
            }
        }
        let mut contacts = Vec::with_capacity(self.contact_records.len());
        for (idx, c) in self.contact_records.iter().enumerate() {
            let account = resolver
                .account_of_contact(&c.contact_id)
                .map_or(NONE, |a| find(&self.account_index, &a));
            if account != NONE {
                accounts[account as usize].contacts.push(idx as u32);
            }
            contacts.push(ContactInfo {
                id: c.contact_id.clone(),
                account,
                seniority: c
                    .title
                    .as_deref()
                    .map_or(Seniority::Unknown, classify_title),
                title: c.title.clone(),
            });
        }
        let mut opps = Vec::with_capacity(self.opp_records.len());
        let mut latest = Ts(i64::MIN);
        for (idx, o) in self.opp_records.iter().enumerate() {
            let account = o
                .account_id
                .as_deref()
                .map_or(NONE, |a| find(&self.account_index, a));
            if account != NONE {
                accounts[account as usize].opportunities.push(idx as u32);
            }
            latest = latest
                .max(o.created_at)
                .max(o.closed_at.unwrap_or(o.created_at));
            opps.push(OppInfo {
                id: o.opportunity_id.clone(),
                account,
                rep: o
                    .rep_id
                    .as_ref()
                    .map(|r| resolver.rep(r).unwrap_or(r.clone())),
                created: o.created_at,
                closed: o.closed_at,
                outcome: o.outcome,
                amount: o.amount,
                opp_type: o.opp_type.clone(),
                lead_source: o.lead_source.clone(),
                stage: o.stage.clone(),
                attrs: o.attrs.clone(),
                stages: Vec::new(),
                roles: Vec::new(),
            });
        }
        for s in self.stage_records.values() {
            let o = find(&self.opp_index, &s.opportunity_id);
            if o != NONE {
                latest = latest.max(s.entered_at);
                opps[o as usize]
                    .stages
                    .push((s.entered_at, s.stage.clone()));
            }
        }
        let mut roles_by_contact = vec![Vec::new(); contacts.len()];
        for r in self.role_records.values() {
            let o = find(&self.opp_index, &r.opportunity_id);
            let c = find(&self.contact_index, &r.contact_id);
            if o != NONE && c != NONE {
                opps[o as usize].roles.push(c);
                roles_by_contact[c as usize].push(o);
            }
        }
        // Slots are in arrival order; lists are in id order, whatever order the records came in.
        let opp_id = |i: &u32| opps_id(&self.opp_records, *i);
        for r in &mut roles_by_contact {
            r.sort_by(|a, b| opp_id(a).cmp(opp_id(b)));
            r.dedup();
        }
        let contact_id = |i: &u32| self.contact_records[*i as usize].contact_id.as_str();
        let account_id = |i: &u32| self.account_records[*i as usize].account_id.as_str();
        for o in &mut opps {
            o.stages.sort();
            o.roles.sort_by(|a, b| contact_id(a).cmp(contact_id(b)));
            o.roles.dedup();
        }
        for a in &mut accounts {
            a.children.sort_by(|x, y| account_id(x).cmp(account_id(y)));
            a.contacts.sort_by(|x, y| contact_id(x).cmp(contact_id(y)));
            a.opportunities.sort_by(|x, y| opp_id(x).cmp(opp_id(y)));
        }
        self.lookalike = crate::graph::Lookalike::build(&opps, &accounts);
        self.opps = opps;
        self.accounts = accounts;
        self.contacts = contacts;
        self.roles_by_contact = roles_by_contact;
        self.latest_entity_time = latest;
    }

    /// Gives the entities named in `slots` (opportunities, accounts, contacts) those slots, in that
    /// order, and the others the slots after them (keeping their order): what a checkpoint's state,
    /// indexed by slot, needs. An error when one of them is missing.
    pub(crate) fn arrange(&mut self, slots: &[Vec<String>; 3]) -> Result<(), String> {
        if self
            .slot_ids()
            .iter()
            .zip(slots)
            .all(|(now, then)| now.get(..then.len()) == Some(&then[..]))
        {
            return Ok(());
        }
        fn order<T: Clone>(
            records: &mut Vec<T>,
            index: &mut FastMap<String, u32>,
            wanted: &[String],
            what: &str,
        ) -> Result<(), String> {
            let mut taken = vec![false; records.len()];
            let mut out = Vec::with_capacity(records.len());
            for id in wanted {
                let i = *index.get(id).ok_or_else(|| {
                    format!("engine checkpoint names {what} {id}, which is not among the entities")
                })?;
                taken[i as usize] = true;
                out.push(records[i as usize].clone());
            }
            let mut ids: Vec<(u32, String)> = index.iter().map(|(k, v)| (*v, k.clone())).collect();
            ids.sort_unstable();
            let mut new_index: FastMap<String, u32> = wanted
                .iter()
                .enumerate()
                .map(|(i, id)| (id.clone(), i as u32))
                .collect();
            for (i, id) in ids {
                if !taken[i as usize] {
                    new_index.insert(id, out.len() as u32);
                    out.push(records[i as usize].clone());
                }
            }
            *records = out;
            *index = new_index;
            Ok(())
        }
        order(
            &mut self.opp_records,
            &mut self.opp_index,
            &slots[0],
            "opportunity",
        )?;
        order(
            &mut self.account_records,
            &mut self.account_index,
            &slots[1],
            "account",
        )?;
        order(
            &mut self.contact_records,
            &mut self.contact_index,
            &slots[2],
            "contact",
        )?;
        self.derive();
        Ok(())
    }

    /// The ids of every slot, for checkpoints: (opportunities, accounts, contacts).
    pub(crate) fn slot_ids(&self) -> [Vec<String>; 3] {
        [
            self.opps.iter().map(|o| o.id.clone()).collect(),
            self.accounts.iter().map(|a| a.id.clone()).collect(),
            self.contacts.iter().map(|c| c.id.clone()).collect(),
        ]
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

fn opps_id(records: &[Opportunity], i: u32) -> &str {
    records[i as usize].opportunity_id.as_str()
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
