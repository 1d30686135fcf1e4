//! What a change or an action is about, typed: `member.demo-2`, `pg_parameter.work_mem`,
//! `override.demo-1.shared_buffers`. Written and read as those strings (in plans, saved plans,
//! fingerprints); an unknown prefix is an error, never taken for a parameter.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Address {
    /// The cluster's DCS (`dcs.etcd`).
    Dcs,
    /// Patroni's dynamic configuration in the DCS, as an action's target (`dcs.config`).
    DcsConfig,
    /// The HBA rules in the DCS, as an action's target (`dcs.hba`).
    DcsHba,
    /// A member (`member.demo-1`).
    Member(String),
    /// Who leads (`patroni.leader`).
    Leader,
    /// A Patroni dynamic setting (`patroni.ttl`).
    Patroni(String),
    /// A GUC in the DCS (`pg_parameter.work_mem`; custom ones hold dots).
    Parameter(String),
    /// A member's `ALTER SYSTEM` override of a GUC (`override.demo-1.work_mem`).
    Override {
        member: String,
        parameter: String,
    },
    Role(String),
    Database(String),
    /// An extension in a database (`extension.appdb.citext`).
    Extension {
        database: String,
        name: String,
    },
    /// The HBA rules (`hba`).
    Hba,
    /// The connection pooler (`pooler.pgbouncer`).
    Pooler,
    /// The backup repository's stanza of the cluster (`backup.stanza`).
    BackupStanza,
    /// The backup schedule `backup schedule --install` put on the machine
    /// (`backup.schedule`): only drift reports it; no plan changes it.
    BackupSchedule,
}

/// The kind of object an address names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dcs,
    Member,
    Patroni,
    PgParameter,
    Role,
    Database,
    Extension,
    Hba,
    /// A member's `ALTER SYSTEM` (postgresql.auto.conf) overriding a managed GUC.
    Override,
    Pooler,
    Backup,
}

impl Address {
    pub fn kind(&self) -> Kind {
        match self {
            Address::Dcs | Address::DcsConfig | Address::DcsHba => Kind::Dcs,
            Address::Member(_) => Kind::Member,
            Address::Leader | Address::Patroni(_) => Kind::Patroni,
            Address::Parameter(_) => Kind::PgParameter,
            Address::Override { .. } => Kind::Override,
            Address::Role(_) => Kind::Role,
            Address::Database(_) => Kind::Database,
            Address::Extension { .. } => Kind::Extension,
            Address::Hba => Kind::Hba,
            Address::Pooler => Kind::Pooler,
            Address::BackupStanza | Address::BackupSchedule => Kind::Backup,
        }
    }

    /// The member it names, for a member address.
    pub fn member(&self) -> Option<&str> {
        match self {
            Address::Member(m) => Some(m),
            _ => None,
        }
    }

    /// The object's name within its kind, as it follows the prefix (`demo-2`, `work_mem`,
    /// `demo-1.work_mem`, `appdb.citext`).
    pub fn name(&self) -> String {
        let text = self.to_string();
        text.split_once('.')
            .map_or_else(String::new, |(_, n)| n.to_owned())
    }
}

/// Honours width and alignment (`{:<24}`), as the plan's columns need.
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Address::Dcs => "dcs.etcd".to_owned(),
            Address::DcsConfig => "dcs.config".to_owned(),
            Address::DcsHba => "dcs.hba".to_owned(),
            Address::Member(m) => format!("member.{m}"),
            Address::Leader => "patroni.leader".to_owned(),
            Address::Patroni(k) => format!("patroni.{k}"),
            Address::Parameter(p) => format!("pg_parameter.{p}"),
            Address::Override { member, parameter } => format!("override.{member}.{parameter}"),
            Address::Role(r) => format!("role.{r}"),
            Address::Database(d) => format!("database.{d}"),
            Address::Extension { database, name } => format!("extension.{database}.{name}"),
            Address::Hba => "hba".to_owned(),
            Address::Pooler => "pooler.pgbouncer".to_owned(),
            Address::BackupStanza => "backup.stanza".to_owned(),
            Address::BackupSchedule => "backup.schedule".to_owned(),
        };
        f.pad(&text)
    }
}

