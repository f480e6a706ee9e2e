//! Turning a lake location or input URL into an object store.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Once};

use anyhow::{Context, Result, bail};
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as StorePath;
use url::Url;

static REGISTER_S3: Once = Once::new();

/// A URL for a path or URL. A plain path is made absolute (and created when
/// `create_dir` is set, as a lake root is).
pub fn location_url(location: &str, create_dir: bool) -> Result<Url> {
    if let Some((scheme, _)) = location.split_once("://") {
        let url = Url::parse(location).with_context(|| format!("bad URL {location}"))?;
        match scheme {
            "s3" | "s3a" => REGISTER_S3.call_once(|| deltalake::aws::register_handlers(None)),
            "file" | "memory" => {}
            other => bail!(
                "unsupported storage scheme '{other}://' in {location} (use a path, file://, s3://)"
            ),
        }
        return Ok(with_trailing_slash(url));
    }
    let path = Path::new(location);
    if create_dir {
        std::fs::create_dir_all(path)
            .with_context(|| format!("cannot create lake directory {}", path.display()))?;
    }
    let absolute = std::path::absolute(path).with_context(|| format!("bad path {location}"))?;
    Url::from_directory_path(&absolute)
        .map_err(|_| anyhow::anyhow!("cannot use {} as a lake location", absolute.display()))
}

fn with_trailing_slash(mut url: Url) -> Url {
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

/// The object store that holds `url`, and the path of `url` inside it.
pub fn object_store_for(url: &Url) -> Result<(Arc<dyn ObjectStore>, StorePath)> {
    match url.scheme() {
        "file" => {
            let store = LocalFileSystem::new();
            let path = url
                .to_file_path()
                .map_err(|_| anyhow::anyhow!("bad file URL {url}"))?;
            let prefix = StorePath::from_absolute_path(&path)?;
            Ok((Arc::new(store), prefix))
        }
        "s3" | "s3a" => {
            let bucket = url.host_str().context("s3 URL has no bucket")?;
            let store = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .with_context(|| {
                    format!("cannot connect to {url} (check AWS_ENDPOINT_URL and credentials)")
                })?;
            let prefix = StorePath::from_url_path(url.path())?;
            Ok((Arc::new(store), prefix))
        }
        "memory" => Ok((
            Arc::new(InMemory::new()),
            StorePath::from_url_path(url.path())?,
        )),
        other => bail!("unsupported storage scheme {other}"),
    }
}

/// Options for delta-rs: the S3 settings from the environment. Local object
/// stores and test servers without conditional writes need the unsafe rename
/// opt-in, which is only safe with a single writer; safetynet holds the run
/// lock for that (see the pipeline runner).
pub fn storage_options() -> HashMap<String, String> {
    let mut options = HashMap::new();
    for (key, value) in std::env::vars() {
        if key.starts_with("AWS_") {
            options.insert(key, value);
        }
    }
    options
}
