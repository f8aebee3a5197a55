//! The cold store on `file://` and on the real S3-protocol server: small objects go up
//! in one request, large ones in parts, and both read back byte for byte.

use tierlog_cold::{ColdStore, MULTIPART_ABOVE};

mod common;

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
    suite(ColdStore::open(&common::local(dir.path())).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_on_the_s3_server() {
    let Some((config, _)) = common::s3("store") else { return };
    suite(ColdStore::open(&config).unwrap()).await;
}
