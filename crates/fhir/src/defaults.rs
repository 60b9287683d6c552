//! The ViewDefinitions carelake ships (`crates/fhir/views/*.json`), one per common resource
//! type. Each fills `curated.<name>`; a lake's own view of the same name replaces it.

use serde_json::Value;

use crate::view::ViewDefinition;

const DEFAULTS: &[(&str, &str)] = &[
    ("fhir_patient", include_str!("../views/fhir_patient.json")),
    (
        "fhir_encounter",
        include_str!("../views/fhir_encounter.json"),
    ),
    (
        "fhir_observation",
        include_str!("../views/fhir_observation.json"),
    ),
    (
        "fhir_condition",
        include_str!("../views/fhir_condition.json"),
    ),
    (
        "fhir_procedure",
        include_str!("../views/fhir_procedure.json"),
    ),
    (
        "fhir_medication_request",
        include_str!("../views/fhir_medication_request.json"),
    ),
    (
        "fhir_immunization",
        include_str!("../views/fhir_immunization.json"),
    ),
    (
        "fhir_allergy_intolerance",
        include_str!("../views/fhir_allergy_intolerance.json"),
    ),
    ("fhir_claim", include_str!("../views/fhir_claim.json")),
    (
        "fhir_explanation_of_benefit",
        include_str!("../views/fhir_explanation_of_benefit.json"),
    ),
    (
        "fhir_practitioner",
        include_str!("../views/fhir_practitioner.json"),
    ),
    (
        "fhir_organization",
        include_str!("../views/fhir_organization.json"),
    ),
    ("fhir_location", include_str!("../views/fhir_location.json")),
    (
        "fhir_document_reference",
        include_str!("../views/fhir_document_reference.json"),
    ),
];

/// The shipped default views.
pub fn default_views() -> Vec<ViewDefinition> {
    DEFAULTS
        .iter()
        .map(|(name, text)| {
            let json: Value = serde_json::from_str(text)
                .unwrap_or_else(|e| panic!("shipped view {name} is not JSON: {e}"));
            ViewDefinition::from_json(&json)
                .unwrap_or_else(|e| panic!("shipped view {name} is invalid: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_view_parses_and_is_named_after_its_file() {
        let views = default_views();
        assert_eq!(views.len(), 14);
        for (view, (name, _)) in views.iter().zip(DEFAULTS) {
            assert_eq!(view.name(), *name);
        }
    }
}
