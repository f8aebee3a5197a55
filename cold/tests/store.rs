//! The cold store on `file://` and on the real S3-protocol server: small objects go up
//! in one request, large ones in parts, and both read back byte for byte.

use tierlog_cold::{ColdStore, MULTIPART_ABOVE};
use tierlog_core::config::{ColdConfig, ColdLocation, Secret};

/// Bytes no compression or dedup could shortcut: an xorshift sequence.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

async fn suite(store: ColdStore) {
    for (name, len) in [("small", 1000), ("large", MULTIPART_ABOVE + 5 * 1024 * 1024 + 7)] {
        let bytes = payload(len, len as u64);
        let key = store.key(&format!("store-test/{name}.bin"));
        store.put(&key, bytes.clone()).await.unwrap();
        let got = store.read(&key).await.unwrap();
        assert_eq!(got.len(), len, "{name}");
        assert!(got == bytes, "{name}: read back different bytes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_on_a_local_folder() {
    let dir = tempfile::tempdir().unwrap();
    suite(ColdStore::open(&ColdConfig { url: ColdLocation::Local { root: dir.path().to_path_buf() }, ..ColdConfig::default() }).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_on_the_s3_server() {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let Some(endpoint) = get("TIERLOG_S3_ENDPOINT") else {
        assert!(get("CI").as_deref() != Some("true"), "CI=true but TIERLOG_S3_ENDPOINT is not set: the S3 server is missing");
        eprintln!("SKIPPED: no S3 server (run with deploy/local/test.sh)");
        return;
    };
    let config = ColdConfig {
        url: ColdLocation::S3 { bucket: get("TIERLOG_S3_BUCKET").unwrap_or_else(|| "tierlog".into()), prefix: format!("store-{}", std::process::id()) },
        endpoint: Some(endpoint),
        allow_http: true,
        access_key_id: Some(Secret::new("test")),
        secret_access_key: Some(Secret::new("test")),
        ..ColdConfig::default()
    };
    suite(ColdStore::open(&config).unwrap()).await;
}
