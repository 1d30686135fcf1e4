//! A small client for Patroni's REST API (`/patroni`, `/config`, `/restart`, `/switchover`)
//! and for Patroni's keys in the DCS (`dcs`), and the parsing of their answers into `observe`
//! data.

pub mod dcs;

use std::time::Duration;

use serde_json::{Value, json};

use crate::observe::model::{PatroniMember, PatroniView, Role};

#[derive(Debug, thiserror::Error)]
pub enum PatroniError {
    #[error("{url}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}: unexpected answer: {what}")]
    Shape { url: String, what: String },
}

/// Read-only access to Patroni: `GET` on its REST API, and etcd's range request on its keys
/// in the DCS (`dcs`). Observation, `plan` and `drift` hold a `Reader` and nothing else, so
/// they cannot change a cluster.
#[derive(Clone)]
pub struct Reader {
    http: reqwest::Client,
}

/// Full access: a [`Reader`] plus the endpoints that change the cluster. Only `apply` has one.
/// It authenticates (HTTP basic) to the REST API's unsafe endpoints when the cluster has a
/// REST API password.
#[derive(Clone)]
pub struct Client {
    reader: Reader,
    auth: Option<(String, String)>,
}

impl std::ops::Deref for Client {
    type Target = Reader;
    fn deref(&self) -> &Reader {
        &self.reader
    }
}

/// An answer of a state-changing endpoint: status and body text.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

async fn answer(url: &str, req: reqwest::RequestBuilder) -> Result<Answer, PatroniError> {
    let http = |source: reqwest::Error| PatroniError::Http {
        url: url.to_owned(),
        source: source.without_url(),
    };
    let resp = req.send().await.map_err(http)?;
    let status = resp.status().as_u16();
    let body = resp.text().await.map_err(http)?;
    Ok(Answer { status, body })
}

impl Client {
    pub fn new(timeout: Duration, auth: Option<(String, String)>) -> Result<Client, PatroniError> {
        Ok(Client {
            reader: Reader::new(timeout)?,
            auth,
        })
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let req = self.reader.http.request(method, url);
        match &self.auth {
            Some((user, password)) => req.basic_auth(user, Some(password)),
            None => req,
        }
    }

    /// A request with the client's own bound (its `Reader`'s timeout).
    async fn send(
        &self,
        method: reqwest::Method,
        api_url: &str,
        path: &str,
        body: &Value,
    ) -> Result<Answer, PatroniError> {
        let url = format!("{api_url}{path}");
        answer(&url, self.request(method, &url).json(body)).await
    }

    /// A request Patroni answers only once it is done (a restart, a switchover): bounded by
    /// what the action has left, not by the client's default.
    async fn send_within(
        &self,
        method: reqwest::Method,
        api_url: &str,
        path: &str,
        body: &Value,
        within: Duration,
    ) -> Result<Answer, PatroniError> {
        let url = format!("{api_url}{path}");
        let req = self
            .request(method, &url)
            .json(body)
            .timeout(within.max(Duration::from_secs(1)));
        answer(&url, req).await
    }

    /// `PATCH /config`.
    pub async fn patch_config(&self, api_url: &str, patch: &Value) -> Result<Answer, PatroniError> {
        let a = self
            .send(reqwest::Method::PATCH, api_url, "/config", patch)
            .await?;
        ok_or_status(api_url, "/config", a)
    }

    /// `POST /reinitialize`: discard the member's data and clone it again from the leader.
    pub async fn reinitialize(&self, api_url: &str) -> Result<Answer, PatroniError> {
        let a = self
            .send(
                reqwest::Method::POST,
                api_url,
                "/reinitialize",
                &json!({ "force": true }),
            )
            .await?;
        ok_or_status(api_url, "/reinitialize", a)
    }

    /// `POST /reload`: Patroni reads its configuration file again.
    pub async fn reload(&self, api_url: &str) -> Result<Answer, PatroniError> {
        let a = self
            .send(reqwest::Method::POST, api_url, "/reload", &json!({}))
            .await?;
        ok_or_status(api_url, "/reload", a)
    }

    /// `POST /restart`: restart PostgreSQL now. Patroni answers once it runs again, so the
    /// request may take up to `within`.
    pub async fn restart(&self, api_url: &str, within: Duration) -> Result<Answer, PatroniError> {
        self.send_within(
            reqwest::Method::POST,
            api_url,
            "/restart",
            &json!({}),
            within,
        )
        .await
    }

