//! The object-storage bucket holding segment files: `memory://`, `file://PATH` (fsync on
//! every write, so an ack means the bytes are on disk) and `s3://BUCKET[/PREFIX]?endpoint=…&region=…`
//! (credentials from the usual `AWS_*` variables).
//!
//! # Retries
//! Uploads are retried by the segment flusher, which owns the decision of failing a flush.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

mod folder;
use folder::Folder;

#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    #[error("unsupported bucket url '{0}': use memory://, file://PATH or s3://BUCKET?endpoint=…&region=…")]
    BadUrl(String),
    #[error("cannot prepare bucket folder {0}: {1}")]
    Folder(String, std::io::Error),
    #[error("segment object damaged: {0}")]
    Corrupt(String),
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("bucket folder: {0}")]
    Io(#[from] std::io::Error),
}

impl BucketError {
    /// The key exists already (create-only writes).
    pub fn is_already_exists(&self) -> bool {
        match self {
            BucketError::Store(object_store::Error::AlreadyExists { .. }) => true,
            BucketError::Io(e) => e.kind() == std::io::ErrorKind::AlreadyExists,
            _ => false,
        }
    }

    /// The object does not exist (deleted, or never written).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            BucketError::Store(object_store::Error::NotFound { .. })
        )
    }
}

/// A bucket with an optional key prefix; cheap to clone.
#[derive(Clone)]
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
    /// Writes of a `file://` bucket (reads, lists and deletes go through `store`).
    folder: Option<Folder>,
}

impl Bucket {
    pub fn open(url: &str) -> Result<Self, BucketError> {
        let bad = || BucketError::BadUrl(url.to_string());
        let mut folder = None;
        let (store, prefix): (Arc<dyn ObjectStore>, String) = if url.starts_with("memory://") {
            (Arc::new(InMemory::new()), String::new())
        } else if let Some(path) = url.strip_prefix("file://") {
            if path.is_empty() {
                return Err(bad());
            }
            std::fs::create_dir_all(path).map_err(|e| BucketError::Folder(path.to_string(), e))?;
            folder = Some(
                Folder::open(std::path::Path::new(path))
                    .map_err(|e| BucketError::Folder(path.to_string(), e))?,
            );
            let fs = LocalFileSystem::new_with_prefix(path)?
                .with_fsync(true)
                .with_automatic_cleanup(true);
            (Arc::new(fs), String::new())
        } else if url.starts_with("s3://") {
            let parsed = url::Url::parse(url).map_err(|_| bad())?;
            let bucket = parsed
                .host_str()
                .filter(|h| !h.is_empty())
                .ok_or_else(bad)?;
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            for (k, v) in parsed.query_pairs() {
                match k.as_ref() {
                    "endpoint" => {
                        builder = builder
                            .with_allow_http(v.starts_with("http://"))
                            .with_virtual_hosted_style_request(false)
                            .with_endpoint(v.to_string());
                    }
                    "region" => builder = builder.with_region(v.to_string()),
                    _ => return Err(bad()),
                }
            }
            let prefix = parsed.path().trim_matches('/').to_string();
            (Arc::new(builder.build()?), prefix)
        } else {
            return Err(bad());
        };
        Ok(Bucket {
            store,
            prefix,
            url: url.to_string(),
            folder,
        })
    }

    /// Whether each object request costs money and a network round trip (`s3://`), as
    /// opposed to a local folder or memory.
    pub fn is_remote(&self) -> bool {
        self.url.starts_with("s3://")
    }

    /// The url without query parameters (safe to log).
    pub fn describe(&self) -> &str {
        self.url.split('?').next().unwrap_or(&self.url)
    }

    fn path(&self, key: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(key)
        } else {
            Path::from(format!("{}/{key}", self.prefix))
        }
    }

    /// Writes a new object; fails if the key exists (keys are never reused).
    pub async fn put_new(&self, key: &str, data: Bytes) -> Result<(), BucketError> {
        if let Some(folder) = self.folder.as_ref().filter(|_| folder::plain_key(key)) {
            return Ok(folder.put_new(key, data).await?);
        }
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        self.store
            .put_opts(&self.path(key), PutPayload::from(data), opts)
            .await?;
        Ok(())
    }

    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, BucketError> {
        Ok(self.store.get_range(&self.path(key), range).await?)
    }

    pub async fn get(&self, key: &str) -> Result<Bytes, BucketError> {
        Ok(self.store.get(&self.path(key)).await?.bytes().await?)
    }

    pub async fn delete(&self, key: &str) -> Result<(), BucketError> {
        match self.store.delete(&self.path(key)).await {
            // Already gone (a previous pass or another agent): that is what we wanted.
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            other => Ok(other?),
        }
    }

    /// Objects under `prefix`: (key relative to the bucket's prefix, last modified ms).
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, i64)>, BucketError> {
        use futures::TryStreamExt;
        let full = self.path(prefix);
        let strip = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let metas: Vec<object_store::ObjectMeta> =
            self.store.list(Some(&full)).try_collect().await?;
        Ok(metas
            .into_iter()
            .map(|m| {
                let key = m.location.to_string();
                let key = key.strip_prefix(&strip).unwrap_or(&key).to_string();
                (key, m.last_modified.timestamp_millis())
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn round_trip(bucket: &Bucket) {
        let key = format!("test/{}", uuid::Uuid::new_v4());
        bucket
            .put_new(&key, Bytes::from_static(b"hello world"))
            .await
            .unwrap();
        assert!(
            bucket
                .put_new(&key, Bytes::from_static(b"again"))
                .await
                .is_err(),
            "keys are create-only"
        );
        assert_eq!(
            bucket.get_range(&key, 6..11).await.unwrap(),
            Bytes::from_static(b"world")
        );
        assert_eq!(bucket.get(&key).await.unwrap().len(), 11);
        let listed = bucket.list("test").await.unwrap();
        assert!(
            listed.iter().any(|(k, _)| *k == key),
            "{listed:?} lists {key}"
        );
        bucket.delete(&key).await.unwrap();
        assert!(bucket.get(&key).await.is_err());
        bucket.delete(&key).await.expect("deleting twice is fine");
    }

    #[tokio::test]
    async fn memory_bucket() {
        round_trip(&Bucket::open("memory://").unwrap()).await;
    }

    #[tokio::test]
    async fn file_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().join("bucket").display());
        round_trip(&Bucket::open(&url).unwrap()).await;
    }

    #[tokio::test]
    async fn s3_bucket() {
        let Ok(url) = std::env::var("SLUICE_TEST_S3_URL") else {
            eprintln!("skipped: SLUICE_TEST_S3_URL is not set, the S3 bucket test did not run");
            return;
        };
        round_trip(&Bucket::open(&url).unwrap()).await;
    }

    #[test]
    fn rejects_bad_urls() {
        for url in ["ftp://x", "file://", "s3://", "s3://b?bogus=1", "nothing"] {
            assert!(Bucket::open(url).is_err(), "{url} should be refused");
        }
    }
}
