//! The collection registry: every collection on this node by name and by id, and the one way a
//! collection comes into being here — new, or first made on a peer ([`Collections::install`]).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use k256::ecdsa::VerifyingKey;
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use super::collection::{Collection, validate_collection_name};
use crate::crypto::{KeyContext, MasterKey, Purpose};
use crate::error::{Error, ErrorKind, Result};
use crate::index::{IndexBackend, VectorIndex};
use crate::store::{Claim, CollectionMeta, CollectionStore, NameClaims};

/// How many collections may be made, by whom, and how new ones are laid out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Quota {
    pub per_key: usize,
    pub total: usize,
    /// Shards of a new collection (1 on a node alone) and copies of each shard.
    pub shards: u32,
    pub replicas: u32,
}

/// A collection to install: brand new (random id and key) or adopted from a peer (its id and key).
pub(crate) struct NewCollection {
    pub cid: String,
    pub key: MasterKey,
    pub meta: CollectionMeta,
    pub grants: BTreeSet<String>,
    /// The owner whose quota it counts against (None: adopted from a peer).
    pub quota_owner: Option<String>,
}

#[derive(Default)]
struct Maps {
    by_name: HashMap<String, Arc<Collection>>,
    by_id: HashMap<String, Arc<Collection>>,
}

/// Every collection on this node.
pub struct Collections {
    pub(crate) master: Arc<MasterKey>,
    /// `<data>/collections`.
    pub(crate) root: PathBuf,
    pub(crate) claims: NameClaims,
    index: Arc<dyn IndexBackend>,
    dimension: usize,
    quota: Quota,
    maps: RwLock<Maps>,
    /// Names being created right now, with their would-be owner (None: adopted from a peer).
    creating: Mutex<HashMap<String, Option<String>>>,
    /// Raised on every change of what a collection holds (the status snapshot listens).
    changes: Arc<Notify>,
}

impl Collections {
    pub(crate) fn new(
        master: Arc<MasterKey>,
        root: PathBuf,
        index: Arc<dyn IndexBackend>,
        dimension: usize,
        quota: Quota,
        changes: Arc<Notify>,
    ) -> Result<Self> {
        std::fs::create_dir_all(&root).map_err(|e| Error::internal(format!("cannot create {}", root.display()), e))?;
        let claims = NameClaims::open(&master, &root)?;
        claims.clean();
        Ok(Collections {
            master,
            root,
            claims,
            index,
            dimension,
            quota,
            maps: RwLock::default(),
            creating: Mutex::default(),
            changes,
        })
    }

    pub fn get(&self, name: &str) -> Result<Arc<Collection>> {
        self.maps
            .read()
            .by_name
            .get(name)
            .cloned()
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no collection named {name:?} on this node")))
    }

    pub(crate) fn by_id(&self, cid: &str) -> Option<Arc<Collection>> {
        self.maps.read().by_id.get(cid).cloned()
    }

