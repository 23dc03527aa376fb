//! Word lists, id construction and fast timestamp formatting for the generated files.

use winsignal_core::sfdc::to_18;

pub(crate) const SEC: i64 = 1_000;
pub(crate) const MIN: i64 = 60 * SEC;
pub(crate) const HOUR: i64 = 60 * MIN;
pub(crate) const DAY: i64 = 24 * HOUR;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// An 18-character Salesforce id: key prefix, the pod-like "Ax", a zero-padded base-62 counter.
pub(crate) fn sf_id(prefix: &str, n: u64) -> String {
    let mut digits = [b'0'; 10];
    let mut v = n;
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(v % 62) as usize];
        v /= 62;
    }
    let mut id15 = String::with_capacity(18);
    id15.push_str(prefix);
    id15.push_str("Ax");
    id15.extend(digits.iter().map(|&b| b as char));
    to_18(&id15)
}

/// Counter base for ids of deliberately bad rows, far above any real entity.
pub(crate) const BAD_ID_BASE: u64 = 50_000_000;

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn push2(out: &mut String, v: u32) {
    out.push((b'0' + (v / 10) as u8) as char);
    out.push((b'0' + (v % 10) as u8) as char);
}

/// Appends `YYYY-MM-DD`.
pub(crate) fn push_date(out: &mut String, ms: i64) {
    let (y, m, d) = civil_from_days(ms.div_euclid(DAY));
    let y = y.clamp(0, 9999) as u32;
    push2(out, y / 100);
    push2(out, y % 100);
    out.push('-');
    push2(out, m);
    out.push('-');
    push2(out, d);
}

/// Appends an RFC 3339 UTC timestamp; `millis` adds the `.000` part Salesforce exports always carry.
pub(crate) fn push_ts(out: &mut String, ms: i64, millis: bool) {
    push_date(out, ms);
    let in_day = ms.rem_euclid(DAY);
    out.push('T');
    push2(out, (in_day / HOUR) as u32);
    out.push(':');
    push2(out, (in_day % HOUR / MIN) as u32);
    out.push(':');
    push2(out, (in_day % MIN / SEC) as u32);
    if millis {
        let frac = (in_day % SEC) as u32;
        out.push('.');
        out.push((b'0' + (frac / 100) as u8) as char);
        push2(out, frac % 100);
    }
    out.push('Z');
}

pub(crate) fn date(ms: i64) -> String {
    let mut s = String::with_capacity(10);
    push_date(&mut s, ms);
    s
}

/// Salesforce datetime, `2025-03-04T15:20:00.000Z`.
pub(crate) fn sf_ts(ms: i64) -> String {
    let mut s = String::with_capacity(24);
    push_ts(&mut s, ms, true);
    s
}

/// Canonical datetime, `2025-03-04T15:20:00Z`.
pub(crate) fn c_ts(ms: i64) -> String {
    let mut s = String::with_capacity(20);
    push_ts(&mut s, ms, false);
    s
}

pub(crate) const FIRST_NAMES: &[&str] = &[
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Priya",
    "Wei",
    "Carlos",
    "Fatima",
    "Kenji",
    "Aisha",
    "Lukas",
    "Sofia",
    "Mateo",
    "Chloe",
    "Noah",
    "Emma",
    "Olivia",
    "Liam",
    "Ava",
    "Ethan",
    "Mia",
    "Lucas",
    "Amara",
    "Hiroshi",
    "Ingrid",
    "Rahul",
    "Zoe",
    "Diego",
    "Nadia",
    "Oscar",
    "Elena",
    "Samuel",
    "Grace",
    "Daniel",
    "Hannah",
    "Marcus",
    "Leila",
];

pub(crate) const LAST_NAMES: &[&str] = &[
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Patel",
    "Chen",
    "Kim",
    "Nguyen",
    "Schmidt",
    "Muller",
    "Rossi",
    "Dubois",
    "Kowalski",
    "Silva",
    "Tanaka",
    "Okafor",
    "Singh",
    "Novak",
    "Larsen",
    "Costa",
    "Walker",
    "Hall",
    "Young",
    "King",
    "Wright",
    "Scott",
    "Green",
    "Baker",
    "Adams",
    "Nelson",
    "Hill",
    "Campbell",
    "Mitchell",
    "Roberts",
    "Carter",
    "Phillips",
];

pub(crate) const COMPANY_A: &[&str] = &[
    "Acme",
    "Blue",
    "Bright",
    "Cedar",
    "Crest",
    "Delta",
    "Echo",
    "Falcon",
    "Granite",
    "Harbor",
    "Iron",
    "Juniper",
    "Keystone",
    "Lumen",
    "Maple",
    "Nimbus",
    "Orbit",
    "Pioneer",
    "Quantum",
    "River",
    "Summit",
    "Terra",
    "Union",
    "Vertex",
    "Willow",
    "Zenith",
    "Atlas",
    "Beacon",
    "Cobalt",
    "Ember",
    "Fjord",
    "Helix",
    "Northstar",
    "Onyx",
    "Prism",
    "Redwood",
    "Silver",
    "Tidal",
    "Vector",
    "Aurora",
];

pub(crate) const COMPANY_B: &[&str] = &[
    "Analytics",
    "Systems",
    "Logistics",
    "Health",
    "Foods",
    "Capital",
    "Labs",
    "Software",
    "Retail",
    "Energy",
    "Robotics",
    "Media",
    "Networks",
    "Bank",
    "Insurance",
    "Motors",
    "Pharma",
    "Works",
    "Cloud",
    "Security",
    "Partners",
    "Travel",
    "Learning",
    "Manufacturing",
];

