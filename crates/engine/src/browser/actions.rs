//! The steps that act on a page like a user: wait for something, click,
//! type, choose, tick, press a key, submit, scroll, hover.
//!
//! Elements are looked up, waited for and checked by `page.js` (one round
//! trip each); mouse and keyboard input go through the protocol's Input
//! domain, so the page sees trusted events. Every failure names the
//! selector and what was wrong with the element.

use std::time::Duration;

use accord_model::{CssSelector, ElementState, KeyName, WaitCondition};
use chromiumoxide::cdp::browser_protocol::input::{
    DispatchKeyEventParams, DispatchKeyEventType, DispatchMouseEventParams, DispatchMouseEventType,
    MouseButton,
};
use chromiumoxide::keys::USKEYBOARD_LAYOUT;
use serde::Deserialize;
use serde_json::json;

use super::error::BrowserFailure;
use super::page::{Interrupts, PageSession};

/// How long one `scroll` round waits for the page to grow.
const SCROLL_SETTLE: Duration = Duration::from_millis(2_000);

/// Protocol and page-script failures while waiting are retried this often
/// (a navigation destroys the script's context mid-wait).
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// What `page.js` answers to an element lookup.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Lookup {
    #[serde(default)]
    bad_selector: bool,
    #[serde(default)]
    timed_out: bool,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    problem: Option<String>,
    #[serde(default)]
    x: Option<f64>,
    #[serde(default)]
    y: Option<f64>,
}

impl Lookup {
    /// The failure this answer reports, if any.
    fn failure(&self, selector: &CssSelector, waited: Duration) -> Option<BrowserFailure> {
        if self.bad_selector {
            return Some(BrowserFailure::BadSelector {
                selector: selector.to_string(),
            });
        }
        if let Some(problem) = &self.problem {
            return Some(BrowserFailure::Element {
                selector: selector.to_string(),
                problem: problem.clone(),
            });
        }
        if self.timed_out {
            return Some(match self.state.as_deref() {
                Some("hidden") => BrowserFailure::Element {
                    selector: selector.to_string(),
                    problem: format!("is not visible (waited {waited:?})"),
                },
                Some("visible") => BrowserFailure::Element {
                    selector: selector.to_string(),
                    problem: format!("is still visible (waited {waited:?})"),
                },
                _ => BrowserFailure::NoElement {
                    selector: selector.to_string(),
                    waited,
                },
            });
        }
        None
    }
}

/// Runs a `page.js` operation that waits in the page, retrying when a
/// navigation interrupts it, until `timeout` has passed.
async fn waiting_call(
    session: &PageSession,
    op: &str,
    mut args: serde_json::Value,
    timeout: Duration,
    interrupts: &Interrupts,
) -> Result<Lookup, BrowserFailure> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        args["timeoutMs"] = json!(u64::try_from(left.as_millis()).unwrap_or(u64::MAX));
        match session
            .call::<Lookup>(op, args.clone(), "look for the element", interrupts)
            .await
        {
            Ok(answer) => return Ok(answer),
            // The page navigated under the script: look again in the new one.
            Err(BrowserFailure::Protocol { .. }) if !left.is_zero() => {
                interrupts.guard(tokio::time::sleep(RETRY_PAUSE)).await?;
            }
            Err(failure) => return Err(failure),
        }
    }
}

