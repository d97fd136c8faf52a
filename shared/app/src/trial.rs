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

/// The tags every catalog image has.
pub const NEW_REPO_TAGS: [&str; 2] = ["latest", "latest-dev"];

/// Version streams of some well-known images, newest first, as full versions with their
/// package epoch: what the simulated catalog gives them beside `latest` (the real catalog
/// tags paid images this way, free ones with `latest` and `latest-dev` only).
const VERSION_STREAMS: &[(&str, &[&str])] = &[
    ("go", &["1.23.4-r0", "1.22.10-r1"]),
    ("jdk", &["23.0.1-r0", "21.0.5-r2", "17.0.13-r1"]),
    ("jre", &["23.0.1-r0", "21.0.5-r2", "17.0.13-r1"]),
    ("mariadb", &["11.4.4-r0", "10.11.10-r1"]),
    ("nginx", &["1.27.3-r0", "1.26.2-r2", "1.25.5-r4"]),
    ("node", &["23.5.0-r0", "22.12.0-r1", "20.18.1-r1"]),
    ("php", &["8.4.1-r0", "8.3.14-r1"]),
    ("postgres", &["17.2-r0", "16.6-r1", "15.10-r1"]),
    ("python", &["3.13.1-r2", "3.12.8-r1", "3.11.11-r3"]),
    ("redis", &["7.4.1-r2", "7.2.6-r1"]),
    ("ruby", &["3.3.6-r0", "3.2.6-r1"]),
    ("rust", &["1.83.0-r0"]),
];

/// The tags a catalog image has in the simulated catalog: `latest` and `latest-dev`, and
/// for the images in [`VERSION_STREAMS`] each version at every depth (`3`, `3.13`,
/// `3.13.1`, `3.13.1-r2`; a shorter one belongs to the newest stream that has it), each
/// with its `-dev` twin, as Chainguard tags them.
pub fn catalog_tags(name: &str) -> Vec<String> {
    let mut tags: Vec<String> = NEW_REPO_TAGS.iter().map(|t| t.to_string()).collect();
    let streams = VERSION_STREAMS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(&[][..], |(_, v)| *v);
    for full in streams {
        let version = full.split_once("-r").map_or(*full, |(v, _)| v);
        let mut depth = String::new();
        for part in version.split('.') {
            if !depth.is_empty() {
                depth.push('.');
            }
            depth.push_str(part);
            for t in [depth.clone(), format!("{depth}-dev")] {
                if !tags.contains(&t) {
                    tags.push(t);
                }
            }
        }
        tags.push(full.to_string());
        tags.push(format!("{full}-dev"));
    }
    tags
}

/// The org id a simulated org has: stable per org name, so ids survive restarts.
pub fn org_id(org_name: &str) -> String {
    hex::encode(&Sha256::digest(org_name.as_bytes())[..20])
}

/// A repo as a new one would come back from the registry: with its source's tags.
pub fn new_repo(org_id: &str, name: &str, source: &str) -> Repo {
    let mut suffix = [0u8; 8];
    rand::rng().fill_bytes(&mut suffix);
    Repo {
        id: format!("{org_id}/{}", hex::encode(suffix)),
        name: name.to_string(),
        tags: catalog_tags(source),
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

    async fn catalog_tags(&self, name: &str) -> Result<Vec<String>, RegistryError> {
        check_source(&self.catalog, name)?;
        Ok(catalog_tags(name))
    }

    async fn create_repo(&self, name: &str, source: &str) -> Result<Repo, RegistryError> {
        check_source(&self.catalog, source)?;
        let repo = self
            .repos()
            .entry(name.to_string())
            .or_insert_with(|| new_repo(&self.org_id, name, source))
            .clone();
        tracing::info!(repo = repo.name, repo_id = repo.id, "trial org: repo created in memory");
        Ok(repo)
    }

    async fn delete_repo(&self, name: &str) -> Result<Option<String>, RegistryError> {
        Ok(self.repos().remove(name).map(|r| r.id))
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
        assert_eq!(a.tags, catalog_tags("redis"));
        assert_eq!(org.find_repo("redis").await.unwrap(), Some(a));
        assert!(matches!(
            org.create_repo("no-such-image", "no-such-image").await,
            Err(RegistryError::Permanent(_))
        ));
        assert_eq!(org.org_repos().await.unwrap().len(), 1);
        let python = org.create_repo("python", "python").await.unwrap();
        assert!(
            python.tags.contains(&"3.12".to_string()),
            "a new repo has its source's tags"
        );
    }

    #[test]
    fn simulated_tags_are_versions_at_every_depth_with_dev_twins() {
        let tags = catalog_tags("python");
        for t in [
            "latest",
            "latest-dev",
            "3",
            "3-dev",
            "3.13",
            "3.12",
            "3.12.8",
            "3.12.8-r1",
            "3.11.11-r3-dev",
        ] {
            assert!(tags.contains(&t.to_string()), "{t} in {tags:?}");
        }
        let unique: std::collections::HashSet<_> = tags.iter().collect();
        assert_eq!(unique.len(), tags.len(), "no tag twice: {tags:?}");
        assert_eq!(catalog_tags("busybox"), NEW_REPO_TAGS);
    }
}
