//! What a browser job keeps as files: screenshots, the page's HTML, and
//! downloads.
//!
//! Screenshots pin the device metrics to the declared width and height
//! (never the window's or chromiumoxide's defaults), so two captures of the
//! same page have the same size; full-page and element captures clip the
//! page at that width. Downloads by URL are loaded by the browser for the
//! page (its cookies, its proxy) and read in chunks up to the size cap;
//! downloads by clicking go through Chromium's download manager into the
//! browser's own directory, and are cancelled once they pass the cap.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use accord_model::CssSelector;
use base64::Engine as _;
use chromiumoxide::browser::Browser;
use chromiumoxide::cdp::browser_protocol::browser::{
    BrowserContextId, CancelDownloadParams, DownloadProgressState, EventDownloadProgress,
    EventDownloadWillBegin, SetDownloadBehaviorBehavior, SetDownloadBehaviorParams,
};
use chromiumoxide::cdp::browser_protocol::emulation::{
    ClearDeviceMetricsOverrideParams, SetDeviceMetricsOverrideParams,
};
use chromiumoxide::cdp::browser_protocol::io::{CloseParams as IoClose, ReadParams};
use chromiumoxide::cdp::browser_protocol::network::{
    LoadNetworkResourceOptions, LoadNetworkResourceParams,
};
use chromiumoxide::cdp::browser_protocol::page::{
    CaptureScreenshotFormat, CaptureScreenshotParams, Viewport,
};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;

use super::actions;
use super::error::BrowserFailure;
use super::page::{Interrupts, PageSession};
use super::WindowSize;

/// Bytes asked per read of a download.
const READ_CHUNK: i64 = 1024 * 1024;

/// What a `screenshot` step asks for.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shot<'a> {
    pub selector: Option<&'a CssSelector>,
    pub full_page: bool,
    pub width: u32,
    pub height: u32,
}

/// Captures a PNG. The page's metrics go back to the window's afterwards,
/// so later steps see the page as before.
pub(super) async fn screenshot(
    session: &PageSession,
    shot: Shot<'_>,
    window: WindowSize,
    max_height: u32,
    element_timeout: Duration,
    interrupts: &Interrupts,
) -> Result<Vec<u8>, BrowserFailure> {
    set_metrics(session, shot.width, shot.height, interrupts).await?;
    let captured = capture(session, shot, max_height, element_timeout, interrupts).await;
    if (shot.width, shot.height) != (window.width, window.height) || captured.is_err() {
        // Only when the page is still there to hear it.
        if !matches!(
            captured,
            Err(BrowserFailure::BrowserCrashed
                | BrowserFailure::RendererCrashed
                | BrowserFailure::Stopped)
        ) {
            session
                .execute(
                    ClearDeviceMetricsOverrideParams::default(),
                    "restore the window",
                    interrupts,
                )
                .await?;
        }
    }
    captured
}

/// The viewport as it is, for the screenshot of a failure.
pub(super) async fn viewport_png(
    session: &PageSession,
    interrupts: &Interrupts,
) -> Result<Vec<u8>, BrowserFailure> {
    png(session, None, false, interrupts).await
}

async fn set_metrics(
    session: &PageSession,
    width: u32,
    height: u32,
    interrupts: &Interrupts,
) -> Result<(), BrowserFailure> {
    let metrics =
        SetDeviceMetricsOverrideParams::new(i64::from(width), i64::from(height), 1.0, false);
    session
        .execute(metrics, "set the screenshot size", interrupts)
        .await?;
    Ok(())
}

async fn capture(
    session: &PageSession,
    shot: Shot<'_>,
    max_height: u32,
    element_timeout: Duration,
    interrupts: &Interrupts,
) -> Result<Vec<u8>, BrowserFailure> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Box {
        #[serde(default)]
        bad_selector: bool,
        #[serde(default)]
        timed_out: bool,
        #[serde(default)]
        state: Option<String>,
        #[serde(default)]
        x: f64,
        #[serde(default)]
        y: f64,
        #[serde(default)]
        width: f64,
        #[serde(default)]
        height: f64,
    }
    let width = f64::from(shot.width);
    let clip = match (shot.selector, shot.full_page) {
        (Some(selector), _) => {
            let timeout_ms = u64::try_from(element_timeout.as_millis()).unwrap_or(u64::MAX);
            let found: Box = session
                .call(
                    "box",
                    json!({ "selector": selector.as_str(), "timeoutMs": timeout_ms }),
                    "find the element",
                    interrupts,
                )
                .await?;
            if found.bad_selector {
                return Err(BrowserFailure::BadSelector {
                    selector: selector.to_string(),
                });
            }
            if found.timed_out {
                return Err(match found.state.as_deref() {
                    Some("hidden") => BrowserFailure::Element {
                        selector: selector.to_string(),
                        problem: "is not visible".to_owned(),
                    },
                    _ => BrowserFailure::NoElement {
                        selector: selector.to_string(),
                        waited: element_timeout,
                    },
                });
            }
            // Whole pixels, so the same element gives the same size.
            let x = found.x.floor().max(0.0);
            let y = found.y.floor().max(0.0);
            Some(Viewport {
                x,
                y,
                width: (found.x + found.width).ceil() - x,
                height: ((found.y + found.height).ceil() - y).min(f64::from(max_height)),
                scale: 1.0,
            })
        }
        (None, true) => {
            #[derive(Deserialize)]
            struct Size {
                height: f64,
            }
            let size: Size = session
                .call("pageSize", json!({}), "measure the page", interrupts)
                .await?;
            let height = size
                .height
                .max(f64::from(shot.height))
                .min(f64::from(max_height))
                .ceil();
            Some(Viewport {
                x: 0.0,
                y: 0.0,
                width,
                height,
                scale: 1.0,
            })
        }
        (None, false) => None,
    };
    let beyond = clip.is_some();
    png(session, clip, beyond, interrupts).await
}