/// `wait_for`.
pub(super) async fn wait_for(
    session: &PageSession,
    condition: WaitCondition<'_>,
    timeout: Duration,
    interrupts: &Interrupts,
) -> Result<(), BrowserFailure> {
    match condition {
        WaitCondition::Delay(ms) => {
            interrupts
                .guard(tokio::time::sleep(Duration::from_millis(ms)))
                .await
        }
        WaitCondition::Element { selector, state } => {
            let hidden = state == ElementState::Hidden;
            let args = json!({ "selector": selector.as_str(), "hidden": hidden });
            let answer = waiting_call(session, "wait", args, timeout, interrupts).await?;
            if answer.bad_selector {
                return Err(BrowserFailure::BadSelector {
                    selector: selector.to_string(),
                });
            }
            if answer.timed_out {
                let what = if hidden {
                    format!("`{selector}` becoming hidden")
                } else {
                    format!("an element matching `{selector}` becoming visible")
                };
                return Err(BrowserFailure::WaitFailed {
                    what,
                    waited: timeout,
                });
            }
            Ok(())
        }
        WaitCondition::Text(text) => {
            let answer = waiting_call(
                session,
                "wait",
                json!({ "text": text }),
                timeout,
                interrupts,
            )
            .await?;
            if answer.timed_out {
                return Err(BrowserFailure::WaitFailed {
                    what: format!("the text {text:?} appearing"),
                    waited: timeout,
                });
            }
            Ok(())
        }
    }
}

/// Waits for an element to be visible and scrolls it into view; where its
/// centre is.
async fn point(
    session: &PageSession,
    selector: &CssSelector,
    timeout: Duration,
    interrupts: &Interrupts,
) -> Result<(f64, f64), BrowserFailure> {
    let answer = waiting_call(
        session,
        "point",
        json!({ "selector": selector.as_str() }),
        timeout,
        interrupts,
    )
    .await?;
    if let Some(failure) = answer.failure(selector, timeout) {
        return Err(failure);
    }
    match (answer.x, answer.y) {
        (Some(x), Some(y)) => Ok((x, y)),
        _ => Err(BrowserFailure::Protocol {
            action: "find where the element is",
        }),
    }
}

/// Waits for an element to exist, shown or not (form controls are often
/// hidden behind custom widgets).
async fn present(
    session: &PageSession,
    selector: &CssSelector,
    timeout: Duration,
    interrupts: &Interrupts,
) -> Result<(), BrowserFailure> {
    let answer = waiting_call(
        session,
        "present",
        json!({ "selector": selector.as_str() }),
        timeout,
        interrupts,
    )
    .await?;
    match answer.failure(selector, timeout) {
        Some(failure) => Err(failure),
        None => Ok(()),
    }
}

/// Runs a `page.js` operation on an element that is there.
async fn on_element(
    session: &PageSession,
    selector: &CssSelector,
    op: &str,
    mut args: serde_json::Value,
    interrupts: &Interrupts,
) -> Result<(), BrowserFailure> {
    args["selector"] = json!(selector.as_str());
    let answer: Lookup = session
        .call(op, args, "act on the element", interrupts)
        .await?;
    match answer.failure(selector, Duration::ZERO) {
        Some(failure) => Err(failure),
        None => Ok(()),
    }
}

async fn mouse(
    session: &PageSession,
    kind: DispatchMouseEventType,
    (x, y): (f64, f64),
    interrupts: &Interrupts,
) -> Result<(), BrowserFailure> {
    let mut event = DispatchMouseEventParams::new(kind.clone(), x, y);
    if kind != DispatchMouseEventType::MouseMoved {
        event.button = Some(MouseButton::Left);
        event.buttons = Some(1);
        event.click_count = Some(1);
    }
    session.execute(event, "move the mouse", interrupts).await?;
    Ok(())
}

/// `click`: a real left click in the middle of the element.
pub(super) async fn click(
    session: &PageSession,
    selector: &CssSelector,
    timeout: Duration,
    interrupts: &Interrupts,
) -> Result<(), BrowserFailure> {
    let at = point(session, selector, timeout, interrupts).await?;
    mouse(session, DispatchMouseEventType::MouseMoved, at, interrupts).await?;
    mouse(
        session,
        DispatchMouseEventType::MousePressed,
        at,
        interrupts,
    )
    .await?;
    mouse(
        session,
        DispatchMouseEventType::MouseReleased,
        at,
        interrupts,
    )
    .await
}

