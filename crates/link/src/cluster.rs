//! Transitive clustering of linked records into persons, with a `person_key` that stays the
//! same from one run to the next.

use std::collections::{BTreeMap, HashMap, HashSet};

use sha2::{Digest, Sha256};

use crate::records::RecordSet;

/// Records grouped into persons.
#[derive(Debug, Clone)]
pub struct Clustering {
    cluster_of: Vec<u32>,
    keys: Vec<String>,
}

impl Clustering {
    /// The cluster (0-based) of record `i`.
    pub fn cluster_of(&self, record: usize) -> usize {
        self.cluster_of[record] as usize
    }

    /// The person key of record `i`.
    pub fn person_key(&self, record: usize) -> &str {
        &self.keys[self.cluster_of(record)]
    }

    /// Number of persons.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are no persons.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Person keys, by cluster.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// The records of each cluster, in record order.
    pub fn members(&self) -> Vec<Vec<u32>> {
        let mut members = vec![Vec::new(); self.keys.len()];
        for (record, cluster) in self.cluster_of.iter().enumerate() {
            members[*cluster as usize].push(record as u32);
        }
        members
    }
}

fn find(parent: &mut [u32], mut x: u32) -> u32 {
    while parent[x as usize] != x {
        let up = parent[parent[x as usize] as usize];
        parent[x as usize] = up;
        x = up;
    }
    x
}

/// A new person key for a cluster, derived from one member's record key so that a rebuild from
/// nothing gives the same keys as the runs before it.
fn mint(record_key: &str, attempt: u32) -> String {
    let mut hasher = Sha256::new();
    hasher.update(record_key.as_bytes());
    if attempt > 0 {
        hasher.update(attempt.to_le_bytes());
    }
    let digest = hasher.finalize();
    format!("PK{}", &hex::encode(digest)[..16].to_uppercase())
}

/// Groups `records` into connected components of `links` and names each.
///
/// `previous` maps record keys (`source:id`) to the person keys of the last run. A cluster keeps
/// the previous key most of its records had (ties: the smallest key); a key split across
/// clusters stays with the cluster holding most of its records; other clusters get a key minted
/// from their first member's record key. A key is never given to two persons, nor reused once
/// retired.
pub fn cluster(
    records: &RecordSet,
    links: impl IntoIterator<Item = (u32, u32)>,
    previous: &HashMap<String, String>,
) -> Clustering {
    let n = records.len();
    let mut parent: Vec<u32> = (0..n as u32).collect();
    for (a, b) in links {
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        if ra != rb {
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            parent[hi as usize] = lo;
        }
    }
    // Clusters numbered by their lowest record.
    let mut cluster_of = vec![0u32; n];
    let mut index_of_root: HashMap<u32, u32> = HashMap::new();
    for (i, cluster) in cluster_of.iter_mut().enumerate() {
        let root = find(&mut parent, i as u32);
        let next = index_of_root.len() as u32;
        *cluster = *index_of_root.entry(root).or_insert(next);
    }
    let clusters = index_of_root.len();

    // Votes: how many records of each cluster carried each previous key.
    let mut votes: Vec<BTreeMap<&str, u32>> = vec![BTreeMap::new(); clusters];
    let mut record_keys: Vec<String> = Vec::with_capacity(n);
    for i in 0..n {
        let key = records.key(i);
        if let Some(person) = previous.get(&key) {
            *votes[cluster_of[i] as usize]
                .entry(person.as_str())
                .or_default() += 1;
        }
        record_keys.push(key);
    }
    // Each previous key goes to the cluster with most of its records (then the lowest cluster).
    let mut best: HashMap<&str, (u32, usize)> = HashMap::new();
    for (c, v) in votes.iter().enumerate() {
        for (key, count) in v {
            let entry = best.entry(key).or_insert((*count, c));
            if *count > entry.0 {
                *entry = (*count, c);
            }
        }
    }
    let mut keys: Vec<Option<String>> = vec![None; clusters];
    for (c, v) in votes.iter().enumerate() {
        let mut ranked: Vec<(&&str, &u32)> = v.iter().collect();
        ranked.sort_by(|x, y| y.1.cmp(x.1).then(x.0.cmp(y.0)));
        if let Some((key, _)) = ranked.into_iter().find(|(key, _)| best[**key].1 == c) {
            keys[c] = Some((*key).to_string());
        }
    }
    let mut used: HashSet<String> = keys.iter().flatten().cloned().collect();
    used.extend(previous.values().cloned());
    let mut first_member = vec![usize::MAX; clusters];
    for (i, c) in cluster_of.iter().enumerate().rev() {
        first_member[*c as usize] = i;
    }
    let keys = keys
        .into_iter()
        .enumerate()
        .map(|(c, key)| {
            key.unwrap_or_else(|| {
                let base = &record_keys[first_member[c]];
                // A key once given out (now or in an earlier run) is never given to another
                // person, even after a merge retired it.
                let mut attempt = 0;
                loop {
                    let key = mint(base, attempt);
                    if used.insert(key.clone()) {
                        return key;
                    }
                    attempt += 1;
                }
            })
        })
        .collect();
    Clustering { cluster_of, keys }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::Field;

    fn records(n: usize) -> RecordSet {
        let mut b = RecordSet::builder(&[Field::LastName]);
        for i in 0..n {
            b.push("s", &format!("r{i}"), "", &["x"]).unwrap();
        }
        b.build().unwrap()
    }

    #[test]
    fn components_and_stable_keys() {
        let r = records(5);
        let first = cluster(&r, [(0, 1), (1, 2)], &HashMap::new());
        assert_eq!(first.len(), 3);
        assert_eq!(first.person_key(0), first.person_key(2));
        assert_ne!(first.person_key(0), first.person_key(3));
        let previous: HashMap<String, String> = (0..5)
            .map(|i| (r.key(i), first.person_key(i).to_string()))
            .collect();
        // Same links: same keys.
        let again = cluster(&r, [(0, 1), (1, 2)], &previous);
        for i in 0..5 {
            assert_eq!(again.person_key(i), first.person_key(i));
        }
        // 3 joins the big cluster: it takes the big cluster's key; 4 keeps its own.
        let merged = cluster(&r, [(0, 1), (1, 2), (2, 3)], &previous);
        assert_eq!(merged.person_key(3), first.person_key(0));
        assert_eq!(merged.person_key(4), first.person_key(4));
        // 2 leaves: 0 and 1 keep the key, 2 gets a new one never used by anyone else.
        let split = cluster(&r, [(0, 1)], &previous);
        assert_eq!(split.person_key(0), first.person_key(0));
        assert_ne!(split.person_key(2), first.person_key(0));
        let all: HashSet<&str> = (0..5).map(|i| split.person_key(i)).collect();
        assert_eq!(all.len(), 4);
    }
}
