//! `accord jobs artifacts|artifact|manifest|verify`: reading a job's
//! artifacts and its evidence manifest, and checking that what the server
//! serves still hashes to what the manifest recorded.

use std::io::Write;

use accord_client::AccordClient;
use accord_model::{ArtifactName, EvidenceManifest, JobId, Sha256Digest, MANIFEST_VERSION};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::cli::{JobsCommand, Output};
use crate::config::FileConfig;
use crate::jobs_cmd::parse_id;
use crate::keys_cmd::connect;

pub async fn run(command: JobsCommand, file: &FileConfig) -> Result<()> {
    match command {
        JobsCommand::Artifacts { id, client } => {
            let list = connect(&client, file)?
                .list_artifacts(parse_id(&id)?)
                .await?;
            match client.output {
                Output::Json => out!("{}", serde_json::to_string_pretty(&list)?),
                Output::Text => {
                    out!(
                        "{:<40}  {:>12}  {:>7}  {:<24}  SHA256",
                        "NAME",
                        "SIZE",
                        "ATTEMPT",
                        "TYPE"
                    );
                    for artifact in &list.items {
                        out!(
                            "{:<40}  {:>12}  {:>7}  {:<24}  {}",
                            artifact.name,
                            artifact.size,
                            artifact.attempt,
                            artifact.content_type,
                            artifact.sha256
                        );
                    }
                }
            }
            Ok(())
        }
        JobsCommand::Artifact {
            id,
            name,
            out,
            server,
        } => {
            let client = server.into_client_args();
            let api = connect(&client, file)?;
            let id = parse_id(&id)?;
            let name = ArtifactName::new(name.clone())
                .with_context(|| format!("{name:?} is not an artifact name"))?;
            let path = out.unwrap_or_else(|| name.as_str().into());
            let to_stdout = path.as_os_str() == "-";
            let mut sink: Box<dyn Write> = if to_stdout {
                Box::new(std::io::stdout().lock())
            } else {
                Box::new(
                    std::fs::File::create(&path)
                        .with_context(|| format!("create {}", path.display()))?,
                )
            };
            let fetched = download(&api, id, &name, &mut sink).await?;
            sink.flush().context("write the artifact")?;
            if fetched.expected != Some(fetched.sha256) {
                bail!(
                    "the bytes of {name} hash to {}, not to the {} the server holds for them",
                    fetched.sha256,
                    fetched
                        .expected
                        .map_or_else(|| "(no ETag)".to_owned(), |d| d.to_hex())
                );
            }
            if !to_stdout {
                eprintln!(
                    "wrote {} ({} bytes, sha256 {})",
                    path.display(),
                    fetched.size,
                    fetched.sha256
                );
            }
            Ok(())
        }
        JobsCommand::Manifest {
            id,
            attempt,
            client,
        } => {
            let manifest = connect(&client, file)?
                .manifest(parse_id(&id)?, attempt)
                .await?;
            match client.output {
                // Byte for byte as stored, so it can be hashed again.
                Output::Json => out!("{}", String::from_utf8_lossy(&manifest.bytes)),
                Output::Text => {
                    let value: serde_json::Value = serde_json::from_slice(&manifest.bytes)
                        .context("the manifest is not JSON")?;
                    out!("{}", serde_json::to_string_pretty(&value)?);
                    eprintln!(
                        "sha256 {} (attempt {})",
                        Sha256Digest::of(&manifest.bytes),
                        manifest
                            .attempt
                            .map_or_else(|| "?".to_owned(), |a| a.to_string())
                    );
                }
            }
            Ok(())
        }
        JobsCommand::Verify { id, client } => {
            let api = connect(&client, file)?;
            let report = verify(&api, parse_id(&id)?).await?;
            match client.output {
                Output::Json => out!("{}", serde_json::to_string_pretty(&report)?),
                Output::Text => {
                    for check in std::iter::once(&report.manifest).chain(&report.artifacts) {
                        out!(
                            "{:<8}  {:<40}  {}",
                            if check.ok { "ok" } else { "MISMATCH" },
                            check.name,
                            check.detail
                        );
                    }
                }
            }
            if !report.ok {
                let bad = std::iter::once(&report.manifest)
                    .chain(&report.artifacts)
                    .filter(|check| !check.ok)
                    .count();
                bail!(
                    "job {} does NOT match its evidence manifest: {bad} of {} checks failed",
                    report.job_id,
                    report.artifacts.len() + 1
                );
            }
            if client.output == Output::Text {
                out!(
                    "verified: the manifest of attempt {} and all {} artifacts it lists match their SHA-256",
                    report.attempt,
                    report.artifacts.len()
                );
            }
            Ok(())
        }
        other => unreachable!("not an artifact command: {other:?}"),
    }
}

