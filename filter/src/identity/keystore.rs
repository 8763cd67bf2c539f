//! The verification keys of every issuer as this VM currently knows them: inline keys from
//! the configuration, fetched keys once a JWKS has arrived.

use std::collections::HashMap;
use std::rc::Rc;

use crate::config::{Config, KeySource};
use crate::identity::jwks::KeySet;

#[derive(Default)]
pub struct KeyStore {
    sets: HashMap<String, Rc<KeySet>>,
    /// Shared-data versions of fetched sets, to skip re-parsing an unchanged JWKS.
    versions: HashMap<String, u32>,
    hmac: HashMap<String, Vec<u8>>,
}

impl KeyStore {
    /// Inline key sets, plus each issuer's HMAC secret (resolved from the environment).
    pub fn new(config: &Config, hmac: HashMap<String, Vec<u8>>) -> KeyStore {
        let mut store = KeyStore {
            hmac,
            ..Default::default()
        };
        for issuer in &config.issuers {
            if let KeySource::Inline(set) = &issuer.keys {
                store.insert(&issuer.issuer, set.clone());
            } else if let Some(secret) = store.hmac.get(&issuer.issuer) {
                // An HMAC-only remote issuer still verifies before its first fetch.
                let mut own = KeySet::default();
                own.add_hmac(secret);
                store.sets.insert(issuer.issuer.clone(), Rc::new(own));
            }
        }
        store
    }

    pub fn get(&self, issuer: &str) -> Option<&KeySet> {
        self.sets.get(issuer).map(Rc::as_ref)
    }

    pub fn version(&self, issuer: &str) -> Option<u32> {
        self.versions.get(issuer).copied()
    }

    /// Replaces an issuer's keys with a fetched set (the HMAC key, if any, is kept).
    pub fn replace(&mut self, issuer: &str, set: KeySet, version: u32) {
        self.insert(issuer, set);
        self.versions.insert(issuer.to_string(), version);
    }

    fn insert(&mut self, issuer: &str, mut set: KeySet) {
        if let Some(secret) = self.hmac.get(issuer) {
            set.add_hmac(secret);
        }
        self.sets.insert(issuer.to_string(), Rc::new(set));
    }
}
