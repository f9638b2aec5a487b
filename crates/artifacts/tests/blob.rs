//! The blob store on both backends: a local folder, and a real
//! S3-compatible server (moto, started on loopback by the test). Every case
//! runs on each, the same way.

use accord_artifacts::{BlobError, BlobStore, BlobStoreConfig, Declared, S3Config};
use accord_model::Sha256Digest;
use accord_test_support::{ThrowawayS3, S3_ACCESS_KEY_ID, S3_REGION, S3_SECRET_ACCESS_KEY};
use bytes::Bytes;
use futures::{stream, StreamExt, TryStreamExt};

/// A store and whatever keeps its backend alive.
struct Backend {
    store: BlobStore,
    _guard: Box<dyn std::any::Any>,
}

fn local() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(&BlobStoreConfig::Local {
        root: dir.path().join("artifacts"),
    })
    .unwrap();
    Backend {
        store,
        _guard: Box::new(dir),
    }
}

fn s3() -> Backend {
    let server = ThrowawayS3::start();
    server.create_bucket("accord-blobs");
    let store = BlobStore::open(&BlobStoreConfig::S3(S3Config {
        bucket: "accord-blobs".into(),
        endpoint: Some(server.endpoint()),
        region: S3_REGION.into(),
        access_key_id: S3_ACCESS_KEY_ID.into(),
        secret_access_key: S3_SECRET_ACCESS_KEY.into(),
        allow_http: true,
    }))
    .unwrap();
    Backend {
        store,
        _guard: Box::new(server),
    }
}

macro_rules! on_both {
    ($($case:ident),+ $(,)?) => {
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = super::local();
                    super::$case(&backend.store).await;
                }
            )+
        }
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = super::s3();
                    super::$case(&backend.store).await;
                }
            )+
        }
    };
}

on_both!(
    streamed_puts_round_trip_whole_and_by_range,
    large_puts_go_up_in_parts,
    puts_whose_bytes_differ_from_the_declaration_keep_nothing,
    the_same_bytes_put_twice_are_one_blob,
    deletes_and_listing,
);

/// `bytes` as a body of `chunk`-sized pieces.
fn body(
    bytes: &[u8],
    chunk: usize,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let pieces: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(chunk.max(1))
        .map(|piece| Ok(Bytes::copy_from_slice(piece)))
        .collect();
    stream::iter(pieces)
}

fn declared(bytes: &[u8]) -> Declared {
    Declared {
        sha256: Sha256Digest::of(bytes),
        size: bytes.len() as u64,
    }
}

async fn read(
    store: &BlobStore,
    sha256: &Sha256Digest,
    range: Option<std::ops::Range<u64>>,
) -> Vec<u8> {
    let read = store.get(sha256, range).await.unwrap();
    let chunks: Vec<Bytes> = read.stream.try_collect().await.unwrap();
    chunks.concat()
}

async fn streamed_puts_round_trip_whole_and_by_range(store: &BlobStore) {
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let digest = Sha256Digest::of(&bytes);
    store
        .put_stream(declared(&bytes), body(&bytes, 4096))
        .await
        .unwrap();
    assert_eq!(read(store, &digest, None).await, bytes);
    let check = |range: std::ops::Range<u64>, expected: &[u8]| {
        let expected = expected.to_vec();
        async move {
            assert_eq!(
                read(store, &digest, Some(range.clone())).await,
                expected,
                "{range:?}"
            );
        }
    };
    check(0..1, &bytes[..1]).await;
    check(10..20, &bytes[10..20]).await;
    check(99_990..100_000, &bytes[99_990..]).await;
    // An end past the blob is cut to its size.
    check(99_990..200_000, &bytes[99_990..]).await;
    let opened = store.get(&digest, Some(5..10)).await.unwrap();
    assert_eq!((opened.size, opened.range), (100_000, 5..10));
    match store.get(&digest, Some(100_000..100_010)).await {
        Err(BlobError::RangeNotSatisfiable { start, size }) => {
            assert_eq!((start, size), (100_000, 100_000));
        }
        other => panic!("expected an unsatisfiable range, got {other:?}"),
    }
    let meta = store.head(&digest).await.unwrap().unwrap();
    assert_eq!((meta.sha256, meta.size), (digest, 100_000));
    assert!(store
        .head(&Sha256Digest::of(b"never stored"))
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        store.get(&Sha256Digest::of(b"never stored"), None).await,
        Err(BlobError::NotFound(_))
    ));
}