/// What one download produced.
struct Fetched {
    size: u64,
    sha256: Sha256Digest,
    /// The digest the server holds (its ETag).
    expected: Option<Sha256Digest>,
}

/// Streams an artifact into `sink`, hashing it on the way.
async fn download(
    api: &AccordClient,
    id: JobId,
    name: &ArtifactName,
    sink: &mut dyn Write,
) -> Result<Fetched> {
    let mut response = api.artifact(id, name, None).await?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = response.chunk().await? {
        hasher.update(&chunk);
        size += chunk.len() as u64;
        sink.write_all(&chunk).context("write the artifact")?;
    }
    Ok(Fetched {
        size,
        sha256: Sha256Digest::from_bytes(hasher.finalize().into()),
        expected: response.sha256,
    })
}

#[derive(Debug, Serialize)]
struct Check {
    name: String,
    ok: bool,
    detail: String,
}

#[derive(Debug, Serialize)]
struct VerifyReport {
    job_id: JobId,
    attempt: u32,
    ok: bool,
    manifest: Check,
    artifacts: Vec<Check>,
}

/// Checks the latest manifest against the digest the index holds for it,
/// then every artifact it lists against its recorded size and SHA-256.
async fn verify(api: &AccordClient, id: JobId) -> Result<VerifyReport> {
    let list = api.list_artifacts(id).await?;
    let manifest = api.manifest(id, None).await?;
    let actual = Sha256Digest::of(&manifest.bytes);
    let attempt = manifest
        .attempt
        .context("the server did not say which attempt the manifest is of")?;
    let name = EvidenceManifest::artifact_name(attempt);
    let recorded = list.items.iter().find(|a| a.name == name).map(|a| a.sha256);
    let manifest_ok = recorded == Some(actual) && manifest.sha256 == Some(actual);
    let manifest_check = Check {
        name: name.to_string(),
        ok: manifest_ok,
        detail: if manifest_ok {
            format!("sha256 {actual}")
        } else {
            format!(
                "its bytes hash to {actual}; the index records {}",
                recorded.map_or_else(|| "nothing".to_owned(), |d| d.to_hex())
            )
        },
    };
    let parsed: EvidenceManifest = serde_json::from_slice(&manifest.bytes)
        .with_context(|| format!("{name} is not an evidence manifest"))?;
    if parsed.version != MANIFEST_VERSION {
        bail!(
            "{name} is of manifest version {}, which this accord does not read (it reads {MANIFEST_VERSION})",
            parsed.version
        );
    }
    let mut artifacts = Vec::with_capacity(parsed.artifacts.len());
    for expected in &parsed.artifacts {
        let fetched = match download(api, id, &expected.name, &mut std::io::sink()).await {
            Ok(fetched) => fetched,
            Err(err) => {
                artifacts.push(Check {
                    name: expected.name.to_string(),
                    ok: false,
                    detail: format!("cannot download it: {err:#}"),
                });
                continue;
            }
        };
        let ok = fetched.sha256 == expected.sha256 && fetched.size == expected.size;
        artifacts.push(Check {
            name: expected.name.to_string(),
            ok,
            detail: if ok {
                format!("{} bytes, sha256 {}", fetched.size, fetched.sha256)
            } else {
                format!(
                    "the manifest records {} bytes with sha256 {}; the server served {} bytes hashing to {}",
                    expected.size, expected.sha256, fetched.size, fetched.sha256
                )
            },
        });
    }
    let ok = manifest_check.ok && artifacts.iter().all(|check| check.ok);
    Ok(VerifyReport {
        job_id: id,
        attempt,
        ok,
        manifest: manifest_check,
        artifacts,
    })
}
