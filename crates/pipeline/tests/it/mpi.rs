//! The master patient index model over person records in the lake.

use crate::support::Fixture;

const PEOPLE: &str = "source_system,mrn,first_name,last_name,sex,birth_date,ssn,address,city,state,zip,phone,updated_at\n\
    MERIDIAN,M1,William,Smith,M,1980-03-07,912-70-1234,12 Oak Ave,Peoria,IL,61601,(309) 555-0101,2024-01-01T09:00:00\n\
    CASCADE,C9,Bill,Smith,M,1980-03-07,,12 Oak Avenue,Peoria,IL,61601,(309) 555-0101,2024-03-01T09:00:00\n\
    MERIDIAN,M2,Maria,Lopez,F,1975-11-02,913-71-2222,5 Elm St,Quincy,IL,62301,(217) 555-0199,2024-01-05T09:00:00\n\
    CASCADE,C7,Ana,Ng,F,1990-05-05,914-72-3333,9 Pine St,St. Louis,MO,63101,(314) 555-0111,2024-02-01T09:00:00\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mpi_model_links_records_into_persons_with_stable_keys() {
    let mut f = Fixture::new().await;
    f.load("raw.patients", PEOPLE).await;
    let project = f.project(
        "p",
        &[
            (
                "curated/patient_records.sql",
                "SELECT source_system AS source, mrn AS record_id, updated_at, first_name, last_name, sex, \
                 birth_date, ssn AS national_id, address AS street, city, state, zip, phone FROM raw.patients",
            ),
            (
                "curated/mpi.sql",
                "-- builtin: mpi\n-- input: curated.patient_records\n",
            ),
            (
                "analytics/person_count.sql",
                "SELECT count(*) AS persons FROM curated.person",
            ),
        ],
    );
    let summary = f.run(&project, &[]).await;
    assert!(summary.ok(), "{summary:?}");
    assert_eq!(
        f.scalar("SELECT persons FROM analytics.person_count").await,
        "3"
    );
    let key =
        |mrn: &str| format!("SELECT person_key FROM curated.person_xref WHERE record_id = '{mrn}'");
    let smith = f.scalar(&key("M1")).await;
    assert_eq!(f.scalar(&key("C9")).await, smith);
    assert_ne!(f.scalar(&key("M2")).await, smith);
    assert_eq!(
        f.scalar("SELECT count(*) FROM curated.mpi_links").await,
        "1"
    );
    // The golden record: identity from the most complete record, the address from the newest.
    assert_eq!(
        f.scalar(&format!(
            "SELECT first_name || ' ' || street || ' ' || national_id FROM curated.person WHERE person_key = '{smith}'"
        ))
        .await,
        "William 12 Oak Avenue 912-70-1234"
    );

    // A new record of the same person in another load: same key; everything else unchanged.
    f.load(
        "raw.patients",
        "source_system,mrn,first_name,last_name,sex,birth_date,ssn,address,city,state,zip,phone,updated_at\n\
         LAB,L5,Wiliam,Smith,M,1980-03-07,912-70-1234,,,,,,2024-06-01T09:00:00\n",
    )
    .await;
    let again = f.run(&project, &[]).await;
    assert!(again.ok(), "{again:?}");
    assert_eq!(f.scalar(&key("L5")).await, smith);
    assert_eq!(f.scalar(&key("M1")).await, smith);
    assert_eq!(
        f.scalar("SELECT persons FROM analytics.person_count").await,
        "3"
    );
}
