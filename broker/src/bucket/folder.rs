//! Writes of a `file://` bucket, done by hand so that creating a file is off the write path.
//!
//! Creating a file costs an inode allocation: under a busy producer it was the most costly
//! system call of the flush (0.7 ms of `openat`, more than the fsyncs). So each agent keeps a
//! few empty files ready in its own `.pool/<instance>/` folder, made in the background, and a
//! write fills one, syncs it and renames it to its key.
//!
//! # Crash safety
//! - The rename comes after the data is synced, and the key's folder is synced after the
//!   rename, so a key names either nothing or the whole object; an acknowledged object is
//!   never in the pool.
//! - A pool folder belongs to one running agent. On start an agent deletes pool folders not
//!   touched for [`STALE_POOL`] (an agent that crashed, or restarted under a new instance).
//!   An idle agent whose pool was removed that way finds its file gone: the write fails over
//!   to creating the file in place, or, if the file vanished after it was opened, the rename
//!   fails and the flusher retries; nothing is acknowledged that is not under its key.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

/// Empty files an agent keeps ready.
pub const POOL_TARGET: usize = 32;
/// Pool folders untouched this long belong to no running agent.
pub const STALE_POOL: Duration = Duration::from_secs(600);

const POOLS: &str = ".pool";

/// The write side of a folder bucket; cheap to clone.
#[derive(Clone)]
pub struct Folder {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    pool_dir: PathBuf,
    ready: Mutex<Vec<PathBuf>>,
    refilling: AtomicBool,
    next: AtomicU64,
}

/// Whether `key` maps to `root/key` unchanged (object keys are plain ASCII paths); other
/// keys go through the generic store.
pub fn plain_key(key: &str) -> bool {
    !key.is_empty()
        && key.split('/').all(|part| {
            !part.is_empty()
                && !part.starts_with('.')
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
}

impl Folder {
    /// Opens the folder at `root` (created by the caller): removes stale pool folders and
    /// makes this agent's own.
    pub fn open(root: &Path) -> io::Result<Folder> {
        let pools = root.join(POOLS);
        fs::create_dir_all(&pools)?;
        for entry in fs::read_dir(&pools)? {
            let entry = entry?;
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= STALE_POOL);
            if stale && entry.file_type()?.is_dir() {
                // Best effort: another agent may be removing it at the same time.
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        let pool_dir = pools.join(uuid::Uuid::new_v4().simple().to_string());
        fs::create_dir_all(&pool_dir)?;
        Ok(Folder {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                pool_dir,
                ready: Mutex::new(Vec::new()),
                refilling: AtomicBool::new(false),
                next: AtomicU64::new(0),
            }),
        })
    }

    /// Empty files ready for writes.
    #[cfg(test)]
    pub fn ready(&self) -> usize {
        self.inner.ready.lock().expect("pool lock").len()
    }

    /// Writes a new object at `key` (a [`plain_key`]); fails with `AlreadyExists` if the key
    /// exists. Returns when the bytes and the name are on disk.
    pub async fn put_new(&self, key: &str, data: Bytes) -> io::Result<()> {
        let inner = self.inner.clone();
        let key = key.to_string();
        let result = tokio::task::spawn_blocking(move || inner.put_new(&key, &data))
            .await
            .map_err(io::Error::other)?;
        self.refill();
        result
    }

    /// Tops the pool up in the background (one refill at a time).
    pub fn refill(&self) {
        let ready = self.inner.ready.lock().expect("pool lock").len();
        if ready > POOL_TARGET / 2 || self.inner.refilling.swap(true, Ordering::AcqRel) {
            return;
        }
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = inner.refill() {
                tracing::warn!(error = %e, "preparing empty segment files failed; writes create their own");
            }
            inner.refilling.store(false, Ordering::Release);
        });
    }
}

