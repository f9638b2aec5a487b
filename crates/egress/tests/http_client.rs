//! The guard inside reqwest, the way the HTTP engine uses it: the resolver
//! hands the client only vetted addresses, the redirect policy checks every
//! hop, and the refusal comes back out of the client's error.

#[expect(dead_code, reason = "each test binary uses part of the shared helpers")]
mod common;

use std::sync::Arc;

use accord_egress::http_client::{find_refusal, redirect_policy};
use accord_egress::{
    AllowList, BlockReason, Guard, GuardConfig, GuardedResolve, Refusal, StubResolver,
};
use accord_model::EgressPolicy;
use accord_test_support::{FIXTURE_BODY, FIXTURE_IP, FIXTURE_NAME};
use url::Url;

fn client(guard: &Guard) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolve::new(guard.clone())))
        .redirect(redirect_policy(guard.clone(), 10))
        .build()
        .unwrap()
}

/// What a guarded GET came to: the body, or the operator's detail of the
/// refusal.
async fn fetch(guard: &Guard, url: &str) -> Result<String, String> {
    let url = Url::parse(url).unwrap();
    guard.check_url(&url).map_err(|b| b.detail().to_string())?;
    match client(guard).get(url.clone()).send().await {
        Ok(response) => {
            guard
                .check_peer(response.url(), response.remote_addr())
                .map_err(|b| b.detail().to_string())?;
            Ok(response.text().await.unwrap())
        }
        Err(err) => match find_refusal(&err) {
            Some(Refusal::Blocked(blocked)) => Err(blocked.detail().to_string()),
            Some(Refusal::TooManyRedirects(too_many)) => Err(too_many.to_string()),
            Some(Refusal::Denied(denied)) => Err(denied.to_string()),
            None => Err(format!("not refused by the guard: {err}")),
        },
    }
}

#[tokio::test]
async fn reqwest_goes_only_where_the_guard_allows() {
    let net = common::start_net().await;
    let port = net.port;
    let stub = StubResolver::new();
    stub.set(FIXTURE_NAME, vec![FIXTURE_IP.parse().unwrap()]);
    stub.set("loop.test", vec!["127.0.0.2".parse().unwrap()]);
    stub.set_sequence(
        "rebind.test",
        vec![
            vec![FIXTURE_IP.parse().unwrap()],
            vec!["127.0.0.3".parse().unwrap()],
        ],
    );
    let config = GuardConfig {
        policy: EgressPolicy::PublicOnly,
        allow: AllowList::parse([FIXTURE_IP]).unwrap(),
        ..GuardConfig::default()
    };
    let guard = Guard::with_resolver(config, Arc::new(stub));
    let redirect = |status: u16, to: &str| {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("status", &status.to_string())
            .append_pair("to", to)
            .finish();
        format!("http://{FIXTURE_NAME}:{port}/redirect?{query}")
    };
    let check = |url: String, expected: Result<&'static str, String>| {
        let guard = guard.clone();
        async move {
            assert_eq!(
                fetch(&guard, &url).await,
                expected.map(str::to_owned),
                "{url}"
            );
        }
    };
    check(format!("http://{FIXTURE_NAME}:{port}/"), Ok(FIXTURE_BODY)).await;
    check(format!("http://rebind.test:{port}/"), Ok(FIXTURE_BODY)).await;
    check(
        format!("http://loop.test:{port}/"),
        Err("loop.test resolves to 127.0.0.2 (loopback) (1 of 1 answers refused)".to_owned()),
    )
    .await;
    check(
        format!("http://2130706434:{port}/"),
        Err("127.0.0.2 names 127.0.0.2 (loopback)".to_owned()),
    )
    .await;
    for status in [301, 302, 303, 307, 308] {
        check(
            redirect(status, &format!("http://127.0.0.2:{port}/")),
            Err("127.0.0.2 names 127.0.0.2 (loopback)".to_owned()),
        )
        .await;
        check(
            redirect(status, &format!("http://loop.test:{port}/")),
            Err("loop.test resolves to 127.0.0.2 (loopback) (1 of 1 answers refused)".to_owned()),
        )
        .await;
        check(
            redirect(status, &format!("http://localhost:{port}/")),
            Err(
                "localhost resolves to 127.0.0.1 (loopback), ::1 (loopback) (2 of 2 answers refused)"
                    .to_owned(),
            ),
        )
        .await;
        check(
            redirect(status, &format!("http://{FIXTURE_IP}:{port}/")),
            Ok(FIXTURE_BODY),
        )
        .await;
    }
    // Eleven hops, each allowed, are one too many.
    let mut url = format!("http://{FIXTURE_NAME}:{port}/");
    for _ in 0..11 {
        url = redirect(302, &url);
    }
    check(url, Err("too many redirects (more than 10)".to_owned())).await;
    assert_eq!(net.total_canary_hits(), 0, "{:?}", net.canary_hits());

    // The refusal reads the same for a name that does not resolve.
    let err = client(&guard)
        .get(format!("http://nowhere.test:{port}/"))
        .send()
        .await
        .unwrap_err();
    let Some(Refusal::Blocked(blocked)) = find_refusal(&err) else {
        panic!("{err:?}");
    };
    assert!(matches!(blocked.reason(), BlockReason::Unresolved(_)));
    assert_eq!(
        blocked.to_string(),
        "refused target nowhere.test: the host is not public or does not resolve"
    );
}
