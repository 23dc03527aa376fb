//! The entities features are computed about — opportunities, accounts, contacts, reps, stage history,
//! contact roles — with dense indexes for the engine. Entities can arrive and change at any time: each
//! keeps the slot it was first given, and everything derived from them (accounts' children, contacts
//! and deals, roles by contact, the identity resolver, the lookalike profiles) is brought up to date
//! after a change, listed in id order, so the result does not depend on the order records arrived in.
//! A change of deals alone (opportunities, stage entries, contact roles: what a CRM sends all day)
//! re-reads only the deals it names; any other change rebuilds everything.

use crate::seniority::{classify_title, Seniority};
use std::collections::{BTreeMap, BTreeSet};
use winsignal_core::hash::FastMap;
use winsignal_core::resolve::Resolver;
use winsignal_core::sfdc::to_18;
use winsignal_core::{
    Account, AttrValue, Attrs, Contact, CrmForecast, Kind, Opportunity, OpportunityContact,
    Outcome, Record, StageEntry, Ts,
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
    /// Stage entries in time order (a history row keeping the stage before it is not an entry).
    pub stages: Vec<(Ts, String)>,
    /// Contacts with a role on the deal.
    pub roles: Vec<u32>,
    /// The CRM's forecast fields as the deal's record holds them now.
    pub crm_now: CrmForecast,
    /// The CRM's forecast fields from each stage-history row that has any, in time order.
    pub crm_history: Vec<(Ts, CrmForecast)>,
}

impl OppInfo {
    /// Takes in one stage-history row of the deal ([`Context::order_lists`] puts them in order).
    fn add_history_row(&mut self, s: &StageEntry) {
        self.stages.push((s.entered_at, s.stage.clone()));
        if !s.crm.is_empty() {
            self.crm_history.push((s.entered_at, s.crm.clone()));
        }
    }

    /// The CRM's forecast fields as known at `as_of` (from the history rows before it), or the deal's
    /// current ones when `as_of` is after `data_end`, the time the data were taken (they may have
    /// been set at any time before it). `None` when nothing is known.
    pub fn crm_at(&self, as_of: Ts, data_end: Option<Ts>) -> Option<&CrmForecast> {
        if data_end.is_some_and(|end| as_of > end) && !self.crm_now.is_empty() {
            return Some(&self.crm_now);
        }
        self.crm_history
            .iter()
            .take_while(|(t, _)| *t < as_of)
            .last()
            .map(|(_, c)| c)
    }
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
    /// The close times of the won deals, in order: when a deal's "won before" changes as time moves.
    won_closes: Vec<i64>,
    // The current records everything above is derived from: one per slot for the dense kinds, by id for
    // the others.
    opp_records: Vec<Opportunity>,
    account_records: Vec<Account>,
    contact_records: Vec<Contact>,
    stage_records: BTreeMap<String, StageEntry>,
    role_records: BTreeMap<String, OpportunityContact>,
    // The keys of the stage entries and of the contact roles by the opportunity they name, in its
    // 18-character form (`to_18`): a deal's are under its id and under that id's 18-character form.
    stages_by_opp: FastMap<String, Vec<String>>,
    roles_by_opp: FastMap<String, Vec<String>>,
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
            won_closes: Vec::new(),
            opp_records: Vec::new(),
            account_records: Vec::new(),
            contact_records: Vec::new(),
            stage_records: BTreeMap::new(),
            role_records: BTreeMap::new(),
            stages_by_opp: FastMap::default(),
            roles_by_opp: FastMap::default(),
        }
    }
}

/// What the derived entities were before a change: for each slot whose entity may differ, in slot
/// order, what it was (`None` for a new slot).
#[derive(Debug, Clone, Default)]
pub(crate) struct Previous {
    pub opps: Vec<(u32, Option<OppInfo>)>,
    pub accounts: Vec<(u32, Option<AccountInfo>)>,
    pub contacts: Vec<(u32, Option<ContactInfo>)>,
}

