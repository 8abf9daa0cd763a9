//! The file store's fixture: a temp folder of its own; at rest, the files.

use std::sync::Arc;

use async_trait::async_trait;
use tempfile::TempDir;
use tower_sessions::session::Id;
use websessions::sessions::file::FileStore;
use websessions::sessions::store::{SiteStore, storage_key};

use super::{Backing, Traits};
use crate::support::files_under;

struct File {
    dir: TempDir,
}

pub fn open() -> (Arc<dyn SiteStore>, Box<dyn Backing>) {
    let dir = tempfile::tempdir().expect("a temp dir");
    // A missing sub-folder too: the store creates it.
    let store = FileStore::open(dir.path().join("sessions"), false).expect("open the store");
    (Arc::new(store), Box::new(File { dir }))
}

impl File {
    fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("sessions")
    }
}

#[async_trait]
impl Backing for File {
    fn traits(&self) -> Traits {
        Traits {
            counts: true,
            keeps_expired: true,
            expiry_slack: time::Duration::ZERO,
            at_rest_kind: "file",
            at_rest_facts: &["size", "mtime (= expiry)"],
        }
    }

    async fn dump(&self, _ids: &[Id]) -> Vec<(String, Vec<u8>)> {
        files_under(&self.root())
            .into_iter()
            .map(|path| {
                let bytes = std::fs::read(&path).expect("read a session file");
                (path.display().to_string(), bytes)
            })
            .collect()
    }

    fn location(&self, id: &Id) -> String {
        let key = storage_key(id);
        format!("{}/{}/{key}", &key[0..2], &key[2..4])
    }

    async fn corrupt(&self, id: &Id, bytes: &[u8]) {
        let key = storage_key(id);
        let path = self.root().join(&key[0..2]).join(&key[2..4]).join(&key);
        // The mtime is the expiry: put it back after writing.
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::fs::write(&path, bytes).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
    }

    async fn finish(&mut self) {
        let left = files_under(&self.root());
        assert!(left.is_empty(), "session files left behind: {left:?}");
    }
}
