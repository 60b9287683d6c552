//! The Charlson comorbidity index from ICD-10 codes.
//!
//! Codes map to the 17 categories by the ICD-10 coding algorithm of Quan et al., "Coding
//! algorithms for defining comorbidities in ICD-9-CM and ICD-10 administrative data", Med Care
//! 2005;43:1130–9, table 1 (the "enhanced ICD-10" column). A code belongs to a category when its
//! normalised form (upper case, no dot) starts with one of the category's codes; ICD-10-CM's
//! longer codes (`E11.65`) so fall under their ICD-10 parents (`E11.6`).
//!
//! Three pairs are hierarchical, as in Charlson's index: a patient with both counts only the
//! graver — diabetes with chronic complications over diabetes without, moderate or severe liver
//! disease over mild, metastatic solid tumour over any malignancy.
//!
//! Weights: [`Weights::Charlson1987`] (Charlson et al., J Chronic Dis 1987;40:373–83) or
//! [`Weights::Quan2011`] (Quan et al., "Updating and validating the Charlson comorbidity index
//! and score for risk adjustment in hospital discharge abstracts using data from 6 countries",
//! Am J Epidemiol 2011;173:676–82, table 3).

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

/// One of the index's 17 categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    MyocardialInfarction,
    CongestiveHeartFailure,
    PeripheralVascularDisease,
    CerebrovascularDisease,
    Dementia,
    ChronicPulmonaryDisease,
    RheumaticDisease,
    PepticUlcerDisease,
    MildLiverDisease,
    DiabetesWithoutComplication,
    DiabetesWithComplication,
    HemiplegiaOrParaplegia,
    RenalDisease,
    Malignancy,
    ModerateOrSevereLiverDisease,
    MetastaticSolidTumor,
    AidsHiv,
}

impl Category {
    /// Every category, in the order of Quan's table.
    pub const ALL: [Category; 17] = [
        Category::MyocardialInfarction,
        Category::CongestiveHeartFailure,
        Category::PeripheralVascularDisease,
        Category::CerebrovascularDisease,
        Category::Dementia,
        Category::ChronicPulmonaryDisease,
        Category::RheumaticDisease,
        Category::PepticUlcerDisease,
        Category::MildLiverDisease,
        Category::DiabetesWithoutComplication,
        Category::DiabetesWithComplication,
        Category::HemiplegiaOrParaplegia,
        Category::RenalDisease,
        Category::Malignancy,
        Category::ModerateOrSevereLiverDisease,
        Category::MetastaticSolidTumor,
        Category::AidsHiv,
    ];

    /// The category's name in SQL results.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::MyocardialInfarction => "myocardial_infarction",
            Category::CongestiveHeartFailure => "congestive_heart_failure",
            Category::PeripheralVascularDisease => "peripheral_vascular_disease",
            Category::CerebrovascularDisease => "cerebrovascular_disease",
            Category::Dementia => "dementia",
            Category::ChronicPulmonaryDisease => "chronic_pulmonary_disease",
            Category::RheumaticDisease => "rheumatic_disease",
            Category::PepticUlcerDisease => "peptic_ulcer_disease",
            Category::MildLiverDisease => "mild_liver_disease",
            Category::DiabetesWithoutComplication => "diabetes_without_complication",
            Category::DiabetesWithComplication => "diabetes_with_complication",
            Category::HemiplegiaOrParaplegia => "hemiplegia_or_paraplegia",
            Category::RenalDisease => "renal_disease",
            Category::Malignancy => "malignancy",
            Category::ModerateOrSevereLiverDisease => "moderate_or_severe_liver_disease",
            Category::MetastaticSolidTumor => "metastatic_solid_tumor",
            Category::AidsHiv => "aids_hiv",
        }
    }

    /// The category's weight in a weight set.
    pub fn weight(self, weights: Weights) -> u32 {
        use Category::*;
        match weights {
            Weights::Charlson1987 => match self {
                DiabetesWithComplication | HemiplegiaOrParaplegia | RenalDisease | Malignancy => 2,
                ModerateOrSevereLiverDisease => 3,
                MetastaticSolidTumor | AidsHiv => 6,
                _ => 1,
            },
            Weights::Quan2011 => match self {
                MyocardialInfarction
                | PeripheralVascularDisease
                | CerebrovascularDisease
                | PepticUlcerDisease
                | DiabetesWithoutComplication => 0,
                ChronicPulmonaryDisease
                | RheumaticDisease
                | DiabetesWithComplication
                | RenalDisease => 1,
                CongestiveHeartFailure
                | Dementia
                | MildLiverDisease
                | HemiplegiaOrParaplegia
                | Malignancy => 2,
                ModerateOrSevereLiverDisease | AidsHiv => 4,
                MetastaticSolidTumor => 6,
            },
        }
    }

    /// The graver category of a hierarchical pair that supersedes this one, if any.
    fn superseded_by(self) -> Option<Category> {
        match self {
            Category::DiabetesWithoutComplication => Some(Category::DiabetesWithComplication),
            Category::MildLiverDisease => Some(Category::ModerateOrSevereLiverDisease),
            Category::Malignancy => Some(Category::MetastaticSolidTumor),
            _ => None,
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The weight set of the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Weights {
    /// Charlson et al. 1987: 1, 2, 3 or 6 per category; 0–33.
    #[default]
    Charlson1987,
    /// Quan et al. 2011: 0–6 per category, re-estimated on 2004 discharge data; 0–24.
    Quan2011,
}

impl FromStr for Weights {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "charlson1987" | "charlson" => Ok(Weights::Charlson1987),
            "quan2011" | "quan" => Ok(Weights::Quan2011),
            other => Err(format!(
                "unknown Charlson weights '{other}': use 'charlson1987' or 'quan2011'"
            )),
        }
    }
}

