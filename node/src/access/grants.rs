//! Owners' grants: which subscribers' workers may query a collection.

use k256::ecdsa::VerifyingKey;
use prag_proto::api::GrantsResponse;

use super::{Access, Subject};
use crate::error::{Error, Result};

impl Access {
    /// Allows (`allow`) or stops allowing a subscriber's workers to query a collection. Owner only.
    pub async fn set_grant(
        &self,
        caller: &VerifyingKey,
        collection: &str,
        subscriber: &str,
        allow: bool,
    ) -> Result<GrantsResponse> {
        let coll = self.collections.get(collection)?;
        coll.check_owner(caller)?;
        let subscriber = prag_proto::account::canonical_public_key(subscriber)
            .map_err(|e| Error::bad_request(format!("subscriber: {e}")))?;
        let changed = {
            let _commit = coll.commit.lock().await;
            coll.update_live(|live| {
                let changed =
                    if allow { live.grants.insert(subscriber.clone()) } else { live.grants.remove(&subscriber) };
                if changed {
                    // Peers take the newest grants (by this version) when they next sync.
                    live.grants_version = crate::store::document::new_version(Some(live.grants_version));
                }
            })
            .await?
        };
        let subject = Subject {
            actor: prag_proto::account::public_key_hex(caller),
            subscriber,
            collection: collection.to_string(),
            ..Default::default()
        };
        let event = if allow { "grant" } else { "revoke" };
        self.audit(event, "", &subject, if changed { String::new() } else { "no change".into() });
        Ok(GrantsResponse { collection: collection.to_string(), subscribers: coll.live().grants.into_iter().collect() })
    }

    /// The subscribers granted access to a collection. Owner only.
    pub fn grants(&self, caller: &VerifyingKey, collection: &str) -> Result<GrantsResponse> {
        let coll = self.collections.get(collection)?;
        coll.check_owner(caller)?;
        Ok(GrantsResponse { collection: collection.to_string(), subscribers: coll.live().grants.into_iter().collect() })
    }
}
