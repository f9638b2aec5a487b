//! What the guard and the proxy cost: address classification and a guarded
//! resolve per call, and page loads from a loopback fixture directly and
//! through the egress proxy (sequential and 16 at a time, keep-alive on
//! both legs the client controls). Run with
//! `cargo bench -p accord-egress --bench egress`.

use std::convert::Infallible;
use std::hint::black_box;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accord_egress::proxy::AllowAll;
use accord_egress::{
    AllowList, Authority, EgressProxy, Guard, GuardConfig, ProxyConfig, StubResolver,
};
use accord_model::{classify_ip, EgressPolicy};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const PAGE_BYTES: usize = 16 * 1024;

async fn start_fixture() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.10:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let page = Bytes::from(vec![b'x'; PAGE_BYTES]);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let page = page.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_request| {
                    let page = page.clone();
                    async move { Ok::<_, Infallible>(hyper::Response::new(Full::new(page))) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// Requests per second for `total` GETs of `url`, `parallel` at a time.
async fn load(client: &reqwest::Client, url: &str, total: usize, parallel: usize) -> f64 {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..parallel {
        let client = client.clone();
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            for _ in 0..total / parallel {
                let body = client
                    .get(&url)
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                assert_eq!(body.len(), PAGE_BYTES);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

fn per_call(iterations: u32, mut f: impl FnMut()) -> Duration {
    let started = Instant::now();
    for _ in 0..iterations {
        f();
    }
    started.elapsed() / iterations
}

#[expect(clippy::print_stdout, reason = "a bench reports on stdout")]
fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let addresses: Vec<IpAddr> = [
        "8.8.8.8",
        "10.1.2.3",
        "::ffff:127.0.0.1",
        "2606:4700::1111",
        "fd00:ec2::254",
    ]
    .iter()
    .map(|ip| ip.parse().unwrap())
    .collect();
    let classify = per_call(1_000_000, || {
        for ip in &addresses {
            black_box(classify_ip(black_box(*ip)));
        }
    }) / addresses.len() as u32;
    println!("classify_ip: {classify:?} per address");

    runtime.block_on(async {
        let fixture = start_fixture().await;
        let stub = StubResolver::new();
        stub.set("fixture.test", vec![fixture.ip()]);
        let guard = Guard::with_resolver(
            GuardConfig {
                policy: EgressPolicy::PublicOnly,
                allow: AllowList::parse(["127.0.0.10"]).unwrap(),
                ..GuardConfig::default()
            },
            Arc::new(stub),
        );
        let authority = Authority::parse(&format!("fixture.test:{}", fixture.port())).unwrap();
        let rounds = 200_000u32;
        let started = Instant::now();
        for _ in 0..rounds {
            black_box(guard.resolve(&authority).await.unwrap());
        }
        println!("guard resolve (stub resolver): {:?} per call", started.elapsed() / rounds);

        let proxy = EgressProxy::start(guard, Arc::new(AllowAll), ProxyConfig::default())
            .await
            .unwrap();
        proxy.admit_process_tree(std::process::id());
        let direct = reqwest::Client::builder().no_proxy().build().unwrap();
        let proxied = reqwest::Client::builder()
            .proxy(reqwest::Proxy::all(format!("http://{}", proxy.addr())).unwrap())
            .build()
            .unwrap();
        let direct_url = format!("http://{fixture}/");
        let proxied_url = format!("http://fixture.test:{}/", fixture.port());
        // Warm both paths (connections, admission) before measuring.
        load(&direct, &direct_url, 200, 4).await;
        load(&proxied, &proxied_url, 200, 4).await;
        for parallel in [1, 16] {
            let total = 4_000;
            let plain = load(&direct, &direct_url, total, parallel).await;
            let through = load(&proxied, &proxied_url, total, parallel).await;
            println!(
                "{total} GETs of {PAGE_BYTES} B, {parallel} at a time: direct {plain:.0}/s, through the proxy {through:.0}/s ({:.0}% of direct)",
                100.0 * through / plain
            );
        }
        // A tunnel per page load, as Chromium opens one per https origin:
        // a new connection to the proxy (admission included), CONNECT, one
        // request, close; against a new direct connection per request.
        let tunnels = 1_000;
        let started = Instant::now();
        for _ in 0..tunnels {
            let stream = tokio::net::TcpStream::connect(fixture).await.unwrap();
            one_request(stream, None).await;
        }
        let plain = tunnels as f64 / started.elapsed().as_secs_f64();
        let started = Instant::now();
        for _ in 0..tunnels {
            let stream = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
            one_request(stream, Some(&authority.to_string())).await;
        }
        let through = tunnels as f64 / started.elapsed().as_secs_f64();
        println!(
            "{tunnels} new connections, one GET each: direct {plain:.0}/s, through a CONNECT tunnel {through:.0}/s ({:.0}% of direct)",
            100.0 * through / plain
        );
        proxy.shutdown().await;
    });
}

/// Sends one GET on a fresh connection (after a CONNECT to `tunnel` when
/// given) and reads the answer to its end.
async fn one_request(mut stream: tokio::net::TcpStream, tunnel: Option<&str>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.set_nodelay(true).unwrap();
    if let Some(authority) = tunnel {
        let connect = format!("CONNECT {authority} HTTP/1.1\r\nhost: {authority}\r\n\r\n");
        stream.write_all(connect.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(stream.read(&mut byte).await.unwrap(), 1);
            head.push(byte[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 200"));
    }
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: fixture.test\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    assert!(answer.len() > PAGE_BYTES);
}
