//! Identity resolution: which account (and contact) a record belongs to, by id (15- and 18-character
//! Salesforce ids unify), by e-mail, or by web domain (free-mail never identifies an account), and for
//! product users through their Segment `identify`/`group` links. Built from entity records (no store),
//! so ingest's quality report and the feature engine share one set of rules.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::identity::{
    company_domain_of_email, email_domain, is_freemail, normalize_domain, normalize_email,
};
use crate::sfdc::to_18;
use crate::{Kind, ProductUser, Record};

/// How a record was tied to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchMethod {
    AccountId,
    Opportunity,
    Contact,
    Email,
    Domain,
    ProductUser,
}

impl MatchMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchMethod::AccountId => "account_id",
            MatchMethod::Opportunity => "opportunity",
            MatchMethod::Contact => "contact",
            MatchMethod::Email => "email",
            MatchMethod::Domain => "domain",
            MatchMethod::ProductUser => "product_user",
        }
    }
}

/// Resolves identities against the current entity records it was given. Records can be added (or
/// replaced by a newer version of the same id) at any time; the answers are those a resolver built from
/// the final set of records at once would give, whatever order they arrived in.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    // The current records, by id (the order the rules below read them in).
    // Only the fields the rules read: an account's domain, a contact's account id and e-mail, a product
    // user link's user, e-mail, group, group domain and time.
    account_records: BTreeMap<String, Option<String>>,
    contact_records: BTreeMap<String, (Option<String>, Option<String>)>,
    rep_records: BTreeMap<String, Option<String>>,
    user_records: BTreeMap<String, UserLink>,
    // Derived from them.
    accounts: HashSet<String>,
    account_by_domain: HashMap<String, String>,
    contact_account: HashMap<String, Option<String>>,
    contact_by_email: HashMap<String, String>,
    /// An opportunity's account id, by opportunity id: the record itself (nothing is derived from
    /// it), so a changed opportunity needs no rebuild.
    opportunity_account: HashMap<String, Option<String>>,
    reps: HashSet<String>,
    rep_by_email: HashMap<String, String>,
    user_email: HashMap<String, String>,
    user_group: HashMap<String, String>,
    group_domain: HashMap<String, String>,
}

/// Upserts into a [`Resolver`] that rebuild its indexes once, when the batch is dropped.
pub struct ResolverBatch<'a> {
    resolver: &'a mut Resolver,
    changed: bool,
}

impl ResolverBatch<'_> {
    /// Adds a record, or replaces the earlier version with the same id.
    pub fn add(&mut self, record: &Record) {
        self.changed |= self.resolver.put(record) && Resolver::derives_from(record);
    }
}

impl Drop for ResolverBatch<'_> {
    fn drop(&mut self) {
        if self.changed {
            self.resolver.derive();
        }
    }
}

/// What the rules read of a product user link.
#[derive(Debug, Clone, PartialEq)]
struct UserLink {
    user_id: String,
    email: Option<String>,
    group_id: Option<String>,
    group_domain: Option<String>,
    seen_at: crate::Ts,
}

impl UserLink {
    fn of(u: &ProductUser) -> UserLink {
        UserLink {
            user_id: u.user_id.clone(),
            email: u.email.clone(),
            group_id: u.group_id.clone(),
            group_domain: u.group_domain.clone(),
            seen_at: u.seen_at,
        }
    }
}

impl Resolver {
    pub fn new() -> Resolver {
        Resolver::default()
    }

