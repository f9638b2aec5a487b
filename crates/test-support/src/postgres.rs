//! Throwaway PostgreSQL databases: one per test, on the local server, dropped
//! when the test ends (also when it fails).

use sqlx::{Connection, Executor, PgConnection};

/// The server tests create their databases on; the user needs CREATEDB.
/// `ACCORD_TEST_POSTGRES_URL` overrides it.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[expect(
    clippy::disallowed_methods,
    reason = "the test harness, not library code, chooses the database server"
)]
fn admin_url() -> String {
    std::env::var("ACCORD_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// A fresh, empty database. Fails the test loudly when PostgreSQL is not
/// reachable: tests that need it never skip.
#[derive(Debug)]
pub struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    pub async fn create() -> TestDatabase {
        let admin_url = admin_url();
        let mut admin = PgConnection::connect(&admin_url).await.unwrap_or_else(|err| {
            panic!(
                "PostgreSQL is not reachable at {admin_url} ({err}); start it (./scripts/test.sh does), \
                 or set ACCORD_TEST_POSTGRES_URL to a server where the user may create databases"
            )
        });
        let name = format!("accord_test_{}", uuid::Uuid::now_v7().simple());
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap_or_else(|err| panic!("create the test database {name}: {err}"));
        admin.close().await.expect("close the admin connection");
        let mut url = url::Url::parse(&admin_url).expect("the PostgreSQL URL parses");
        url.set_path(&name);
        TestDatabase {
            admin_url,
            name,
            url: url.into(),
        }
    }

    /// The database's connection URL.
    pub fn url(&self) -> String {
        self.url.clone()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        // FORCE ends connections that pools still hold.
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop may run on the test's runtime, which must not be blocked on
        // from inside; a thread with a runtime of its own does the work.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await?;
                admin.execute(sql.as_str()).await?;
                admin.close().await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
        })
        .join();
        if let Ok(Err(err)) = dropped {
            report_leftover(&self.name, &*err);
        }
    }
}

#[expect(
    clippy::print_stderr,
    reason = "a leftover test database is worth a line in the test output, not a panic in Drop"
)]
fn report_leftover(name: &str, err: &dyn std::error::Error) {
    eprintln!("could not drop test database {name}: {err}");
}
