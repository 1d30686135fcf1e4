//! The few requests a provider makes to its cluster's etcd itself (its v3 JSON gateway):
//! health, turning authentication on, and deleting a member's key. Patroni's keys are read
//! through `patroni::dcs`.

use base64::Engine as _;
use serde_json::{Value, json};

use super::{Credentials, ProviderError};
use crate::roles::ETCD_USER;

/// One etcd endpoint (`http://host:port`).
pub struct Etcd<'a> {
    pub http: &'a reqwest::Client,
    pub endpoint: String,
}

impl Etcd<'_> {
    fn error(&self, message: String) -> ProviderError {
        ProviderError::Etcd {
            endpoint: self.endpoint.clone(),
            message,
        }
    }

    /// Does it answer its health check?
    pub async fn healthy(&self) -> bool {
        let url = format!("{}/health", self.endpoint);
        match self.http.get(&url).send().await {
            Ok(r) => r
                .json::<Value>()
                .await
                .ok()
                .and_then(|v| v.get("health").cloned())
                .is_some_and(|h| h == json!("true") || h == json!(true)),
            Err(_) => false,
        }
    }

    /// One request, with a token when given.
    pub async fn call(
        &self,
        path: &str,
        body: &Value,
        token: Option<&str>,
    ) -> Result<Value, ProviderError> {
        let url = format!("{}/v3/{path}", self.endpoint);
        let mut req = self.http.post(&url).json(body);
        if let Some(t) = token {
            req = req.header("Authorization", t);
        }
        let resp = req.send().await.map_err(|e| self.error(e.to_string()))?;
        let ok = resp.status().is_success();
        let v: Value = resp.json().await.map_err(|e| self.error(e.to_string()))?;
        if ok && v.get("error").is_none() {
            Ok(v)
        } else {
            Err(self.error(format!(
                "{path}: {}",
                v.get("message")
                    .and_then(|m| m.as_str())
                    .unwrap_or("refused")
            )))
        }
    }

    /// A token of etcd's root user, when etcd authenticates.
    pub async fn token(&self, creds: &Credentials) -> Result<Option<String>, ProviderError> {
        let Some(password) = &creds.etcd else {
            return Ok(None);
        };
        crate::patroni::dcs::etcd_token(self.http, &self.endpoint, ETCD_USER, password)
            .await
            .map(Some)
            .map_err(|e| self.error(crate::error_chain(&e)))
    }

    /// Turn authentication on: its `root` user with `password`, the only one. Whoever reaches
    /// etcd's port cannot read or write Patroni's keys without it.
    pub async fn enable_auth(&self, password: &str) -> Result<(), ProviderError> {
        let login = json!({ "name": ETCD_USER, "password": password });
        if self.call("auth/authenticate", &login, None).await.is_ok() {
            return Ok(()); // already on
        }
        self.call("auth/user/add", &login, None).await?;
        self.call(
            "auth/user/grant",
            &json!({ "user": ETCD_USER, "role": "root" }),
            None,
        )
        .await?;
        self.call("auth/enable", &json!({}), None).await?;
        Ok(())
    }

    /// Delete every key under `prefix` (Patroni's keys of one cluster: `/<namespace>/<scope>/`).
    pub async fn forget_prefix(
        &self,
        prefix: &str,
        creds: &Credentials,
    ) -> Result<(), ProviderError> {
        if !prefix.ends_with('/') || prefix.len() < 3 {
            return Err(self.error(format!(
                "refusing to delete keys under {prefix:?}: not one cluster's prefix"
            )));
        }
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let end = crate::patroni::dcs::range_end(prefix.as_bytes());
        let body = json!({ "key": b64(prefix.as_bytes()), "range_end": b64(&end) });
        let token = self.token(creds).await?;
        self.call("kv/deleterange", &body, token.as_deref())
            .await
            .map(|_| ())
    }

    /// Delete a member's key (`<prefix>members/<name>`), so Patroni no longer lists it (and the
    /// leader drops its replication slot) instead of waiting for the key's TTL.
    pub async fn forget_member(
        &self,
        prefix: &str,
        name: &str,
        creds: &Credentials,
    ) -> Result<(), ProviderError> {
        let key = format!("{prefix}members/{name}");
        let body =
            json!({ "key": base64::engine::general_purpose::STANDARD.encode(key.as_bytes()) });
        let token = self.token(creds).await?;
        self.call("kv/deleterange", &body, token.as_deref())
            .await
            .map(|_| ())
    }
}
