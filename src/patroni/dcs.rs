//! Patroni's keys in the DCS, read from the DCS itself rather than through Patroni.
//!
//! Patroni's `GET /config` answers from the cluster view it cached at its last HA loop, and
//! `GET /cluster` from a watch-fed cache: both can lag a write that already finished (a
//! `patronictl edit-config` a moment ago). pgdba reads the cluster's keys from etcd with one
//! linearizable range request (`POST /v3/kv/range` without `serializable`), which etcd answers
//! only after its leader confirms it still leads: every write that completed before the request
//! was sent is in the answer. This is what plans are built from and what saved plans are checked
//! against.
//!
//! The keys are Patroni's (`dcs/__init__.py`, `dcs/etcd3.py`): `config`, `leader`, `status`
//! (or the legacy `optime/leader`), `sync` and `members/<name>`, under
//! `<namespace><scope>/`. The view built from them is the one `GET /cluster` builds
//! (`utils.cluster_as_json`): the member the leader key names leads, every other member is a
//! replica whose state is its replication state when it has one, and a replica's lag is the
//! leader's last known WAL position minus the member's.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Value, json};

use super::{PatroniError, Reader, answer};
use crate::observe::model::{PatroniMember, PatroniView, Role};

/// Patroni's default namespace, the one pgdba's members use.
pub const NAMESPACE: &str = "/service/";

/// Where one cluster's keys are: the etcd endpoints to ask (in turn, until one answers) and
/// the key prefix, `<namespace><scope>/`.
#[derive(Clone, PartialEq, Eq)]
pub struct Location {
    pub endpoints: Vec<String>,
    pub prefix: String,
    /// etcd's user and password, when etcd authenticates.
    pub auth: Option<(String, String)>,
    /// Members' REST APIs to read Patroni's view from instead, for a cluster whose DCS pgdba
    /// does not reach itself (an adopted one): used when there are no `endpoints`.
    pub api_urls: Vec<String>,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Location")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.prefix)
            .field("auth", &self.auth.as_ref().map(|(u, _)| (u, "(sensitive)")))
            .field("api_urls", &self.api_urls)
            .finish()
    }
}

impl Location {
    /// Patroni's view through the members' REST APIs (`GET /cluster`, `GET /config`).
    pub fn rest_api(api_urls: Vec<String>) -> Location {
        Location {
            endpoints: Vec::new(),
            prefix: String::new(),
            auth: None,
            api_urls,
        }
    }

    /// Patroni's `etcd3` DCS: keys under `namespace` (`/service/`) and the cluster's scope.
    pub fn etcd3(endpoints: Vec<String>, namespace: &str, scope: &str) -> Location {
        let namespace = namespace.trim_end_matches('/');
        Location {
            endpoints,
            prefix: format!("{namespace}/{scope}/"),
            auth: None,
            api_urls: Vec::new(),
        }
    }

    /// The same, read as `user` with `password` (etcd with authentication on).
    pub fn with_auth(mut self, auth: Option<(&str, &str)>) -> Location {
        self.auth = auth.map(|(u, p)| (u.to_owned(), p.to_owned()));
        self
    }
}

/// An etcd authentication token for `user` (`POST /v3/auth/authenticate`), for the
/// `Authorization` header of the requests that follow.
pub async fn etcd_token(
    http: &reqwest::Client,
    endpoint: &str,
    user: &str,
    password: &str,
) -> Result<String, PatroniError> {
    let url = format!("{}/v3/auth/authenticate", endpoint.trim_end_matches('/'));
    let a = answer(
        &url,
        http.post(&url)
            .json(&json!({ "name": user, "password": password })),
    )
    .await?;
    let v: Value = serde_json::from_str(&a.body).unwrap_or(Value::Null);
    v.get("token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(PatroniError::Status {
            url,
            status: a.status,
            body: v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no token")
                .to_owned(),
        })
}

/// The end of etcd's range for every key starting with `prefix`: the prefix with its last
/// byte incremented.
pub fn range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff: etcd's "\0" means "to the end of the keyspace".
    vec![0]
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// One key: its value and the revision of its last write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub value: String,
    pub mod_revision: i64,
}

