//! Finding a Chromium this worker can drive, once, at start-up.
//!
//! The configured path wins; without one, Debian's headless-only build
//! (`chromium-headless-shell`) is preferred over the full `chromium`: on a
//! 2-core machine it runs about three times the jobs per second at half the
//! memory. A worker without a usable Chromium still runs HTTP jobs; the
//! binary says so at start-up with the message of [`DetectError`].

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Executables looked for on `PATH`, best first.
const CANDIDATES: [&str; 2] = ["chromium-headless-shell", "chromium"];

/// Longest wait for `--version`: a first start reads the binary from disk.
const VERSION_TIMEOUT: Duration = Duration::from_secs(30);

/// A Chromium executable that answered `--version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chromium {
    pub path: PathBuf,
    /// What `--version` printed, e.g. `Chromium 156.0.8078.108`.
    pub version: String,
}

/// Why no usable Chromium was found.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error(
        "no chromium found: neither `chromium-headless-shell` nor `chromium` is on PATH \
         (install Debian's `chromium-headless-shell`, or set --chromium-path)"
    )]
    NotFound,
    #[error("chromium path {path} does not exist or is not executable")]
    NotExecutable { path: PathBuf },
    #[error("chromium at {path} did not run: {source}")]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("chromium at {path} failed to print its version ({status}): {stderr}")]
    Version {
        path: PathBuf,
        status: String,
        stderr: String,
    },
    #[error("chromium at {path} did not print its version within {VERSION_TIMEOUT:?}")]
    Timeout { path: PathBuf },
}

/// Finds the Chromium to drive: `configured` when given (a path, or a name
/// looked up on `PATH`), else the first of the candidates on `path_var` (the
/// value of `PATH`, passed in because only the binary reads the
/// environment). Checks that it runs by asking its version.
pub async fn detect_chromium(
    configured: Option<&Path>,
    path_var: Option<&std::ffi::OsStr>,
) -> Result<Chromium, DetectError> {
    let path = match configured {
        Some(path) if path.components().count() > 1 => {
            if !is_executable(path) {
                return Err(DetectError::NotExecutable {
                    path: path.to_owned(),
                });
            }
            path.to_owned()
        }
        Some(name) => {
            find_on_path(name.as_os_str(), path_var).ok_or_else(|| DetectError::NotExecutable {
                path: name.to_owned(),
            })?
        }
        None => CANDIDATES
            .iter()
            .find_map(|name| find_on_path(name.as_ref(), path_var))
            .ok_or(DetectError::NotFound)?,
    };
    let version = version_of(&path).await?;
    Ok(Chromium { path, version })
}

fn find_on_path(name: &std::ffi::OsStr, path_var: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path_var?)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

async fn version_of(path: &Path) -> Result<String, DetectError> {
    let mut command = tokio::process::Command::new(path);
    command.arg("--version").kill_on_drop(true);
    let output = match tokio::time::timeout(VERSION_TIMEOUT, command.output()).await {
        Ok(output) => output.map_err(|source| DetectError::Spawn {
            path: path.to_owned(),
            source,
        })?,
        Err(_elapsed) => {
            return Err(DetectError::Timeout {
                path: path.to_owned(),
            })
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() || stdout.is_empty() {
        return Err(DetectError::Version {
            path: path.to_owned(),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(stdout)
}