/// What `page.js` answers to `link`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LinkAnswer {
    #[serde(default)]
    bad_selector: bool,
    #[serde(default)]
    missing: bool,
    #[serde(default)]
    problem: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

/// `follow`: the address the first element matching `selector` links to,
/// or `None` when no element matches (now: a `follow` does not wait for
/// one, like the HTTP engine).
pub(super) async fn link(
    session: &PageSession,
    selector: &CssSelector,
    interrupts: &Interrupts,
) -> Result<Option<String>, BrowserFailure> {
    let answer: LinkAnswer = session
        .call(
            "link",
            json!({ "selector": selector.as_str() }),
            "read the link to follow",
            interrupts,
        )
        .await?;
    if answer.bad_selector {
        return Err(BrowserFailure::BadSelector {
            selector: selector.to_string(),
        });
    }
    if let Some(problem) = answer.problem {
        return Err(BrowserFailure::Element {
            selector: selector.to_string(),
            problem,
        });
    }
    if answer.missing {
        return Ok(None);
    }
    Ok(answer.url)
}

/// `hover`.
pub(super) async fn hover(
    session: &PageSession,
    selector: &CssSelector,
    timeout: Duration,
    interrupts: &Interrupts,
) -> Result<(), BrowserFailure> {
    let at = point(session, selector, timeout, interrupts).await?;
    mouse(session, DispatchMouseEventType::MouseMoved, at, interrupts).await
}

/// `fill`: replaces the field's content, firing `input` and `change`.
pub(super) async fn fill(
    session: &PageSession,
    selector: &CssSelector,
    value: &str,
    timeout: Duration,
    interrupts: &Interrupts,
) -> Result<(), BrowserFailure> {
    point(session, selector, timeout, interrupts).await?;
    on_element(
        session,
        selector,
        "fill",
        json!({ "value": value }),
        interrupts,
    )
    .await
}

/// `select`: chooses the option with this value.
pub(super) async fn select(
    session: &PageSession,
    selector: &CssSelector,
    value: &str,
    timeout: Duration,
    interrupts: &Interrupts,
) -> Result<(), BrowserFailure> {
    present(session, selector, timeout, interrupts).await?;
    on_element(
        session,
        selector,
        "select",
        json!({ "value": value }),
        interrupts,
    )
    .await
}

/// `check` and `uncheck`.
pub(super) async fn set_checked(
    session: &PageSession,
    selector: &CssSelector,
    checked: bool,
    timeout: Duration,
    interrupts: &Interrupts,
) -> Result<(), BrowserFailure> {
    present(session, selector, timeout, interrupts).await?;
    on_element(
        session,
        selector,
        "check",
        json!({ "checked": checked }),
        interrupts,
    )
    .await
}

/// `submit`: the form matching `selector` (or holding it), else the form of
/// the focused element. Invalid forms are refused with the field at fault.
pub(super) async fn submit(
    session: &PageSession,
    selector: Option<&CssSelector>,
    timeout: Duration,
    interrupts: &Interrupts,
) -> Result<(), BrowserFailure> {
    match selector {
        Some(selector) => {
            present(session, selector, timeout, interrupts).await?;
            on_element(session, selector, "submit", json!({}), interrupts).await
        }
        None => {
            let answer: Lookup = session
                .call("submit", json!({}), "submit the form", interrupts)
                .await?;
            match answer.problem {
                Some(problem) => Err(BrowserFailure::Refused(format!("cannot submit: {problem}"))),
                None => Ok(()),
            }
        }
    }
}

/// `press`: one key, in the element matching `selector` (focused first) or
/// wherever the focus is.
pub(super) async fn press(
    session: &PageSession,
    key: &KeyName,
    selector: Option<&CssSelector>,
    timeout: Duration,
    interrupts: &Interrupts,
) -> Result<(), BrowserFailure> {
    if let Some(selector) = selector {
        present(session, selector, timeout, interrupts).await?;
        on_element(session, selector, "focus", json!({}), interrupts).await?;
    }
    let (down, up) = key_events(key);
    session.execute(down, "press the key", interrupts).await?;
    session.execute(up, "press the key", interrupts).await?;
    Ok(())
}

