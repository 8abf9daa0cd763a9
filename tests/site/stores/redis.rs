//! The Redis store's fixture: a key prefix of its own on the Redis at
//! `TEST_REDIS_URL`, or on the Redis Cluster at `TEST_REDIS_CLUSTER_URL`;
//! at rest, the keys under that prefix (on every master of a cluster), read
//! with a plain fred client.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use fred::interfaces::ClusterInterface;
use fred::prelude::{Builder, ClientLike, Config, Expiration, KeysInterface};
use tower_sessions::session::Id;
use websessions::sessions::redis::RedisStore;
use websessions::sessions::store::{SiteStore, storage_key};

use super::{Backing, Traits};
use crate::support::{Kind, servers};

struct Redis {
    url: String,
    prefix: String,
    raw: fred::prelude::Client,
}

pub async fn open(kind: Kind) -> Option<(Arc<dyn SiteStore>, Box<dyn Backing>)> {
    let (var, _tls) = kind.redis_env().expect("a Redis kind");
    let url = servers::env_url(&format!("{kind:?}").to_lowercase(), var)?;
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let store = RedisStore::open(&url, &prefix)
        .await
        .expect("open the store");
    let raw = Builder::from_config(Config::from_url(&url).unwrap())
        .build()
        .unwrap();
    raw.init().await.expect("a plain client connects");
    Some((Arc::new(store), Box::new(Redis { url, prefix, raw })))
}

impl Redis {
    fn key(&self, id: &Id) -> String {
        format!("{}{}", self.prefix, storage_key(id))
    }

    /// Every key under the prefix on one node.
    async fn scan<C: KeysInterface + Sync>(&self, node: &C, out: &mut Vec<String>) {
        let mut cursor = "0".to_owned();
        loop {
            let (next, keys): (String, Vec<String>) = node
                .scan_page(cursor, format!("{}*", self.prefix), Some(500), None)
                .await
                .unwrap();
            out.extend(keys);
            if next == "0" {
                return;
            }
            cursor = next;
        }
    }
}

#[async_trait]
impl Backing for Redis {
    fn traits(&self) -> Traits {
        Traits {
            counts: true,
            keeps_expired: false,
            // A loaded expiry is now + the key's PTTL.
            expiry_slack: time::Duration::milliseconds(500),
            at_rest_kind: "Redis key",
            at_rest_facts: &["TTL", "value size"],
        }
    }

    async fn dump(&self, _ids: &[Id]) -> Vec<(String, Vec<u8>)> {
        let mut keys = Vec::new();
        if self.raw.is_clustered() {
            // A SCAN sees only the slots of the node it runs on.
            let masters = self.raw.cached_cluster_state().unwrap();
            for server in masters.unique_primary_nodes() {
                self.scan(&self.raw.with_cluster_node(&server), &mut keys)
                    .await;
            }
        } else {
            self.scan(&self.raw, &mut keys).await;
        }
        let mut out = Vec::new();
        for key in keys {
            let value: Option<Vec<u8>> = self.raw.get(&key).await.unwrap();
            if let Some(value) = value {
                out.push((format!("redis key {key}"), value));
            }
        }
        out
    }

    fn location(&self, id: &Id) -> String {
        self.key(id)
    }

    async fn corrupt(&self, id: &Id, bytes: &[u8]) {
        let _: () = self
            .raw
            .set(self.key(id), bytes, Some(Expiration::KEEPTTL), None, false)
            .await
            .unwrap();
    }

    fn upstream(&self) -> Option<SocketAddr> {
        let url = url::Url::parse(&self.url).unwrap();
        let host = url.host_str().unwrap();
        let port = url.port().unwrap_or(6379);
        std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
            .unwrap()
            .next()
    }

    async fn open_via(&self, via: SocketAddr) -> Arc<dyn SiteStore> {
        let mut url = url::Url::parse(&self.url).unwrap();
        url.set_host(Some(&via.ip().to_string())).unwrap();
        url.set_port(Some(via.port())).unwrap();
        Arc::new(RedisStore::open(url.as_str(), &self.prefix).await.unwrap())
    }

    async fn finish(&mut self) {
        self.raw.quit().await.unwrap();
    }
}
