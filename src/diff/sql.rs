//! Roles, databases and extensions: the spec against the leader's catalogs. Pure.
//!
//! What pgdba manages is what the spec names, plus pgdba's own roles. An object that leaves
//! the spec is dropped only when its section prunes (`spec.prune`); otherwise it is
//! forgotten: left in place and no longer managed. Objects pgdba never managed are ignored.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::{ApplyVia, Change, ChangeAction, Detail, Managed};
use crate::observe::model::{ObservedDatabase, ObservedRole, SqlObjects};
use crate::spec::model::{ClusterSpec, DatabaseSpec, RoleSpec, SecretRef};

pub const SENSITIVE: &str = "(sensitive)";

pub fn role_address(name: &str) -> super::Address {
    super::Address::Role(name.to_owned())
}
pub fn database_address(name: &str) -> super::Address {
    super::Address::Database(name.to_owned())
}
pub fn extension_address(db: &str, name: &str) -> super::Address {
    super::Address::Extension {
        database: db.to_owned(),
        name: name.to_owned(),
    }
}

/// pgdba's own roles and the attributes they need.
pub fn system_roles(spec: &ClusterSpec) -> Vec<RoleSpec> {
    crate::roles::needed(spec)
        .map(|r| RoleSpec {
            login: r.has("LOGIN"),
            superuser: r.has("SUPERUSER"),
            createdb: r.has("CREATEDB"),
            createrole: r.has("CREATEROLE"),
            replication: r.has("REPLICATION"),
            bypassrls: r.has("BYPASSRLS"),
            ..RoleSpec::named(r.name)
        })
        .collect()
}

pub fn is_system_role(name: &str) -> bool {
    crate::roles::is_system(name)
}

/// The attributes of a role as one comparable JSON object (password excluded).
fn attributes(r: &RoleSpec) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("login".into(), json!(r.login));
    m.insert("superuser".into(), json!(r.superuser));
    m.insert("createdb".into(), json!(r.createdb));
    m.insert("createrole".into(), json!(r.createrole));
    m.insert("replication".into(), json!(r.replication));
    m.insert("bypassrls".into(), json!(r.bypassrls));
    m.insert("inherit".into(), json!(r.inherit));
    m.insert("connection_limit".into(), json!(r.connection_limit));
    let mut roles: Vec<&String> = r.in_roles.iter().collect();
    roles.sort();
    roles.dedup();
    m.insert("in_roles".into(), json!(roles));
    m.insert(
        "valid_until".into(),
        json!(
            r.valid_until
                .clone()
                .unwrap_or_else(|| "infinity".to_owned())
        ),
    );
    m
}

fn observed_attributes(o: &ObservedRole) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("login".into(), json!(o.login));
    m.insert("superuser".into(), json!(o.superuser));
    m.insert("createdb".into(), json!(o.createdb));
    m.insert("createrole".into(), json!(o.createrole));
    m.insert("replication".into(), json!(o.replication));
    m.insert("bypassrls".into(), json!(o.bypassrls));
    m.insert("inherit".into(), json!(o.inherit));
    m.insert("connection_limit".into(), json!(o.connection_limit));
    m.insert("in_roles".into(), json!(o.member_of));
    m.insert("valid_until".into(), json!(epoch_text(o.valid_until)));
    m
}

fn epoch_text(e: Option<f64>) -> String {
    match e {
        None => "infinity".to_owned(),
        Some(e) if e.is_infinite() => "infinity".to_owned(),
        Some(e) => chrono::DateTime::from_timestamp(e as i64, 0)
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_else(|| e.to_string()),
    }
}

fn same_attribute(key: &str, want: &Value, have: &Value) -> bool {
    if key == "valid_until" {
        let parse = |v: &Value| v.as_str().and_then(crate::spec::valid_until_epoch);
        return match (parse(want), parse(have)) {
            (Some(a), Some(b)) => a == b || (a - b).abs() < 1.0,
            _ => want == have,
        };
    }
    want == have
}

/// Which role attributes differ; for system roles only the ones pgdba needs (it does not
/// fight Patroni over the rest).
fn role_changes(
    r: &RoleSpec,
    o: &ObservedRole,
    system: bool,
) -> (Map<String, Value>, Map<String, Value>) {
    let want = attributes(r);
    let have = observed_attributes(o);
    let mut before = Map::new();
    let mut after = Map::new();
    for (k, w) in &want {
        if system && !matches!(k.as_str(), "login" | "superuser" | "replication") {
            continue;
        }
        if system && !w.as_bool().unwrap_or(false) {
            continue; // a system role may have more than pgdba needs
        }
        let h = have.get(k).unwrap_or(&Value::Null);
        if !same_attribute(k, w, h) {
            before.insert(k.clone(), h.clone());
            after.insert(k.clone(), w.clone());
        }
    }
    (before, after)
}

