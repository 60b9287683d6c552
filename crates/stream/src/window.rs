//! Bounded memory for exactly-once ingest: the most recent keys seen, up to a cap.
//!
//! The stream ingest remembers event ids and the HL7 store message keys to tell a resend from
//! a new message. Kept whole, those sets grow with the lake; a window keeps the newest `cap`
//! entries (oldest evicted first), so memory stays bounded and a resend is recognised as long
//! as it comes within the last `cap` messages (a resend older than that is stored again).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// The newest `cap` keys, each with a value, in insertion order.
#[derive(Debug, Clone)]
pub(crate) struct WindowMap<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
    cap: usize,
}

impl<K: Hash + Eq + Clone, V> WindowMap<K, V> {
    /// An empty window of at most `cap` entries (at least one).
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    pub(crate) fn contains_key(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    /// Adds `key` unless it is there (an existing entry keeps its value and its place);
    /// evicts the oldest entries beyond the cap. Returns whether it was new.
    pub(crate) fn insert(&mut self, key: K, value: V) -> bool {
        if self.map.contains_key(&key) {
            return false;
        }
        self.map.insert(key.clone(), value);
        self.order.push_back(key);
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
        true
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

/// The newest `cap` keys.
#[derive(Debug, Clone)]
pub(crate) struct WindowSet<K>(WindowMap<K, ()>);

impl<K: Hash + Eq + Clone> WindowSet<K> {
    pub(crate) fn new(cap: usize) -> Self {
        Self(WindowMap::new(cap))
    }

    pub(crate) fn contains(&self, key: &K) -> bool {
        self.0.contains_key(key)
    }

    /// Adds `key`; returns whether it was new.
    pub(crate) fn insert(&mut self, key: K) -> bool {
        self.0.insert(key, ())
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

impl<K: Hash + Eq + Clone> Extend<K> for WindowSet<K> {
    fn extend<I: IntoIterator<Item = K>>(&mut self, iter: I) {
        for key in iter {
            self.insert(key);
        }
    }
}

/// A 16-byte digest of an id as sent (ids can be long; the window holds digests).
pub(crate) fn id_digest(id: &str) -> [u8; 16] {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(id.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&hash[..16]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_entries_leave_first() {
        let mut window = WindowSet::new(3);
        for k in 1..=3 {
            assert!(window.insert(k));
        }
        assert!(!window.insert(2), "a key in the window is a duplicate");
        assert!(window.insert(4));
        assert_eq!(window.len(), 3);
        assert!(!window.contains(&1), "the oldest left");
        assert!(window.contains(&2) && window.contains(&4));
        let mut map = WindowMap::new(2);
        map.insert("a", 1);
        map.insert("a", 2);
        assert_eq!(map.get(&"a"), Some(&1), "the first value stays");
        map.insert("b", 1);
        map.insert("c", 1);
        assert!(map.get(&"a").is_none());
        assert_eq!(id_digest("x"), id_digest("x"));
        assert_ne!(id_digest("x"), id_digest("y"));
    }
}