/// The key-down and key-up events of a key, as a US keyboard types it.
fn key_events(key: &KeyName) -> (DispatchKeyEventParams, DispatchKeyEventParams) {
    let name = key.as_str();
    // Several physical keys type some names (`ArrowDown` is also the
    // numpad's 2 without Num Lock): prefer the key whose code is the name.
    let definition = USKEYBOARD_LAYOUT
        .iter()
        .find(|definition| definition.key == name && definition.code == name)
        .or_else(|| {
            USKEYBOARD_LAYOUT
                .iter()
                .find(|definition| definition.key == name)
        });
    // The text a key types: the character itself, or a definition's text
    // (`Enter` types "\r"); named keys like `Tab` type nothing.
    let text = match definition.and_then(|definition| definition.text) {
        Some(text) => Some(text.to_owned()),
        None if key.is_character() => Some(name.to_owned()),
        None => None,
    };
    let mut down = DispatchKeyEventParams::new(if text.is_some() {
        DispatchKeyEventType::KeyDown
    } else {
        DispatchKeyEventType::RawKeyDown
    });
    down.key = Some(name.to_owned());
    down.text.clone_from(&text);
    down.unmodified_text = text;
    if let Some(definition) = definition {
        down.code = Some(definition.code.to_owned());
        down.windows_virtual_key_code = Some(definition.key_code);
        down.native_virtual_key_code = Some(definition.key_code);
    }
    let mut up = DispatchKeyEventParams::new(DispatchKeyEventType::KeyUp);
    up.key = down.key.clone();
    up.code.clone_from(&down.code);
    up.windows_virtual_key_code = down.windows_virtual_key_code;
    up.native_virtual_key_code = down.native_virtual_key_code;
    (down, up)
}

/// `scroll`: to the bottom, again and again while the page grows, at most
/// `max_rounds` times. How many rounds made the page grow.
pub(super) async fn scroll(
    session: &PageSession,
    max_rounds: u32,
    interrupts: &Interrupts,
) -> Result<u32, BrowserFailure> {
    #[derive(Deserialize)]
    struct Round {
        grew: bool,
    }
    let settle_ms = u64::try_from(SCROLL_SETTLE.as_millis()).unwrap_or(u64::MAX);
    let mut grown = 0;
    for _ in 0..max_rounds {
        let round: Round = session
            .call(
                "scroll",
                json!({ "settleMs": settle_ms }),
                "scroll",
                interrupts,
            )
            .await?;
        if !round.grew {
            break;
        }
        grown += 1;
    }
    Ok(grown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_type_what_a_keyboard_types() {
        let check =
            |key: &str, kind: DispatchKeyEventType, text: Option<&str>, code: Option<&str>| {
                let (down, up) = key_events(&KeyName::new(key).unwrap());
                assert_eq!(down.r#type, kind, "{key}");
                assert_eq!(down.text.as_deref(), text, "{key}");
                assert_eq!(down.code.as_deref(), code, "{key}");
                assert_eq!(up.r#type, DispatchKeyEventType::KeyUp);
                assert_eq!(up.key.as_deref(), Some(key));
            };
        check(
            "Enter",
            DispatchKeyEventType::KeyDown,
            Some("\r"),
            Some("Enter"),
        );
        check("Tab", DispatchKeyEventType::RawKeyDown, None, Some("Tab"));
        check(
            "ArrowDown",
            DispatchKeyEventType::RawKeyDown,
            None,
            Some("ArrowDown"),
        );
        check("a", DispatchKeyEventType::KeyDown, Some("a"), Some("KeyA"));
        check("é", DispatchKeyEventType::KeyDown, Some("é"), None);
    }
}