/// Quan 2005, table 1, enhanced ICD-10. `A00-A09` stands for A00 to A09, `K700-K703` for K70.0
/// to K70.3 (dots left out, as codes are compared without them).
const CODES: [(Category, &str); 17] = [
    (Category::MyocardialInfarction, "I21 I22 I252"),
    (
        Category::CongestiveHeartFailure,
        "I099 I110 I130 I132 I255 I420 I425-I429 I43 I50 P290",
    ),
    (
        Category::PeripheralVascularDisease,
        "I70 I71 I731 I738 I739 I771 I790 I792 K551 K558 K559 Z958 Z959",
    ),
    (Category::CerebrovascularDisease, "G45 G46 H340 I60-I69"),
    (Category::Dementia, "F00-F03 F051 G30 G311"),
    (
        Category::ChronicPulmonaryDisease,
        "I278 I279 J40-J47 J60-J67 J684 J701 J703",
    ),
    (
        Category::RheumaticDisease,
        "M05 M06 M315 M32-M34 M351 M353 M360",
    ),
    (Category::PepticUlcerDisease, "K25-K28"),
    (
        Category::MildLiverDisease,
        "B18 K700-K703 K709 K713-K715 K717 K73 K74 K760 K762-K764 K768 K769 Z944",
    ),
    (
        Category::DiabetesWithoutComplication,
        "E100 E101 E106 E108 E109 E110 E111 E116 E118 E119 E120 E121 E126 E128 E129 \
         E130 E131 E136 E138 E139 E140 E141 E146 E148 E149",
    ),
    (
        Category::DiabetesWithComplication,
        "E102-E105 E107 E112-E115 E117 E122-E125 E127 E132-E135 E137 E142-E145 E147",
    ),
    (
        Category::HemiplegiaOrParaplegia,
        "G041 G114 G801 G802 G81 G82 G830-G834 G839",
    ),
    (
        Category::RenalDisease,
        "I120 I131 N032-N037 N052-N057 N18 N19 N250 Z490-Z492 Z940 Z992",
    ),
    (
        Category::Malignancy,
        "C00-C26 C30-C34 C37-C41 C43 C45-C58 C60-C76 C81-C85 C88 C90-C97",
    ),
    (
        Category::ModerateOrSevereLiverDisease,
        "I850 I859 I864 I982 K704 K711 K721 K729 K765 K766 K767",
    ),
    (Category::MetastaticSolidTumor, "C77-C80"),
    (Category::AidsHiv, "B20-B22 B24"),
];

/// Every code prefix with its category, longest first (no prefix of one category is a prefix
/// of another's, but longest-first keeps lookups right if one ever is).
static PREFIXES: LazyLock<Vec<(String, Category)>> = LazyLock::new(|| {
    let mut out = Vec::new();
    for (category, codes) in CODES {
        for item in codes.split_whitespace() {
            for prefix in expand(item) {
                out.push((prefix, category));
            }
        }
    }
    out.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
    out
});

