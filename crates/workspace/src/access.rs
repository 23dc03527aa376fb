//! Who may use a workspace through the API, and what each may see.
//!
//! Users and their tokens are a named state of the store (`users`), changed only by read-modify-writes
//! under the store's update lock ([`Store::update_state`]), so two commands adding users at once keep
//! both. A token is shown once, when it is made; the store keeps its SHA-256 and a short public id, never
//! the token. Roles: `admin` and `revops` see everything; a `manager` sees the deals of the reps who
//! report to them (directly or further down, by the reps' `manager_id`) and their own; a `rep` sees their
//! own. Row scope is decided here, below any HTTP layer: [`Scope::allows`] is the one rule.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read;

use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use winsignal_core::{Kind, Record, Ts};
use winsignal_store::{Store, StoreRead};

/// The name of the users among the store's named states.
pub const USERS: &str = "users";

/// What a user may do and see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, users and tokens included.
    Admin,
    /// Every deal, rep and setting; not users.
    Revops,
    /// Their team's deals and scorecards (the reps whose manager chain reaches theirs) and their own.
    Manager,
    /// Their own deals and scorecard.
    Rep,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Revops, Role::Manager, Role::Rep];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Revops => "revops",
            Role::Manager => "manager",
            Role::Rep => "rep",
        }
    }

    /// Whether the role may read how the service runs (its metrics): admin and revops.
    pub fn sees_operations(self) -> bool {
        matches!(self, Role::Admin | Role::Revops)
    }

    /// Whether the role may take the model registry's steps (approve, activate, roll back, retire):
    /// admin and revops.
    pub fn governs_models(self) -> bool {
        matches!(self, Role::Admin | Role::Revops)
    }

    /// Whether the role may decide items of the review queue (within its scope): admin, revops and
    /// manager.
    pub fn reviews(self) -> bool {
        matches!(self, Role::Admin | Role::Revops | Role::Manager)
    }

    /// Whether users of this role are tied to a rep of the CRM (`--rep-id`).
    pub fn is_a_rep(self) -> bool {
        matches!(self, Role::Manager | Role::Rep)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Role> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| anyhow!("role {s:?}: expected one of admin, revops, manager, rep"))
    }
}

/// A user as the store keeps them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub role: Role,
    /// The rep of the CRM this user is (managers and reps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rep_id: Option<String>,
    pub created_at: Ts,
    pub tokens: Vec<Token>,
}

/// A token as the store keeps it: its public id and the SHA-256 of the whole token, never the token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Token {
    /// The token's public part (`wst_<id>_…`): names it in lists and revocations.
    pub id: String,
    /// SHA-256 of the whole token, hex.
    pub sha256: String,
    pub created_at: Ts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Ts>,
}

impl Token {
    pub fn active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// Every user, by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Users {
    pub users: BTreeMap<String, User>,
}

/// Who a request is from, once its token is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: String,
    pub role: Role,
    pub rep_id: Option<String>,
}

/// The users as the store holds them (none yet: empty).
pub fn users(store: &dyn Store) -> Result<Users> {
    match store.state(USERS)? {
        Some(state) => read_users(state),
        None => Ok(Users::default()),
    }
}

fn read_users(state: winsignal_store::NamedState) -> Result<Users> {
    read_json_state(state, "users")
}

/// A named state of the store written as JSON (the users, the webhooks), read whole.
pub(crate) fn read_json_state<T: serde::de::DeserializeOwned>(
    mut state: winsignal_store::NamedState,
    what: &str,
) -> Result<T> {
    let mut text = String::new();
    state
        .bytes
        .read_to_string(&mut text)
        .map_err(|e| anyhow!("reading the {what} {}: {e}", state.origin))?;
    serde_json::from_str(&text).map_err(|e| anyhow!("the {what} {} are damaged: {e}", state.origin))
}

/// Changes the users as the store holds them now, under its update lock; `change` may refuse.
fn change_users<T>(store: &dyn Store, change: impl FnOnce(&mut Users) -> Result<T>) -> Result<T> {
    change_json_state(store, USERS, "users", change)
}