/// Why a string is not an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not an address pgdba knows (member., pg_parameter., patroni., override., role., database., extension., dcs.etcd, hba, pooler.pgbouncer)"
)]
pub struct UnknownAddress(pub String);

impl FromStr for Address {
    type Err = UnknownAddress;

    fn from_str(s: &str) -> Result<Address, UnknownAddress> {
        let unknown = || UnknownAddress(s.to_owned());
        let nonempty = |v: &str| (!v.is_empty()).then(|| v.to_owned()).ok_or_else(unknown);
        match s {
            "dcs.etcd" => return Ok(Address::Dcs),
            "dcs.config" => return Ok(Address::DcsConfig),
            "dcs.hba" => return Ok(Address::DcsHba),
            "patroni.leader" => return Ok(Address::Leader),
            "hba" => return Ok(Address::Hba),
            "pooler.pgbouncer" => return Ok(Address::Pooler),
            "backup.stanza" => return Ok(Address::BackupStanza),
            "backup.schedule" => return Ok(Address::BackupSchedule),
            _ => {}
        }
        let (prefix, rest) = s.split_once('.').ok_or_else(unknown)?;
        let pair = || -> Result<(String, String), UnknownAddress> {
            let (a, b) = rest.split_once('.').ok_or_else(unknown)?;
            Ok((nonempty(a)?, nonempty(b)?))
        };
        Ok(match prefix {
            "member" => Address::Member(nonempty(rest)?),
            "patroni" => Address::Patroni(nonempty(rest)?),
            "pg_parameter" => Address::Parameter(nonempty(rest)?),
            "role" => Address::Role(nonempty(rest)?),
            "database" => Address::Database(nonempty(rest)?),
            "override" => {
                let (member, parameter) = pair()?;
                Address::Override { member, parameter }
            }
            "extension" => {
                let (database, name) = pair()?;
                Address::Extension { database, name }
            }
            _ => return Err(unknown()),
        })
    }
}

/// An address equals its text (`member.demo-2`).
impl PartialEq<&str> for Address {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

impl PartialEq<str> for Address {
    fn eq(&self, other: &str) -> bool {
        other.parse::<Address>().is_ok_and(|a| a == *self)
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Address, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_address_reads_back_as_itself() {
        for text in [
            "dcs.etcd",
            "dcs.config",
            "dcs.hba",
            "member.demo-2",
            "patroni.leader",
            "patroni.ttl",
            "pg_parameter.work_mem",
            "pg_parameter.pg_stat_statements.max",
            "override.demo-1.shared_buffers",
            "override.demo-1.auto_explain.log_min_duration",
            "role.app",
            "database.appdb",
            "extension.appdb.citext",
            "hba",
        ] {
            let a: Address = text.parse().unwrap();
            assert_eq!(a.to_string(), text);
        }
        assert_eq!(
            "pg_parameter.pg_stat_statements.max"
                .parse::<Address>()
                .unwrap()
                .kind(),
            Kind::PgParameter
        );
        assert_eq!(
            "override.demo-1.work_mem".parse::<Address>().unwrap(),
            Address::Override {
                member: "demo-1".into(),
                parameter: "work_mem".into()
            }
        );
    }

    #[test]
    fn padding_applies_to_the_whole_address() {
        let a: Address = "role.app".parse().unwrap();
        assert_eq!(format!("[{a:<12}]"), "[role.app    ]");
    }

    #[test]
    fn an_unknown_prefix_is_an_error_not_a_parameter() {
        for bad in [
            "work_mem",
            "gucs.work_mem",
            "member.",
            "override.demo-1",
            "",
            "dcs.other",
        ] {
            assert!(bad.parse::<Address>().is_err(), "{bad}");
        }
    }
}
