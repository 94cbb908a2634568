//! Which collection directory owns a collection name, decided once, on disk, atomically.
//!
//! `<data>/collections/names/<keyed hash of the name>` holds the owning collection's id, sealed.
//! A claim is made by writing the id to a temporary file and hard-linking it to the claim's name:
//! `link` fails if the name exists, so of any number of creators racing — threads, or processes on
//! the same directory — exactly one wins, and a claim is never seen half-written. The name's hash
//! is keyed by the master key, so the directory does not reveal names.
//!
//! At start the claims decide: a collection directory whose name is claimed by another id is not
//! loaded (it lost a race, or is a left-over), so a refused creator can never take a name over.

use std::path::{Path, PathBuf};

use super::{StoreError, io_err, sync_dir};
use crate::crypto::{DataKey, KeyContext, MasterKey, Purpose};

pub struct NameClaims {
    dir: PathBuf,
    /// Hashes names into file names.
    name_key: DataKey,
    /// Seals the id inside a claim.
    seal_key: DataKey,
}

/// What a claim attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The name is now this id's.
    Won,
    /// Another id holds it.
    Taken(String),
}

impl NameClaims {
    /// Opens `<collections root>/names` (made with the first claim).
    pub fn open(master: &MasterKey, root: &Path) -> Result<Self, StoreError> {
        let dir = root.join("names");
        Ok(NameClaims {
            dir,
            name_key: master.derive(&KeyContext::new(Purpose::Mac, "", "collection-name", 0, 1)),
            seal_key: master.derive(&KeyContext::new(Purpose::CollectionMeta, "", "name-claim", 0, 1)),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(hex::encode(&self.name_key.mac(name.as_bytes())[..16]))
    }

    /// The id that owns `name`, if any. A claim that does not open (altered) is an error.
    pub fn owner(&self, name: &str) -> Result<Option<String>, StoreError> {
        let path = self.path(name);
        let sealed = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("cannot read", &path)(e)),
        };
        let id = self
            .seal_key
            .open(&sealed)
            .map_err(|_| StoreError::Integrity { what: format!("name claim {}", path.display()) })?;
        String::from_utf8(id.to_vec())
            .map(Some)
            .map_err(|_| StoreError::Damaged { path: path.display().to_string(), reason: "not an id".into() })
    }

    /// Claims `name` for collection `id`, unless someone holds it.
    pub fn claim(&self, name: &str, id: &str) -> Result<Claim, StoreError> {
        let path = self.path(name);
        std::fs::create_dir_all(&self.dir).map_err(io_err("cannot create", &self.dir))?;
        let tmp = self.dir.join(format!(".{}.tmp", crate::crypto::random_hex::<8>()?));
        let sealed = self.seal_key.seal(id.as_bytes())?;
        crate::crypto::write_private_file(&tmp, &sealed).map_err(io_err("cannot write", &tmp))?;
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                sync_dir(&self.dir)?;
                Ok(Claim::Won)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match self.owner(name)? {
                Some(other) if other == id => Ok(Claim::Won),
                Some(other) => Ok(Claim::Taken(other)),
                None => Err(StoreError::Damaged { path: path.display().to_string(), reason: "claim vanished".into() }),
            },
            Err(e) => Err(io_err("cannot claim", &path)(e)),
        }
    }

    /// Gives `name` up, if `id` holds it (a creation that failed after claiming).
    pub fn release(&self, name: &str, id: &str) -> Result<(), StoreError> {
        if self.owner(name)?.as_deref() == Some(id) {
            let path = self.path(name);
            std::fs::remove_file(&path).map_err(io_err("cannot remove", &path))?;
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Removes leftovers of claims cut off by a crash (temporary files).
    pub fn clean(&self) {
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().ends_with(".tmp") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn of_many_racing_claimers_exactly_one_wins_and_keeps_the_name() {
        let tmp = tempfile::tempdir().unwrap();
        let master = MasterKey::from_bytes([3; 32]);
        let claims = std::sync::Arc::new(NameClaims::open(&master, tmp.path()).unwrap());
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let c = std::sync::Arc::clone(&claims);
                std::thread::spawn(move || c.claim("clinic", &format!("{i:02x}")).unwrap())
            })
            .collect();
        let results: Vec<Claim> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners: Vec<usize> =
            results.iter().enumerate().filter(|(_, r)| **r == Claim::Won).map(|(i, _)| i).collect();
        assert_eq!(winners.len(), 1, "{results:?}");
        let owner = claims.owner("clinic").unwrap().unwrap();
        assert_eq!(owner, format!("{:02x}", winners[0]));
        // The file name does not reveal the name; releasing by a loser does nothing.
        assert!(
            std::fs::read_dir(tmp.path().join("names")).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("clinic"))
        );
        claims.release("clinic", "zz").unwrap();
        assert_eq!(claims.owner("clinic").unwrap(), Some(owner.clone()));
        claims.release("clinic", &owner).unwrap();
        assert_eq!(claims.owner("clinic").unwrap(), None);
    }
}
