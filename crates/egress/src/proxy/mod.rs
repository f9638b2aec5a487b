//! The loopback egress proxy a worker launches Chromium behind.
//!
//! Chromium is started with `--proxy-server` pointing here (see
//! [`chromium_args`](crate::chromium_args)), so every request it makes,
//! documents, sub-resources, fetch, WebSockets, workers, redirects, reaches
//! the network only through this proxy, and the proxy dials only what the
//! [`Guard`](crate::Guard) vetted: `CONNECT host:port` for https and
//! WebSockets (a tunnel to the vetted address), absolute-form `http://`
//! requests forwarded (WebSocket upgrades included). A refusal is answered
//! `403` and logged with the operator's detail; a [`ProxyHook`] sees every
//! request first and may deny it (where a domain policy plugs in).
//!
//! Who may use it: only the browser it was started for. A proxy credential
//! would not do, since Chromium sends one only after a `407` challenge that
//! someone must answer over CDP for every target (and service workers have
//! none). Instead the proxy checks, for each connection, which process owns
//! the other end of the socket (Linux `/proc`) and admits it only if that
//! process is the browser or one of its descendants ([`Admission`]).
//!
//! - `server`: the listener, the connection limit, the handle;
//! - `admission`: who may connect, with `sock_diag` finding the socket;
//! - `service`: one request: CONNECT or forward;
//! - `tunnel`: bytes both ways with an idle timeout;
//! - `hook`: the per-request policy and report hook.

mod admission;
mod hook;
mod server;
mod service;
mod sock_diag;
mod tunnel;

pub use admission::Admission;
pub use hook::{AllowAll, HookVerdict, ProxyHook, ProxyOutcome, ProxyRequest, RequestKind};
pub use server::{EgressProxy, ProxyConfig, ProxyConfigError, ProxyHandle, StartError};
