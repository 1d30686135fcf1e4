//! The `adopted` provider: a Patroni cluster pgdba did not create (`pgdba cluster connect`).
//!
//! pgdba reaches its members through their Patroni REST APIs and PostgreSQL as the spec lists
//! them, reads Patroni's view through the REST API (`GET /cluster`, `GET /config`: pgdba does
//! not reach the cluster's DCS itself), and changes it only through Patroni's API and SQL. It
//! owns no process, directory or port: every write of the provider side is refused, and
//! `destroy` never reaches here (the CLI refuses it with `ADOPTED`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::{Access, Claim, Credentials, Inventory, MemberSlot, Provider, ProviderError, Topology};
use crate::observe::model::{Dcs, InventoryMember};
use crate::spec::model::{AdoptedProvider, ClusterSpec};

/// The provider kind, as the spec and the state name it.
pub const KIND: &str = "adopted";

pub struct Adopted {
    spec: AdoptedProvider,
    topology: Topology,
    /// Patroni's TTL: the DCS counts as healthy while a member has reached it within it.
    ttl: u64,
    http: reqwest::Client,
}

impl Adopted {
    pub fn new(spec: &ClusterSpec, adopted: &AdoptedProvider) -> Adopted {
        let members = adopted
            .members
            .iter()
            .zip(0u32..)
            .map(|(m, index)| {
                let mut placement = serde_json::Map::new();
                placement.insert("host".to_owned(), Value::String(m.host.clone()));
                placement.insert("port".to_owned(), Value::from(m.port));
                placement.insert("api_url".to_owned(), Value::String(m.api_url.clone()));
                MemberSlot {
                    name: m.name.clone(),
                    index,
                    placement,
                }
            })
            .collect();
        Adopted {
            spec: adopted.clone(),
            topology: Topology {
                cluster: spec.metadata.name.clone(),
                dcs_endpoint: "the cluster's own DCS, through Patroni's REST API".to_owned(),
                members,
                // pgdba adds no HBA rule of its own to an adopted cluster.
                admit: Vec::new(),
            },
            ttl: u64::from(spec.spec.patroni.ttl),
            http: super::http_client(),
        }
    }

    fn api_urls(&self) -> Vec<String> {
        self.spec
            .members
            .iter()
            .map(|m| m.api_url.clone())
            .collect()
    }

    async fn patroni_status(&self, api_url: &str) -> Option<Value> {
        let resp = self
            .http
            .get(format!("{api_url}/patroni"))
            .send()
            .await
            .ok()?;
        resp.json().await.ok()
    }

    fn refuse(&self, what: &str) -> ProviderError {
        ProviderError::Config(format!(
            "cluster {} is adopted: pgdba does not {what} (it manages an adopted cluster through Patroni's REST API and SQL only); do it the way the cluster's owner runs it, then plan again",
            self.topology.cluster
        ))
    }
}

#[async_trait::async_trait]
impl Provider for Adopted {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Nothing on this machine is the cluster's alone.
    fn claims(&self) -> Vec<Claim> {
        Vec::new()
    }

    fn location(&self) -> String {
        self.api_urls().join(", ")
    }

    fn remains(&self) -> String {
        "nothing: pgdba created nothing for an adopted cluster".to_owned()
    }