    /// `POST /switchover` from `leader` to `candidate` at `scheduled_at` (RFC3339): Patroni
    /// answers 202 once it is scheduled.
    pub async fn schedule_switchover(
        &self,
        api_url: &str,
        leader: &str,
        candidate: &str,
        scheduled_at: &str,
    ) -> Result<Answer, PatroniError> {
        let body =
            json!({ "leader": leader, "candidate": candidate, "scheduled_at": scheduled_at });
        let a = self
            .send(reqwest::Method::POST, api_url, "/switchover", &body)
            .await?;
        ok_or_status(api_url, "/switchover", a)
    }

    /// `POST /failover` to `candidate`: Patroni promotes it whether or not the leader is
    /// healthy, and answers once done.
    pub async fn failover(
        &self,
        api_url: &str,
        candidate: &str,
        within: Duration,
    ) -> Result<Answer, PatroniError> {
        let body = json!({ "candidate": candidate });
        let a = self
            .send_within(reqwest::Method::POST, api_url, "/failover", &body, within)
            .await?;
        ok_or_status(api_url, "/failover", a)
    }

    /// `POST /switchover` from `leader` to `candidate`.
    pub async fn switchover(
        &self,
        api_url: &str,
        leader: &str,
        candidate: &str,
        within: Duration,
    ) -> Result<Answer, PatroniError> {
        let body = json!({ "leader": leader, "candidate": candidate });
        let a = self
            .send_within(reqwest::Method::POST, api_url, "/switchover", &body, within)
            .await?;
        ok_or_status(api_url, "/switchover", a)
    }
}

impl Reader {
    pub fn new(timeout: Duration) -> Result<Reader, PatroniError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .no_proxy()
            .build()
            .map_err(|source| PatroniError::Http {
                url: String::new(),
                source: source.without_url(),
            })?;
        Ok(Reader { http })
    }

    async fn get(&self, api_url: &str, path: &str) -> Result<Value, PatroniError> {
        let url = format!("{api_url}{path}");
        // /patroni answers 503 for a member that is not running but still describes it.
        let a = answer(&url, self.http.get(&url)).await?;
        serde_json::from_str(&a.body).map_err(|_| PatroniError::Status {
            url,
            status: a.status,
            body: a.body,
        })
    }

    /// `GET /patroni`: the member's own status.
    pub async fn status(&self, api_url: &str) -> Result<Value, PatroniError> {
        self.get(api_url, "/patroni").await
    }

    /// `GET /cluster`: every member as the DCS holds them, pause and a scheduled switchover.
    pub async fn cluster(&self, api_url: &str) -> Result<Value, PatroniError> {
        self.get(api_url, "/cluster").await
    }

    /// `GET /config`: the dynamic configuration in the DCS.
    pub async fn config(&self, api_url: &str) -> Result<Value, PatroniError> {
        self.get(api_url, "/config").await
    }

    /// `GET /failsafe`: the members the leader last wrote into the DCS's failsafe key (name to
    /// REST API URL); an error (502) when failsafe mode is off.
    pub async fn failsafe(&self, api_url: &str) -> Result<Value, PatroniError> {
        self.get(api_url, "/failsafe").await
    }

    /// `GET /cluster` from the first of `api_urls` that answers, with its URL.
    pub async fn cluster_any(&self, api_urls: &[String]) -> Result<(String, Value), PatroniError> {
        let mut last = None;
        for url in api_urls {
            match self.cluster(url).await {
                Ok(v) if v.get("members").is_some() => return Ok((url.clone(), v)),
                Ok(v) => {
                    last = Some(PatroniError::Shape {
                        url: format!("{url}/cluster"),
                        what: format!("no members in {v}"),
                    })
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| PatroniError::Shape {
            url: String::new(),
            what: "no REST API URL to ask".to_owned(),
        }))
    }

    /// Patroni's view (members from `GET /cluster`, the dynamic configuration from
    /// `GET /config`) through the REST API of any member that answers: for a cluster whose
    /// DCS pgdba does not reach itself (an adopted one).
    pub async fn rest_view(&self, api_urls: &[String]) -> Result<PatroniView, PatroniError> {
        let (url, cluster) = self.cluster_any(api_urls).await?;
        let config = self.config(&url).await.ok().filter(Value::is_object);
        Ok(PatroniView {
            members: members_of_cluster(&cluster),
            config,
        })
    }
}

fn ok_or_status(api_url: &str, path: &str, a: Answer) -> Result<Answer, PatroniError> {
    if (200..300).contains(&a.status) {
        Ok(a)
    } else {
        Err(PatroniError::Status {
            url: format!("{api_url}{path}"),
            status: a.status,
            body: a.body,
        })
    }
}