/// Every role change: the spec's roles, pgdba's own, and those that left the spec.
pub fn roles(
    spec: &ClusterSpec,
    managed: &Managed,
    sql: &SqlObjects,
    out: &mut Vec<Change>,
    forgotten: &mut Vec<super::Address>,
) {
    let system = system_roles(spec);
    let desired = system
        .iter()
        .map(|r| (r, true))
        .chain(spec.spec.roles.iter().map(|r| (r, false)));
    for (r, is_system) in desired {
        let address = role_address(&r.name);
        let suffix = if is_system { " (managed by pgdba)" } else { "" };
        match sql.roles.get(&r.name) {
            // Patroni creates its own at bootstrap.
            None if is_system && crate::roles::system(&r.name).is_some_and(|s| s.by_patroni) => {}
            None => {
                let mut after = attributes(r);
                if r.password.is_some() {
                    after.insert("password".into(), json!(SENSITIVE));
                }
                out.push(Change {
                    address,
                    action: ChangeAction::Create,
                    before: None,
                    after: Some(Value::Object(after)),
                    apply_via: ApplyVia::Sql,
                    reason: "in the spec, not in the cluster".to_owned(),
                    data_loss: None,
                    warning: None,
                    operation: None,
                    detail: Detail::Role {
                        password: r.password.is_some(),
                        superuser: r.superuser,
                    },
                });
            }
            Some(o) => {
                let (mut before, mut after) = role_changes(r, o, is_system);
                let mut reasons = Vec::new();
                if !after.is_empty() {
                    reasons.push(format!("differs from the cluster{suffix}"));
                }
                let wants_password = r.password.is_some() || is_system;
                if wants_password && o.password_matches == Some(false) {
                    before.insert("password".into(), json!(SENSITIVE));
                    after.insert("password".into(), json!(SENSITIVE));
                    let source = match &r.password {
                        Some(SecretRef::Env(name)) => format!("environment variable {name}"),
                        Some(SecretRef::File(path)) => format!("file {}", path.display()),
                        None => "pgdba's secrets file".to_owned(),
                    };
                    reasons.push(format!(
                        "the stored password does not match the one in {source} (sensitive value changed){suffix}"
                    ));
                }
                if !after.is_empty() {
                    let detail = Detail::Role {
                        password: after.contains_key("password"),
                        superuser: after.contains_key("superuser"),
                    };
                    out.push(Change {
                        address,
                        action: ChangeAction::Update,
                        before: Some(Value::Object(before)),
                        after: Some(Value::Object(after)),
                        apply_via: ApplyVia::Sql,
                        reason: reasons.join("; "),
                        data_loss: None,
                        warning: None,
                        operation: None,
                        detail,
                    });
                }
            }
        }
    }
    let in_spec: BTreeSet<&str> = spec.spec.roles.iter().map(|r| r.name.as_str()).collect();
    for name in managed
        .roles
        .iter()
        .filter(|n| !in_spec.contains(n.as_str()))
    {
        let Some(o) = sql.roles.get(name) else {
            continue; // gone already; the state forgets it
        };
        if spec.spec.prune.roles {
            out.push(Change {
                address: role_address(name),
                action: ChangeAction::Delete,
                before: Some(json!({ "exists": true })),
                after: None,
                apply_via: ApplyVia::Sql,
                reason: "left the spec, and spec.prune.roles is on".to_owned(),
                data_loss: None,
                warning: role_drop_blocker(name, o),
                operation: None,
                detail: Detail::None,
            });
        } else {
            forgotten.push(role_address(name));
        }
    }
}

fn database_desired(d: &DatabaseSpec) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(
        "owner".into(),
        json!(d.owner.clone().unwrap_or_else(|| "postgres".to_owned())),
    );
    m.insert(
        "encoding".into(),
        json!(
            d.encoding
                .clone()
                .unwrap_or_else(|| "UTF8".to_owned())
                .to_uppercase()
        ),
    );
    if let Some(l) = &d.locale {
        m.insert("locale".into(), json!(l));
    }
    m
}

