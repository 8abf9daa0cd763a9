//! File store, the default backend: one file per session under
//! `dir/ab/cd/<storage key>`.
//!
//! - The file holds the data as JSON; its **mtime is the expiry**, so a touch
//!   only sets the mtime, and stats and purge read metadata, never contents.
//! - Writes go to a temp file in the same folder and are renamed over the
//!   record (atomic: a reader sees the old file or the new one, never half);
//!   `create` hard-links the temp file into place, which fails if the record
//!   exists, so creation is insert-only even across processes.
//! - Save, touch, delete, purge and clear of one record hold an exclusive
//!   `flock` on the record file, so several processes over one folder (two
//!   instances, or the CLI's `purge-expired`/`clear` while a server runs)
//!   exclude each other: a save that waited for a delete finds the record
//!   gone instead of renaming it back. See `Inner::lock_record`.
//! - Files are created `0600` and folders `0700`, whatever the umask.
//! - Writes, stats and purge run on tokio's blocking pool, lock waits
//!   included (loads read inline, see `load`).

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, DirBuilder, File, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use rustix::fs::{FlockOperation, flock};
use serde_json::Value;
use time::OffsetDateTime;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store;

use super::store::{
    AtRest, CREATE_ATTEMPTS, Capability, Inspect, Keyed, SiteStore, WriteOutcome, backend_error,
    fingerprint, storage_key,
};

const STRIPES: usize = 256;
const TMP_PREFIX: &str = ".tmp-";
/// Temp files older than this are leftovers of a crash; purge removes them.
const STALE_TMP: Duration = Duration::from_secs(3600);
const FILE_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o700;

#[derive(Debug, Clone)]
pub struct FileStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    fsync: bool,
    stripes: Vec<Mutex<()>>,
    /// Folder syncs done, for the unit tests.
    #[cfg(test)]
    dir_syncs: std::sync::atomic::AtomicUsize,
}

impl FileStore {
    /// Opens (and creates `0700`, if missing) the store's folder.
    pub fn open(dir: impl Into<PathBuf>, fsync: bool) -> io::Result<Self> {
        let dir = dir.into();
        match fs::metadata(&dir) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                DirBuilder::new()
                    .recursive(true)
                    .mode(DIR_MODE)
                    .create(&dir)?;
                fs::set_permissions(&dir, Permissions::from_mode(DIR_MODE))?;
            }
            Err(e) => return Err(e),
        }
        Ok(Self {
            inner: Arc::new(Inner {
                dir,
                fsync,
                stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
                #[cfg(test)]
                dir_syncs: Default::default(),
            }),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Runs blocking file work (lock waits included) off the async runtime.
    async fn blocking<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(&Inner) -> io::Result<T> + Send + 'static,
    ) -> session_store::Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| backend_error(what, e))?
            .map_err(|e| backend_error(&format!("file store {what}"), e))
    }
}

/// A record file, opened and held under an exclusive `flock` for one
/// operation, with its in-process stripe; dropping it releases both.
struct Locked<'a> {
    file: File,
    meta: fs::Metadata,
    _stripe: MutexGuard<'a, ()>,
}

impl Locked<'_> {
    fn is_live(&self) -> io::Result<bool> {
        Ok(self.meta.modified()? > SystemTime::now())
    }
}

