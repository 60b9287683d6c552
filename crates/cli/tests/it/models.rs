//! Models in SQL on the real binary: training as a principal, the split by patient, stored
//! models reloaded in a new process with the same predictions, metrics, explanations, SHAP
//! contributions, and who may use a model.

use crate::support::Workspace;

const PASSWORD: &str = "a long model test password";

/// 600 people with 3 stays each: the outcome depends on age and the emergency flag, not on
/// the ward; a fixed pseudo-random sequence makes it noisy and repeatable.
fn stays_csv() -> String {
    let mut state = 11u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut out = String::from("person_key,age,emergent,ward,readmitted\n");
    for person in 0..600 {
        let age = 30.0 + next() * 60.0;
        for _ in 0..3 {
            let emergent = next() < 0.4;
            let ward = ["med", "surg", "onc"][(next() * 3.0) as usize % 3];
            let logit = -4.0 + 0.05 * age + if emergent { 1.0 } else { 0.0 };
            let readmitted = next() < 1.0 / (1.0 + (-logit).exp());
            out.push_str(&format!(
                "P{person:04},{age:.1},{emergent},{ward},{}\n",
                u8::from(readmitted)
            ));
        }
    }
    out
}

fn number(text: &str) -> f64 {
    text.parse()
        .unwrap_or_else(|_| panic!("not a number: {text:?}"))
}

const QUERY: &str = "SELECT person_key, age, emergent, ward, readmitted FROM raw.stays";

