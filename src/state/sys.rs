//! The little this module needs to know about the machine, read from `/proc` (Linux).

/// Now, RFC3339 UTC with second precision: `2026-01-02T03:04:05Z`.
pub(super) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub(super) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned())
}

/// The OS user this process runs as: the effective uid mapped through /etc/passwd, else `$USER`,
/// else `uid <n>`.
pub(super) fn user_name() -> String {
    let uid = effective_uid();
    if let Some(name) = uid.and_then(passwd_name) {
        return name;
    }
    if let Some(user) = std::env::var("USER").ok().filter(|u| !u.is_empty()) {
        return user;
    }
    match uid {
        Some(uid) => format!("uid {uid}"),
        None => "unknown-user".to_owned(),
    }
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_effective_uid(&status)
}

/// `Uid:` is followed by the real, effective, saved and filesystem uids.
fn parse_effective_uid(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn passwd_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    parse_passwd_name(&passwd, uid)
}

fn parse_passwd_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let _password = fields.next()?;
        let line_uid: u32 = fields.next()?.parse().ok()?;
        (line_uid == uid && !name.is_empty()).then(|| name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_effective_uid_from_status() {
        let status = "Name:\tcat\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(parse_effective_uid(status), Some(0));
    }

    #[test]
    fn maps_uid_through_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n# comment\npostgres:x:105:110::/var/lib/postgresql:/bin/bash\n";
        assert_eq!(parse_passwd_name(passwd, 105).as_deref(), Some("postgres"));
        assert_eq!(parse_passwd_name(passwd, 0).as_deref(), Some("root"));
        assert_eq!(parse_passwd_name(passwd, 7), None);
    }

    #[test]
    fn now_is_rfc3339() {
        assert!(chrono::DateTime::parse_from_rfc3339(&now_rfc3339()).is_ok());
    }
}