fn size_text(bytes: i64) -> String {
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} GB", b / 1024.0 / 1024.0 / 1024.0)
    } else if b >= 1024.0 * 1024.0 {
        format!("{:.1} MB", b / 1024.0 / 1024.0)
    } else {
        format!("{:.0} kB", b / 1024.0)
    }
}

fn loss(name: &str, o: &ObservedDatabase) -> String {
    match o.size_bytes {
        Some(b) => format!("database {name} and everything in it ({})", size_text(b)),
        None => format!("database {name} and everything in it"),
    }
}

/// Normalized encoding/locale names (`utf8` = `UTF-8` = `UTF8`).
fn norm(s: &str) -> String {
    s.to_uppercase().replace('-', "")
}

pub fn databases(
    spec: &ClusterSpec,
    managed: &Managed,
    sql: &SqlObjects,
    out: &mut Vec<Change>,
    forgotten: &mut Vec<super::Address>,
) {
    for d in &spec.spec.databases {
        let address = database_address(&d.name);
        let want = database_desired(d);
        match sql.databases.get(&d.name) {
            None => out.push(Change {
                address,
                action: ChangeAction::Create,
                before: None,
                after: Some(Value::Object(want)),
                apply_via: ApplyVia::Sql,
                reason: "in the spec, not in the cluster".to_owned(),
                data_loss: None,
                warning: None,
                operation: None,
                detail: Detail::None,
            }),
            Some(o) => {
                let encoding_differs =
                    norm(&o.encoding) != norm(want["encoding"].as_str().unwrap_or("UTF8"));
                let locale_differs = d
                    .locale
                    .as_ref()
                    .is_some_and(|l| norm(l) != norm(&o.collate) || norm(l) != norm(&o.ctype));
                let mut before = Map::new();
                let mut after = Map::new();
                if o.owner != want["owner"].as_str().unwrap_or("postgres") {
                    before.insert("owner".into(), json!(o.owner));
                    after.insert("owner".into(), want["owner"].clone());
                }
                if encoding_differs {
                    before.insert("encoding".into(), json!(o.encoding));
                    after.insert("encoding".into(), want["encoding"].clone());
                }
                if locale_differs {
                    before.insert("locale".into(), json!(o.collate));
                    after.insert("locale".into(), want["locale"].clone());
                }
                if encoding_differs || locale_differs {
                    // PostgreSQL cannot change either in place: the database is made again.
                    out.push(Change {
                        address,
                        action: ChangeAction::Replace,
                        before: Some(Value::Object(before)),
                        after: Some(Value::Object(after)),
                        apply_via: ApplyVia::Sql,
                        reason: "encoding and locale are fixed at creation; the database must be dropped and created again".to_owned(),
                        data_loss: Some(loss(&d.name, o)),
                        warning: None,
                        operation: None,
                        detail: Detail::None,
                    });
                } else if !after.is_empty() {
                    out.push(Change {
                        address,
                        action: ChangeAction::Update,
                        before: Some(Value::Object(before)),
                        after: Some(Value::Object(after)),
                        apply_via: ApplyVia::Sql,
                        reason: "differs from the cluster".to_owned(),
                        data_loss: None,
                        warning: None,
                        operation: None,
                        detail: Detail::None,
                    });
                }
            }
        }
        // A database made again has none of its extensions: all are created anew.
        let replaced = out.last().is_some_and(|c| {
            c.address == database_address(&d.name) && c.action == ChangeAction::Replace
        });
        let observed = if replaced {
            None
        } else {
            sql.databases.get(&d.name)
        };
        extensions(
            d,
            managed,
            observed,
            spec.spec.prune.extensions,
            out,
            forgotten,
        );
    }
    for name in databases_left(spec, managed) {
        let Some(o) = sql.databases.get(name) else {
            continue;
        };
        if spec.spec.prune.databases {
            out.push(Change {
                address: database_address(name),
                action: ChangeAction::Delete,
                before: Some(json!({ "owner": o.owner, "size_bytes": o.size_bytes })),
                after: None,
                apply_via: ApplyVia::Sql,
                reason: "left the spec, and spec.prune.databases is on".to_owned(),
                data_loss: Some(loss(name, o)),
                warning: None,
                operation: None,
                detail: Detail::None,
            });
        } else {
            forgotten.push(database_address(name));
        }
    }
}