async fn large_puts_go_up_in_parts(store: &BlobStore) {
    // Past one part (8 MiB), so the multipart path runs, with an odd tail.
    let bytes: Vec<u8> = (0..(17 * 1024 * 1024 + 123u32))
        .map(|i| (i.wrapping_mul(31) >> 3) as u8)
        .collect();
    let digest = Sha256Digest::of(&bytes);
    store
        .put_stream(declared(&bytes), body(&bytes, 64 * 1024))
        .await
        .unwrap();
    assert_eq!(
        store.head(&digest).await.unwrap().unwrap().size,
        bytes.len() as u64
    );
    let tail = read(
        store,
        &digest,
        Some(16 * 1024 * 1024..17 * 1024 * 1024 + 123),
    )
    .await;
    assert_eq!(tail, &bytes[16 * 1024 * 1024..]);
    assert_eq!(Sha256Digest::of(&read(store, &digest, None).await), digest);

    // A large upload refused at the end leaves nothing behind either.
    let mut wrong = declared(&bytes);
    wrong.sha256 = Sha256Digest::of(b"something else");
    let err = store
        .put_stream(wrong, body(&bytes, 64 * 1024))
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::DigestMismatch { .. }), "{err}");
    assert!(store.head(&wrong.sha256).await.unwrap().is_none());
}

async fn puts_whose_bytes_differ_from_the_declaration_keep_nothing(store: &BlobStore) {
    let bytes = b"the evidence".to_vec();
    let check = |declaration: Declared,
                 sent: Vec<Result<Bytes, std::io::Error>>,
                 expected: &'static str| async move {
        let err = store
            .put_stream(declaration, stream::iter(sent))
            .await
            .unwrap_err();
        let kind = match &err {
            BlobError::DigestMismatch { .. } => "digest",
            BlobError::SizeMismatch { .. } => "size",
            BlobError::Body(_) => "body",
            _ => "other",
        };
        assert_eq!(kind, expected, "{err}");
        assert!(err.is_refused_upload());
        assert!(
            store.head(&declaration.sha256).await.unwrap().is_none(),
            "{err}"
        );
    };
    let whole = || vec![Ok(Bytes::from(bytes.clone()))];
    // The right size, other bytes.
    let mut other = declared(&bytes);
    other.sha256 = Sha256Digest::of(b"the evidencf");
    check(other, whole(), "digest").await;
    // More bytes than declared: refused as soon as they pass the size.
    let mut short = declared(&bytes);
    short.size -= 1;
    check(short, whole(), "size").await;
    // Fewer bytes than declared.
    let mut long = declared(&bytes);
    long.size += 1;
    check(long, whole(), "size").await;
    // The body breaks off.
    check(
        declared(&bytes),
        vec![
            Ok(Bytes::from_static(b"the ")),
            Err(std::io::Error::other("connection reset")),
        ],
        "body",
    )
    .await;
    // An empty blob is a blob like any other.
    store
        .put_stream(
            declared(b""),
            stream::iter(Vec::<Result<Bytes, std::io::Error>>::new()),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .head(&Sha256Digest::of(b""))
            .await
            .unwrap()
            .unwrap()
            .size,
        0
    );
}

async fn the_same_bytes_put_twice_are_one_blob(store: &BlobStore) {
    let bytes = b"<html>same page</html>".to_vec();
    let digest = Sha256Digest::of(&bytes);
    store
        .put_stream(declared(&bytes), body(&bytes, 3))
        .await
        .unwrap();
    store
        .put_stream(declared(&bytes), body(&bytes, 7))
        .await
        .unwrap();
    assert_eq!(
        store.put_bytes(Bytes::from(bytes.clone())).await.unwrap(),
        digest
    );
    let listed: Vec<_> = store.list().try_collect().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].sha256, listed[0].size),
        (digest, bytes.len() as u64)
    );
    assert_eq!(read(store, &digest, None).await, bytes);
}

async fn deletes_and_listing(store: &BlobStore) {
    let mut digests = Vec::new();
    for i in 0..5u8 {
        let bytes = vec![i; 10 + usize::from(i)];
        digests.push(store.put_bytes(Bytes::from(bytes)).await.unwrap());
    }
    let mut listed: Vec<Sha256Digest> = store
        .list()
        .map_ok(|meta| meta.sha256)
        .try_collect()
        .await
        .unwrap();
    listed.sort();
    let mut expected = digests.clone();
    expected.sort();
    assert_eq!(listed, expected);
    store.delete(&digests[0]).await.unwrap();
    // Deleting what is gone is not an error.
    store.delete(&digests[0]).await.unwrap();
    assert!(store.head(&digests[0]).await.unwrap().is_none());
    let left: Vec<_> = store.list().collect::<Vec<_>>().await;
    assert_eq!(left.len(), 4);
}