/// Changes the JSON named state `name` as the store holds it now (its default when there is none),
/// under the store's update lock, so two processes changing it at once keep both changes; `change`
/// may refuse, and then nothing is written.
pub(crate) fn change_json_state<S, T>(
    store: &dyn Store,
    name: &str,
    what: &str,
    change: impl FnOnce(&mut S) -> Result<T>,
) -> Result<T>
where
    S: Serialize + serde::de::DeserializeOwned + Default,
{
    let mut change = Some(change);
    let mut outcome: Option<Result<T>> = None;
    let updated = store.update_state(name, "", &mut |current| {
        let mut value: S = match current.map(|c| read_json_state(c, what)).transpose() {
            Ok(value) => value.unwrap_or_default(),
            Err(e) => {
                outcome = Some(Err(e));
                return Err(std::io::Error::other(format!("the {what} cannot be read")));
            }
        };
        let Some(change) = change.take() else {
            return Err(std::io::Error::other("the change was already made"));
        };
        match change(&mut value) {
            Ok(v) => {
                outcome = Some(Ok(v));
                serde_json::to_vec_pretty(&value).map_err(std::io::Error::other)
            }
            Err(e) => {
                outcome = Some(Err(e));
                Err(std::io::Error::other("refused"))
            }
        }
    });
    match outcome {
        Some(Err(e)) => Err(e),
        Some(Ok(value)) => updated.map(|()| value).map_err(Into::into),
        None => Err(updated
            .err()
            .map_or_else(|| anyhow!("the {what} were not changed"), Into::into)),
    }
}

/// A user name: letters, digits, `.`, `_`, `-` and `@`, at most 100 characters.
fn check_name(name: &str) -> Result<()> {
    let plain = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if !plain {
        bail!("user name {name:?}: use letters, digits, '.', '_', '-' and '@' (at most 100)");
    }
    Ok(())
}

/// Adds a user and makes their first token, returned (the only time it is shown). Managers and reps
/// name the CRM rep they are (`rep_id`, which the store must hold); admins and revops do not.
pub fn add_user(
    store: &dyn Store,
    actor: &str,
    name: &str,
    role: Role,
    rep_id: Option<&str>,
    now: Ts,
) -> Result<String> {
    check_name(name)?;
    match (role.is_a_rep(), rep_id) {
        (true, None) => bail!(
            "a {role} user is a rep of the CRM: give --rep-id (`winsignal reps` lists the reps)"
        ),
        (false, Some(_)) => bail!("--rep-id is for manager and rep users, not {role}"),
        (true, Some(id)) => {
            if !rep_ids(store)?.contains(id) {
                bail!("no rep with id {id:?} in the workspace (`winsignal reps` lists the reps)");
            }
        }
        (false, None) => {}
    }
    let (token, record) = new_token(now)?;
    change_users(store, |users| {
        if users.users.contains_key(name) {
            bail!("user {name} exists; `winsignal users token {name}` makes them another token");
        }
        users.users.insert(
            name.to_string(),
            User {
                name: name.to_string(),
                role,
                rep_id: rep_id.map(str::to_string),
                created_at: now,
                tokens: vec![record.clone()],
            },
        );
        Ok(())
    })?;
    crate::audit::record(
        store,
        actor,
        "user.add",
        name,
        serde_json::json!({"role": role, "rep_id": rep_id, "token_id": record.id}),
    )?;
    Ok(token)
}

/// Makes another token for a user, returned (the only time it is shown).
pub fn add_token(store: &dyn Store, actor: &str, name: &str, now: Ts) -> Result<String> {
    let (token, record) = new_token(now)?;
    let id = record.id.clone();
    change_users(store, |users| {
        let user = users
            .users
            .get_mut(name)
            .ok_or_else(|| anyhow!("no user {name} (`winsignal users list` lists them)"))?;
        user.tokens.push(record);
        Ok(())
    })?;
    crate::audit::record(
        store,
        actor,
        "token.add",
        name,
        serde_json::json!({"token_id": id}),
    )?;
    Ok(token)
}

/// Revokes one token of a user (by its id), or all of them; returns how many were revoked now.
pub fn revoke(
    store: &dyn Store,
    actor: &str,
    name: &str,
    token_id: Option<&str>,
    now: Ts,
) -> Result<usize> {
    let revoked = change_users(store, |users| {
        let user = users
            .users
            .get_mut(name)
            .ok_or_else(|| anyhow!("no user {name} (`winsignal users list` lists them)"))?;
        if let Some(id) = token_id {
            if !user.tokens.iter().any(|t| t.id == id) {
                bail!("user {name} has no token {id} (`winsignal users list` shows their tokens)");
            }
        }
        let mut n = 0;
        for t in &mut user.tokens {
            if t.active() && token_id.is_none_or(|id| t.id == id) {
                t.revoked_at = Some(now);
                n += 1;
            }
        }
        Ok(n)
    })?;
    crate::audit::record(
        store,
        actor,
        "token.revoke",
        name,
        serde_json::json!({"token_id": token_id, "revoked": revoked}),
    )?;
    Ok(revoked)
}

/// The user a token belongs to, if it is one of theirs and not revoked.
pub fn authenticate(users: &Users, token: &str) -> Option<Principal> {
    let id = token_id(token)?;
    let digest = sha256_hex(token);
    users.users.values().find_map(|u| {
        u.tokens
            .iter()
            .any(|t| t.active() && t.id == id && same(&t.sha256, &digest))
            .then(|| Principal {
                user: u.name.clone(),
                role: u.role,
                rep_id: u.rep_id.clone(),
            })
    })
}

