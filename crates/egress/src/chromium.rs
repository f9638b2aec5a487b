//! The Chromium flags that leave the browser no way out but the egress
//! proxy.
//!
//! - `--proxy-server=http://127.0.0.1:PORT`: every http, https and
//!   WebSocket request goes to the proxy (https and ws/wss as `CONNECT`).
//! - `--proxy-bypass-list=<-loopback>`: without it Chromium sends loopback
//!   (and link-local) destinations around any proxy, straight to the host.
//! - `--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1`: the
//!   browser resolves no name itself (behind an HTTP proxy it needs none:
//!   the proxy resolves), so nothing it does can bypass the guard's view of
//!   DNS; the proxy's own address is excluded so the rule cannot hide it.
//! - `--force-webrtc-ip-handling-policy=disable_non_proxied_udp` (and the
//!   older `--webrtc-ip-handling-policy`): WebRTC may not send UDP around
//!   the proxy, so no STUN towards a local port.
//! - `--disable-quic`: QUIC is UDP, which an HTTP proxy cannot carry.
//! - `--disable-background-networking`: no component updates, safe-browsing
//!   lists or other traffic of the browser's own.
//!
//! Navigation schemes (`file:`, `chrome:`, `data:` at top level, ...) are
//! the engine's to refuse before it navigates; they never reach the
//! network, so no flag or proxy can.

use std::net::SocketAddr;

/// Flags as `(name, value)` pairs, names without the leading `--`, in the
/// shape browser launchers such as chromiumoxide take them.
pub fn chromium_args(proxy: SocketAddr) -> Vec<(String, Option<String>)> {
    let pair = |name: &str, value: Option<String>| (name.to_owned(), value);
    let no_udp = "disable_non_proxied_udp".to_owned();
    vec![
        pair("proxy-server", Some(format!("http://{proxy}"))),
        pair("proxy-bypass-list", Some("<-loopback>".to_owned())),
        pair(
            "host-resolver-rules",
            Some(format!("MAP * ~NOTFOUND , EXCLUDE {}", proxy.ip())),
        ),
        pair("force-webrtc-ip-handling-policy", Some(no_udp.clone())),
        pair("webrtc-ip-handling-policy", Some(no_udp)),
        pair("disable-quic", None),
        pair("disable-background-networking", None),
    ]
}

/// The same flags as command-line arguments (`--name=value`).
pub fn chromium_command_line(proxy: SocketAddr) -> Vec<String> {
    chromium_args(proxy)
        .into_iter()
        .map(|(name, value)| match value {
            Some(value) => format!("--{name}={value}"),
            None => format!("--{name}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_point_everything_at_the_proxy() {
        let proxy: SocketAddr = "127.0.0.1:41234".parse().unwrap();
        assert_eq!(
            chromium_command_line(proxy),
            [
                "--proxy-server=http://127.0.0.1:41234",
                "--proxy-bypass-list=<-loopback>",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
                "--webrtc-ip-handling-policy=disable_non_proxied_udp",
                "--disable-quic",
                "--disable-background-networking",
            ]
        );
    }
}