    fn spec_section(&self) -> &'static str {
        "spec.provider.adopted"
    }

    async fn inventory(&self) -> Inventory {
        let answers = futures::future::join_all(
            self.spec
                .members
                .iter()
                .map(|m| async move { (m, self.patroni_status(&m.api_url).await) }),
        )
        .await;
        let members = answers
            .iter()
            .map(|(m, status)| {
                let state = status
                    .as_ref()
                    .and_then(|s| s.get("state"))
                    .and_then(Value::as_str);
                InventoryMember {
                    name: m.name.clone(),
                    // The spec lists the members the cluster has.
                    exists: true,
                    running: status.is_some(),
                    postgres_running: state == Some("running"),
                    // Its Patroni configuration file is its owner's.
                    config_current: None,
                    access: Some(Access {
                        host: m.host.clone(),
                        port: m.port,
                        api_url: m.api_url.clone(),
                        socket_dir: None,
                        data_dir: status
                            .as_ref()
                            .and_then(|s| s.get("data_directory"))
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                    }),
                }
            })
            .collect();
        let healthy = answers
            .iter()
            .filter_map(|(_, s)| s.as_ref())
            .any(|s| self.dcs_recent(s));
        Inventory {
            dcs: Dcs {
                endpoint: self.topology.dcs_endpoint.clone(),
                exists: true,
                // Patroni reads it for pgdba: it runs as far as pgdba can tell when a member
                // has reached it lately.
                running: healthy,
                healthy,
            },
            members,
            pooler: None,
            dcs_location: crate::patroni::dcs::Location::rest_api(self.api_urls()),
            unreachable: Vec::new(),
        }
    }

    async fn dcs_location(&self) -> crate::patroni::dcs::Location {
        crate::patroni::dcs::Location::rest_api(self.api_urls())
    }

    async fn dcs_healthy(&self) -> bool {
        for url in self.api_urls() {
            if let Some(s) = self.patroni_status(&url).await
                && self.dcs_recent(&s)
            {
                return true;
            }
        }
        false
    }

    async fn access(&self, name: &str) -> Result<Access, ProviderError> {
        let m = self
            .spec
            .members
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| ProviderError::UnknownMember(name.to_owned()))?;
        Ok(Access {
            host: m.host.clone(),
            port: m.port,
            api_url: m.api_url.clone(),
            socket_dir: None,
            data_dir: String::new(),
        })
    }

    /// A plan that needs the provider to act cannot be applied to an adopted cluster: said
    /// before it is shown, not half-way through an apply.
    async fn preflight(&self, plan: &crate::plan::Plan) -> Result<(), ProviderError> {
        let provider_actions: Vec<String> = plan
            .changes
            .iter()
            .filter(|c| c.apply_via == crate::diff::ApplyVia::Provider)
            .map(|c| format!("{} ({})", c.address.name(), c.reason))
            .collect();
        if provider_actions.is_empty() {
            return Ok(());
        }
        Err(ProviderError::Config(format!(
            "cluster {} is adopted, and this plan needs processes created, started or removed, which pgdba does not do for an adopted cluster: {}",
            self.topology.cluster,
            provider_actions.join("; ")
        )))
    }

    async fn create_dcs(&self, _lineage: &str, _creds: &Credentials) -> Result<(), ProviderError> {
        Err(self.refuse("create its DCS"))
    }

    async fn start_dcs(&self) -> Result<(), ProviderError> {
        Err(self.refuse("start its DCS"))
    }

    async fn create_member(&self, name: &str, _creds: &Credentials) -> Result<(), ProviderError> {
        Err(self.refuse(&format!("create member {name}")))
    }

    async fn start_member(&self, name: &str, _creds: &Credentials) -> Result<(), ProviderError> {
        Err(self.refuse(&format!("start member {name}")))
    }

    async fn write_member_config(
        &self,
        name: &str,
        _creds: &Credentials,
    ) -> Result<(), ProviderError> {
        Err(self.refuse(&format!("write member {name}'s Patroni configuration file")))
    }

    async fn delete_member(&self, name: &str, _creds: &Credentials) -> Result<(), ProviderError> {
        Err(self.refuse(&format!("remove member {name}")))
    }

    async fn create_pooler(&self, _creds: &Credentials) -> Result<(), ProviderError> {
        Err(self.refuse("run a connection pooler"))
    }

    async fn start_pooler(&self) -> Result<(), ProviderError> {
        Err(self.refuse("run a connection pooler"))
    }

    async fn delete_pooler(&self) -> Result<(), ProviderError> {
        Err(self.refuse("run a connection pooler"))
    }

    async fn destroy(&self, _lineage: &str) -> Result<(), ProviderError> {
        Err(self.refuse("destroy a cluster it did not create"))
    }

    async fn kill_member(&self, name: &str) -> Result<(), ProviderError> {
        Err(self.refuse(&format!("kill member {name}'s processes")))
    }

    async fn freeze_member(&self, name: &str, _frozen: bool) -> Result<(), ProviderError> {
        Err(self.refuse(&format!("stop member {name}'s processes")))
    }

    fn partitions(&self) -> bool {
        false
    }

    async fn isolate_member(&self, name: &str, _isolated: bool) -> Result<(), ProviderError> {
        Err(self.refuse(&format!("cut member {name} off its network")))
    }

    async fn damage_file(
        &self,
        name: &str,
        _file: &str,
        _offset: u64,
        _bytes: &[u8],
    ) -> Result<(), ProviderError> {
        Err(self.refuse(&format!("write into member {name}'s data directory")))
    }

    async fn forget_cluster(&self, _creds: &Credentials) -> Result<(), ProviderError> {
        Err(self.refuse("delete the cluster's keys in its DCS"))
    }

    async fn run_beside(
        &self,
        name: &str,
        _argv: &[String],
        _env: &[(String, String)],
        _within: Duration,
    ) -> Result<super::Ran, ProviderError> {
        Err(self.refuse(&format!(
            "reach member {name}'s host (it knows the member's REST API and PostgreSQL only)"
        )))
    }
}

impl Adopted {
    /// Has this member reached the DCS within Patroni's TTL (`dcs_last_seen`, epoch seconds)?
    fn dcs_recent(&self, status: &Value) -> bool {
        let Some(seen) = status.get("dcs_last_seen").and_then(Value::as_u64) else {
            return false;
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        now.saturating_sub(seen) <= self.ttl.max(10)
    }
}