/// Why `DROP ROLE` will fail: PostgreSQL refuses while the role owns objects or holds
/// privileges in any database.
fn role_drop_blocker(name: &str, o: &ObservedRole) -> Option<String> {
    let plural = |n: i64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut what = Vec::new();
    if o.owned_objects > 0 {
        what.push(format!(
            "owns {}",
            plural(o.owned_objects, "object", "objects")
        ));
    }
    if o.privileges > 0 {
        what.push(format!(
            "holds {}",
            plural(o.privileges, "privilege", "privileges")
        ));
    }
    (!what.is_empty()).then(|| {
        format!(
            "DROP ROLE {name} will fail: it {} (in some database); run REASSIGN OWNED BY {name} TO ... and DROP OWNED BY {name} in each database first",
            what.join(" and ")
        )
    })
}

/// Managed databases that left the spec: dropped with `spec.prune.databases`, else forgotten.
pub fn databases_left<'m>(spec: &ClusterSpec, managed: &'m Managed) -> Vec<&'m String> {
    let in_spec: BTreeSet<&str> = spec
        .spec
        .databases
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    managed
        .databases
        .iter()
        .filter(|n| !in_spec.contains(n.as_str()))
        .collect()
}

/// A database's extensions. One pgdba managed that left the spec is dropped with
/// `spec.prune.extensions` (a data loss when table columns use its types), else forgotten.
fn extensions(
    d: &DatabaseSpec,
    managed: &Managed,
    observed: Option<&ObservedDatabase>,
    prune: bool,
    out: &mut Vec<Change>,
    forgotten: &mut Vec<super::Address>,
) {
    let empty = BTreeMap::new();
    // A database that does not exist yet has no extensions; one not looked into is skipped.
    let installed = match observed {
        None => &empty,
        Some(o) => match &o.extensions {
            Some(e) => e,
            None => return,
        },
    };
    for e in &d.extensions {
        let address = extension_address(&d.name, &e.name);
        let mut want = Map::new();
        if let Some(v) = &e.version {
            want.insert("version".into(), json!(v));
        }
        if let Some(s) = &e.schema {
            want.insert("schema".into(), json!(s));
        }
        match installed.get(&e.name) {
            None => out.push(Change {
                address,
                action: ChangeAction::Create,
                before: None,
                after: Some(Value::Object(want)),
                apply_via: ApplyVia::Sql,
                reason: format!("in the spec, not in database {}", d.name),
                data_loss: None,
                warning: None,
                operation: None,
                detail: Detail::None,
            }),
            Some(i) => {
                let mut before = Map::new();
                let mut after = Map::new();
                if e.version.as_ref().is_some_and(|v| *v != i.version) {
                    before.insert("version".into(), json!(i.version));
                    after.insert("version".into(), want["version"].clone());
                }
                if e.schema.as_ref().is_some_and(|s| *s != i.schema) {
                    before.insert("schema".into(), json!(i.schema));
                    after.insert("schema".into(), want["schema"].clone());
                }
                if !after.is_empty() {
                    out.push(Change {
                        address,
                        action: ChangeAction::Update,
                        before: Some(Value::Object(before)),
                        after: Some(Value::Object(after)),
                        apply_via: ApplyVia::Sql,
                        reason: "differs from the installed extension".to_owned(),
                        data_loss: None,
                        warning: None,
                        operation: None,
                        detail: Detail::None,
                    });
                }
            }
        }
    }
    let in_spec: BTreeSet<&str> = d.extensions.iter().map(|e| e.name.as_str()).collect();
    if let Some(names) = managed.extensions.get(&d.name) {
        for name in names.iter().filter(|n| !in_spec.contains(n.as_str())) {
            let Some(i) = installed.get(name) else {
                continue;
            };
            let address = extension_address(&d.name, name);
            if !prune {
                forgotten.push(address);
                continue;
            }
            let columns = i.dependent_columns;
            out.push(Change {
                address,
                action: ChangeAction::Delete,
                before: Some(json!({ "version": i.version, "schema": i.schema })),
                after: None,
                apply_via: ApplyVia::Sql,
                reason: format!(
                    "left the spec of database {}, and spec.prune.extensions is on",
                    d.name
                ),
                data_loss: (columns > 0).then(|| {
                    format!(
                        "extension {name} in database {}: {columns} table column{} of its types, dropped with it",
                        d.name,
                        if columns == 1 { "" } else { "s" }
                    )
                }),
                warning: None,
                operation: None,
                detail: Detail::None,
            });
        }
    }
}