impl Previous {
    /// Every slot of `before` that differs in `after`, and every slot new in `after`.
    fn between(
        before: (Vec<OppInfo>, Vec<AccountInfo>, Vec<ContactInfo>),
        after: &Context,
    ) -> Previous {
        fn changed<T: PartialEq>(before: Vec<T>, after: &[T]) -> Vec<(u32, Option<T>)> {
            let mut out = Vec::new();
            let mut before = before.into_iter();
            for (i, now) in after.iter().enumerate() {
                match before.next() {
                    Some(was) if was == *now => {}
                    was => out.push((i as u32, was)),
                }
            }
            out
        }
        Previous {
            opps: changed(before.0, &after.opps),
            accounts: changed(before.1, &after.accounts),
            contacts: changed(before.2, &after.contacts),
        }
    }
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
    /// Whether a won deal closed at or after `from` and before `to`: whether any deal is won before
    /// `to` ([`crate::eval::won_before`]) that was not before `from`.
    pub fn wins_between(&self, from: i64, to: i64) -> bool {
        let i = self.won_closes.partition_point(|&c| c < from);
        self.won_closes.get(i).is_some_and(|&c| c < to)
    }

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
                    ctx.put(&rec.record, None);
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
        // The opportunity ids (as written) every changed record names, before and after: what a change
        // of deals alone re-reads.
        let mut named = Vec::new();
        let mut deals_only = true;
        let first_new = self.opp_records.len();
        for r in records {
            if self.put(r, Some(&mut named)) {
                changed.any = true;
                if Resolver::reads(r.kind()) {
                    for_resolver.push(r);
                }
                deals_only &= matches!(
                    r,
                    Record::Opportunities(_)
                        | Record::StageHistory(_)
                        | Record::OpportunityContacts(_)
                );
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
        self.resolver.upsert_all(for_resolver);
        // Derived entities exist once anything was derived; a context never derived rebuilds.
        if deals_only && self.opps.len() == first_new {
            return (changed, Some(self.derive_deals(&named, first_new)));
        }
        let before = (
            std::mem::take(&mut self.opps),
            std::mem::take(&mut self.accounts),
            std::mem::take(&mut self.contacts),
        );
        self.derive();
        (changed, Some(Previous::between(before, self)))
    }

    /// Brings the derived entities up to date after a change of deals alone (opportunities, stage
    /// entries and contact roles; `named`: the opportunity ids the changed records name, before and
    /// after; `first_new`: the first slot of the new opportunities): only the deals these can reach are
    /// read again, and the accounts, roles by contact, latest time and lookalike profiles they feed
    /// are updated. The result is what [`Context::derive`] gives (test:
    /// `a_change_of_deals_is_derived_as_a_rebuild_would`).
    fn derive_deals(&mut self, named: &[String], first_new: usize) -> Previous {
        let mut slots: BTreeSet<u32> = named
            .iter()
            .filter_map(|id| lookup(&self.opp_index, id))
            .collect();
        for slot in first_new..self.opp_records.len() {
            slots.insert(slot as u32);
            // Entries naming a new deal's id exactly were, until it came, read as its 18-character
            // form's.
            let long = to_18(&self.opp_records[slot].opportunity_id);
            slots.extend(lookup(&self.opp_index, &long));
        }
        let mut previous = Previous::default();
        let mut accounts_before: BTreeMap<u32, AccountInfo> = BTreeMap::new();
        let mut lookalike = false;
        let mut wins = false;
        let mut latest = self.latest_entity_time;
        let mut latest_may_fall = false;
        for slot in slots {
            let info = self.opp_info(slot);
            let before = self.opps.get(slot as usize).cloned();
            if before.as_ref() == Some(&info) {
                continue;
            }
            let (old_account, old_roles) = before
                .as_ref()
                .map_or((NONE, &[][..]), |b| (b.account, &b.roles[..]));
            if old_account != info.account {
                for (a, add) in [(old_account, false), (info.account, true)] {
                    if a == NONE {
                        continue;
                    }
                    let account = &mut self.accounts[a as usize];
                    accounts_before.entry(a).or_insert_with(|| account.clone());
                    let list = &mut account.opportunities;
                    list.retain(|&o| o != slot);
                    if add {
                        let at = list.partition_point(|&o| {
                            opps_id(&self.opp_records, o) < opps_id(&self.opp_records, slot)
                        });
                        list.insert(at, slot);
                    }
                }
            }
            for &c in old_roles.iter().filter(|c| !info.roles.contains(c)) {
                self.roles_by_contact[c as usize].retain(|&o| o != slot);
            }
            for &c in info.roles.iter().filter(|c| !old_roles.contains(c)) {
                let list = &mut self.roles_by_contact[c as usize];
                let at = list.partition_point(|&o| {
                    opps_id(&self.opp_records, o) < opps_id(&self.opp_records, slot)
                });
                list.insert(at, slot);
            }
            lookalike |= before.as_ref().and_then(first_win_input) != first_win_input(&info);
            wins |= before.as_ref().and_then(won_close) != won_close(&info);
            if let Some(b) = &before {
                latest_may_fall |= latest_of(b) == self.latest_entity_time;
            }
            latest = latest.max(latest_of(&info));
            match before {
                Some(b) => {
                    self.opps[slot as usize] = info;
                    previous.opps.push((slot, Some(b)));
                }
                None => {
                    self.opps.push(info);
                    previous.opps.push((slot, None));
                }
            }
        }
        self.latest_entity_time = if latest_may_fall && latest == self.latest_entity_time {
            self.opps.iter().map(latest_of).fold(Ts(i64::MIN), Ts::max)
        } else {
            latest
        };
        if lookalike {
            self.lookalike = crate::graph::Lookalike::build(&self.opps, &self.accounts);
        }
        if wins {
            self.won_closes = won_closes(&self.opps);
        }
        previous.accounts = accounts_before
            .into_iter()
            .map(|(a, before)| (a, Some(before)))
            .collect();
        previous
    }

    /// A deal as derived from its records: its fields, its stage entries in time order and the
    /// contacts with a role on it in id order.
    fn opp_info(&self, slot: u32) -> OppInfo {
        let o = &self.opp_records[slot as usize];
        let mut info = self.opp_fields(o);
        let long = to_18(&o.opportunity_id);
        let ids: &[&str] = if long == o.opportunity_id {
            &[&long]
        } else {
            &[&o.opportunity_id, &long]
        };
        let keys = |by_opp: &'_ FastMap<String, Vec<String>>| -> Vec<String> {
            ids.iter()
                .flat_map(|id| by_opp.get(*id).into_iter().flatten().cloned())
                .collect()
        };
        let here = |id: &str| lookup(&self.opp_index, id) == Some(slot);
        for k in keys(&self.stages_by_opp) {
            let s = &self.stage_records[&k];
            if here(&s.opportunity_id) {
                info.add_history_row(s);
            }
        }
        for k in keys(&self.roles_by_opp) {
            let r = &self.role_records[&k];
            let c = lookup(&self.contact_index, &r.contact_id).unwrap_or(NONE);
            if here(&r.opportunity_id) && c != NONE {
                info.roles.push(c);
            }
        }
        self.order_lists(&mut info);
        info
    }

