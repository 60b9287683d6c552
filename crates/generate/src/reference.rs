//! Reference data: names, places, codes.

pub(crate) const FEMALE_NAMES: &[&str] = &[
    "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah",
    "Karen", "Lisa", "Nancy", "Betty", "Margaret", "Sandra", "Ashley", "Kimberly", "Emily", "Donna",
    "Michelle", "Carol", "Amanda", "Dorothy", "Melissa", "Deborah", "Stephanie", "Rebecca", "Sharon",
    "Laura", "Cynthia", "Kathleen", "Amy", "Angela", "Shirley", "Anna", "Brenda", "Pamela", "Emma",
    "Nicole", "Helen", "Samantha", "Katherine", "Christine", "Debra", "Rachel", "Carolyn", "Janet",
    "Catherine", "Maria", "Heather", "Diane", "Ruth", "Julie", "Olivia", "Joyce", "Virginia",
    "Victoria", "Kelly", "Lauren", "Christina", "Joan", "Evelyn", "Judith", "Megan", "Andrea",
    "Cheryl", "Hannah", "Jacqueline", "Martha", "Gloria", "Teresa", "Ann", "Sara", "Madison",
    "Frances", "Kathryn", "Janice", "Jean", "Abigail", "Alice", "Judy", "Sophia", "Grace", "Denise",
    "Amber", "Doris", "Marilyn", "Danielle", "Beverly", "Isabella", "Theresa", "Diana", "Natalie",
    "Brittany", "Charlotte", "Marie", "Kayla", "Alexis", "Lori", "Rosa", "Guadalupe", "Mei", "Aisha",
];

pub(crate) const MALE_NAMES: &[&str] = &[
    "James", "Robert", "John", "Michael", "David", "William", "Richard", "Joseph", "Thomas",
    "Charles", "Christopher", "Daniel", "Matthew", "Anthony", "Mark", "Donald", "Steven", "Paul",
    "Andrew", "Joshua", "Kenneth", "Kevin", "Brian", "George", "Timothy", "Ronald", "Edward",
    "Jason", "Jeffrey", "Ryan", "Jacob", "Gary", "Nicholas", "Eric", "Jonathan", "Stephen", "Larry",
    "Justin", "Scott", "Brandon", "Benjamin", "Samuel", "Gregory", "Alexander", "Frank", "Patrick",
    "Raymond", "Jack", "Dennis", "Jerry", "Tyler", "Aaron", "Jose", "Adam", "Nathan", "Henry",
    "Douglas", "Zachary", "Peter", "Kyle", "Ethan", "Walter", "Noah", "Jeremy", "Christian", "Keith",
    "Roger", "Terry", "Gerald", "Harold", "Sean", "Austin", "Carl", "Arthur", "Lawrence", "Dylan",
    "Jesse", "Jordan", "Bryan", "Billy", "Joe", "Bruce", "Gabriel", "Logan", "Albert", "Willie",
    "Alan", "Juan", "Wayne", "Elijah", "Randy", "Roy", "Vincent", "Ralph", "Eugene", "Russell",
    "Bobby", "Mason", "Philip", "Louis", "Wei", "Omar", "Luis", "Carlos",
];

pub(crate) const LAST_NAMES: &[&str] = &[
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore",
    "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark",
    "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres",
    "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell",
    "Mitchell", "Carter", "Roberts", "Gomez", "Phillips", "Evans", "Turner", "Diaz", "Parker",
    "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris", "Morales", "Murphy", "Cook",
    "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson", "Bailey", "Reed", "Kelly",
    "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson", "Watson", "Brooks", "Chavez", "Wood",
    "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes", "Price", "Alvarez", "Castillo",
    "Sanders", "Patel", "Myers", "Long", "Ross", "Foster", "Jimenez", "Powell", "Jenkins", "Perry",
    "Russell", "Sullivan", "Bell", "Coleman", "Butler", "Henderson", "Barnes", "Gonzales", "Fisher",
    "Vasquez", "Simmons", "Romero", "Jordan", "Patterson", "Alexander", "Hamilton", "Graham",
    "Reynolds", "Griffin", "Wallace", "Moreno", "West", "Cole", "Hayes", "Bryant", "Herrera",
    "Gibson", "Ellis", "Tran", "Medina", "Aguilar", "Stevens", "Murray", "Ford", "Castro",
    "Marshall", "Owens", "Harrison", "Fernandez", "McDonald", "Woods", "Washington", "Kennedy",
    "Wells", "Vargas", "Henry", "Chen", "Freeman", "Webb", "Tucker", "Guzman", "Burns", "Crawford",
    "Olson", "Simpson", "Porter", "Hunter", "Gordon", "Mendez", "Silva", "Shaw", "Snyder", "Mason",
    "Dixon", "Munoz", "Hunt", "Hicks", "Holmes", "Palmer", "Wagner", "Black", "Robertson", "Boyd",
    "Rose", "Stone", "Salazar", "Fox", "Warren", "Mills", "Meyer", "Rice", "Schmidt", "Garza",
    "Daniels", "Ferguson", "Nichols", "Stephens", "Soto", "Weaver", "Ryan", "Gardner", "Payne",
    "Grant", "Dunn", "Kelley", "Spencer", "Hawkins", "Arnold", "Pierce", "Vazquez", "Hansen",
    "Peters", "Santos", "Hart", "Bradley", "Knight", "Elliott", "Cunningham", "Duncan", "Armstrong",
    "Hudson", "Carroll", "Lane", "Riley", "Andrews", "Alvarado", "Ray", "Delgado", "Berry",
    "Perkins", "Hoffman", "Johnston", "Matthews", "Pena", "Richards", "Contreras", "Willis",
    "Carpenter", "Lawrence", "Sandoval", "O'Brien", "Kowalski", "Nakamura", "Okafor", "Haddad",
];