    /// A resolver over these records (entities of any kind; events and kinds it does not read are
    /// skipped).
    pub fn from_records<'a>(records: impl IntoIterator<Item = &'a Record>) -> Resolver {
        let mut r = Resolver::default();
        r.upsert_all(records);
        r
    }

    /// Whether the resolver reads records of this kind.
    pub fn reads(kind: Kind) -> bool {
        matches!(
            kind,
            Kind::Accounts | Kind::Contacts | Kind::Opportunities | Kind::Reps | Kind::ProductUsers
        )
    }

    /// Adds a record, or replaces the earlier version with the same id. Returns whether any answer
    /// can have changed.
    pub fn upsert(&mut self, record: &Record) -> bool {
        let changed = self.put(record);
        if changed && Self::derives_from(record) {
            self.derive();
        }
        changed
    }

    /// Whether the lookup maps are derived from records of this record's kind (opportunities are
    /// read as they are).
    fn derives_from(record: &Record) -> bool {
        !matches!(record, Record::Opportunities(_))
    }

    /// [`Resolver::upsert`] for many records, deriving the indexes once.
    pub fn upsert_all<'a>(&mut self, records: impl IntoIterator<Item = &'a Record>) -> bool {
        let (mut changed, mut derive) = (false, false);
        for r in records {
            let put = self.put(r);
            changed |= put;
            derive |= put && Self::derives_from(r);
        }
        if derive {
            self.derive();
        }
        changed
    }

    /// A batch of upserts whose indexes are rebuilt once, when the batch is dropped: for adding many
    /// records without holding them all at once.
    pub fn batch(&mut self) -> ResolverBatch<'_> {
        ResolverBatch {
            resolver: self,
            changed: false,
        }
    }

    /// Whether this exact record is already the current version the resolver holds (an upsert of it
    /// would change nothing). Kinds the resolver does not read are always held.
    pub fn holds(&self, record: &Record) -> bool {
        match record {
            Record::Accounts(a) => self.account_records.get(&a.account_id) == Some(&a.domain),
            Record::Contacts(c) => {
                self.contact_records.get(&c.contact_id)
                    == Some(&(c.account_id.clone(), c.email.clone()))
            }
            Record::Opportunities(o) => {
                self.opportunity_account.get(&o.opportunity_id) == Some(&o.account_id)
            }
            Record::Reps(p) => self.rep_records.get(&p.rep_id) == Some(&p.email),
            Record::ProductUsers(u) => self.user_records.get(&u.link_id) == Some(&UserLink::of(u)),
            _ => true,
        }
    }

    fn put(&mut self, record: &Record) -> bool {
        fn set<V: PartialEq>(map: &mut BTreeMap<String, V>, id: &str, v: V) -> bool {
            match map.get_mut(id) {
                Some(old) if *old == v => false,
                Some(old) => {
                    *old = v;
                    true
                }
                None => {
                    map.insert(id.to_string(), v);
                    true
                }
            }
        }
        match record {
            Record::Accounts(a) => set(&mut self.account_records, &a.account_id, a.domain.clone()),
            Record::Contacts(c) => set(
                &mut self.contact_records,
                &c.contact_id,
                (c.account_id.clone(), c.email.clone()),
            ),
            Record::Opportunities(o) => {
                let account = &o.account_id;
                match self.opportunity_account.get_mut(&o.opportunity_id) {
                    Some(old) if old == account => false,
                    Some(old) => {
                        old.clone_from(account);
                        true
                    }
                    None => {
                        self.opportunity_account
                            .insert(o.opportunity_id.clone(), account.clone());
                        true
                    }
                }
            }
            Record::Reps(p) => set(&mut self.rep_records, &p.rep_id, p.email.clone()),
            Record::ProductUsers(u) => set(&mut self.user_records, &u.link_id, UserLink::of(u)),
            _ => false,
        }
    }

    /// Rebuilds the lookup maps from the records, reading each kind in id order (as a store lists
    /// them): the first account with a domain and the first contact with an e-mail keep it.
    fn derive(&mut self) {
        let mut accounts = HashSet::new();
        let mut account_by_domain: HashMap<String, String> = HashMap::new();
        for (id, domain) in &self.account_records {
            if let Some(d) = domain {
                account_by_domain
                    .entry(d.clone())
                    .or_insert_with(|| id.clone());
            }
            accounts.insert(id.clone());
        }
        let mut contact_by_email: HashMap<String, String> = HashMap::new();
        let mut contact_account = HashMap::new();
        for (contact_id, (account_id, email)) in &self.contact_records {
            if let Some(e) = email {
                contact_by_email
                    .entry(e.clone())
                    .or_insert_with(|| contact_id.clone());
            }
            // A contact without a usable account id still belongs to its e-mail's company domain.
            let by_domain = || {
                let d = email.as_deref().and_then(company_domain_of_email)?;
                account_by_domain.get(&d).cloned()
            };
            let known = account_id
                .as_deref()
                .filter(|a| accounts.contains(*a) || accounts.contains(&to_18(a)));
            let account = known
                .map(str::to_string)
                .or_else(by_domain)
                .or(account_id.clone());
            contact_account.insert(contact_id.clone(), account);
        }
        let mut reps = HashSet::new();
        let mut rep_by_email = HashMap::new();
        for (id, email) in &self.rep_records {
            if let Some(e) = email {
                rep_by_email.insert(e.clone(), id.clone());
            }
            reps.insert(id.clone());
        }
        let mut links: Vec<&UserLink> = self.user_records.values().collect();
        links.sort_by_key(|u| u.seen_at);
        let mut user_email = HashMap::new();
        let mut user_group = HashMap::new();
        let mut group_domain = HashMap::new();
        for u in links {
            if let Some(e) = &u.email {
                user_email.insert(u.user_id.clone(), e.clone());
            }
            if let Some(g) = &u.group_id {
                if let Some(d) = &u.group_domain {
                    group_domain.insert(g.clone(), d.clone());
                }
                user_group.insert(u.user_id.clone(), g.clone());
            }
        }
        self.accounts = accounts;
        self.account_by_domain = account_by_domain;
        self.contact_account = contact_account;
        self.contact_by_email = contact_by_email;
        self.reps = reps;
        self.rep_by_email = rep_by_email;
        self.user_email = user_email;
        self.user_group = user_group;
        self.group_domain = group_domain;
    }

    /// The stored id of an account, accepting either Salesforce id form.
    pub fn account(&self, id: &str) -> Option<String> {
        if self.accounts.contains(id) {
            return Some(id.to_string());
        }
        let long = to_18(id);
        self.accounts.contains(&long).then_some(long)
    }

    fn lookup_id(
        set: &HashMap<String, Option<String>>,
        id: &str,
    ) -> Option<(String, Option<String>)> {
        if let Some(a) = set.get(id) {
            return Some((id.to_string(), a.clone()));
        }
        let long = to_18(id);
        set.get(&long).map(|a| (long, a.clone()))
    }

    pub fn contact_exists(&self, id: &str) -> bool {
        Self::lookup_id(&self.contact_account, id).is_some()
    }

    pub fn opportunity_exists(&self, id: &str) -> bool {
        Self::lookup_id(&self.opportunity_account, id).is_some()
    }

    pub fn rep(&self, id_or_email: &str) -> Option<String> {
        if self.reps.contains(id_or_email) {
            return Some(id_or_email.to_string());
        }
        let long = to_18(id_or_email);
        if self.reps.contains(&long) {
            return Some(long);
        }
        normalize_email(id_or_email).and_then(|e| self.rep_by_email.get(&e).cloned())
    }

    pub fn account_of_contact(&self, contact_id: &str) -> Option<String> {
        Self::lookup_id(&self.contact_account, contact_id)
            .and_then(|(_, a)| a)
            .and_then(|a| self.account(&a))
    }

    pub fn account_of_opportunity(&self, opportunity_id: &str) -> Option<String> {
        Self::lookup_id(&self.opportunity_account, opportunity_id)
            .and_then(|(_, a)| a)
            .and_then(|a| self.account(&a))
    }

    pub fn account_by_domain(&self, domain: &str) -> Option<String> {
        let d = normalize_domain(domain)?;
        if is_freemail(&d) {
            return None;
        }
        self.account_by_domain.get(&d).cloned()
    }

    /// An e-mail's account: through the contact who has it, else through its company domain.
    pub fn account_of_email(&self, email: &str) -> Option<(String, MatchMethod)> {
        let e = normalize_email(email)?;
        if let Some(a) = self
            .contact_by_email
            .get(&e)
            .and_then(|c| self.account_of_contact(c))
        {
            return Some((a, MatchMethod::Email));
        }
        let d = company_domain_of_email(&e)?;
        self.account_by_domain
            .get(&d)
            .map(|a| (a.clone(), MatchMethod::Domain))
    }

    pub fn contact_by_email(&self, email: &str) -> Option<String> {
        normalize_email(email).and_then(|e| self.contact_by_email.get(&e).cloned())
    }

    /// A product user's account: their group (workspace) by id or domain, else their e-mail.
    pub fn account_of_product_user(&self, user_id: &str) -> Option<String> {
        if let Some(g) = self.user_group.get(user_id) {
            if let Some(a) = self.account(g) {
                return Some(a);
            }
            if let Some(a) = self
                .group_domain
                .get(g)
                .and_then(|d| self.account_by_domain.get(d))
            {
                return Some(a.clone());
            }
        }
        self.user_email
            .get(user_id)
            .and_then(|e| self.account_of_email(e))
            .map(|(a, _)| a)
    }

    fn by_id(&self, id: Option<&str>) -> Option<(String, MatchMethod)> {
        id.and_then(|i| self.account(i))
            .map(|a| (a, MatchMethod::AccountId))
    }

    /// An activity's account from its identifying fields: its account id, else its opportunity's
    /// account, else the first of its contacts that has one.
    pub fn account_of_activity<S: AsRef<str>>(
        &self,
        account_id: Option<&str>,
        opportunity_id: Option<&str>,
        contact_ids: &[S],
    ) -> Option<(String, MatchMethod)> {
        self.by_id(account_id)
            .or_else(|| {
                opportunity_id
                    .and_then(|o| self.account_of_opportunity(o))
                    .map(|x| (x, MatchMethod::Opportunity))
            })
            .or_else(|| {
                contact_ids
                    .iter()
                    .find_map(|c| self.account_of_contact(c.as_ref()))
                    .map(|x| (x, MatchMethod::Contact))
            })
    }

    /// A product event's account from its identifying fields: its group (by id, or the group's
    /// domain), its account domain, its user, else its user's e-mail.
    pub fn account_of_product_event(
        &self,
        account_id: Option<&str>,
        account_domain: Option<&str>,
        user_id: Option<&str>,
        user_email: Option<&str>,
    ) -> Option<(String, MatchMethod)> {
        if let Some(g) = account_id {
            if let Some(a) = self.account(g) {
                return Some((a, MatchMethod::AccountId));
            }
            if let Some(a) = self
                .group_domain
                .get(g)
                .and_then(|d| self.account_by_domain.get(d))
            {
                return Some((a.clone(), MatchMethod::ProductUser));
            }
        }
        if let Some(a) = account_domain.and_then(|d| self.account_by_domain(d)) {
            return Some((a, MatchMethod::Domain));
        }
        if let Some(a) = user_id.and_then(|u| self.account_of_product_user(u)) {
            return Some((a, MatchMethod::ProductUser));
        }
        user_email.and_then(|m| self.account_of_email(m))
    }

    /// A marketing touch's or support ticket's account: its account id, its contact's account, else its
    /// e-mail's.
    pub fn account_of_person_event(
        &self,
        account_id: Option<&str>,
        contact_id: Option<&str>,
        email: Option<&str>,
    ) -> Option<(String, MatchMethod)> {
        self.by_id(account_id)
            .or_else(|| {
                contact_id
                    .and_then(|c| self.account_of_contact(c))
                    .map(|a| (a, MatchMethod::Contact))
            })
            .or_else(|| email.and_then(|m| self.account_of_email(m)))
    }

    /// A transcript's account: its account id, else its opportunity's account.
    pub fn account_of_call(
        &self,
        account_id: Option<&str>,
        opportunity_id: Option<&str>,
    ) -> Option<(String, MatchMethod)> {
        self.by_id(account_id).or_else(|| {
            opportunity_id
                .and_then(|o| self.account_of_opportunity(o))
                .map(|a| (a, MatchMethod::Opportunity))
        })
    }

    /// The account a record belongs to, and how it was found. `None` when nothing ties it to one.
    pub fn account_of(&self, record: &Record) -> Option<(String, MatchMethod)> {
        let by_id = |id: &Option<String>| self.by_id(id.as_deref());
        match record {
            Record::Accounts(a) => Some((a.account_id.clone(), MatchMethod::AccountId)),
            Record::Contacts(c) => by_id(&c.account_id).or_else(|| {
                let d = c.email.as_deref().and_then(company_domain_of_email)?;
                self.account_by_domain
                    .get(&d)
                    .map(|a| (a.clone(), MatchMethod::Domain))
            }),
            Record::Opportunities(o) => by_id(&o.account_id),
            Record::Activities(a) => self.account_of_activity(
                a.account_id.as_deref(),
                a.opportunity_id.as_deref(),
                &a.contact_ids,
            ),
            Record::ProductEvents(e) => self.account_of_product_event(
                e.account_id.as_deref(),
                e.account_domain.as_deref(),
                e.user_id.as_deref(),
                e.user_email.as_deref(),
            ),
            Record::MarketingTouches(t) => self.account_of_person_event(
                t.account_id.as_deref(),
                t.contact_id.as_deref(),
                t.email.as_deref(),
            ),
            Record::SupportTickets(t) => self.account_of_person_event(
                t.account_id.as_deref(),
                t.contact_id.as_deref(),
                t.requester_email.as_deref(),
            ),
            Record::Transcripts(t) => {
                self.account_of_call(t.account_id.as_deref(), t.opportunity_id.as_deref())
            }
            Record::ProductUsers(u) => {
                if let Some(g) = &u.group_id {
                    if let Some(a) = self.account(g) {
                        return Some((a, MatchMethod::AccountId));
                    }
                    if let Some(a) = u
                        .group_domain
                        .as_deref()
                        .and_then(|d| self.account_by_domain.get(d))
                    {
                        return Some((a.clone(), MatchMethod::Domain));
                    }
                }
                u.email.as_deref().and_then(|m| self.account_of_email(m))
            }
            Record::StageHistory(s) => self
                .account_of_opportunity(&s.opportunity_id)
                .map(|a| (a, MatchMethod::Opportunity)),
            Record::OpportunityContacts(c) => self
                .account_of_opportunity(&c.opportunity_id)
                .map(|a| (a, MatchMethod::Opportunity)),
            Record::Reps(_) => None,
        }
    }

    /// Whether a record of this kind is expected to belong to an account (and so counts in match rates).
    pub fn needs_account(kind: Kind) -> bool {
        matches!(
            kind,
            Kind::Contacts
                | Kind::Opportunities
                | Kind::Activities
                | Kind::ProductEvents
                | Kind::MarketingTouches
                | Kind::SupportTickets
                | Kind::Transcripts
                | Kind::ProductUsers
        )
    }
}

/// The domain part of an address, for unmatched-list display.
pub fn domain_of(email: &str) -> Option<String> {
    normalize_email(email).and_then(|e| email_domain(&e).map(str::to_string))
}