pub(crate) const TLDS: &[&str] = &["com", "com", "com", "io", "co", "ai", "net"];

pub(crate) const INDUSTRIES: &[&str] = &[
    "Technology",
    "Financial Services",
    "Healthcare",
    "Retail",
    "Manufacturing",
    "Media",
    "Education",
    "Transportation",
    "Energy",
    "Insurance",
    "Telecommunications",
    "Hospitality",
];

pub(crate) const COUNTRIES: &[(&str, f64)] = &[
    ("United States", 0.62),
    ("Canada", 0.08),
    ("United Kingdom", 0.12),
    ("Germany", 0.08),
    ("France", 0.05),
    ("Australia", 0.05),
];

pub(crate) const FREE_MAIL: &[&str] = &["gmail.com", "yahoo.com", "outlook.com", "hotmail.com"];

/// Executive titles: VP, C-level or "Head of"; these are what `exec_engaged` looks for.
pub(crate) const EXEC_TITLES: &[(&str, &str)] = &[
    ("CEO", "Executive"),
    ("Chief Financial Officer", "Finance"),
    ("CTO", "Engineering"),
    ("VP Sales", "Sales"),
    ("Vice President of Engineering", "Engineering"),
    ("SVP Operations", "Operations"),
    ("Head of Data", "Data"),
    ("Chief Revenue Officer", "Sales"),
    ("VP Marketing", "Marketing"),
];

/// Non-executive titles; a blank title is a real-world habit kept on purpose.
pub(crate) const OTHER_TITLES: &[(&str, &str)] = &[
    ("Director of IT", "IT"),
    ("Engineering Manager", "Engineering"),
    ("Senior Analyst", "Finance"),
    ("Software Engineer", "Engineering"),
    ("Account Manager", "Sales"),
    ("Data Analyst", "Data"),
    ("Operations Manager", "Operations"),
    ("Director of Finance", "Finance"),
    ("Marketing Manager", "Marketing"),
    ("Product Manager", "Product"),
    ("", ""),
];

pub(crate) const COMPETITORS: &[&str] = &[
    "Gong",
    "Clari",
    "Tableau",
    "Looker",
    "In-house build",
    "Domo",
];

pub(crate) const PRODUCTS: &[&str] = &[
    "Platform",
    "Analytics Suite",
    "Data Cloud",
    "Insights Add-on",
];

pub(crate) const MEETING_SUBJECTS: &[&str] = &[
    "Discovery call",
    "Product demo",
    "Technical deep dive",
    "Pricing review",
    "Security review",
    "Next steps",
];

pub(crate) const EMAIL_OUT_SUBJECTS: &[&str] = &[
    "Intro and agenda",
    "Case study you asked about",
    "Proposal draft",
    "Checking in",
    "Pricing options",
    "Security questionnaire",
    "Following up on our call",
];

pub(crate) const EMAIL_IN_SUBJECTS: &[&str] = &[
    "Question about pricing",
    "Re: Proposal draft",
    "Can we move our call?",
    "Question on SSO",
    "Re: Checking in",
];

pub(crate) const CALL_SUBJECTS: &[&str] = &[
    "Call",
    "Discovery call",
    "Follow-up call",
    "Pricing call",
    "Check-in call",
];

pub(crate) const TASK_SUBJECTS: &[&str] = &[
    "Send proposal",
    "Update mutual action plan",
    "Prepare business case",
    "Log notes",
    "Research account",
];

pub(crate) const TICKET_SUBJECTS: &[&str] = &[
    "Dashboard not loading",
    "SSO login fails",
    "Data sync delayed",
    "Question about billing",
    "Export to CSV broken",
    "API rate limit errors",
    "How do I invite users?",
    "Report shows wrong totals",
];

pub(crate) const CAMPAIGNS: &[&str] = &[
    "Nurture: Analytics Basics",
    "Webinar: Forecasting with Confidence",
    "Data Summit 2025",
    "Paid Search Brand",
    "Whitepaper: Modern BI",
    "Newsletter",
    "Customer Stories",
];

pub(crate) const VENDOR_SITE: &str = "https://www.lumenmetrics.com";

#[cfg(test)]
mod tests {
    use super::*;
    use winsignal_core::Ts;

    #[test]
    fn ids_are_18_characters_with_the_key_prefix() {
        let id = sf_id("006", 123_456);
        assert_eq!(id.len(), 18);
        assert!(id.starts_with("006Ax"));
        assert_eq!(to_18(&id[..15]), id);
        assert_ne!(sf_id("006", 1), sf_id("006", 2));
    }

    #[test]
    fn timestamps_agree_with_core() {
        for ms in [
            0,
            1_719_705_600_000,
            1_782_777_599_000,
            951_782_400_000 + 13 * HOUR + 7 * MIN + 5 * SEC,
        ] {
            let ts = Ts::from_millis(ms);
            assert_eq!(c_ts(ms), ts.to_rfc3339());
            assert_eq!(date(ms), ts.to_date_string());
            assert_eq!(Ts::parse(&sf_ts(ms)).ok(), Some(ts));
            assert!(sf_ts(ms).ends_with(".000Z"));
        }
    }
}
