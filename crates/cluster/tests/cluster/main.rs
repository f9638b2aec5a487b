//! Integration tests of `accord-cluster`: rate limits and job events on a
//! real Redis (the shared test server, `ACCORD_TEST_REDIS_URL`), the
//! in-process fallback, and a Redis of the test's own that is stopped and
//! restarted. One binary, so the crate is linked once.

mod events;
mod limits;
mod politeness;
mod restart;
mod support;
