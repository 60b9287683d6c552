//! Arbitrary input never panics: FHIRPath text, Bundles, NDJSON lines and views over odd JSON.

use proptest::prelude::*;
use serde_json::{Value, json};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[a-zA-Z0-9:\\-/. ]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "id",
                    "name",
                    "family",
                    "given",
                    "valueQuantity",
                    "valueString",
                    "value",
                    "extension",
                    "url",
                    "reference",
                    "birthDate",
                    "item",
                    "resourceType",
                ]),
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn fhirpath_text_never_panics(text in "[a-z().%$@'0-9=<>!|&+*/ ,\\[\\]{}-]{0,40}") {
        if let Ok(expr) = carelake_fhir::fhirpath::parse(&text) {
            let resource = json!({"resourceType": "Patient", "id": "p", "name": [{"family": "f"}]});
            let env = carelake_fhir::fhirpath::Env { resource: Some(&resource), ..Default::default() };
            let _ = carelake_fhir::fhirpath::evaluate(&expr, &[carelake_fhir::fhirpath::Item::Node(&resource, None)], &env);
        }
    }

    #[test]
    fn views_over_arbitrary_resources_never_panic(mut body in json_value()) {
        if let Value::Object(map) = &mut body {
            map.insert("resourceType".into(), json!("Patient"));
        }
        for view in carelake_fhir::default_views().iter().filter(|v| v.resource() == "Patient") {
            let _ = view.evaluate(&body);
        }
        let _ = carelake_fhir::read_bundle(&json!({"resourceType": "Bundle", "type": "batch", "entry": [{"resource": body.clone()}]}));
        let _ = carelake_fhir::read_ndjson_line(&body.to_string());
    }

    #[test]
    fn ndjson_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = carelake_fhir::read_ndjson_line(&String::from_utf8_lossy(&bytes));
    }
}
