//! Lake locations: what a location string names, the stores and options it is reached with.

use std::collections::HashMap;
use std::sync::Arc;

use deltalake::DeltaTableBuilder;
use object_store::ObjectStore;
use object_store::path::Path as StorePath;
use url::Url;

use crate::crypt::KEYRING_FILE;

use super::{ENCRYPTED_SCHEME, SYSTEM_FOLDER};
use crate::{Error, Result};

/// The local folder of a `file://` or encrypted local URL.
pub(super) fn local_path(url: &Url) -> Option<std::path::PathBuf> {
    match url.scheme() {
        "file" => url.to_file_path().ok(),
        ENCRYPTED_SCHEME => Url::parse(&format!("file://{}", &url[url::Position::BeforePath..]))
            .ok()?
            .to_file_path()
            .ok(),
        _ => None,
    }
}

/// Tells deltalake that [`ENCRYPTED_SCHEME`] tables keep their log like local ones (the
/// store itself is always handed over with the table).
pub(super) fn register_encrypted_scheme() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        #[derive(Debug)]
        struct Factory;
        impl deltalake::logstore::LogStoreFactory for Factory {
            fn with_options(
                &self,
                prefixed_store: deltalake::logstore::ObjectStoreRef,
                root_store: deltalake::logstore::ObjectStoreRef,
                location: &Url,
                options: &deltalake::logstore::StorageConfig,
            ) -> deltalake::DeltaResult<Arc<dyn deltalake::logstore::LogStore>> {
                Ok(deltalake::logstore::default_logstore(
                    prefixed_store,
                    root_store,
                    location,
                    options,
                ))
            }
        }
        let scheme = Url::parse(&format!("{ENCRYPTED_SCHEME}://")).expect("a scheme URL");
        deltalake::logstore::logstore_factories().insert(scheme, Arc::new(Factory));
    });
}

/// The key file's path from the lake root.
pub(super) fn keyring_path() -> StorePath {
    StorePath::from(format!("{SYSTEM_FOLDER}/{KEYRING_FILE}"))
}

pub(crate) fn parse_location(location: &str) -> Result<Url> {
    let invalid = |reason: String| Error::InvalidLocation {
        location: location.to_string(),
        reason,
    };
    let mut url = if location.contains("://") {
        Url::parse(location).map_err(|e| invalid(e.to_string()))?
    } else {
        let path = std::path::absolute(location).map_err(|e| invalid(e.to_string()))?;
        Url::from_directory_path(&path).map_err(|()| invalid("not an absolute path".into()))?
    };
    match url.scheme() {
        "file" | "s3" | "s3a" | "memory" => {}
        other => {
            return Err(invalid(format!(
                "unsupported scheme '{other}' (use a folder or s3://)"
            )));
        }
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// An object store on a folder or bucket prefix outside the lake (a landing area that
/// `carelake serve --watch` loads from), opened with the same environment settings as a lake
/// (`AWS_*`, `CARELAKE_S3_ENDPOINT`); paths in it are relative to the location, whose URL
/// (ending in `/`) comes back with it.
pub fn landing_store(location: &str) -> Result<(Arc<dyn ObjectStore>, Url)> {
    let url = parse_location(location)?;
    if url.scheme() == "file" {
        let path = url.to_file_path().map_err(|()| Error::InvalidLocation {
            location: location.to_string(),
            reason: "not a local path".into(),
        })?;
        if !path.is_dir() {
            return Err(Error::Watch(format!("{location}: no such folder")));
        }
        let store = object_store::local::LocalFileSystem::new_with_prefix(&path)?;
        return Ok((Arc::new(store), url));
    }
    let store = DeltaTableBuilder::from_url(url.clone())?
        .with_storage_options(storage_options_from_env())
        .build_storage()?
        .object_store(None);
    Ok((store, url))
}

/// `AWS_*` settings from the environment, plus `CARELAKE_S3_ENDPOINT` for S3-compatible stores.
pub(super) fn storage_options_from_env() -> HashMap<String, String> {
    let mut options: HashMap<String, String> = std::env::vars()
        .filter(|(key, _)| key.starts_with("AWS_"))
        .collect();
    if let Ok(endpoint) = std::env::var("CARELAKE_S3_ENDPOINT") {
        if endpoint.starts_with("http://") {
            options.insert("AWS_ALLOW_HTTP".into(), "true".into());
        }
        options.insert("AWS_ENDPOINT_URL".into(), endpoint);
    }
    // Safe concurrent commits on S3 without a lock table: conditional writes (If-None-Match),
    // which AWS S3 and the common S3-compatible stores support.
    if !options.contains_key("AWS_S3_LOCKING_PROVIDER")
        && !options.contains_key("AWS_S3_ALLOW_UNSAFE_RENAME")
    {
        options
            .entry("conditional_put".into())
            .or_insert_with(|| "etag".into());
    }
    options
}