/// Nicknames a clerk may have typed instead of the legal first name.
pub(crate) const NICKNAMES: &[(&str, &str)] = &[
    ("William", "Bill"), ("Robert", "Bob"), ("Richard", "Rick"), ("James", "Jim"),
    ("Michael", "Mike"), ("Joseph", "Joe"), ("Thomas", "Tom"), ("Charles", "Chuck"),
    ("Christopher", "Chris"), ("Daniel", "Dan"), ("Matthew", "Matt"), ("Anthony", "Tony"),
    ("Edward", "Ed"), ("Jonathan", "Jon"), ("Stephen", "Steve"), ("Kenneth", "Ken"),
    ("Timothy", "Tim"), ("Nicholas", "Nick"), ("Benjamin", "Ben"), ("Samuel", "Sam"),
    ("Alexander", "Alex"), ("Gregory", "Greg"), ("Lawrence", "Larry"), ("Raymond", "Ray"),
    ("Elizabeth", "Liz"), ("Patricia", "Pat"), ("Jennifer", "Jen"), ("Margaret", "Peggy"),
    ("Katherine", "Kate"), ("Kathleen", "Kathy"), ("Deborah", "Deb"), ("Rebecca", "Becky"),
    ("Christine", "Chris"), ("Samantha", "Sam"), ("Victoria", "Vicky"), ("Jacqueline", "Jackie"),
    ("Abigail", "Abby"), ("Susan", "Sue"), ("Dorothy", "Dot"), ("Cynthia", "Cindy"),
];

pub(crate) const STREETS: &[&str] = &[
    "Main St", "Oak Ave", "Maple Dr", "Cedar Ln", "Pine St", "Elm St", "Washington Ave",
    "Lake Rd", "Hill St", "Park Ave", "River Rd", "Sunset Blvd", "Highland Ave", "Church St",
    "Mill Rd", "Spring St", "Forest Dr", "Meadow Ln", "Prospect Ave", "Union St", "Jefferson St",
    "Lincoln Ave", "Franklin St", "Chestnut St", "Walnut St", "Willow Way", "Harbor Dr",
    "Valley View Rd", "Orchard Ln", "Ridge Rd",
];

/// (city, state, zip prefix, phone area code)
pub(crate) const CITIES: &[(&str, &str, &str, &str)] = &[
    ("Springfield", "IL", "627", "217"), ("Peoria", "IL", "616", "309"),
    ("Champaign", "IL", "618", "217"), ("Decatur", "IL", "625", "217"),
    ("Bloomington", "IL", "617", "309"), ("Normal", "IL", "617", "309"),
    ("St. Louis", "MO", "631", "314"), ("Columbia", "MO", "652", "573"),
    ("Jefferson City", "MO", "651", "573"), ("Quincy", "IL", "623", "217"),
];

/// (facility id, name, kind, source system, city index)
pub(crate) const FACILITIES: &[(&str, &str, &str, &str, usize)] = &[
    ("FAC-SMH", "St. Mary's Hospital", "hospital", "MERIDIAN", 0),
    ("FAC-PRM", "Prairie Regional Medical Center", "hospital", "MERIDIAN", 1),
    ("FAC-RVH", "Riverview Community Hospital", "hospital", "CASCADE", 6),
    ("FAC-NCL", "North Clinic", "clinic", "MERIDIAN", 2),
    ("FAC-ECL", "Eastside Family Clinic", "clinic", "MERIDIAN", 3),
    ("FAC-WCL", "West County Clinic", "clinic", "CASCADE", 7),
];

/// (payer id, name, kind)
pub(crate) const PAYERS: &[(&str, &str, &str)] = &[
    ("PAY-MCR", "Medicare", "government"),
    ("PAY-MCD", "Illinois Medicaid", "government"),
    ("PAY-BCB", "BlueCross BlueShield", "commercial"),
    ("PAY-AET", "Aetna", "commercial"),
    ("PAY-UHC", "UnitedHealthcare", "commercial"),
    ("PAY-SLF", "Self-pay", "self"),
];

pub(crate) const SPECIALTIES: &[&str] = &[
    "Internal Medicine", "Family Medicine", "Cardiology", "Pulmonology", "Nephrology",
    "Emergency Medicine", "Hospitalist", "Endocrinology", "General Surgery", "Geriatrics",
];