/// `K700-K703` → K700, K701, K702, K703; `I60-I69` → I60 … I69; `I21` → I21.
fn expand(item: &str) -> Vec<String> {
    let Some((from, to)) = item.split_once('-') else {
        return vec![item.to_string()];
    };
    let letter = &from[..1];
    let (a, b) = (&from[1..], &to[1..]);
    let width = a.len();
    let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) else {
        return vec![item.to_string()];
    };
    (a..=b).map(|n| format!("{letter}{n:0width$}")).collect()
}

/// A code as compared: upper case, without dots, spaces or anything after them.
fn normalise(code: &str) -> String {
    code.trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// The category of one ICD-10 code, if it has one.
pub fn category_of(code: &str) -> Option<Category> {
    let code = normalise(code);
    if code.len() < 3 {
        return None;
    }
    PREFIXES
        .iter()
        .find(|(prefix, _)| code.starts_with(prefix.as_str()))
        .map(|(_, category)| *category)
}

/// The categories a patient's codes fall in, after the hierarchy, in the order of
/// [`Category::ALL`].
pub fn categories<I, S>(codes: I) -> Vec<Category>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut present = [false; 17];
    for code in codes {
        if let Some(category) = category_of(code.as_ref()) {
            present[category as usize] = true;
        }
    }
    Category::ALL
        .into_iter()
        .filter(|c| present[*c as usize])
        .filter(|c| {
            c.superseded_by()
                .is_none_or(|graver| !present[graver as usize])
        })
        .collect()
}

/// The Charlson index of a patient's codes.
pub fn index<I, S>(codes: I, weights: Weights) -> u32
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    categories(codes).iter().map(|c| c.weight(weights)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_expand_with_their_width() {
        assert_eq!(expand("K700-K703"), ["K700", "K701", "K702", "K703"]);
        assert_eq!(expand("C00-C02"), ["C00", "C01", "C02"]);
        assert_eq!(expand("I21"), ["I21"]);
    }

    #[test]
    fn codes_fall_under_their_parents() {
        assert_eq!(category_of("i21.4"), Some(Category::MyocardialInfarction));
        assert_eq!(
            category_of("E11.65"),
            Some(Category::DiabetesWithoutComplication)
        );
        assert_eq!(
            category_of("E11.22"),
            Some(Category::DiabetesWithComplication)
        );
        assert_eq!(category_of("I25.2"), Some(Category::MyocardialInfarction));
        assert_eq!(category_of("I25.10"), None);
        assert_eq!(
            category_of("C44.91"),
            None,
            "skin cancers other than melanoma"
        );
        assert_eq!(category_of("C43.9"), Some(Category::Malignancy));
        assert_eq!(category_of("C78.7"), Some(Category::MetastaticSolidTumor));
        assert_eq!(category_of("N18.6"), Some(Category::RenalDisease));
        assert_eq!(category_of("K70.30"), Some(Category::MildLiverDisease));
        assert_eq!(
            category_of("K70.40"),
            Some(Category::ModerateOrSevereLiverDisease)
        );
        assert_eq!(category_of(""), None);
        assert_eq!(category_of("Z"), None);
    }

    #[test]
    fn every_category_has_codes_and_no_prefix_is_shared() {
        for category in Category::ALL {
            assert!(PREFIXES.iter().any(|(_, c)| *c == category), "{category}");
        }
        for (a, ca) in PREFIXES.iter() {
            for (b, cb) in PREFIXES.iter() {
                if a != b && b.starts_with(a.as_str()) {
                    panic!("{a} ({ca}) is a prefix of {b} ({cb})");
                }
            }
        }
    }

    #[test]
    fn the_hierarchy_keeps_the_graver_category() {
        let both = ["E11.9", "E11.22", "K70.30", "K72.10", "C18.9", "C78.7"];
        assert_eq!(
            categories(both),
            [
                Category::DiabetesWithComplication,
                Category::ModerateOrSevereLiverDisease,
                Category::MetastaticSolidTumor
            ]
        );
        assert_eq!(index(both, Weights::Charlson1987), 2 + 3 + 6);
        assert_eq!(index(both, Weights::Quan2011), 1 + 4 + 6);
    }

    #[test]
    fn the_weight_sets_sum_to_their_maxima() {
        let all = |w| {
            Category::ALL
                .iter()
                .filter(|c| c.superseded_by().is_none())
                .map(|c| c.weight(w))
                .sum::<u32>()
        };
        assert_eq!(all(Weights::Charlson1987), 29);
        assert_eq!(all(Weights::Quan2011), 24);
    }
}
