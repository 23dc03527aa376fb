//! Job title → seniority, the classifier behind `exec_engaged` and stakeholder coverage.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How senior a contact is, from their job title.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seniority {
    CLevel,
    Vp,
    Director,
    Manager,
    Individual,
    Unknown,
}

impl Seniority {
    pub const ALL: [Seniority; 6] = [
        Seniority::CLevel,
        Seniority::Vp,
        Seniority::Director,
        Seniority::Manager,
        Seniority::Individual,
        Seniority::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Seniority::CLevel => "c_level",
            Seniority::Vp => "vp",
            Seniority::Director => "director",
            Seniority::Manager => "manager",
            Seniority::Individual => "individual",
            Seniority::Unknown => "unknown",
        }
    }

    /// Whether this is an executive (VP or C-level), the audience of `exec_engaged`.
    pub fn is_executive(self) -> bool {
        matches!(self, Seniority::CLevel | Seniority::Vp)
    }
}

impl fmt::Display for Seniority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Seniority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Seniority::ALL
            .into_iter()
            .find(|x| x.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("a seniority (one of c_level, vp, director, manager, individual, unknown), got {s:?}")
            })
    }
}

const C_LEVEL_WORDS: &[&str] = &[
    "ceo",
    "cfo",
    "cto",
    "coo",
    "cio",
    "cro",
    "cmo",
    "cso",
    "cpo",
    "cdo",
    "ciso",
    "chief",
    "president",
    "founder",
    "cofounder",
    "co-founder",
];

/// Classifies a job title. Matching is on words, case-insensitive, so "Directory Services Engineer"
/// is not a director and "Vice President" outranks "Director" in "Vice President and Director".
/// "Head of …" counts as VP; "Vice President"/"VP"/"SVP"/"EVP"/"AVP" as VP; a blank title is unknown.
pub fn classify_title(title: &str) -> Seniority {
    let lower = title.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.chars().any(|c| c.is_ascii_alphanumeric()))
        .collect();
    if words.is_empty() {
        return Seniority::Unknown;
    }
    let has = |w: &str| words.contains(&w);
    let phrase = |a: &str, b: &str| words.windows(2).any(|p| p[0] == a && p[1] == b);
    // "Vice President" is a VP, not a president.
    let vice_president = phrase("vice", "president");
    let c_level = words
        .iter()
        .any(|w| C_LEVEL_WORDS.contains(w) && *w != "president")
        || (has("president") && !vice_president)
        || phrase("managing", "director")
        || phrase("general", "partner");
    if c_level {
        return Seniority::CLevel;
    }
    if vice_president
        || ["vp", "svp", "evp", "avp", "vice-president"]
            .iter()
            .any(|w| has(w))
        || phrase("head", "of")
        || (words.first() == Some(&"head"))
    {
        return Seniority::Vp;
    }
    if has("director") || has("directors") || has("dir") {
        return Seniority::Director;
    }
    if has("manager") || has("mgr") || has("lead") || has("supervisor") || has("principal") {
        return Seniority::Manager;
    }
    Seniority::Individual
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_classify_by_words() {
        let cases = [
            ("Chief Revenue Officer", Seniority::CLevel),
            ("CEO", Seniority::CLevel),
            ("cfo & co-founder", Seniority::CLevel),
            ("CTO", Seniority::CLevel),
            ("COO", Seniority::CLevel),
            ("CIO", Seniority::CLevel),
            ("CRO", Seniority::CLevel),
            ("CMO", Seniority::CLevel),
            ("President", Seniority::CLevel),
            ("President and CEO", Seniority::CLevel),
            ("Managing Director", Seniority::CLevel),
            ("Vice President, Sales", Seniority::Vp),
            ("VP Engineering", Seniority::Vp),
            ("SVP Operations", Seniority::Vp),
            ("EVP, Finance", Seniority::Vp),
            ("Head of Data", Seniority::Vp),
            ("Head, Analytics", Seniority::Vp),
            ("Vice President and Director", Seniority::Vp),
            ("Director of IT", Seniority::Director),
            ("Sr. Director, Procurement", Seniority::Director),
            ("Engineering Manager", Seniority::Manager),
            ("Team Lead", Seniority::Manager),
            ("Data Analyst", Seniority::Individual),
            ("Directory Services Engineer", Seniority::Individual),
            ("Vpn Administrator", Seniority::Individual),
            ("Product Owner", Seniority::Individual),
            ("Chiefly Analyst", Seniority::Individual),
            ("", Seniority::Unknown),
            ("  - ", Seniority::Unknown),
        ];
        for (title, want) in cases {
            assert_eq!(classify_title(title), want, "title {title:?}");
        }
    }

    #[test]
    fn executives_are_vp_and_c_level_only() {
        assert!(Seniority::CLevel.is_executive());
        assert!(Seniority::Vp.is_executive());
        assert!(!Seniority::Director.is_executive());
        assert_eq!("VP".parse::<Seniority>(), Ok(Seniority::Vp));
        assert!("boss".parse::<Seniority>().is_err());
    }
}