/// Chronic conditions: (ICD-10-CM, description, prevalence weight by age)
pub(crate) const CHRONIC: &[(&str, &str)] = &[
    ("I10", "Essential (primary) hypertension"),
    ("E11.9", "Type 2 diabetes mellitus without complications"),
    ("I50.9", "Heart failure, unspecified"),
    ("J44.9", "Chronic obstructive pulmonary disease, unspecified"),
    ("N18.3", "Chronic kidney disease, stage 3"),
    ("I25.10", "Atherosclerotic heart disease of native coronary artery"),
    ("E78.5", "Hyperlipidemia, unspecified"),
    ("F32.9", "Major depressive disorder, single episode, unspecified"),
    ("I48.91", "Unspecified atrial fibrillation"),
    ("J45.909", "Unspecified asthma, uncomplicated"),
];

/// Reasons for an inpatient stay: (ICD-10-CM, description, mean length of stay in days)
pub(crate) const ADMIT_REASONS: &[(&str, &str, f64)] = &[
    ("I50.23", "Acute on chronic systolic heart failure", 5.0),
    ("J18.9", "Pneumonia, unspecified organism", 4.5),
    ("A41.9", "Sepsis, unspecified organism", 6.5),
    ("J44.1", "COPD with acute exacerbation", 4.0),
    ("I21.4", "Non-ST elevation myocardial infarction", 3.5),
    ("N17.9", "Acute kidney failure, unspecified", 4.5),
    ("K57.32", "Diverticulitis of large intestine", 3.5),
    ("I63.9", "Cerebral infarction, unspecified", 5.5),
    ("S72.001A", "Fracture of unspecified part of neck of right femur", 5.0),
    ("E11.65", "Type 2 diabetes mellitus with hyperglycemia", 3.0),
];

/// Reasons for an ED visit: (ICD-10-CM, description)
pub(crate) const ED_REASONS: &[(&str, &str)] = &[
    ("R07.9", "Chest pain, unspecified"),
    ("R10.9", "Unspecified abdominal pain"),
    ("S93.401A", "Sprain of unspecified ligament of right ankle"),
    ("R51.9", "Headache, unspecified"),
    ("J06.9", "Acute upper respiratory infection, unspecified"),
    ("N39.0", "Urinary tract infection, site not specified"),
    ("R55", "Syncope and collapse"),
];

/// Outpatient visit reasons: (ICD-10-CM, description)
pub(crate) const VISIT_REASONS: &[(&str, &str)] = &[
    ("Z00.00", "Encounter for general adult medical examination"),
    ("Z23", "Encounter for immunization"),
    ("M54.50", "Low back pain, unspecified"),
    ("J02.9", "Acute pharyngitis, unspecified"),
    ("Z79.4", "Long term (current) use of insulin"),
];

/// (CPT, description, typical charge in dollars)
pub(crate) const CPT: &[(&str, &str, f64)] = &[
    ("99213", "Office visit, established patient, low complexity", 120.0),
    ("99214", "Office visit, established patient, moderate complexity", 180.0),
    ("99223", "Initial hospital care, high complexity", 420.0),
    ("99232", "Subsequent hospital care, moderate complexity", 160.0),
    ("99238", "Hospital discharge day management", 150.0),
    ("99283", "Emergency department visit, moderate severity", 350.0),
    ("99285", "Emergency department visit, high severity", 900.0),
    ("71046", "Radiologic examination, chest, 2 views", 210.0),
    ("93000", "Electrocardiogram, routine, with interpretation", 90.0),
    ("80053", "Comprehensive metabolic panel", 60.0),
    ("85025", "Complete blood count with automated differential", 40.0),
    ("36415", "Collection of venous blood by venipuncture", 15.0),
    ("90471", "Immunization administration", 35.0),
];

/// (LOINC, name, unit, reference low, reference high, typical mean, typical sd)
pub(crate) const LABS: &[(&str, &str, &str, f64, f64, f64, f64)] = &[
    ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 70.0, 99.0, 110.0, 35.0),
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.6, 1.3, 1.1, 0.5),
    ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 135.0, 145.0, 139.0, 3.5),
    ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.5, 5.1, 4.2, 0.5),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 12.0, 17.5, 13.5, 1.8),
    ("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 4.5, 11.0, 8.0, 3.0),
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 4.0, 5.6, 6.2, 1.3),
    ("33762-6", "NT-proBNP [Mass/volume] in Serum or Plasma", "pg/mL", 0.0, 125.0, 400.0, 600.0),
];

pub(crate) const NOTE_TEMPLATES: &[&str] = &[
    "Post-discharge call completed. Patient reports taking medications as prescribed.",
    "Left voicemail regarding follow-up appointment; will try again tomorrow.",
    "Patient reports shortness of breath when climbing stairs. Advised to contact cardiology.",
    "Reviewed discharge instructions with caregiver. Scheduled PCP visit within 7 days.",
    "Unable to reach patient; phone number may be out of date.",
    "Patient asked about transportation to follow-up; referred to social work.",
    "Medication reconciliation done by phone; two duplicate prescriptions resolved.",
    "Patient feeling better, no fever, wound healing well.",
];