async fn png(
    session: &PageSession,
    clip: Option<Viewport>,
    beyond_viewport: bool,
    interrupts: &Interrupts,
) -> Result<Vec<u8>, BrowserFailure> {
    // `Page::screenshot` would first activate the target: one more round
    // trip, for nothing in a headless browser.
    let params = CaptureScreenshotParams {
        format: Some(CaptureScreenshotFormat::Png),
        clip,
        capture_beyond_viewport: Some(beyond_viewport),
        from_surface: Some(true),
        ..CaptureScreenshotParams::default()
    };
    let captured = session
        .execute(params, "take the screenshot", interrupts)
        .await?;
    let data: &str = captured.data.as_ref();
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|err| {
            tracing::debug!(error = %err, "screenshot is not base64");
            BrowserFailure::Protocol {
                action: "take the screenshot",
            }
        })
}

/// The page's HTML (doctype included), cut at `max_bytes`.
pub(super) async fn html(
    session: &PageSession,
    max_bytes: usize,
    interrupts: &Interrupts,
) -> Result<String, BrowserFailure> {
    let mut html: String = session
        .call(
            "html",
            json!({ "maxChars": max_bytes }),
            "read the HTML",
            interrupts,
        )
        .await?;
    if html.len() > max_bytes {
        let mut cut = max_bytes;
        while !html.is_char_boundary(cut) {
            cut -= 1;
        }
        html.truncate(cut);
    }
    Ok(html)
}

/// A downloaded file.
#[derive(Debug)]
pub(super) struct Downloaded {
    pub bytes: Vec<u8>,
    pub content_type: String,
}

/// Downloads `url` the way the page would load it (its cookies, the
/// browser's proxy), reading at most `max_bytes`.
pub(super) async fn download_url(
    session: &PageSession,
    url: &str,
    max_bytes: u64,
    interrupts: &Interrupts,
) -> Result<Downloaded, BrowserFailure> {
    let options = LoadNetworkResourceOptions::new(true, true);
    let load = LoadNetworkResourceParams::new(url, options);
    let load = LoadNetworkResourceParams {
        frame_id: Some(session.main_frame.clone()),
        ..load
    };
    let resource = session
        .execute(load, "download the file", interrupts)
        .await?
        .resource;
    let status = resource
        .http_status_code
        .map(|status| status as u16)
        .unwrap_or(0);
    // An error status comes with a net error too; the status says more.
    if status >= 400 {
        return Err(BrowserFailure::ErrorStatus {
            status,
            url: url.to_owned(),
        });
    }
    if let Some(code) = resource.net_error_name.filter(|code| !code.is_empty()) {
        return Err(BrowserFailure::from_net_error(url, &code));
    }
    let Some(stream) = resource.stream.filter(|_| resource.success) else {
        return Err(BrowserFailure::Network {
            url: url.to_owned(),
            code: "the browser could not load it".to_owned(),
        });
    };
    let content_type = resource
        .headers
        .as_ref()
        .and_then(|headers| headers.inner().as_object())
        .and_then(|headers| {
            headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
                .and_then(|(_, value)| value.as_str())
        })
        .unwrap_or("application/octet-stream")
        .to_owned();
    let mut bytes = Vec::new();
    let read = async {
        loop {
            let mut params = ReadParams::new(stream.clone());
            params.size = Some(READ_CHUNK);
            let chunk = session
                .execute(params, "download the file", interrupts)
                .await?;
            if chunk.base64_encoded == Some(true) {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(chunk.data.as_bytes())
                    .map_err(|_| BrowserFailure::Protocol {
                        action: "download the file",
                    })?;
                bytes.extend_from_slice(&decoded);
            } else {
                bytes.extend_from_slice(chunk.data.as_bytes());
            }
            if bytes.len() as u64 > max_bytes {
                return Err(BrowserFailure::TooLarge {
                    what: format!("the download of {url}"),
                    limit: max_bytes,
                });
            }
            if chunk.eof {
                return Ok(());
            }
        }
    };
    let outcome = read.await;
    // The stream holds the body in the browser until it is closed.
    let _ = session
        .execute(IoClose::new(stream), "close the download", interrupts)
        .await;
    outcome?;
    Ok(Downloaded {
        bytes,
        content_type,
    })
}