/// What a principal may see of the deals, reps and scorecards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    /// Only what belongs to these reps.
    Reps(BTreeSet<String>),
}

impl Scope {
    /// Whether a row owned by `rep_id` (a deal's owner, a scorecard's rep) may be seen. Rows with no
    /// owner are seen only by those who see everything.
    pub fn allows(&self, rep_id: Option<&str>) -> bool {
        match self {
            Scope::All => true,
            Scope::Reps(reps) => rep_id.is_some_and(|r| reps.contains(r)),
        }
    }
}

/// The scope of a principal over the reps the store holds: a manager's team is every rep whose chain of
/// managers reaches them.
pub fn scope(principal: &Principal, read: &dyn StoreRead) -> Result<Scope> {
    let me = match (principal.role, &principal.rep_id) {
        (Role::Admin | Role::Revops, _) => return Ok(Scope::All),
        (_, Some(me)) => me.clone(),
        (role, None) => bail!("user {} ({role}) names no rep", principal.user),
    };
    let mut reps = BTreeSet::from([me.clone()]);
    if principal.role == Role::Manager {
        let managers: BTreeMap<String, String> = read
            .records(Kind::Reps)?
            .into_iter()
            .filter_map(|r| match r.record {
                Record::Reps(rep) => rep.manager_id.map(|m| (rep.rep_id, m)),
                _ => None,
            })
            .collect();
        for rep in managers.keys() {
            // Up the chain, stopping at a loop in the data.
            let mut seen = BTreeSet::new();
            let mut at = rep;
            while let Some(m) = managers.get(at) {
                if !seen.insert(m) {
                    break;
                }
                if *m == me {
                    reps.insert(rep.clone());
                    break;
                }
                at = m;
            }
        }
    }
    Ok(Scope::Reps(reps))
}

fn rep_ids(read: &dyn StoreRead) -> Result<BTreeSet<String>> {
    Ok(read
        .records(Kind::Reps)?
        .into_iter()
        .filter_map(|r| match r.record {
            Record::Reps(rep) => Some(rep.rep_id),
            _ => None,
        })
        .collect())
}

/// A new token (`wst_<8 hex id>_<64 hex secret>`: 32 random bytes from the operating system) and
/// what the store keeps of it.
fn new_token(now: Ts) -> Result<(String, Token)> {
    let mut id = [0u8; 4];
    let mut secret = [0u8; 32];
    getrandom::fill(&mut id).map_err(|e| anyhow!("no randomness for a token: {e}"))?;
    getrandom::fill(&mut secret).map_err(|e| anyhow!("no randomness for a token: {e}"))?;
    let id = hex(&id);
    let token = format!("wst_{id}_{}", hex(&secret));
    let record = Token {
        id,
        sha256: sha256_hex(&token),
        created_at: now,
        revoked_at: None,
    };
    Ok((token, record))
}

/// The public id of a token of our form.
fn token_id(token: &str) -> Option<&str> {
    let rest = token.strip_prefix("wst_")?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 8 && secret.len() == 64).then_some(id)
}

