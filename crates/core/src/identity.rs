//! Identity rules: how e-mails and web domains are normalised, and which domains never identify an
//! account (free-mail providers). The resolver that applies them to records
//! is in `resolve`.

/// Free-mail and consumer ISP domains: an address there says nothing about the employer.
pub const FREEMAIL_DOMAINS: &[&str] = &[
    "aol.com",
    "att.net",
    "bigpond.com",
    "btinternet.com",
    "comcast.net",
    "fastmail.com",
    "gmail.com",
    "gmx.com",
    "gmx.de",
    "gmx.net",
    "googlemail.com",
    "hey.com",
    "hotmail.co.uk",
    "hotmail.com",
    "hotmail.de",
    "hotmail.fr",
    "icloud.com",
    "laposte.net",
    "live.com",
    "mac.com",
    "mail.com",
    "mail.ru",
    "me.com",
    "msn.com",
    "naver.com",
    "orange.fr",
    "outlook.com",
    "pm.me",
    "proton.me",
    "protonmail.com",
    "qq.com",
    "rediffmail.com",
    "sbcglobal.net",
    "t-online.de",
    "tutanota.com",
    "verizon.net",
    "web.de",
    "yahoo.co.in",
    "yahoo.co.jp",
    "yahoo.co.uk",
    "yahoo.com",
    "yahoo.de",
    "yahoo.fr",
    "yandex.ru",
    "ymail.com",
    "zoho.com",
    "163.com",
    "126.com",
];

/// Lower-cased and trimmed; `None` when it is not an address (`x@y` with a dot in the domain).
pub fn normalize_email(raw: &str) -> Option<String> {
    let e = raw
        .trim()
        .trim_start_matches("mailto:")
        .to_ascii_lowercase();
    let (local, domain) = e.split_once('@')?;
    if local.is_empty()
        || !domain.contains('.')
        || domain.contains('@')
        || e.contains(char::is_whitespace)
    {
        return None;
    }
    Some(e)
}

/// The domain part of a normalised address.
pub fn email_domain(email: &str) -> Option<&str> {
    email.rsplit_once('@').map(|(_, d)| d)
}

/// A web domain with scheme, credentials, `www.`, port, path, query and trailing dot stripped,
/// lower-cased; `None` when nothing domain-like is left.
pub fn normalize_domain(raw: &str) -> Option<String> {
    let mut s = raw.trim().to_ascii_lowercase();
    if let Some(i) = s.find("://") {
        s = s[i + 3..].to_string();
    }
    let end = s.find(['/', '?', '#']).unwrap_or(s.len());
    s.truncate(end);
    if let Some(i) = s.rfind('@') {
        s = s[i + 1..].to_string();
    }
    if let Some(i) = s.find(':') {
        s.truncate(i);
    }
    let s = s.trim_end_matches('.');
    let s = s.strip_prefix("www.").unwrap_or(s);
    let valid = s.contains('.')
        && !s.starts_with('.')
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.');
    valid.then(|| s.to_string())
}

pub fn is_freemail(domain: &str) -> bool {
    FREEMAIL_DOMAINS.contains(&domain)
}

/// The domain of an address when it can identify an employer (not free-mail).
pub fn company_domain_of_email(email: &str) -> Option<String> {
    let e = normalize_email(email)?;
    let d = email_domain(&e)?;
    (!is_freemail(d)).then(|| d.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            normalize_email("  Jane.Doe@Acme.COM "),
            Some("jane.doe@acme.com".into())
        );
        assert_eq!(normalize_email("mailto:a@b.io"), Some("a@b.io".into()));
        for bad in [
            "",
            "jane",
            "jane@",
            "@acme.com",
            "jane@localhost",
            "a b@c.com",
        ] {
            assert_eq!(normalize_email(bad), None, "{bad}");
        }
    }

    #[test]
    fn domains() {
        for (raw, want) in [
            ("https://www.Acme.com/about?x=1", "acme.com"),
            ("http://acme.com:8080", "acme.com"),
            ("WWW.ACME.COM.", "acme.com"),
            ("acme.co.uk", "acme.co.uk"),
            ("sub.acme.com/", "sub.acme.com"),
            ("user@acme.com", "acme.com"),
        ] {
            assert_eq!(normalize_domain(raw).as_deref(), Some(want), "{raw}");
        }
        for bad in ["", "localhost", "acme", "http://", "ac me.com"] {
            assert_eq!(normalize_domain(bad), None, "{bad}");
        }
    }

    #[test]
    fn freemail_never_identifies_a_company() {
        assert_eq!(company_domain_of_email("x@gmail.com"), None);
        assert_eq!(
            company_domain_of_email("x@Acme.com"),
            Some("acme.com".into())
        );
        assert!(FREEMAIL_DOMAINS.windows(2).all(|w| w[0] != w[1]));
    }
}
