//! A simulated Chainguard organization for running locally: the catalog is the embedded
//! snapshot of real image names, and created repos are rows in the embedded database with
//! Chainguard-shaped ids (40-hex org / 16-hex repo) and the tags a new repo gets.

use std::sync::Arc;

use app::ports::{Registry, RegistryError, Repo, StoreError};
use app::trial;
use async_trait::async_trait;
use chrono::Utc;
use domain::{timestamp as ts, Catalog};
use rusqlite::{params, OptionalExtension};

use crate::sqlite::Sqlite;

pub struct SimulatedOrg {
    db: Sqlite,
    org_name: String,
    org_id: String,
    catalog: Arc<Catalog>,
}

impl SimulatedOrg {
    pub fn new(db: Sqlite, org_name: &str, catalog: Catalog) -> Self {
        let org_id = trial::org_id(org_name);
        tracing::warn!(
            org = org_name,
            org_id,
            "SIMULATED Chainguard org: no real registry is called; repos are recorded locally"
        );
        SimulatedOrg {
            db,
            org_name: org_name.into(),
            org_id,
            catalog: Arc::new(catalog),
        }
    }

    pub fn org_id(&self) -> &str {
        &self.org_id
    }
}

fn retryable(e: StoreError) -> RegistryError {
    RegistryError::Retryable(e.to_string())
}

fn row_to_repo(r: &rusqlite::Row<'_>) -> rusqlite::Result<Repo> {
    let tags: String = r.get(2)?;
    Ok(Repo {
        id: r.get(0)?,
        name: r.get(1)?,
        tags: tags.split(',').map(str::to_string).collect(),
    })
}

#[async_trait]
impl Registry for SimulatedOrg {
    fn org_name(&self) -> &str {
        &self.org_name
    }

    async fn catalog(&self) -> Result<Arc<Catalog>, RegistryError> {
        Ok(self.catalog.clone())
    }

    async fn org_repos(&self) -> Result<Vec<Repo>, RegistryError> {
        self.db
            .with(|c| {
                let mut stmt = c
                    .prepare("SELECT id, name, tags FROM sim_repos ORDER BY name")
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                let rows = stmt
                    .query_map([], row_to_repo)
                    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
                rows.collect::<Result<_, _>>()
                    .map_err(|e| StoreError::Unavailable(e.to_string()))
            })
            .await
            .map_err(retryable)
    }

    async fn find_repo(&self, name: &str) -> Result<Option<Repo>, RegistryError> {
        let name = name.to_string();
        self.db
            .with(move |c| {
                c.query_row(
                    "SELECT id, name, tags FROM sim_repos WHERE name = ?1",
                    [name],
                    row_to_repo,
                )
                .optional()
                .map_err(|e| StoreError::Unavailable(e.to_string()))
            })
            .await
            .map_err(retryable)
    }

    async fn catalog_tags(&self, name: &str) -> Result<Vec<String>, RegistryError> {
        trial::check_source(&self.catalog, name)?;
        Ok(trial::catalog_tags(name))
    }

    async fn delete_repo(&self, name: &str) -> Result<Option<String>, RegistryError> {
        let name = name.to_string();
        let gone = self
            .db
            .with(move |c| {
                c.query_row("DELETE FROM sim_repos WHERE name = ?1 RETURNING id", [name], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(|e| StoreError::Unavailable(e.to_string()))
            })
            .await
            .map_err(retryable)?;
        if let Some(id) = &gone {
            tracing::info!(repo_id = id, "simulated org: repo deleted");
        }
        Ok(gone)
    }

    async fn create_repo(&self, name: &str, source: &str) -> Result<Repo, RegistryError> {
        trial::check_source(&self.catalog, source)?;
        let new = trial::new_repo(&self.org_id, name, source);
        let (name, source, id, tags) = (new.name, source.to_string(), new.id, new.tags.join(","));
        let repo = self
            .db
            .with(move |c| {
                let map = |e: rusqlite::Error| StoreError::Unavailable(e.to_string());
                // Like `preventExisting=true` plus reading the existing repo back on 409.
                c.execute(
                    "INSERT OR IGNORE INTO sim_repos (name, id, source, tags, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![name, id, source, tags, ts(Utc::now())],
                )
                .map_err(map)?;
                c.query_row(
                    "SELECT id, name, tags FROM sim_repos WHERE name = ?1",
                    [name],
                    row_to_repo,
                )
                .map_err(map)
            })
            .await
            .map_err(retryable)?;
        tracing::info!(repo = repo.name, repo_id = repo.id, "simulated org: repo created");
        Ok(repo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn creating_twice_returns_the_same_repo_with_chainguard_shaped_ids() {
        let org = SimulatedOrg::new(Sqlite::in_memory().unwrap(), "acme.dev", Catalog::embedded());
        let a = org.create_repo("busybox", "busybox").await.unwrap();
        let b = org.create_repo("busybox", "busybox").await.unwrap();
        assert_eq!(a, b);
        let (orgpart, repopart) = a.id.split_once('/').unwrap();
        assert_eq!((orgpart.len(), repopart.len()), (40, 16));
        assert!(a.id.chars().all(|c| c == '/' || c.is_ascii_hexdigit()));
        assert_eq!(a.tags, ["latest", "latest-dev"]);
        assert_eq!(org.org_repos().await.unwrap().len(), 1);
        assert!(matches!(
            org.create_repo("nope", "nope").await,
            Err(RegistryError::Permanent(_))
        ));
    }
}
