//! Test support: [`FixtureServer`], a deterministic HTTP server on loopback.
//!
//! Engine tests, worker tests and benchmarks point jobs at it instead of the
//! internet. It serves a fixed HTML page (its expected contents are exported
//! as constants such as [`PAGE_TITLE`] and [`PAGE_LINKS`]) plus routes that
//! misbehave on purpose: flaky 503s, arbitrary statuses, redirects and
//! redirect chains, slow and hanging answers, big (and streamed) pages, plain
//! text, an echo of the request's `User-Agent`, hostile pages (costly
//! to parse, or never ending), data (a JSON API, a page of records and
//! files to download), and pages that need a browser under `/app/`
//! (rendered by scripts, forms, a login, lazy lists, downloads). It counts the requests
//! each path received ([`FixtureServer::hits`]).
//!
//! It is built to be cheap per request (axum, no per-request logging) so a
//! benchmark measures the code under test, not the fixture. It deliberately
//! does not do TLS or anything that would need the network beyond loopback.
//!
//! [`TestDatabase`] creates a fresh PostgreSQL database for one test and
//! drops it afterwards; [`ThrowawayCluster`] is a whole PostgreSQL server of
//! the test's own, for tests that stop and restart the database.
//! [`ThrowawayRedis`] is likewise a Redis server of the test's own, for tests
//! that stop and restart Redis. [`ThrowawayS3`] is an S3-compatible server
//! (moto) of the test's own, for the artifact blob store. [`SmtpSink`] is
//! an SMTP server on loopback that records the emails it is sent, and
//! [`parse_atom`] reads and checks an Atom feed with a real XML parser.
//!
//! The SSRF corpus ([`ssrf_corpus`], kept as data in
//! `data/ssrf_corpus.toml`) and the [`CanaryNet`] it runs in (an
//! allow-listed fixture and canary listeners that must never be reached)
//! are shared by every egress test: the guard, the proxy, both engines and
//! the notification sender.

mod atom;
mod browser_pages;
mod canary;
mod cluster;
mod data;
mod fixture;
pub mod fuzz;
mod hostile;
mod postgres;
mod redis;
mod s3;
mod smtp;
mod ssrf;

pub use atom::{parse_atom, AtomEntry, AtomFeed};
pub use browser_pages::{
    APP_DATA_JSON, APP_JOBS, APP_LAZY_PAGE, APP_LAZY_PAGES, APP_PASSWORD, APP_REPORT_CSV,
    APP_SESSION_COOKIE, APP_TALL_HEIGHT, APP_USER,
};
pub use canary::{Canary, CanaryNet, FIXTURE_BODY, FIXTURE_IP, FIXTURE_NAME};
pub use cluster::ThrowawayCluster;
pub use data::{blob_bytes, JOBS_COOKIE, JOBS_HTML, JOBS_JSON, PAGED_PAGES, REPORT_CSV};
pub use fixture::{
    FixtureServer, LoggedRequest, HANG_DURATION, PAGE_H1, PAGE_HTML, PAGE_INTRO, PAGE_LINKS,
    PAGE_TITLE, ROBOTS_TXT, TEXT_BODY,
};
pub use postgres::{TestDatabase, DEFAULT_POSTGRES_URL};
pub use redis::{shared_redis_url, ThrowawayRedis, DEFAULT_REDIS_URL};
pub use s3::{ThrowawayS3, S3_ACCESS_KEY_ID, S3_REGION, S3_SECRET_ACCESS_KEY};
pub use smtp::{ReceivedMail, SinkTls, SmtpSink};
pub use ssrf::{
    dns_batches, fixture_allow_list, guard_config, refusal_problem, ssrf_corpus, uniform_refusal,
    Expect, Redirect, SsrfCase,
};