#[test]
fn models_train_predict_reload_explain_and_are_governed() {
    let ws = Workspace::new();
    let csv = ws.write("stays.csv", stays_csv());
    ws.ok(&["load", &csv, "--into", "raw.stays"]);

    // Training returns its figures; the split is by person: every person on one side.
    let created = ws.query(&format!(
        "CREATE MODEL readmit FROM ({QUERY}) TARGET readmitted TYPE logistic OPTIONS (seed = 7)"
    ));
    assert_eq!(created.len(), 1, "{created:?}");
    let fields: Vec<&str> = created[0].split(',').collect();
    // model, version, type, train_rows, test_rows, train_people, test_people, test_auroc, …
    assert_eq!(&fields[..3], ["readmit", "1", "logistic"]);
    assert_eq!(number(fields[3]) + number(fields[4]), 1800.0);
    assert_eq!(
        number(fields[5]) + number(fields[6]),
        600.0,
        "a person on both sides"
    );
    assert_eq!(number(fields[4]) % 3.0, 0.0, "a person's stays split apart");
    let test_people = number(fields[6]);
    assert!((120.0..=240.0).contains(&test_people), "{test_people}");
    let auroc = number(fields[7]);
    assert!(auroc > 0.65 && auroc < 1.0, "AUROC {auroc}");

    // Without a patient column the split must be named.
    let err = ws.fails(&[
        "sql",
        "CREATE MODEL m2 FROM (SELECT age, readmitted FROM raw.stays) TARGET readmitted",
    ]);
    assert!(err.contains("split_by"), "{err}");
    let err = ws.fails(&[
        "sql",
        &format!("CREATE MODEL readmit FROM ({QUERY}) TARGET readmitted"),
    ]);
    assert!(err.contains("CREATE OR REPLACE MODEL"), "{err}");

    // Predictions in this process and in a new one are the same.
    let predict = "SELECT person_key, predict_proba('readmit', age, emergent, ward) AS p, \
                   predict('readmit', age, emergent, ward) AS high FROM raw.stays ORDER BY person_key, age, emergent, ward";
    let first = ws.query(predict);
    assert_eq!(first.len(), 1800);
    assert_eq!(ws.query(predict), first);
    assert!(first.iter().all(|r| {
        let p = number(r.split(',').nth(1).unwrap());
        (0.0..=1.0).contains(&p)
    }));

    // EVALUATE: the stored held-out metrics, and on any query.
    let stored = ws.query("EVALUATE MODEL readmit");
    let stored: Vec<&str> = stored[0].split(',').collect();
    assert!((number(stored[4]) - auroc).abs() < 1e-9, "{stored:?}");
    let all = ws.query(&format!("EVALUATE MODEL readmit ON ({QUERY})"));
    assert_eq!(all[0].split(',').nth(2), Some("1800"));

    // EXPLAIN: age and the emergency flag matter, the ward does not; odds ratios with CIs.
    let explained = ws.query("EXPLAIN MODEL readmit");
    let age = explained
        .iter()
        .find(|r| r.starts_with("age,"))
        .expect("age explained");
    let age: Vec<&str> = age.split(',').collect();
    let (or, low, high) = (number(age[5]), number(age[6]), number(age[7]));
    assert!(low < or && or < high && low > 1.0, "{age:?}");
    let top: Vec<&str> = explained
        .iter()
        .take(2)
        .map(|r| r.split(',').next().unwrap())
        .collect();
    assert!(
        top.contains(&"age") && top.contains(&"emergent"),
        "{explained:?}"
    );

    // Gradient boosting: SHAP contributions add up to the prediction's log-odds.
    ws.query(&format!(
        "CREATE MODEL readmit_gbdt FROM ({QUERY}) TARGET readmitted TYPE gbdt OPTIONS (seed = 7, budget = 0.3)"
    ));
    let out = ws.ok(&[
        "sql",
        "SELECT predict_proba('readmit_gbdt', age, emergent, ward) AS p, \
                predict_contributions('readmit_gbdt', age, emergent, ward) AS c \
         FROM raw.stays ORDER BY person_key LIMIT 5",
        "--format",
        "ndjson",
    ]);
    let rows: Vec<serde_json::Value> = out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 5, "{out}");
    for row in rows {
        let p = row["p"].as_f64().unwrap();
        let c: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(row["c"].as_str().unwrap()).unwrap();
        assert!(c.contains_key("age") && c.contains_key("(bias)"), "{c:?}");
        let logit: f64 = c.values().map(|v| v.as_f64().unwrap()).sum();
        assert!(
            ((1.0 / (1.0 + (-logit).exp())) - p).abs() < 0.01,
            "{c:?} {p}"
        );
    }
    // A new version replaces the old one under its name.
    ws.query(&format!(
        "CREATE OR REPLACE MODEL readmit FROM ({QUERY}) TARGET readmitted OPTIONS (seed = 8)"
    ));
    let models = ws.query("SHOW MODELS");
    assert_eq!(models.len(), 2, "{models:?}");
    assert!(
        models.iter().any(|m| m.starts_with("readmit,2,logistic")),
        "{models:?}"
    );

    // Who may use a model: only whoever may read what it was trained on.
    ws.ok(&[
        "sql",
        "CREATE ROLE outsider; CREATE ROLE reader; GRANT SELECT ON raw.stays TO reader",
    ]);
    ws.add_user("stranger", PASSWORD, "outsider");
    ws.add_user("reader1", PASSWORD, "reader");
    let as_user = |user: &str, sql: &str| ws.run(&["sql", sql, "--format", "csv", "--as", user]);
    let shown = as_user("stranger", "SHOW MODELS");
    assert!(shown.status.success());
    assert_eq!(
        String::from_utf8_lossy(&shown.stdout).lines().count(),
        1,
        "only the header"
    );
    let refused = as_user(
        "stranger",
        "SELECT predict_proba('readmit', 50, true, 'med')",
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no model readmit"));
    let err = as_user(
        "stranger",
        &format!("CREATE MODEL mine FROM ({QUERY}) TARGET readmitted"),
    );
    assert!(String::from_utf8_lossy(&err.stderr).contains("permission denied"));
    let allowed = as_user(
        "reader1",
        "SELECT predict_proba('readmit', 50, true, 'med') > 0",
    );
    assert!(
        allowed.status.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&allowed.stdout).lines().nth(1),
        Some("true")
    );
    let err = as_user("reader1", "DROP MODEL readmit");
    assert!(String::from_utf8_lossy(&err.stderr).contains("only its owner"));

    ws.ok(&["sql", "DROP MODEL readmit_gbdt"]);
    assert_eq!(ws.query("SHOW MODELS").len(), 1);
}
