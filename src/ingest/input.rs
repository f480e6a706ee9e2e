//! Finding input files: local paths, globs, directories, `file://` URLs and
//! object-store URLs (`s3://bucket/prefix/*.csv`). Remote objects are
//! streamed to a local temporary file once, so every later pass (hash, raw
//! copy, parse) reads local bytes and memory stays bounded.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::AsyncWriteExt;

use crate::lake::store_for_url;

/// One input file, available locally.
pub struct InputFile {
    /// How the user named it (path or URL), for messages and the batches table.
    pub display_name: String,
    /// The file name alone, used under `raw/`.
    pub file_name: String,
    /// Where the file is on this machine (downloaded first if remote).
    pub local_path: PathBuf,
    /// Keeps a downloaded copy alive until the file is ingested.
    _download: Option<tempfile::TempPath>,
}

impl InputFile {
    /// A file already on this machine.
    pub fn local(path: &Path) -> Self {
        InputFile {
            display_name: path.display().to_string(),
            file_name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "input".into()),
            local_path: path.to_path_buf(),
            _download: None,
        }
    }

    /// File extension in lower case ("csv", "xlsx", …).
    pub fn extension(&self) -> String {
        Path::new(&self.file_name)
            .extension()
            .map(|e| e.to_string_lossy().to_lowercase())
            .unwrap_or_default()
    }
}

/// A named input, not yet fetched.
pub enum InputRef {
    /// A local path.
    Local(PathBuf),
    /// An object in a store (S3 and the like).
    Remote {
        /// The URL as the user wrote it.
        url: String,
        /// The store holding it.
        store: std::sync::Arc<dyn ObjectStore>,
        /// Its path in the store.
        path: StorePath,
    },
}

impl InputRef {
    /// The path or URL, for messages.
    pub fn display_name(&self) -> String {
        match self {
            InputRef::Local(p) => p.display().to_string(),
            InputRef::Remote { url, .. } => url.clone(),
        }
    }

    /// Make the file available locally (download a remote object).
    pub async fn fetch(&self) -> Result<InputFile> {
        match self {
            InputRef::Local(path) => Ok(InputFile::local(path)),
            InputRef::Remote { url, store, path } => {
                let temp = tempfile::NamedTempFile::new()?.into_temp_path();
                let mut out = tokio::fs::File::create(&temp).await?;
                let mut stream = store
                    .get(path)
                    .await
                    .with_context(|| format!("cannot read {url}"))?
                    .into_stream();
                while let Some(chunk) = stream
                    .try_next()
                    .await
                    .with_context(|| format!("reading {url}"))?
                {
                    out.write_all(&chunk).await?;
                }
                out.flush().await?;
                Ok(InputFile {
                    display_name: url.clone(),
                    file_name: path.filename().unwrap_or("input").to_string(),
                    local_path: temp.to_path_buf(),
                    _download: Some(temp),
                })
            }
        }
    }
}

/// Expand the inputs a user gave into files, in a stable order. A pattern
/// or directory that matches nothing is an error, not a silent no-op.
pub async fn expand(inputs: &[String]) -> Result<Vec<InputRef>> {
    let mut out = Vec::new();
    for input in inputs {
        let before = out.len();
        if let Some(rest) = input.strip_prefix("file://") {
            expand_local(rest, &mut out)?;
        } else if input.contains("://") {
            expand_remote(input, &mut out).await?;
        } else {
            expand_local(input, &mut out)?;
        }
        if out.len() == before {
            bail!("no input files match {input}");
        }
    }
    Ok(out)
}

fn is_data_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    path.is_file() && !name.starts_with('.') && !name.starts_with("~$")
}

fn expand_local(pattern: &str, out: &mut Vec<InputRef>) -> Result<()> {
    let path = Path::new(pattern);
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_data_file(p))
            .collect();
        files.sort();
        out.extend(files.into_iter().map(InputRef::Local));
        return Ok(());
    }
    if path.is_file() {
        out.push(InputRef::Local(path.to_path_buf()));
        return Ok(());
    }
    if !pattern.contains(['*', '?', '[']) {
        bail!("input file not found: {pattern}");
    }
    let mut files: Vec<PathBuf> = glob::glob(pattern)
        .with_context(|| format!("bad glob pattern {pattern}"))?
        .filter_map(|p| p.ok())
        .filter(|p| is_data_file(p))
        .collect();
    files.sort();
    out.extend(files.into_iter().map(InputRef::Local));
    Ok(())
}

/// `s3://bucket/dir/file.csv`, `s3://bucket/dir/` (every object under it) or
/// `s3://bucket/dir/*.csv` (a glob on the object names).
async fn expand_remote(input: &str, out: &mut Vec<InputRef>) -> Result<()> {
    let (base, pattern) = match input.find(['*', '?', '[']) {
        Some(pos) => {
            let cut = input[..pos].rfind('/').map_or(0, |i| i + 1);
            (&input[..cut], Some(&input[cut..]))
        }
        None => (input, None),
    };
    let url = url::Url::parse(base).with_context(|| format!("bad URL {input}"))?;
    let (store, prefix) = store_for_url(&url)?;
    let matcher = pattern
        .map(glob::Pattern::new)
        .transpose()
        .with_context(|| format!("bad glob pattern in {input}"))?;
    if matcher.is_none() && !base.ends_with('/') {
        // A single object.
        out.push(InputRef::Remote {
            url: input.to_string(),
            store,
            path: prefix,
        });
        return Ok(());
    }
    let mut objects: Vec<StorePath> = store
        .list(Some(&prefix))
        .map_ok(|meta| meta.location)
        .try_collect()
        .await
        .with_context(|| format!("cannot list {input}"))?;
    objects.sort();
    for path in objects {
        let name = path.filename().unwrap_or_default().to_string();
        if matcher.as_ref().is_some_and(|m| !m.matches(&name)) {
            continue;
        }
        let url = format!(
            "{}://{}/{}",
            url.scheme(),
            url.host_str().unwrap_or_default(),
            path
        );
        out.push(InputRef::Remote {
            url,
            store: store.clone(),
            path,
        });
    }
    Ok(())
}