impl Reader {
    /// Every key of the cluster, keyed relative to its prefix (`config`, `members/demo-0`),
    /// read linearizably from the first endpoint that answers.
    pub async fn dcs_nodes(&self, at: &Location) -> Result<BTreeMap<String, Node>, PatroniError> {
        let body = json!({
            "key": b64(at.prefix.as_bytes()),
            "range_end": b64(&range_end(at.prefix.as_bytes())),
        });
        let mut last = None;
        for endpoint in &at.endpoints {
            let url = format!("{}/v3/kv/range", endpoint.trim_end_matches('/'));
            let mut req = self.http.post(&url).json(&body);
            if let Some((user, password)) = &at.auth {
                match etcd_token(&self.http, endpoint, user, password).await {
                    Ok(token) => req = req.header("Authorization", token),
                    Err(e) => {
                        last = Some(e);
                        continue;
                    }
                }
            }
            // A range is a read: the one POST a `Reader` sends (besides etcd's login).
            let sent = answer(&url, req).await;
            match sent.and_then(|a| {
                serde_json::from_str::<Value>(&a.body).map_err(|_| PatroniError::Status {
                    url: url.clone(),
                    status: a.status,
                    body: a.body,
                })
            }) {
                Ok(v) => return parse_range(&url, &at.prefix, &v),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| PatroniError::Shape {
            url: String::new(),
            what: "no DCS endpoint to ask".to_owned(),
        }))
    }

    /// The cluster as Patroni's keys in the DCS describe it, read linearizably.
    pub async fn dcs_view(&self, at: &Location) -> Result<PatroniView, PatroniError> {
        if at.endpoints.is_empty() && !at.api_urls.is_empty() {
            return self.rest_view(&at.api_urls).await;
        }
        Ok(view_from_nodes(&self.dcs_nodes(at).await?))
    }
}

fn parse_range(url: &str, prefix: &str, v: &Value) -> Result<BTreeMap<String, Node>, PatroniError> {
    let shape = |what: &str| PatroniError::Shape {
        url: url.to_owned(),
        what: what.to_owned(),
    };
    if v.get("header").is_none() {
        return Err(shape("no `header` in etcd's range answer"));
    }
    let mut out = BTreeMap::new();
    // etcd leaves `kvs` out when no key matches.
    for kv in v.get("kvs").and_then(Value::as_array).into_iter().flatten() {
        let decode = |field: &str| -> Result<String, PatroniError> {
            let text = kv.get(field).and_then(Value::as_str).unwrap_or_default();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| shape("a key or value that is not base64"))?;
            String::from_utf8(bytes).map_err(|_| shape("a key or value that is not UTF-8"))
        };
        let key = decode("key")?;
        let Some(rel) = key.strip_prefix(prefix) else {
            continue;
        };
        // int64 fields come as strings in etcd's JSON gateway.
        let mod_revision = match kv.get("mod_revision") {
            Some(Value::String(s)) => s.parse().unwrap_or(0),
            Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
            _ => 0,
        };
        out.insert(
            rel.to_owned(),
            Node {
                value: decode("value")?,
                mod_revision,
            },
        );
    }
    Ok(out)
}

/// `postgres://host:port/db` (a member's `conn_url`) → host and port.
fn host_port(conn_url: &str) -> (String, u16) {
    match reqwest::Url::parse(conn_url) {
        Ok(u) => (
            u.host_str().unwrap_or_default().to_owned(),
            u.port().unwrap_or(5432),
        ),
        Err(_) => (String::new(), 0),
    }
}

