//! The embedded backend's audit archive: a folder of one read-only file per event
//! (`archive/audit/<request id>/<seq>.json`), each created once and never opened for
//! writing again, fed from the database by [`Archiver`] through the same code path as the
//! AWS archive function (`app::archive::archive_events`).

use std::path::PathBuf;

use app::archive::{archive_events, Archive, ArchiveError};
use app::ports::StoreError;
use async_trait::async_trait;

use crate::sqlite::Sqlite;

pub struct FolderArchive {
    dir: PathBuf,
}

impl FolderArchive {
    pub fn new(dir: PathBuf) -> Self {
        FolderArchive { dir }
    }
}

fn unavailable(e: impl std::fmt::Display) -> ArchiveError {
    ArchiveError(e.to_string())
}

#[async_trait]
impl Archive for FolderArchive {
    async fn put_once(&self, key: &str, body: &[u8]) -> Result<bool, ArchiveError> {
        let path = self.dir.join(key);
        let body = body.to_vec();
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(unavailable)?;
            }
            // Created once: a second write of the same key finds it there and writes nothing.
            let mut f = match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
                Err(e) => return Err(unavailable(e)),
            };
            f.write_all(&body).and_then(|_| f.sync_all()).map_err(unavailable)?;
            let mut read_only = f.metadata().map_err(unavailable)?.permissions();
            read_only.set_readonly(true);
            std::fs::set_permissions(&path, read_only).map_err(unavailable)?;
            Ok(true)
        })
        .await
        .map_err(unavailable)?
    }

    async fn read(&self, prefix: &str) -> Result<Vec<Vec<u8>>, ArchiveError> {
        let dir = self.dir.join(prefix);
        tokio::task::spawn_blocking(move || {
            let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
                Ok(entries) => entries.filter_map(|e| e.ok().map(|e| e.path())).collect(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
                Err(e) => return Err(unavailable(e)),
            };
            files.retain(|p| p.extension().is_some_and(|x| x == "json"));
            files.sort();
            files.iter().map(|p| std::fs::read(p).map_err(unavailable)).collect()
        })
        .await
        .map_err(unavailable)?
    }
}

/// Plays DynamoDB Streams for the embedded backend: reads the events written since its
/// cursor, archives them, then moves the cursor (kept in the database, so a restart goes
/// on where it stopped; a crash between the two archives some again, which writes nothing).
pub struct Archiver {
    pub db: Sqlite,
    pub archive: FolderArchive,
}

impl Archiver {
    /// One round: how many events were new to the archive.
    pub async fn run_once(&self) -> Result<usize, ArchiveError> {
        let (cursor, events) = self
            .db
            .events_after_cursor(500)
            .await
            .map_err(|e: StoreError| unavailable(e))?;
        if events.is_empty() {
            return Ok(0);
        }
        let written = archive_events(&self.archive, &events).await?;
        self.db.set_archive_cursor(cursor).await.map_err(unavailable)?;
        Ok(written)
    }
}
