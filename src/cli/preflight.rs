//! Opening the bucket's store before mounting: for COS, one LIST proves endpoint, credentials
//! and bucket (each failure with its own message) and corrects a skewed clock; for
//! `--local-store`, the store directory is opened and locked.

use std::sync::Arc;

use crate::cos::CosClient;
use crate::local::LocalStore;
use crate::object::{ListRequest, ObjectStore};

use super::mount_args::{Backend, Prepared};

/// One LIST of the prefix: the cheapest request that proves endpoint, credentials and bucket.
pub(super) async fn preflight(
    client: &CosClient,
    bucket: &str,
    prefix: &str,
) -> Result<(), String> {
    let req = ListRequest {
        prefix: prefix.to_string(),
        delimiter: Some("/".into()),
        max_keys: 1,
        ..Default::default()
    };
    let endpoint = client.config().endpoint.base_url();
    let secret_id = client.secret_id().await.map(|id| super::check::mask(&id));
    client.list_objects(&req).await.map(|_| ()).map_err(|e| {
        let target = super::diagnose::Target {
            bucket,
            base_url: &endpoint,
            prefix,
            secret_id: secret_id.as_deref(),
        };
        super::diagnose::list_failure(&e, &target).to_string()
    })
}

/// A mount's store, and the COS client behind it if there is one (for `cosfs stats`).
pub(super) type OpenedStore = (Arc<dyn ObjectStore>, Option<Arc<CosClient>>);

/// The bucket's store, checked: for COS, a client whose preflight passed (and that client,
/// for `cosfs stats`); for `--local-store`, the store directory opened and locked.
pub(super) fn open_store(
    rt: &tokio::runtime::Runtime,
    prep: &Prepared,
) -> Result<OpenedStore, String> {
    let (client_cfg, creds) = match &prep.backend {
        Backend::Local(dir) => {
            let store = LocalStore::open(dir, &prep.bucket)
                .map_err(|e| format!("local store {}: {e}", dir.display()))?;
            return Ok((Arc::new(store), None));
        }
        Backend::Cos { client_cfg, creds } => (client_cfg.as_ref(), creds),
    };
    let client =
        Arc::new(CosClient::new(client_cfg.clone(), creds.clone()).map_err(|e| e.to_string())?);
    // The preflight gives up sooner than file operations do (a typo should not take a
    // minute: refusals are not retried at all), yet rides out a passing 503 or dropped
    // connection: 4 attempts, under a second of backoff.
    let mut quick = client_cfg.clone();
    quick.retry.max_attempts = 4;
    let checker = CosClient::new(quick, creds.clone()).map_err(|e| e.to_string())?;
    rt.block_on(preflight(&checker, &prep.bucket, &prep.prefix))?;
    // A skewed clock found by the preflight is corrected before the first operation.
    client.adopt_clock_offset(checker.clock_offset_secs());
    Ok((client.clone(), Some(client)))
}