    /// A deal's own fields, without its stage entries and roles.
    fn opp_fields(&self, o: &Opportunity) -> OppInfo {
        OppInfo {
            id: o.opportunity_id.clone(),
            account: o
                .account_id
                .as_deref()
                .map_or(NONE, |a| lookup(&self.account_index, a).unwrap_or(NONE)),
            rep: o
                .rep_id
                .as_ref()
                .map(|r| self.resolver.rep(r).unwrap_or(r.clone())),
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
            crm_now: o.crm.clone(),
            crm_history: Vec::new(),
        }
    }

    /// A deal's stage entries in time order, its roles in contact id order, each once.
    fn order_lists(&self, info: &mut OppInfo) {
        let contact_id = |i: &u32| self.contact_records[*i as usize].contact_id.as_str();
        info.stages.sort();
        info.stages.dedup_by(|later, earlier| later.1 == earlier.1);
        info.crm_history.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| a.1.expected_close_at.cmp(&b.1.expected_close_at))
        });
        info.roles.sort_by(|a, b| contact_id(a).cmp(contact_id(b)));
        info.roles.dedup();
    }

    /// Stores one record; whether it was new or different. `named` gets the opportunity ids a changed
    /// record names, before and after.
    fn put(&mut self, record: &Record, named: Option<&mut Vec<String>>) -> bool {
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
        /// Stores a record kept by id and indexes it by the deal it names (`opp_of`); the deals it
        /// named before and names now go to `named`.
        fn by_id<T: PartialEq + Clone>(
            map: &mut BTreeMap<String, T>,
            by_opp: &mut FastMap<String, Vec<String>>,
            named: Option<&mut Vec<String>>,
            id: String,
            r: &T,
            opp_of: impl Fn(&T) -> &str,
        ) -> bool {
            let before = match map.get(&id) {
                Some(old) if old == r => return false,
                Some(old) => Some(opp_of(old).to_string()),
                None => None,
            };
            let now = opp_of(r);
            if before.as_deref() != Some(now) {
                if let Some(b) = &before {
                    let key = to_18(b);
                    if let Some(keys) = by_opp.get_mut(&key) {
                        keys.retain(|k| *k != id);
                        if keys.is_empty() {
                            by_opp.remove(&key);
                        }
                    }
                }
                by_opp.entry(to_18(now)).or_default().push(id.clone());
            }
            if let Some(named) = named {
                named.extend(before);
                named.push(now.to_string());
            }
            map.insert(id, r.clone());
            true
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
            Record::Opportunities(o) => {
                let changed = slot(
                    &mut self.opp_index,
                    &mut self.opp_records,
                    &o.opportunity_id,
                    o,
                );
                if let (true, Some(named)) = (changed, named) {
                    named.push(o.opportunity_id.clone());
                }
                changed
            }
            Record::StageHistory(s) => by_id(
                &mut self.stage_records,
                &mut self.stages_by_opp,
                named,
                record.natural_key().unwrap_or_default(),
                s,
                |s| &s.opportunity_id,
            ),
            Record::OpportunityContacts(c) => by_id(
                &mut self.role_records,
                &mut self.roles_by_opp,
                named,
                record.natural_key().unwrap_or_default(),
                c,
                |c| &c.opportunity_id,
            ),
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
        for (idx, o) in self.opp_records.iter().enumerate() {
            let info = self.opp_fields(o);
            if info.account != NONE {
                accounts[info.account as usize]
                    .opportunities
                    .push(idx as u32);
            }
            opps.push(info);
        }
        for s in self.stage_records.values() {
            let o = find(&self.opp_index, &s.opportunity_id);
            if o != NONE {
                opps[o as usize].add_history_row(s);
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
            self.order_lists(o);
        }
        let latest = opps.iter().map(latest_of).fold(Ts(i64::MIN), Ts::max);
        for a in &mut accounts {
            a.children.sort_by(|x, y| account_id(x).cmp(account_id(y)));
            a.contacts.sort_by(|x, y| contact_id(x).cmp(contact_id(y)));
            a.opportunities.sort_by(|x, y| opp_id(x).cmp(opp_id(y)));
        }
        self.lookalike = crate::graph::Lookalike::build(&opps, &accounts);
        self.won_closes = won_closes(&opps);
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

/// The latest time a deal holds (creation, close, stage entry): the context's latest is theirs.
fn latest_of(o: &OppInfo) -> Ts {
    let stages = o.stages.iter().map(|s| s.0).fold(Ts(i64::MIN), Ts::max);
    o.created.max(o.closed.unwrap_or(o.created)).max(stages)
}

/// What the lookalike profiles read of a deal: its account and close time if it is won.
/// When a won deal closed.
fn won_close(o: &OppInfo) -> Option<i64> {
    (o.outcome == Outcome::Won).then_some(o.closed?.0)
}

fn won_closes(opps: &[OppInfo]) -> Vec<i64> {
    let mut out: Vec<i64> = opps.iter().filter_map(won_close).collect();
    out.sort_unstable();
    out
}

fn first_win_input(o: &OppInfo) -> Option<(u32, Option<Ts>)> {
    (o.outcome == Outcome::Won && o.account != NONE).then_some((o.account, o.closed))
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

#[cfg(test)]
mod tests {
    use super::*;
    use winsignal_core::rng::Rng;

    /// Salesforce-shaped ids: 15 characters, mixed case.
    fn sf_id(prefix: &str, n: u64) -> String {
        let alphabet: Vec<char> = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
            .chars()
            .collect();
        let mut id = prefix.to_string();
        let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        while id.len() < 15 {
            id.push(alphabet[(x % alphabet.len() as u64) as usize]);
            x /= alphabet.len() as u64;
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        id
    }

    /// How another record may write an id: as stored, in its 18-character form, or that form in
    /// lower case.
    fn written(rng: &mut Rng, id: &str) -> String {
        match rng.below(3) {
            0 => id.to_string(),
            1 => to_18(id),
            _ => to_18(id).to_ascii_lowercase(),
        }
    }

    fn opportunity(rng: &mut Rng, id: &str, accounts: &[String]) -> Record {
        let outcome = [Outcome::Open, Outcome::Won, Outcome::Lost][rng.below(3) as usize];
        let created = Ts(rng.range(0, 1_000_000));
        Record::Opportunities(Opportunity {
            opportunity_id: id.to_string(),
            account_id: (!rng.chance(0.1)).then(|| {
                let a = &accounts[rng.below(accounts.len() as u64) as usize];
                written(rng, a)
            }),
            rep_id: Some(format!("rep{}", rng.below(4))),
            name: None,
            opp_type: None,
            lead_source: None,
            amount: Some(rng.below(100) as f64 * 1000.0),
            currency: None,
            created_at: created,
            closed_at: (outcome != Outcome::Open).then(|| Ts(created.0 + rng.range(0, 500_000))),
            outcome,
            stage: Some(format!("s{}", rng.below(4))),
            crm: Default::default(),
            attrs: Attrs::default(),
        })
    }

    /// The derived state: what a full rebuild gives must equal what was kept up to date.
    fn derived(c: &Context) -> String {
        format!(
            "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
            c.opps,
            c.accounts,
            c.contacts,
            c.roles_by_contact,
            c.latest_entity_time,
            c.lookalike,
            c.won_closes
        )
    }

    /// A deal won at 100 is won before 101 and not before 100: it is "won between" exactly the spans
    /// that hold 100. Lost and open deals are never.
    #[test]
    fn wins_between_holds_the_close_times_of_won_deals_only() {
        let opp = |id: &str, outcome: Outcome, closed: Option<i64>| {
            Record::Opportunities(Opportunity {
                opportunity_id: id.into(),
                account_id: None,
                rep_id: None,
                name: None,
                opp_type: None,
                lead_source: None,
                amount: None,
                currency: None,
                created_at: Ts(0),
                closed_at: closed.map(Ts),
                outcome,
                stage: None,
                crm: Default::default(),
                attrs: Attrs::default(),
            })
        };
        let mut ctx = Context::from_records(&[
            opp("W", Outcome::Won, Some(100)),
            opp("L", Outcome::Lost, Some(50)),
            opp("O", Outcome::Open, None),
        ]);
        let spans = |ctx: &Context| {
            [(0, 100), (100, 101), (99, 150), (101, 200), (40, 60)]
                .map(|(a, b)| ctx.wins_between(a, b))
        };
        assert_eq!(spans(&ctx), [false, true, true, false, false]);
        // The lost deal turned won, and the won one reopened: kept up to date by an upsert.
        ctx.upsert(&[
            opp("L", Outcome::Won, Some(50)),
            opp("W", Outcome::Open, None),
        ]);
        assert_eq!(spans(&ctx), [true, false, false, false, true]);
    }

    #[test]
    fn a_history_row_keeping_the_stage_is_no_entry_and_the_crm_fields_are_read_as_of_a_time() {
        let row = |stage: &str, at: i64, close: Option<i64>| {
            Record::StageHistory(StageEntry {
                opportunity_id: "O1".into(),
                stage: stage.into(),
                entered_at: Ts(at),
                crm: CrmForecast {
                    expected_close_at: close.map(Ts),
                    ..CrmForecast::default()
                },
            })
        };
        let deal = Record::Opportunities(Opportunity {
            opportunity_id: "O1".into(),
            account_id: None,
            rep_id: None,
            name: None,
            opp_type: None,
            lead_source: None,
            amount: None,
            currency: None,
            created_at: Ts(0),
            closed_at: None,
            outcome: Outcome::Open,
            stage: Some("Proposal".into()),
            crm: CrmForecast {
                expected_close_at: Some(Ts(900)),
                ..CrmForecast::default()
            },
            attrs: Attrs::default(),
        });
        let records = [
            deal,
            row("Proposal", 300, Some(500)),
            row("Prospecting", 100, None),
            row("Proposal", 200, Some(400)),
        ];
        let ctx = Context::from_records(&records);
        let o = &ctx.opps[0];
        assert_eq!(
            o.stages,
            [
                (Ts(100), "Prospecting".into()),
                (Ts(200), "Proposal".into())
            ]
        );
        let close = |t: i64, end: Option<i64>| {
            o.crm_at(Ts(t), end.map(Ts))
                .and_then(|c| c.expected_close_at)
        };
        assert_eq!(close(200, None), None, "not before the row");
        assert_eq!(close(201, None), Some(Ts(400)));
        assert_eq!(close(301, None), Some(Ts(500)));
        // The record's own fields only once the data were taken.
        assert_eq!(close(1_000, None), Some(Ts(500)));
        assert_eq!(close(1_000, Some(999)), Some(Ts(900)));
        assert_eq!(close(999, Some(999)), Some(Ts(500)));
    }

    #[test]
    fn a_change_of_deals_is_derived_as_a_rebuild_would() {
        for seed in 0..40 {
            let mut rng = Rng::new(seed);
            let accounts: Vec<String> = (0..6).map(|i| sf_id("001", seed * 100 + i)).collect();
            let contacts: Vec<String> = (0..8).map(|i| sf_id("003", seed * 100 + i)).collect();
            let mut opps: Vec<String> = (0..5).map(|i| sf_id("006", seed * 100 + i)).collect();
            let mut start: Vec<Record> = Vec::new();
            for (i, a) in accounts.iter().enumerate() {
                start.push(Record::Accounts(Account {
                    account_id: a.clone(),
                    industry: Some(format!("i{}", i % 3)),
                    employees: Some(10.0 * i as f64),
                    ..Account::default()
                }));
            }
            for (i, c) in contacts.iter().enumerate() {
                start.push(Record::Contacts(Contact {
                    contact_id: c.clone(),
                    account_id: Some(accounts[i % accounts.len()].clone()),
                    title: Some("VP Sales".into()),
                    ..Contact::default()
                }));
            }
            for o in &opps {
                start.push(opportunity(&mut rng, o, &accounts));
            }
            let mut ctx = Context::from_records(&start);
            for round in 0..30 {
                let mut batch = Vec::new();
                for _ in 0..1 + rng.below(4) {
                    match rng.below(6) {
                        0 => {
                            // A new deal; sometimes stored by its 18-character id.
                            let mut id =
                                sf_id("006", seed * 100 + 50 + round * 10 + batch.len() as u64);
                            if rng.chance(0.3) {
                                id = to_18(&id);
                            }
                            // Rarely, the short form of a deal stored by its long id, as a second deal:
                            // entries naming the short form exactly move to it.
                            let long = opps
                                .iter()
                                .find(|o| o.len() == 18 && !opps.contains(&o[..15].to_string()));
                            if let Some(long) = long.filter(|_| rng.chance(0.3)) {
                                id = long[..15].to_string();
                            }
                            opps.push(id.clone());
                            batch.push(opportunity(&mut rng, &id, &accounts));
                        }
                        1 => {
                            let id = opps[rng.below(opps.len() as u64) as usize].clone();
                            batch.push(opportunity(&mut rng, &id, &accounts));
                        }
                        2 | 3 => {
                            // A stage entry, sometimes of a deal that has not arrived yet.
                            let id = if rng.chance(0.2) {
                                sf_id("006", seed * 100 + 50 + (round + 1) * 10)
                            } else {
                                opps[rng.below(opps.len() as u64) as usize].clone()
                            };
                            batch.push(Record::StageHistory(StageEntry {
                                opportunity_id: written(&mut rng, &id),
                                stage: format!("s{}", rng.below(4)),
                                entered_at: Ts(rng.range(0, 2_000_000)),
                                // Some rows carry the CRM's forecast fields.
                                crm: CrmForecast {
                                    expected_close_at: rng
                                        .chance(0.5)
                                        .then(|| Ts(rng.range(0, 3_000_000))),
                                    probability: rng.chance(0.5).then(|| rng.below(101) as f64),
                                    forecast_category: rng
                                        .chance(0.3)
                                        .then(|| "Commit".to_string()),
                                },
                            }));
                        }
                        _ => {
                            let id = opps[rng.below(opps.len() as u64) as usize].clone();
                            let c = &contacts[rng.below(contacts.len() as u64) as usize];
                            batch.push(Record::OpportunityContacts(OpportunityContact {
                                opportunity_id: written(&mut rng, &id),
                                contact_id: written(&mut rng, c),
                                role: Some(format!("r{}", rng.below(2))),
                                is_primary: None,
                            }));
                        }
                    }
                }
                let before = ctx.clone();
                let (_, previous) = ctx.upsert(&batch);
                let mut rebuilt = ctx.clone();
                rebuilt.derive();
                assert_eq!(
                    derived(&ctx),
                    derived(&rebuilt),
                    "seed {seed} round {round}: {batch:?}"
                );
                // Every slot that differs is listed with what it was.
                let previous = previous.unwrap_or_default();
                let listed: BTreeMap<u32, Option<OppInfo>> = previous.opps.into_iter().collect();
                for (i, now) in ctx.opps.iter().enumerate() {
                    let was = before.opps.get(i);
                    if was != Some(now) {
                        assert_eq!(
                            listed.get(&(i as u32)),
                            Some(&was.cloned()),
                            "seed {seed} round {round}"
                        );
                    }
                }
                let listed: BTreeMap<u32, Option<AccountInfo>> =
                    previous.accounts.into_iter().collect();
                for (i, now) in ctx.accounts.iter().enumerate() {
                    let was = before.accounts.get(i);
                    if was != Some(now) {
                        assert_eq!(
                            listed.get(&(i as u32)),
                            Some(&was.cloned()),
                            "seed {seed} round {round}"
                        );
                    }
                }
            }
        }
    }
}
