//! Properties: normalisation is idempotent where it should be, comparison levels do not
//! depend on the order of the pair, nothing panics on arbitrary text, and clustering gives
//! every person one key.

use std::collections::{HashMap, HashSet};

use carelake_link::{Field, LinkConfig, RecordSet, cluster, link};
use proptest::prelude::*;

proptest! {
    #[test]
    fn normalising_twice_changes_nothing(raw in "\\PC{0,40}") {
        for field in [Field::FirstName, Field::LastName, Field::Phone, Field::NationalId,
                      Field::City, Field::Zip, Field::Email, Field::Sex] {
            let once = field.normalize(&raw);
            prop_assert_eq!(field.normalize(&once), once.clone(), "{}", field);
        }
    }

    #[test]
    fn arbitrary_records_link_without_panic_and_symmetrically(
        rows in proptest::collection::vec(
            ("[A-Za-z' -]{0,12}", "[A-Za-z]{0,12}", "[0-9/.-]{0,12}", "[0-9]{0,6}", "\\PC{0,10}"),
            2..40,
        )
    ) {
        let fields = [Field::FirstName, Field::LastName, Field::BirthDate, Field::Zip, Field::Street];
        let build = |rows: &[(String, String, String, String, String)]| {
            let mut b = RecordSet::builder(&fields);
            for (i, r) in rows.iter().enumerate() {
                b.push(if i % 2 == 0 { "x" } else { "y" }, &i.to_string(), "",
                       &[&r.0, &r.1, &r.2, &r.3, &r.4]).unwrap();
            }
            b.build().unwrap()
        };
        let records = build(&rows);
        let config = LinkConfig { review_threshold: 0.0, ..LinkConfig::default() };
        let linkage = link(&records, &config).unwrap();
        // The same records in reverse order: the same pairs with the same levels.
        let reversed: Vec<_> = rows.iter().rev().cloned().collect();
        let records_rev = build(&reversed);
        let linkage_rev = link(&records_rev, &config).unwrap();
        let n = rows.len() as u32;
        let levels = |l: &carelake_link::Linkage, flip: bool| -> HashMap<(u32, u32), Vec<u8>> {
            l.pairs.iter().map(|p| {
                let (a, b) = if flip { (n - 1 - p.b, n - 1 - p.a) } else { (p.a, p.b) };
                ((a, b), (0..l.comparisons.len()).map(|k| p.level(k)).collect())
            }).collect()
        };
        let forward = levels(&linkage, false);
        let backward = levels(&linkage_rev, true);
        for (pair, l) in &forward {
            if let Some(other) = backward.get(pair) {
                prop_assert_eq!(l, other);
            }
        }
        for p in &linkage.pairs {
            prop_assert!(p.probability.is_finite() && (0.0..=1.0).contains(&p.probability));
        }
        let clusters = cluster(&records, linkage.links().map(|p| (p.a, p.b)), &HashMap::new());
        let keys: HashSet<&str> = (0..records.len()).map(|i| clusters.person_key(i)).collect();
        prop_assert_eq!(keys.len(), clusters.len());
    }
}