/// Patroni 4 says `leader`/`primary`, 3.x `master`; standbys are `replica`, `sync_standby`, ...
pub fn parse_role(s: &str) -> Role {
    match s {
        "leader" | "primary" | "master" | "standby_leader" => Role::Leader,
        "replica" | "sync_standby" | "quorum_standby" | "standby" => Role::Replica,
        _ => Role::Other,
    }
}

/// PostgreSQL states Patroni does not leave by itself: waiting for them to pass is waiting in
/// vain (a member that cannot start needs a rebuild, or a person).
pub fn is_terminal_state(state: &str) -> bool {
    matches!(
        state,
        "start failed"
            | "restart failed"
            | "stop failed"
            | "initdb failed"
            | "custom bootstrap failed"
    )
}

/// `pending_restart` and its reasons (parameter names) from a `/patroni` answer.
pub fn pending_restart(status: &Value) -> (bool, Vec<String>) {
    let pending = status
        .get("pending_restart")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let reasons = status
        .get("pending_restart_reason")
        .and_then(Value::as_object)
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    (pending, reasons)
}

/// Patroni's dynamic configuration at bootstrap: the spec's Patroni settings and GUCs, and the
/// HBA rules admitting `admit`.
pub fn bootstrap_dcs(spec: &crate::spec::model::ClusterSpec, admit: &[String]) -> Value {
    let p = &spec.spec.patroni;
    let params: serde_json::Map<String, Value> = spec
        .spec
        .postgres
        .parameters
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), serde_json::to_value(v).ok()?)))
        .collect();
    let mut dcs = json!({
        "ttl": p.ttl,
        "loop_wait": p.loop_wait,
        "retry_timeout": p.retry_timeout,
        "maximum_lag_on_failover": p.maximum_lag_on_failover,
        "failsafe_mode": p.failsafe_mode,
        "postgresql": {
            "use_pg_rewind": true,
            "use_slots": true,
            "parameters": params,
            // In the DCS, not in each member's file (which would take precedence): one list
            // for every member, changed by `PATCH /config`.
            "pg_hba": crate::diff::hba::dcs_lines(spec, admit, 0),
            "pg_ident": crate::diff::hba::desired_ident(),
        },
    });
    // Synchronous replication, where the spec asks for other than Patroni's default (what
    // the plan lists as the bootstrap configuration).
    if let Some(o) = dcs.as_object_mut() {
        for (key, value) in crate::diff::patroni_bootstrap_settings(spec) {
            o.entry(key).or_insert(value);
        }
    }
    dcs
}

/// One member of a `GET /cluster` answer, as Patroni wrote it (its role's own word:
/// `leader`, `replica`, `sync_standby`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterEntry {
    pub name: String,
    pub role: String,
    pub state: String,
    pub host: String,
    pub port: u16,
    /// Its REST API's base URL (without `/patroni`).
    pub api_url: String,
    pub lag: Option<u64>,
    pub pending_restart: bool,
    pub timeline: Option<u64>,
}

/// The members of a `GET /cluster` answer, as Patroni wrote them.
pub fn cluster_entries(cluster: &Value) -> Vec<ClusterEntry> {
    let Some(members) = cluster.get("members").and_then(Value::as_array) else {
        return Vec::new();
    };
    members
        .iter()
        .filter_map(|m| {
            let text = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
            Some(ClusterEntry {
                name: text("name")?,
                role: text("role").unwrap_or_default(),
                state: text("state").unwrap_or_default(),
                host: text("host").unwrap_or_default(),
                port: m
                    .get("port")
                    .and_then(Value::as_u64)
                    .and_then(|p| u16::try_from(p).ok())
                    .unwrap_or(0),
                api_url: text("api_url")
                    .map(|u| u.trim_end_matches("/patroni").to_owned())
                    .unwrap_or_default(),
                lag: m.get("lag").and_then(Value::as_u64),
                pending_restart: m
                    .get("pending_restart")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                timeline: m.get("timeline").and_then(Value::as_u64),
            })
        })
        .collect()
}

/// The members of a `GET /cluster` answer, as observation holds them.
pub fn members_of_cluster(cluster: &Value) -> Vec<PatroniMember> {
    cluster_entries(cluster)
        .into_iter()
        .map(|e| PatroniMember {
            role: parse_role(&e.role),
            name: e.name,
            state: e.state,
            host: e.host,
            port: e.port,
            api_url: e.api_url,
            lag: e.lag,
            pending_restart: e.pending_restart,
            timeline: e.timeline,
        })
        .collect()
}
