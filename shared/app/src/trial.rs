//! The trial org: what stands in for a Chainguard organization where none is configured.
//! The catalog is the built-in snapshot of real image names; created repos get
//! Chainguard-shaped ids (40-hex org / 16-hex repo) and the tags a new repo gets. This one
//! keeps its repos in memory (a Lambda without an org, intake's catalog searches); the
//! embedded backend's simulated org keeps them in SQLite with the same ids and tags.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use domain::Catalog;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::ports::{Registry, RegistryError, Repo};

pub const NEW_REPO_TAGS: [&str; 2] = ["latest", "latest-dev"];

/// The org id a simulated org has: stable per org name, so ids survive restarts.
pub fn org_id(org_name: &str) -> String {
    hex::encode(&Sha256::digest(org_name.as_bytes())[..20])
}

/// A repo as a new one would come back from the registry.
pub fn new_repo(org_id: &str, name: &str) -> Repo {
    let mut suffix = [0u8; 8];
    rand::rng().fill_bytes(&mut suffix);
    Repo {
        id: format!("{org_id}/{}", hex::encode(suffix)),
        name: name.to_string(),
        tags: NEW_REPO_TAGS.iter().map(|t| t.to_string()).collect(),
    }
}

/// Refuses what the catalog does not hold, as the registry would.
pub fn check_source(catalog: &Catalog, source: &str) -> Result<(), RegistryError> {
    if catalog.contains(source) {
        Ok(())
    } else {
        Err(RegistryError::Permanent(format!("`{source}` is not in the catalog")))
    }
}

pub struct TrialOrg {
    org_name: String,
    org_id: String,
    catalog: Arc<Catalog>,
    repos: Mutex<BTreeMap<String, Repo>>,
}

impl TrialOrg {
    pub fn new(org_name: &str) -> Self {
        TrialOrg {
            org_name: org_name.into(),
            org_id: org_id(org_name),
            catalog: Arc::new(Catalog::embedded()),
            repos: Mutex::default(),
        }
    }

    fn repos(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Repo>> {
        self.repos.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Registry for TrialOrg {
    fn org_name(&self) -> &str {
        &self.org_name
    }

    async fn catalog(&self) -> Result<Arc<Catalog>, RegistryError> {
        Ok(self.catalog.clone())
    }

    async fn org_repos(&self) -> Result<Vec<Repo>, RegistryError> {
        Ok(self.repos().values().cloned().collect())
    }

    async fn find_repo(&self, name: &str) -> Result<Option<Repo>, RegistryError> {
        Ok(self.repos().get(name).cloned())
    }

    async fn create_repo(&self, name: &str, source: &str) -> Result<Repo, RegistryError> {
        check_source(&self.catalog, source)?;
        let repo = self
            .repos()
            .entry(name.to_string())
            .or_insert_with(|| new_repo(&self.org_id, name))
            .clone();
        tracing::info!(repo = repo.name, repo_id = repo.id, "trial org: repo created in memory");
        Ok(repo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn creating_twice_returns_the_same_repo_and_unknown_images_are_refused() {
        let org = TrialOrg::new("acme.example");
        let a = org.create_repo("redis", "redis").await.unwrap();
        let b = org.create_repo("redis", "redis").await.unwrap();
        assert_eq!(a, b);
        let (org_part, repo_part) = a.id.split_once('/').unwrap();
        assert_eq!((org_part.len(), repo_part.len()), (40, 16));
        assert_eq!(a.tags, NEW_REPO_TAGS);
        assert_eq!(org.find_repo("redis").await.unwrap(), Some(a));
        assert!(matches!(
            org.create_repo("no-such-image", "no-such-image").await,
            Err(RegistryError::Permanent(_))
        ));
        assert_eq!(org.org_repos().await.unwrap().len(), 1);
    }
}
