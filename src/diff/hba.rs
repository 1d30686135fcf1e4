//! `pg_hba.conf`: pgdba's own rules first, then the spec's (or a default), kept by Patroni in
//! the DCS (`postgresql.pg_hba`) so every member gets the same file; observed per member from
//! `pg_hba_file_rules`. Pure.

use serde_json::Value;

use super::{ApplyVia, Change, ChangeAction, Detail};
use crate::observe::model::{HbaLine, Observation};
use crate::spec::model::ClusterSpec;

/// The first line of the list pgdba writes; comment lines are ignored when comparing.
pub const HEADER: &str = "# managed by pgdba";

/// `pg_ident.conf`: which OS users may connect as `postgres` over the socket by peer
/// authentication. pgdba observes that way, without the cost of SCRAM.
pub const IDENT: [&str; 2] = ["pgdba postgres postgres", "pgdba root postgres"];

pub fn desired_ident() -> Vec<String> {
    IDENT.iter().map(|s| (*s).to_owned()).collect()
}

/// The rule lines the cluster should have, without the header: pgdba's own roles' (from
/// `roles::SYSTEM_ROLES`, over the socket and from the networks `admit` names), then the
/// spec's, or when the spec has none, every role with a password over the socket and from
/// those networks.
pub fn desired_rules(spec: &ClusterSpec, admit: &[String]) -> Vec<String> {
    let mut lines = crate::roles::hba_rules(spec, admit);
    if spec.spec.hba.is_empty() {
        lines.push("local all all scram-sha-256".to_owned());
        lines.extend(
            admit
                .iter()
                .map(|n| format!("host all all {n} scram-sha-256")),
        );
    } else {
        lines.extend(spec.spec.hba.iter().map(|r| r.line()));
    }
    lines
}

/// What pgdba writes to the DCS: the header, then the rules. `generation` > 0 varies the
/// header so that Patroni rewrites every member's file although the rules are the same.
pub fn dcs_lines(spec: &ClusterSpec, admit: &[String], generation: u64) -> Vec<String> {
    let header = if generation == 0 {
        HEADER.to_owned()
    } else {
        format!("{HEADER} (rewrite {generation})")
    };
    std::iter::once(header)
        .chain(desired_rules(spec, admit))
        .collect()
}

fn without_comments(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// A rule line as `pg_hba_file_rules` shows it.
pub fn parse_line(line: &str) -> Option<HbaLine> {
    let t: Vec<&str> = line.split_whitespace().collect();
    let list = |s: &str| s.split(',').map(str::to_owned).collect::<Vec<_>>();
    let (kind, db, user) = (*t.first()?, *t.get(1)?, *t.get(2)?);
    let (address, netmask, method) = if kind == "local" {
        (None, None, *t.get(3)?)
    } else {
        let a = *t.get(3)?;
        let (address, netmask) = match crate::spec::parse_cidr(a) {
            Some((addr, mask)) => (Some(addr), Some(mask)),
            None => (Some(a.to_owned()), None),
        };
        (address, netmask, *t.get(4)?)
    };
    Some(HbaLine {
        kind: kind.to_owned(),
        database: list(db),
        user: list(user),
        address,
        netmask,
        method: method.to_owned(),
        error: None,
    })
}

/// Does a member's `pg_hba_file_rules` hold exactly these rules, in order?
pub fn member_matches(observed: &[HbaLine], rules: &[String]) -> bool {
    let want: Vec<Option<HbaLine>> = without_comments(rules)
        .iter()
        .map(|l| parse_line(l))
        .collect();
    observed.len() == want.len()
        && observed.iter().zip(&want).all(|(o, w)| {
            w.as_ref().is_some_and(|w| {
                o.error.is_none()
                    && w == &HbaLine {
                        error: None,
                        ..o.clone()
                    }
            })
        })
}

fn render(o: &HbaLine) -> String {
    let mut parts = vec![o.kind.clone(), o.database.join(","), o.user.join(",")];
    if let Some(a) = &o.address {
        parts.push(match &o.netmask {
            Some(m) => format!("{a} {m}"),
            None => a.clone(),
        });
    }
    parts.push(o.method.clone());
    parts.join(" ")
}

pub fn diff(spec: &ClusterSpec, admit: &[String], obs: &Observation, out: &mut Vec<Change>) {
    let Some(view) = obs.patroni.as_ref().filter(|v| v.config.is_some()) else {
        return;
    };
    let rules = desired_rules(spec, admit);
    let in_dcs = view.dcs_lines("pg_hba");
    let ident_in_dcs = view.dcs_lines("pg_ident");
    // pgdba's peer map is for the clusters it runs; an adopted cluster's pg_ident is its
    // owner's.
    if !spec.is_adopted()
        && without_comments(&ident_in_dcs) != desired_ident()
        && without_comments(&in_dcs) == rules
    {
        out.push(Change {
            address: super::Address::Hba,
            action: ChangeAction::Update,
            before: Some(Value::String(
                without_comments(&ident_in_dcs).join("\n") + "\n",
            )),
            after: Some(Value::String(desired_ident().join("\n") + "\n")),
            apply_via: ApplyVia::Reload,
            reason: "the DCS's pg_ident differs from what pgdba needs".to_owned(),
            data_loss: None,
            warning: None,
            operation: None,
            detail: Detail::Hba { rewrite: false },
        });
        return;
    }
    if without_comments(&in_dcs) != rules {
        out.push(Change {
            address: super::Address::Hba,
            action: if in_dcs.is_empty() {
                ChangeAction::Create
            } else {
                ChangeAction::Update
            },
            before: (!in_dcs.is_empty())
                .then(|| Value::String(without_comments(&in_dcs).join("\n") + "\n")),
            after: Some(Value::String(rules.join("\n") + "\n")),
            apply_via: ApplyVia::Reload,
            reason: "the DCS's pg_hba differs from the spec".to_owned(),
            data_loss: None,
            warning: None,
            operation: None,
            detail: Detail::Hba { rewrite: false },
        });
        return;
    }
    // The DCS is right; a member's file edited by hand is rewritten by a new header.
    let differing: Vec<(&String, &Vec<HbaLine>)> = obs
        .members
        .iter()
        .filter_map(|(n, m)| Some((n, m.hba.as_ref()?)))
        .filter(|(_, hba)| !member_matches(hba, &rules))
        .collect();
    if let Some((_, first)) = differing.first() {
        let names: Vec<&str> = differing.iter().map(|(n, _)| n.as_str()).collect();
        out.push(Change {
            address: super::Address::Hba,
            action: ChangeAction::Update,
            before: Some(Value::String(
                first.iter().map(render).collect::<Vec<_>>().join("\n") + "\n",
            )),
            after: Some(Value::String(rules.join("\n") + "\n")),
            apply_via: ApplyVia::Reload,
            reason: format!(
                "pg_hba_file_rules differs from the spec on member {}",
                names.join(", ")
            ),
            data_loss: None,
            warning: None,
            operation: None,
            detail: Detail::Hba { rewrite: true },
        });
    }
}
