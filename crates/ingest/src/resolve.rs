//! Identity resolution over everything in the store: which account (and contact) a record belongs to,
//! by id (15- and 18-character Salesforce ids unify), by e-mail, or by web domain (free-mail never
//! identifies an account), and for product users through their Segment `identify`/`group` links.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use winsignal_core::identity::{
    company_domain_of_email, email_domain, is_freemail, normalize_domain, normalize_email,
};
use winsignal_core::sfdc::to_18;
use winsignal_core::{Kind, Record};
use winsignal_store::StoreRead;

use crate::error::Result;

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

#[derive(Default)]
pub struct Resolver {
    accounts: HashSet<String>,
    account_by_domain: HashMap<String, String>,
    contact_account: HashMap<String, Option<String>>,
    contact_by_email: HashMap<String, String>,
    opportunity_account: HashMap<String, Option<String>>,
    reps: HashSet<String>,
    rep_by_email: HashMap<String, String>,
    user_email: HashMap<String, String>,
    user_group: HashMap<String, String>,
    group_domain: HashMap<String, String>,
}

impl Resolver {
    pub fn from_store(store: &dyn StoreRead) -> Result<Self> {
        let mut r = Resolver::default();
        for rec in store.records(Kind::Accounts)? {
            if let Record::Accounts(a) = rec.record {
                if let Some(d) = &a.domain {
                    r.account_by_domain
                        .entry(d.clone())
                        .or_insert_with(|| a.account_id.clone());
                }
                r.accounts.insert(a.account_id);
            }
        }
        for rec in store.records(Kind::Contacts)? {
            if let Record::Contacts(c) = rec.record {
                if let Some(e) = &c.email {
                    r.contact_by_email
                        .entry(e.clone())
                        .or_insert_with(|| c.contact_id.clone());
                }
                // A contact without a usable account id still belongs to its e-mail's company domain.
                let by_domain = || {
                    let d = c.email.as_deref().and_then(company_domain_of_email)?;
                    r.account_by_domain.get(&d).cloned()
                };
                let known = c
                    .account_id
                    .as_deref()
                    .filter(|a| r.accounts.contains(*a) || r.accounts.contains(&to_18(a)));
                let account = known
                    .map(str::to_string)
                    .or_else(by_domain)
                    .or(c.account_id.clone());
                r.contact_account.insert(c.contact_id, account);
            }
        }
        for rec in store.records(Kind::Opportunities)? {
            if let Record::Opportunities(o) = rec.record {
                r.opportunity_account.insert(o.opportunity_id, o.account_id);
            }
        }
        for rec in store.records(Kind::Reps)? {
            if let Record::Reps(p) = rec.record {
                if let Some(e) = &p.email {
                    r.rep_by_email.insert(e.clone(), p.rep_id.clone());
                }
                r.reps.insert(p.rep_id);
            }
        }
        let mut links: Vec<_> = store
            .records(Kind::ProductUsers)?
            .into_iter()
            .filter_map(|s| match s.record {
                Record::ProductUsers(u) => Some(u),
                _ => None,
            })
            .collect();
        links.sort_by_key(|u| u.seen_at);
        for u in links {
            if let Some(e) = u.email {
                r.user_email.insert(u.user_id.clone(), e);
            }
            if let Some(g) = u.group_id {
                if let Some(d) = u.group_domain {
                    r.group_domain.insert(g.clone(), d);
                }
                r.user_group.insert(u.user_id, g);
            }
        }
        Ok(r)
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

    /// The account a record belongs to, and how it was found. `None` when nothing ties it to one.
    pub fn account_of(&self, record: &Record) -> Option<(String, MatchMethod)> {
        let by_id = |id: &Option<String>| {
            id.as_deref()
                .and_then(|i| self.account(i))
                .map(|a| (a, MatchMethod::AccountId))
        };
        match record {
            Record::Accounts(a) => Some((a.account_id.clone(), MatchMethod::AccountId)),
            Record::Contacts(c) => by_id(&c.account_id).or_else(|| {
                let d = c.email.as_deref().and_then(company_domain_of_email)?;
                self.account_by_domain
                    .get(&d)
                    .map(|a| (a.clone(), MatchMethod::Domain))
            }),
            Record::Opportunities(o) => by_id(&o.account_id),
            Record::Activities(a) => by_id(&a.account_id)
                .or_else(|| {
                    a.opportunity_id
                        .as_deref()
                        .and_then(|o| self.account_of_opportunity(o))
                        .map(|x| (x, MatchMethod::Opportunity))
                })
                .or_else(|| {
                    a.contact_ids
                        .iter()
                        .find_map(|c| self.account_of_contact(c))
                        .map(|x| (x, MatchMethod::Contact))
                }),
            Record::ProductEvents(e) => {
                if let Some(g) = &e.account_id {
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
                if let Some(a) = e
                    .account_domain
                    .as_deref()
                    .and_then(|d| self.account_by_domain(d))
                {
                    return Some((a, MatchMethod::Domain));
                }
                if let Some(a) = e
                    .user_id
                    .as_deref()
                    .and_then(|u| self.account_of_product_user(u))
                {
                    return Some((a, MatchMethod::ProductUser));
                }
                e.user_email
                    .as_deref()
                    .and_then(|m| self.account_of_email(m))
            }
            Record::MarketingTouches(t) => by_id(&t.account_id)
                .or_else(|| {
                    t.contact_id
                        .as_deref()
                        .and_then(|c| self.account_of_contact(c))
                        .map(|a| (a, MatchMethod::Contact))
                })
                .or_else(|| t.email.as_deref().and_then(|m| self.account_of_email(m))),
            Record::SupportTickets(t) => by_id(&t.account_id)
                .or_else(|| {
                    t.contact_id
                        .as_deref()
                        .and_then(|c| self.account_of_contact(c))
                        .map(|a| (a, MatchMethod::Contact))
                })
                .or_else(|| {
                    t.requester_email
                        .as_deref()
                        .and_then(|m| self.account_of_email(m))
                }),
            Record::Transcripts(t) => by_id(&t.account_id).or_else(|| {
                t.opportunity_id
                    .as_deref()
                    .and_then(|o| self.account_of_opportunity(o))
                    .map(|a| (a, MatchMethod::Opportunity))
            }),
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