    /// Every collection, in no particular order.
    pub fn all(&self) -> Vec<Arc<Collection>> {
        self.maps.read().by_name.values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.maps.read().by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn backend_name(&self) -> String {
        self.index.name()
    }

    /// Makes a loaded or installed collection visible.
    pub(crate) fn insert(&self, c: Arc<Collection>) {
        {
            let mut maps = self.maps.write();
            maps.by_id.insert(c.id().to_string(), Arc::clone(&c));
            maps.by_name.insert(c.name().to_string(), c);
        }
        self.changes.notify_one();
    }

    /// What a new collection's changes raise.
    pub(crate) fn changes(&self) -> Arc<Notify> {
        Arc::clone(&self.changes)
    }

    /// Opens a collection's index, handing the backend the collection's index key.
    pub(crate) fn open_index(&self, store: &CollectionStore) -> Result<Arc<dyn VectorIndex>> {
        let key = store.key().derive(&KeyContext::new(Purpose::Rotation, &store.id, "", 0, 1));
        Ok(self.index.open(&store.id, self.dimension, key.expose())?)
    }

    /// Creates a collection owned by `owner`, with a random id and a random key of its own.
    pub async fn create(self: &Arc<Self>, name: &str, owner: &VerifyingKey) -> Result<Arc<Collection>> {
        let owner = prag_proto::account::public_key_hex(owner);
        let meta = CollectionMeta {
            name: name.to_string(),
            owner: owner.clone(),
            created_at: crate::auth::unix_now(),
            shards: self.quota.shards,
            replicas: self.quota.replicas,
            grants_version: 0,
            tombstones: Default::default(),
        };
        let new = NewCollection {
            cid: CollectionStore::new_id()?,
            key: MasterKey::generate()?,
            meta,
            grants: Default::default(),
            quota_owner: Some(owner),
        };
        let c = self.install(new).await?;
        tracing::info!(collection = name, "collection created");
        Ok(c)
    }

    /// Creates the directory of a collection (new, or first made on a peer), claims its name on
    /// disk, opens its index and makes it visible: the one path for both. Refused when the name
    /// is invalid, exists or is being created, or — for a new collection — when its owner or the
    /// node holds as many as they may.
    pub(crate) async fn install(self: &Arc<Self>, new: NewCollection) -> Result<Arc<Collection>> {
        validate_collection_name(&new.meta.name)?;
        let _reservation = self.reserve(&new.meta.name, new.quota_owner.as_deref())?;
        let registry = Arc::clone(self);
        let NewCollection { cid, key, meta, grants, .. } = new;
        tokio::task::spawn_blocking(move || registry.install_blocking(cid, key, meta, grants)).await?
    }

    fn install_blocking(
        &self,
        cid: String,
        key: MasterKey,
        meta: CollectionMeta,
        grants: BTreeSet<String>,
    ) -> Result<Arc<Collection>> {
        let store = CollectionStore::create_with(&self.master, &self.root, &cid, key, &meta)?;
        let undo = |store: &CollectionStore| {
            let _ = std::fs::remove_dir_all(store.dir());
        };
        let claimed =
            store.write_grants(&grants).map_err(Error::from).and_then(|_| Ok(self.claims.claim(&meta.name, &cid)?));
        match claimed {
            Ok(Claim::Won) => {}
            Ok(Claim::Taken(_)) => {
                undo(&store);
                return Err(Error::conflict(format!("collection {:?} already exists", meta.name)));
            }
            Err(e) => {
                undo(&store);
                return Err(e);
            }
        }
        let index = match self.open_index(&store) {
            Ok(i) => i,
            Err(e) => {
                let _ = self.claims.release(&meta.name, &store.id);
                undo(&store);
                return Err(e);
            }
        };
        let collection = Arc::new(Collection::new(store, meta, grants, index, Arc::clone(&self.changes)));
        self.insert(Arc::clone(&collection));
        Ok(collection)
    }

    /// Holds `name` for a creation under way: refused if the name exists or is being created, or
    /// (with `owner`) if the node or that key already holds as many collections as it may.
    fn reserve(&self, name: &str, owner: Option<&str>) -> Result<Reservation<'_>> {
        let maps = self.maps.read();
        let mut creating = self.creating.lock();
        if maps.by_name.contains_key(name) || creating.contains_key(name) {
            return Err(Error::conflict(format!("collection {name:?} already exists")));
        }
        if let Some(owner) = owner {
            let total = self.quota.total;
            if maps.by_name.len() + creating.len() >= total {
                return Err(Error::new(
                    ErrorKind::Busy,
                    format!("this node holds {total} collections, as many as it may"),
                ));
            }
            let max = self.quota.per_key;
            let owned = maps.by_name.values().filter(|c| c.owner() == owner).count()
                + creating.values().filter(|o| o.as_deref() == Some(owner)).count();
            if owned >= max {
                return Err(Error::new(
                    ErrorKind::Quota,
                    format!("this key already owns {owned} collections on this node; at most {max} are allowed"),
                ));
            }
        }
        creating.insert(name.to_string(), owner.map(str::to_string));
        Ok(Reservation { registry: self, name: name.to_string() })
    }
}

/// A name held while its collection is being created; released on drop.
struct Reservation<'a> {
    registry: &'a Collections,
    name: String,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.registry.creating.lock().remove(&self.name);
    }
}