fn sha256_hex(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two digests in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use winsignal_store::MemoryStore;

    #[test]
    fn tokens_are_checked_by_hash_and_stop_working_when_revoked() {
        let store = MemoryStore::new();
        let t1 = add_user(&store, "local:test", "alice", Role::Revops, None, Ts(1)).unwrap();
        let t2 = add_token(&store, "local:test", "alice", Ts(2)).unwrap();
        assert_ne!(t1, t2);
        let users = users(&store).unwrap();
        // The store holds neither token.
        let kept = serde_json::to_string(&users).unwrap();
        assert!(!kept.contains(&t1[13..]) && !kept.contains(&t2[13..]));
        let alice = authenticate(&users, &t1).unwrap();
        assert_eq!((alice.user.as_str(), alice.role), ("alice", Role::Revops));
        assert!(authenticate(&users, &t2).is_some());
        // A wrong secret under a right id, a malformed token, nothing.
        let wrong = format!("{}{}", &t1[..13], "0".repeat(64));
        for bad in [wrong.as_str(), "wst_", "", "Bearer x", &t1[..t1.len() - 1]] {
            assert!(authenticate(&users, bad).is_none(), "{bad:?}");
        }
        let id = users.users["alice"].tokens[0].id.clone();
        assert_eq!(
            revoke(&store, "local:test", "alice", Some(&id), Ts(3)).unwrap(),
            1
        );
        let users_now = super::users(&store).unwrap();
        assert!(authenticate(&users_now, &t1).is_none());
        assert!(authenticate(&users_now, &t2).is_some());
        assert_eq!(
            revoke(&store, "local:test", "alice", None, Ts(4)).unwrap(),
            1
        );
        assert!(authenticate(&super::users(&store).unwrap(), &t2).is_none());
    }

    #[test]
    fn bad_requests_are_refused_with_what_to_do() {
        let store = MemoryStore::new();
        add_user(&store, "local:test", "bob", Role::Admin, None, Ts(1)).unwrap();
        let err = |r: Result<String>| r.unwrap_err().to_string();
        assert!(err(add_user(
            &store,
            "local:test",
            "bob",
            Role::Admin,
            None,
            Ts(2)
        ))
        .contains("users token bob"));
        assert!(err(add_user(
            &store,
            "local:test",
            "carol",
            Role::Rep,
            None,
            Ts(2)
        ))
        .contains("--rep-id"));
        assert!(err(add_user(
            &store,
            "local:test",
            "carol",
            Role::Rep,
            Some("R9"),
            Ts(2)
        ))
        .contains("no rep"));
        assert!(err(add_user(
            &store,
            "local:test",
            "dan",
            Role::Revops,
            Some("R1"),
            Ts(2)
        ))
        .contains("--rep-id"));
        assert!(err(add_user(
            &store,
            "local:test",
            "a b",
            Role::Admin,
            None,
            Ts(2)
        ))
        .contains("user name"));
        assert!(err(add_token(&store, "local:test", "nobody", Ts(2))).contains("no user nobody"));
        assert!("owner".parse::<Role>().is_err());
        // A refused change leaves the users as they were.
        assert_eq!(users(&store).unwrap().users.len(), 1);
    }

    fn put_records(store: &dyn Store, records: &[Record]) {
        use winsignal_store::{LoadSpec, LoadStats};
        let mut batch = store.begin().unwrap();
        let load = batch
            .start_load(&LoadSpec {
                source: "test:reps".into(),
                format: "canonical".into(),
                path: "reps".into(),
                file_hash: "reps".into(),
                file_bytes: 0,
                identity: "reps".into(),
                recipe: Default::default(),
            })
            .unwrap();
        for (i, r) in records.iter().enumerate() {
            batch.put(load, i as u64 + 2, None, r).unwrap();
        }
        let n = records.len() as u64;
        let stats = LoadStats {
            rows_read: n,
            accepted: n,
            new: n,
            ..LoadStats::default()
        };
        batch.finish_load(load, &[], &[Kind::Reps], &stats).unwrap();
        batch.commit().unwrap();
    }

    #[test]
    fn a_manager_sees_every_rep_whose_chain_reaches_them_and_a_rep_only_themselves() {
        use winsignal_core::Rep;
        let store = MemoryStore::new();
        let rep = |id: &str, manager: Option<&str>| {
            Record::Reps(Rep {
                rep_id: id.into(),
                name: None,
                email: None,
                team: None,
                manager_id: manager.map(Into::into),
                hired_at: None,
                attrs: Default::default(),
            })
        };
        // M1 manages M2 and R1; M2 manages R2; R3 reports elsewhere; X and Y loop.
        let records = [
            rep("M1", None),
            rep("M2", Some("M1")),
            rep("R1", Some("M1")),
            rep("R2", Some("M2")),
            rep("R3", Some("M9")),
            rep("X", Some("Y")),
            rep("Y", Some("X")),
        ];
        put_records(&store, &records);
        let who = |role, rep: &str| Principal {
            user: "u".into(),
            role,
            rep_id: Some(rep.into()),
        };
        let set = |ids: &[&str]| Scope::Reps(ids.iter().map(|s| s.to_string()).collect());
        assert_eq!(
            scope(&who(Role::Manager, "M1"), &store).unwrap(),
            set(&["M1", "M2", "R1", "R2"])
        );
        assert_eq!(
            scope(&who(Role::Manager, "M2"), &store).unwrap(),
            set(&["M2", "R2"])
        );
        assert_eq!(scope(&who(Role::Rep, "R1"), &store).unwrap(), set(&["R1"]));
        assert_eq!(
            scope(&who(Role::Manager, "X"), &store).unwrap(),
            set(&["X", "Y"])
        );
        let all = scope(&who(Role::Admin, "R1"), &store).unwrap();
        assert!(all.allows(None) && all.allows(Some("anyone")));
        let r1 = set(&["R1"]);
        assert!(r1.allows(Some("R1")) && !r1.allows(Some("R2")) && !r1.allows(None));
        // A rep user can be added once the rep is in the workspace.
        assert!(add_user(&store, "local:test", "rita", Role::Rep, Some("R1"), Ts(1)).is_ok());
    }
}