fn as_u64(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The view `GET /cluster` and `GET /config` would give, from the keys themselves. Pure.
pub fn view_from_nodes(nodes: &BTreeMap<String, Node>) -> PatroniView {
    let json = |key: &str| -> Option<Value> {
        nodes
            .get(key)
            .and_then(|n| serde_json::from_str(&n.value).ok())
    };
    let config = json("config").filter(Value::is_object);
    let leader = nodes.get("leader").map(|n| n.value.clone());
    // The leader's last WAL position: `status` is {"optime": N, ...}; the legacy
    // `optime/leader` holds N itself.
    let cluster_lsn = json("status")
        .and_then(|s| as_u64(s.get("optime")))
        .or_else(|| json("optime/leader").and_then(|v| as_u64(Some(&v))));
    let mut members: Vec<PatroniMember> = nodes
        .iter()
        .filter_map(|(key, node)| {
            let name = key.strip_prefix("members/")?;
            if name.is_empty() || name.contains('/') {
                return None;
            }
            let data: Value = serde_json::from_str(&node.value).unwrap_or(Value::Null);
            let text = |k: &str| data.get(k).and_then(Value::as_str).unwrap_or_default();
            let is_leader = leader.as_deref() == Some(name);
            // Patroni lists every other member as a replica (or a synchronous one).
            let role = if is_leader {
                Role::Leader
            } else {
                Role::Replica
            };
            let state = if is_leader {
                text("state")
            } else {
                Some(text("replication_state"))
                    .filter(|s| !s.is_empty())
                    .unwrap_or(text("state"))
            };
            let (host, port) = host_port(text("conn_url"));
            let lag = if is_leader {
                None
            } else {
                as_u64(data.get("xlog_location"))
                    .filter(|l| *l > 0)
                    .map(|l| cluster_lsn.unwrap_or(0).saturating_sub(l))
            };
            Some(PatroniMember {
                name: name.to_owned(),
                role,
                state: if state.is_empty() { "unknown" } else { state }.to_owned(),
                host,
                port,
                api_url: text("api_url").trim_end_matches("/patroni").to_owned(),
                lag,
                pending_restart: data
                    .get("pending_restart")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                timeline: as_u64(data.get("timeline")),
            })
        })
        .collect();
    members.sort_by(|a, b| a.name.cmp(&b.name));
    PatroniView { members, config }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn node(value: &str) -> Node {
        Node {
            value: value.to_owned(),
            mod_revision: 1,
        }
    }

    #[test]
    fn range_end_increments_the_last_byte() {
        assert_eq!(range_end(b"/service/demo/"), b"/service/demo0".to_vec());
        assert_eq!(range_end(b"a\xff"), b"b".to_vec());
        assert_eq!(range_end(b"\xff"), vec![0]);
    }

    #[test]
    fn location_joins_namespace_and_scope() {
        let l = Location::etcd3(vec![], "/service/", "demo");
        assert_eq!(l.prefix, "/service/demo/");
    }

    #[test]
    fn the_view_is_what_cluster_as_json_gives() {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            "config".to_owned(),
            node(r#"{"ttl":30,"postgresql":{"parameters":{"work_mem":"8MB"}}}"#),
        );
        nodes.insert("leader".to_owned(), node("demo-1"));
        nodes.insert("status".to_owned(), node(r#"{"optime":1000,"slots":{}}"#));
        nodes.insert(
            "members/demo-0".to_owned(),
            node(
                r#"{"conn_url":"postgres://127.0.0.1:15432/postgres","api_url":"http://127.0.0.1:18008/patroni","state":"running","role":"replica","replication_state":"streaming","xlog_location":900,"timeline":2}"#,
            ),
        );
        nodes.insert(
            "members/demo-1".to_owned(),
            node(
                r#"{"conn_url":"postgres://127.0.0.1:15433/postgres","api_url":"http://127.0.0.1:18009/patroni","state":"running","role":"primary","xlog_location":1000,"timeline":2,"pending_restart":true}"#,
            ),
        );
        nodes.insert("members/demo-2".to_owned(), node(r#"{"state":"stopped"}"#));
        nodes.insert("history".to_owned(), node("[]"));
        let v = view_from_nodes(&nodes);
        assert_eq!(v.dcs_parameter("work_mem").as_deref(), Some("8MB"));
        assert_eq!(v.dcs_setting("ttl").as_deref(), Some("30"));
        assert_eq!(v.leader().map(|m| m.name.as_str()), Some("demo-1"));
        let r = v.member("demo-0").unwrap();
        assert_eq!(
            (r.role, r.state.as_str(), r.lag, r.port, r.api_url.as_str()),
            (
                Role::Replica,
                "streaming",
                Some(100),
                15432,
                "http://127.0.0.1:18008"
            )
        );
        let l = v.member("demo-1").unwrap();
        assert!(l.pending_restart && l.lag.is_none() && l.timeline == Some(2));
        let s = v.member("demo-2").unwrap();
        assert_eq!(
            (s.role, s.state.as_str(), s.lag),
            (Role::Replica, "stopped", None)
        );
    }

    #[test]
    fn no_leader_key_means_no_leader() {
        let mut nodes = BTreeMap::new();
        nodes.insert("members/demo-0".to_owned(), node(r#"{"state":"running"}"#));
        let v = view_from_nodes(&nodes);
        assert!(v.leader().is_none());
        assert!(v.config.is_none());
    }

    #[test]
    fn a_range_answer_is_decoded_relative_to_the_prefix() {
        let answer = json!({
            "header": {"revision": "7"},
            "kvs": [
                {"key": b64(b"/service/demo/leader"), "value": b64(b"demo-0"), "mod_revision": "5"},
                {"key": b64(b"/service/other/leader"), "value": b64(b"x"), "mod_revision": "6"},
            ]
        });
        let nodes = parse_range("u", "/service/demo/", &answer).unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(
            nodes["leader"],
            Node {
                value: "demo-0".to_owned(),
                mod_revision: 5
            }
        );
        assert!(
            parse_range("u", "/p/", &json!({"header": {}}))
                .unwrap()
                .is_empty()
        );
        assert!(parse_range("u", "/p/", &json!({"error": "x"})).is_err());
    }
}