/// Where a download by click happens.
#[derive(Debug, Clone, Copy)]
pub(super) struct ClickDownload<'a> {
    pub browser: &'a Arc<Browser>,
    pub context: &'a BrowserContextId,
    /// An empty directory of the job's own, in the browser's directory.
    pub dir: &'a Path,
    pub selector: &'a CssSelector,
    pub max_bytes: u64,
    /// How long to wait for the download to start after the click.
    pub start_timeout: Duration,
}

/// Clicks the element and keeps the file it downloads.
pub(super) async fn download_click(
    session: &PageSession,
    download: ClickDownload<'_>,
    interrupts: &Interrupts,
) -> Result<Downloaded, BrowserFailure> {
    let ClickDownload {
        browser,
        context,
        dir,
        selector,
        max_bytes,
        start_timeout,
    } = download;
    tokio::fs::create_dir_all(dir).await.map_err(|err| {
        tracing::warn!(dir = %dir.display(), error = %err, "could not create a download directory");
        BrowserFailure::Protocol {
            action: "prepare the download",
        }
    })?;
    let behavior = SetDownloadBehaviorParams {
        browser_context_id: Some(context.clone()),
        download_path: Some(dir.display().to_string()),
        events_enabled: Some(true),
        ..SetDownloadBehaviorParams::new(SetDownloadBehaviorBehavior::AllowAndName)
    };
    interrupts
        .cdp("prepare the download", browser.execute(behavior))
        .await?;
    let listen = async {
        let begins = browser.event_listener::<EventDownloadWillBegin>().await?;
        let progress = browser.event_listener::<EventDownloadProgress>().await?;
        Ok((begins, progress))
    };
    let (mut begins, mut progress) = interrupts.cdp("watch the download", listen).await?;
    actions::click(session, selector, start_timeout, interrupts).await?;
    let main = session.main_frame.clone();
    let begin = async {
        while let Some(begin) = begins.next().await {
            if begin.frame_id == main {
                return Some(begin);
            }
        }
        None
    };
    let begin = match tokio::time::timeout(start_timeout, interrupts.guard(begin)).await {
        Ok(Ok(Some(begin))) => begin,
        Ok(Ok(None)) => return Err(BrowserFailure::BrowserCrashed),
        Ok(Err(failure)) => return Err(failure),
        Err(_elapsed) => {
            return Err(BrowserFailure::WaitFailed {
                what: format!("a download after clicking `{selector}`"),
                waited: start_timeout,
            })
        }
    };
    let guid = begin.guid.clone();
    let finished = async {
        while let Some(event) = progress.next().await {
            if event.guid != guid {
                continue;
            }
            if event.received_bytes > max_bytes as f64 {
                return Some(Err(()));
            }
            match event.state {
                DownloadProgressState::Completed => return Some(Ok(())),
                DownloadProgressState::Canceled => return None,
                DownloadProgressState::InProgress => {}
            }
        }
        None
    };
    let path = dir.join(&guid);
    let outcome = interrupts.guard(finished).await;
    let result = match outcome {
        Ok(Some(Ok(()))) => match tokio::fs::read(&path).await {
            Ok(bytes) if bytes.len() as u64 <= max_bytes => Ok(Downloaded {
                bytes,
                content_type: "application/octet-stream".to_owned(),
            }),
            Ok(_) => Err(BrowserFailure::TooLarge {
                what: format!("the download of {}", begin.url),
                limit: max_bytes,
            }),
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "could not read a download");
                Err(BrowserFailure::Protocol {
                    action: "read the download",
                })
            }
        },
        Ok(Some(Err(()))) => {
            let cancel = CancelDownloadParams {
                browser_context_id: Some(context.clone()),
                ..CancelDownloadParams::new(guid.clone())
            };
            let _ = interrupts
                .cdp("cancel the download", browser.execute(cancel))
                .await;
            Err(BrowserFailure::TooLarge {
                what: format!("the download of {}", begin.url),
                limit: max_bytes,
            })
        }
        Ok(None) => Err(BrowserFailure::Network {
            url: begin.url.clone(),
            code: "the download was cancelled".to_owned(),
        }),
        Err(failure) => Err(failure),
    };
    // The file is in memory now (or unwanted): nothing stays on disk.
    let _ = tokio::fs::remove_dir_all(dir).await;
    result
}