impl Inner {
    fn refill(&self) -> io::Result<()> {
        let missing = POOL_TARGET.saturating_sub(self.ready.lock().expect("pool lock").len());
        if missing == 0 {
            return Ok(());
        }
        fs::create_dir_all(&self.pool_dir)?;
        let mut made = Vec::with_capacity(missing);
        for _ in 0..missing {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let path = self.pool_dir.join(n.to_string());
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?;
            made.push(path);
        }
        self.ready.lock().expect("pool lock").extend(made);
        Ok(())
    }

    fn put_new(&self, key: &str, data: &[u8]) -> io::Result<()> {
        let target = self.root.join(key);
        let dir = target.parent().unwrap_or(&self.root);
        if fs::symlink_metadata(&target).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("object {key} exists"),
            ));
        }
        fs::create_dir_all(dir)?;
        let ready = self.ready.lock().expect("pool lock").pop();
        let opened = ready.and_then(|path| {
            OpenOptions::new()
                .write(true)
                .open(&path)
                .ok()
                .map(|f| (f, path))
        });
        match opened {
            Some((mut file, staged)) => {
                let written = file
                    .write_all(data)
                    .and_then(|()| file.sync_data())
                    .and_then(|()| fs::rename(&staged, &target));
                if let Err(e) = written {
                    let _ = fs::remove_file(&staged);
                    return Err(e);
                }
            }
            None => {
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&target)?;
                let written = file.write_all(data).and_then(|()| file.sync_data());
                if let Err(e) = written {
                    let _ = fs::remove_file(&target);
                    return Err(e);
                }
            }
        }
        File::open(dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_keys() {
        for ok in ["segments/a/0001-x.seg", "t/x", "a-b_c.d"] {
            assert!(plain_key(ok), "{ok}");
        }
        for bad in ["", "/abs", "a/../b", "a//b", ".pool/x", "a/", "sp ace", "é"] {
            assert!(!plain_key(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn writes_use_prepared_files_and_fall_back_to_creating() {
        let dir = tempfile::tempdir().unwrap();
        let folder = Folder::open(dir.path()).unwrap();
        // Nothing prepared yet: the file is created in place.
        folder
            .put_new("s/a", Bytes::from_static(b"first"))
            .await
            .unwrap();
        assert_eq!(fs::read(dir.path().join("s/a")).unwrap(), b"first");
        // The write started a refill in the background.
        for _ in 0..500 {
            if folder.ready() == POOL_TARGET {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(folder.ready(), POOL_TARGET);
        folder
            .put_new("s/b", Bytes::from(vec![7u8; 100_000]))
            .await
            .unwrap();
        assert_eq!(
            fs::read(dir.path().join("s/b")).unwrap(),
            vec![7u8; 100_000]
        );
        assert_eq!(folder.ready(), POOL_TARGET - 1);
        let err = folder
            .put_new("s/b", Bytes::from_static(b"again"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        // The pool removed under it (another agent judged it stale): writes still land.
        fs::remove_dir_all(&folder.inner.pool_dir).unwrap();
        folder
            .put_new("s/c", Bytes::from_static(b"third"))
            .await
            .unwrap();
        assert_eq!(fs::read(dir.path().join("s/c")).unwrap(), b"third");
    }

    #[test]
    fn stale_pools_are_removed_on_open_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let live = Folder::open(dir.path()).unwrap();
        live.inner.refill().unwrap();
        let stale = dir.path().join(POOLS).join("crashed");
        fs::create_dir_all(&stale).unwrap();
        fs::write(stale.join("0"), b"").unwrap();
        let old = std::time::SystemTime::now() - STALE_POOL - Duration::from_secs(1);
        File::open(&stale).unwrap().set_modified(old).unwrap();
        let _other = Folder::open(dir.path()).unwrap();
        assert!(!stale.exists(), "the crashed agent's pool is removed");
        assert_eq!(
            fs::read_dir(&live.inner.pool_dir).unwrap().count(),
            POOL_TARGET,
            "a live agent's pool is kept"
        );
    }
}