impl Inner {
    /// Locks the record at `path`, within this process and across
    /// processes; `None` when there is no record.
    ///
    /// The cross-process lock is an exclusive `flock` on the record file
    /// itself, so it needs no lock files and holds between any processes
    /// that follow this rule (another instance, the CLI, an operator's
    /// script: hold `flock(LOCK_EX)` on the record while changing it). A
    /// lock belongs to an inode, and while this call waited, a delete may
    /// have unlinked that inode or a save renamed a new one over the path:
    /// the lock counts only when the path still names the locked inode, else
    /// it is taken again on what the path names now. (An open inode cannot
    /// be freed, so its number cannot be reused meanwhile.)
    ///
    /// `flock` locks belong to an open file, so threads of this process
    /// exclude each other through it too; the striped in-process mutex,
    /// taken first, only keeps them from all queueing in the kernel.
    fn lock_record(&self, path: &Path) -> io::Result<Option<Locked<'_>>> {
        let stripe = self.stripe(path);
        loop {
            let file = match File::options().read(true).write(true).open(path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            loop {
                match flock(&file, FlockOperation::LockExclusive) {
                    Ok(()) => break,
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            let meta = file.metadata()?;
            match fs::metadata(path) {
                Ok(now) if now.dev() == meta.dev() && now.ino() == meta.ino() => {
                    return Ok(Some(Locked {
                        file,
                        meta,
                        _stripe: stripe,
                    }));
                }
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    fn stripe(&self, path: &Path) -> MutexGuard<'_, ()> {
        let stripe = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.get(0..2))
            .and_then(|n| usize::from_str_radix(n, 16).ok())
            .unwrap_or(0)
            % STRIPES;
        // A panic while holding a stripe cannot leave a file half-written
        // (writes are renames), so a poisoned stripe is safe to reuse.
        self.stripes[stripe]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(&key[0..2]).join(&key[2..4]).join(key)
    }

    /// Creates `dir/ab/cd` for `path`, each level `0700` whatever the umask.
    fn create_parents(&self, path: &Path) -> io::Result<()> {
        let cd = path.parent().expect("BUG: record path has a parent");
        let ab = cd.parent().expect("BUG: record folder has a parent");
        for folder in [ab, cd] {
            match DirBuilder::new().mode(DIR_MODE).create(folder) {
                Ok(()) => fs::set_permissions(folder, Permissions::from_mode(DIR_MODE))?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes `bytes` to a fresh temp file beside `path` (mode `0600`), with
    /// mtime = expiry.
    fn write_tmp(&self, path: &Path, bytes: &[u8], expires: SystemTime) -> io::Result<PathBuf> {
        let parent = path.parent().expect("BUG: record path has a parent");
        let tmp = parent.join(format!("{TMP_PREFIX}{:016x}", rand::random::<u64>()));
        let create = || {
            File::options()
                .write(true)
                .create_new(true)
                .mode(FILE_MODE)
                .open(&tmp)
        };
        let mut file = match create() {
            Ok(file) => file,
            // The folders are made on first use only.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.create_parents(path)?;
                create()?
            }
            Err(e) => return Err(e),
        };
        // `mode` is filtered by the umask; this sets exactly 0600.
        let written = file
            .set_permissions(Permissions::from_mode(FILE_MODE))
            .and_then(|()| file.write_all(bytes))
            .and_then(|()| file.set_modified(expires))
            .and_then(|()| if self.fsync { file.sync_all() } else { Ok(()) });
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(tmp)
    }

    /// With `fsync`, makes a rename, link or unlink in `path`'s folder
    /// durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        if self.fsync {
            if let Some(parent) = path.parent() {
                self.sync_folder(parent)?;
            }
        }
        Ok(())
    }

    fn sync_folder(&self, folder: &Path) -> io::Result<()> {
        if self.fsync {
            File::open(folder)?.sync_all()?;
            #[cfg(test)]
            self.dir_syncs
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }

    /// Removes the records at `paths` for which `doomed` holds, each under
    /// its lock; returns how many. With `fsync`, syncs each folder once.
    fn remove_locked(
        &self,
        paths: Vec<PathBuf>,
        doomed: impl Fn(&Locked) -> io::Result<bool>,
    ) -> io::Result<u64> {
        let mut n = 0;
        let mut folders = BTreeSet::new();
        for path in paths {
            let Some(locked) = self.lock_record(&path)? else {
                continue;
            };
            if doomed(&locked)? && remove_if_present(&path)? {
                n += 1;
                if let Some(parent) = path.parent() {
                    folders.insert(parent.to_path_buf());
                }
            }
        }
        for folder in folders {
            self.sync_folder(&folder)?;
        }
        Ok(n)
    }
}

fn to_system(at: OffsetDateTime) -> SystemTime {
    SystemTime::from(at)
}

/// The bytes and expiry of a live record; `None` when absent or expired.
fn read_live(path: &Path) -> io::Result<Option<(Vec<u8>, SystemTime)>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    let mtime = meta.modified()?;
    if mtime <= SystemTime::now() {
        return Ok(None);
    }
    // A record file is never changed in place (writes rename a new file
    // over it, a touch sets only the mtime), so its length is settled: one
    // read of exactly that many bytes.
    let len = usize::try_from(meta.len()).map_err(io::Error::other)?;
    let mut bytes = vec![0; len];
    file.read_exact(&mut bytes)?;
    Ok(Some((bytes, mtime)))
}

fn encode_data(data: &HashMap<String, Value>) -> io::Result<Vec<u8>> {
    serde_json::to_vec(data).map_err(io::Error::other)
}

#[async_trait]
impl SessionStore for FileStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let bytes = encode_data(&record.data).map_err(|e| backend_error("encode", e))?;
        let expires = to_system(record.expiry_date);
        let mut id = record.id;
        let id = self
            .blocking("create", move |inner| {
                for _ in 0..CREATE_ATTEMPTS {
                    let key = storage_key(&id);
                    let path = inner.path(&key);
                    let tmp = inner.write_tmp(&path, &bytes, expires)?;
                    let placed = match fs::hard_link(&tmp, &path) {
                        Ok(()) => true,
                        // An expired leftover with this key is not a live
                        // session: taking its place resurrects nothing.
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                            match inner.lock_record(&path) {
                                Ok(Some(leftover)) if !leftover.is_live()? => {
                                    fs::rename(&tmp, &path)?;
                                    inner.sync_dir(&path)?;
                                    return Ok(id);
                                }
                                Ok(_) => false,
                                Err(e) => {
                                    let _ = fs::remove_file(&tmp);
                                    return Err(e);
                                }
                            }
                        }
                        Err(e) => {
                            let _ = fs::remove_file(&tmp);
                            return Err(e);
                        }
                    };
                    fs::remove_file(&tmp)?;
                    if placed {
                        inner.sync_dir(&path)?;
                        return Ok(id);
                    }
                    id = Id::default();
                }
                Err(io::Error::other(
                    "no free session id after several attempts",
                ))
            })
            .await?;
        record.id = id;
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.save_existing(record).await.map(|_| ())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let id = *id;
        // Read inline, not on the blocking pool: a session file is small
        // and, for a live session, in the page cache, so open + read take a
        // few microseconds, less than the hand-off to a pool thread and back
        // (docs/PERFORMANCE.md measures both). Writes, which rename and may
        // fsync, stay on the pool.
        let loaded = read_live(&self.inner.path(&storage_key(&id)))
            .map_err(|e| backend_error("file store load", e))?;
        let Some((bytes, mtime)) = loaded else {
            return Ok(None);
        };
        match serde_json::from_slice::<HashMap<String, Value>>(&bytes) {
            Ok(data) => Ok(Some(Record {
                id,
                data,
                expiry_date: OffsetDateTime::from(mtime),
            })),
            Err(error) => {
                tracing::warn!(
                    session = %fingerprint(&id),
                    %error,
                    "corrupted session file: treating the session as absent"
                );
                Ok(None)
            }
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.delete_keyed(&storage_key(id)).await
    }
}

#[async_trait]
impl SiteStore for FileStore {
    async fn save_existing(&self, record: &Record) -> session_store::Result<WriteOutcome> {
        let key = storage_key(&record.id);
        let bytes = encode_data(&record.data).map_err(|e| backend_error("encode", e))?;
        let expires = to_system(record.expiry_date);
        self.blocking("save", move |inner| {
            let path = inner.path(&key);
            // Held until the new file is in place: a delete waiting for it
            // then removes the new file, and a save that waited for a
            // delete finds no record.
            let Some(locked) = inner.lock_record(&path)? else {
                return Ok(WriteOutcome::Gone);
            };
            if !locked.is_live()? {
                return Ok(WriteOutcome::Gone);
            }
            let tmp = inner.write_tmp(&path, &bytes, expires)?;
            if let Err(e) = fs::rename(&tmp, &path) {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
            inner.sync_dir(&path)?;
            drop(locked);
            Ok(WriteOutcome::Written)
        })
        .await
    }

    async fn touch(
        &self,
        id: &Id,
        expires_at: OffsetDateTime,
    ) -> session_store::Result<WriteOutcome> {
        let key = storage_key(id);
        let expires = to_system(expires_at);
        self.blocking("touch", move |inner| {
            let path = inner.path(&key);
            let Some(locked) = inner.lock_record(&path)? else {
                return Ok(WriteOutcome::Gone);
            };
            if !locked.is_live()? {
                return Ok(WriteOutcome::Gone);
            }
            locked.file.set_modified(expires)?;
            if inner.fsync {
                locked.file.sync_all()?;
            }
            Ok(WriteOutcome::Written)
        })
        .await
    }

    async fn ping(&self) -> session_store::Result<()> {
        self.blocking("ping", |inner| {
            let meta = fs::metadata(&inner.dir)?;
            if meta.is_dir() && !meta.permissions().readonly() {
                Ok(())
            } else {
                Err(io::Error::other(
                    "the session folder is not a writable directory",
                ))
            }
        })
        .await
    }

    async fn count(&self) -> session_store::Result<Capability<u64>> {
        self.blocking("count", |inner| {
            let mut n = 0;
            walk(&inner.dir, &mut |_, _| n += 1)?;
            Ok(Capability::Supported(n))
        })
        .await
    }

    async fn count_expired(&self) -> session_store::Result<Capability<u64>> {
        self.blocking("count", |inner| {
            let now = SystemTime::now();
            let mut n = 0;
            walk(&inner.dir, &mut |_, mtime| {
                if mtime <= now {
                    n += 1
                }
            })?;
            Ok(Capability::Supported(n))
        })
        .await
    }

    async fn purge_expired(&self) -> session_store::Result<Capability<u64>> {
        self.blocking("purge", |inner| {
            let now = SystemTime::now();
            let mut expired = Vec::new();
            walk(&inner.dir, &mut |path, mtime| {
                if mtime <= now {
                    expired.push(path.to_path_buf())
                }
            })?;
            // Re-check under the lock: a touch or a create may have just
            // made the record live again.
            let n = inner.remove_locked(expired, |locked| Ok(!locked.is_live()?))?;
            remove_stale_tmp(&inner.dir)?;
            Ok(Capability::Supported(n))
        })
        .await
    }

    async fn clear(&self) -> session_store::Result<Capability<u64>> {
        self.blocking("clear", |inner| {
            let mut all = Vec::new();
            walk(&inner.dir, &mut |path, _| all.push(path.to_path_buf()))?;
            let n = inner.remove_locked(all, |_| Ok(true))?;
            Ok(Capability::Supported(n))
        })
        .await
    }

    async fn delete_keyed(&self, key: &str) -> session_store::Result<()> {
        let key = key.to_owned();
        self.blocking("delete", move |inner| {
            let path = inner.path(&key);
            let Some(_locked) = inner.lock_record(&path)? else {
                return Ok(());
            };
            if remove_if_present(&path)? {
                inner.sync_dir(&path)?;
            }
            Ok(())
        })
        .await
    }

    async fn load_keyed(&self, key: &str) -> session_store::Result<Option<Keyed>> {
        let loaded =
            read_live(&self.inner.path(key)).map_err(|e| backend_error("file store load", e))?;
        let Some((bytes, mtime)) = loaded else {
            return Ok(None);
        };
        let data = serde_json::from_slice(&bytes).map_err(|e| backend_error("decode", e))?;
        Ok(Some(Keyed {
            version: keyed_version(bytes, mtime),
            data,
            expires_at: OffsetDateTime::from(mtime),
        }))
    }

    async fn swap_keyed(
        &self,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<(&HashMap<String, Value>, OffsetDateTime)>,
    ) -> session_store::Result<bool> {
        let key = key.to_owned();
        let expected = expected.map(<[u8]>::to_vec);
        let new = match new {
            Some((data, expires_at)) => Some((
                encode_data(data).map_err(|e| backend_error("encode", e))?,
                to_system(expires_at),
            )),
            None => None,
        };
        self.blocking("swap", move |inner| {
            let path = inner.path(&key);
            // Compare and swap under the record's cross-process lock.
            let Some(_locked) = inner.lock_record(&path)? else {
                // Absent: insert-only, so a concurrent insert wins once.
                let Some((bytes, expires)) = new.filter(|_| expected.is_none()) else {
                    return Ok(expected.is_none());
                };
                let tmp = inner.write_tmp(&path, &bytes, expires)?;
                let placed = fs::hard_link(&tmp, &path);
                fs::remove_file(&tmp)?;
                return match placed {
                    Ok(()) => inner.sync_dir(&path).map(|()| true),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                    Err(e) => Err(e),
                };
            };
            let current = read_live(&path)?.map(|(bytes, mtime)| keyed_version(bytes, mtime));
            if current != expected {
                return Ok(false);
            }
            match new {
                Some((bytes, expires)) => {
                    let tmp = inner.write_tmp(&path, &bytes, expires)?;
                    if let Err(e) = fs::rename(&tmp, &path) {
                        let _ = fs::remove_file(&tmp);
                        return Err(e);
                    }
                }
                None => {
                    remove_if_present(&path)?;
                }
            }
            inner.sync_dir(&path)?;
            Ok(true)
        })
        .await
    }

    fn inspector(&self) -> Option<&dyn Inspect> {
        Some(self)
    }
}

#[async_trait]
impl Inspect for FileStore {
    async fn at_rest(&self, id: &Id) -> session_store::Result<Option<AtRest>> {
        let key = storage_key(id);
        self.blocking("read", move |inner| {
            let path = inner.path(&key);
            let bytes = match fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            let mtime = fs::metadata(&path)?.modified()?;
            let content = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            // Relative to the folder: the page shows no absolute server
            // path (the store cannot know whether `debug_errors` is on).
            Ok(Some(AtRest {
                kind: "file".into(),
                location: format!("{}/{}/{key}", &key[0..2], &key[2..4]),
                facts: vec![
                    ("folder".into(), "the one set by session.file.dir".into()),
                    ("size".into(), format!("{} bytes", bytes.len())),
                    (
                        "mtime (= expiry)".into(),
                        super::inspect::describe_time(OffsetDateTime::from(mtime)),
                    ),
                ],
                content: Some(content),
            }))
        })
        .await
    }
}

/// A keyed record's version: its bytes and its mtime (the expiry).
fn keyed_version(mut bytes: Vec<u8>, mtime: SystemTime) -> Vec<u8> {
    let nanos = mtime
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    bytes.extend_from_slice(&nanos.to_le_bytes());
    bytes
}

fn remove_if_present(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn is_record_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Calls `f(path, mtime)` for every record file (two folder levels deep),
/// reading metadata only. Files that vanish mid-walk are skipped.
fn walk(dir: &Path, f: &mut dyn FnMut(&Path, SystemTime)) -> io::Result<()> {
    for level1 in read_dir_or_empty(dir)? {
        for level2 in read_dir_or_empty(&level1)? {
            for entry in read_dir_or_empty(&level2)? {
                let is_record = entry
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(is_record_name);
                if !is_record {
                    continue;
                }
                match fs::metadata(&entry).and_then(|m| m.modified()) {
                    Ok(mtime) => f(&entry, mtime),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(())
}

fn read_dir_or_empty(dir: &Path) -> io::Result<Vec<PathBuf>> {
    match fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.map(|e| e.path())).collect(),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(Vec::new())
        }
        Err(e) => Err(e),
    }
}

fn remove_stale_tmp(dir: &Path) -> io::Result<()> {
    let cutoff = SystemTime::now() - STALE_TMP;
    for level1 in read_dir_or_empty(dir)? {
        for level2 in read_dir_or_empty(&level1)? {
            for entry in read_dir_or_empty(&level2)? {
                let is_tmp = entry
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(TMP_PREFIX));
                // Temp files carry the record's future expiry as mtime, so
                // age is judged by the inode change time instead.
                let old = fs::metadata(&entry)
                    .map(|m| {
                        use std::os::unix::fs::MetadataExt;
                        let ctime =
                            SystemTime::UNIX_EPOCH + Duration::from_secs(m.ctime().max(0) as u64);
                        ctime < cutoff
                    })
                    .unwrap_or(false);
                if is_tmp && old {
                    let _ = fs::remove_file(&entry);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;

    fn record(expiry: OffsetDateTime) -> Record {
        Record {
            id: Id::default(),
            data: HashMap::from([("k".to_owned(), Value::from(1))]),
            expiry_date: expiry,
        }
    }

    fn dir_syncs(store: &FileStore) -> usize {
        store.inner.dir_syncs.load(Ordering::Relaxed)
    }

    #[tokio::test]
    async fn with_fsync_every_removal_syncs_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path(), true).unwrap();
        let now = OffsetDateTime::now_utc();
        let live = now + Duration::from_secs(60);
        let expired = now - Duration::from_secs(1);

        let mut rec = record(live);
        store.create(&mut rec).await.unwrap();
        let before = dir_syncs(&store);
        store.save_existing(&rec).await.unwrap();
        assert!(dir_syncs(&store) > before, "save syncs after its rename");

        let before = dir_syncs(&store);
        store.delete(&rec.id).await.unwrap();
        assert!(dir_syncs(&store) > before, "delete syncs the folder");

        store.create(&mut record(expired)).await.unwrap();
        let before = dir_syncs(&store);
        assert_eq!(
            store.purge_expired().await.unwrap(),
            Capability::Supported(1)
        );
        assert!(dir_syncs(&store) > before, "purge syncs the folder");

        store.create(&mut record(live)).await.unwrap();
        let before = dir_syncs(&store);
        assert_eq!(store.clear().await.unwrap(), Capability::Supported(1));
        assert!(dir_syncs(&store) > before, "clear syncs the folder");
    }
}
