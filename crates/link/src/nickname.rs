//! Given-name equivalences that string distance cannot see: `william` and `bill`, `margaret`
//! and `peggy`. A common English-language table, the kind registries ship; names outside it are
//! compared by spelling and sound alone.

use std::collections::HashMap;
use std::sync::OnceLock;

/// Formal name and its usual short forms.
const GROUPS: &[&[&str]] = &[
    &["abigail", "abby", "gail"],
    &["albert", "al", "bert"],
    &["alexander", "alex", "alec", "sandy", "xander"],
    &["alexandra", "alex", "sandra", "sandy", "lexi"],
    &["alfred", "alf", "fred"],
    &["andrew", "andy", "drew"],
    &["anthony", "tony"],
    &["barbara", "barb", "babs"],
    &["benjamin", "ben", "benny", "benji"],
    &["catherine", "cathy", "kate", "katie", "cat"],
    &["charles", "charlie", "chuck", "chas"],
    &["christine", "chris", "chrissy", "tina"],
    &["christina", "chris", "chrissy", "tina"],
    &["christopher", "chris", "topher", "kit"],
    &["cynthia", "cindy"],
    &["daniel", "dan", "danny"],
    &["david", "dave", "davey"],
    &["deborah", "debbie", "deb", "debra"],
    &["donald", "don", "donnie"],
    &["dorothy", "dot", "dottie"],
    &["edward", "ed", "eddie", "ted", "ned"],
    &[
        "elizabeth",
        "liz",
        "beth",
        "betty",
        "eliza",
        "lisa",
        "libby",
        "betsy",
    ],
    &["eugene", "gene"],
    &["frances", "fran", "frannie"],
    &["francis", "frank"],
    &["frederick", "fred", "freddie"],
    &["gerald", "gerry", "jerry"],
    &["gregory", "greg"],
    &["harold", "hal", "harry"],
    &["henry", "hank", "harry"],
    &["jacob", "jake"],
    &["james", "jim", "jimmy", "jamie"],
    &["jennifer", "jen", "jenny"],
    &["jessica", "jess", "jessie"],
    &["john", "jack", "johnny", "jon"],
    &["jonathan", "jon", "jonny"],
    &["joseph", "joe", "joey"],
    &["joshua", "josh"],
    &["judith", "judy"],
    &["katherine", "kathy", "kate", "katie", "kat", "kathryn"],
    &["kathleen", "kathy", "kate"],
    &["kenneth", "ken", "kenny"],
    &["kimberly", "kim"],
    &["lawrence", "larry"],
    &["leonard", "len", "lenny", "leo"],
    &["margaret", "maggie", "meg", "peggy", "marge", "madge"],
    &["matthew", "matt"],
    &["michael", "mike", "mikey", "mick"],
    &["nathaniel", "nate", "nat"],
    &["nicholas", "nick", "nicky"],
    &["nicole", "nikki"],
    &["patricia", "pat", "patty", "trish", "tricia"],
    &["patrick", "pat", "paddy"],
    &["pamela", "pam"],
    &["peter", "pete"],
    &["philip", "phil"],
    &["rebecca", "becky", "becca"],
    &["richard", "rick", "rich", "dick", "ricky"],
    &["robert", "rob", "bob", "bobby", "robbie", "bert"],
    &["ronald", "ron", "ronnie"],
    &["samantha", "sam", "sammy"],
    &["samuel", "sam", "sammy"],
    &["stephanie", "steph"],
    &["stephen", "steve", "stevie"],
    &["steven", "steve", "stevie"],
    &["susan", "sue", "susie"],
    &["theodore", "ted", "teddy", "theo"],
    &["thomas", "tom", "tommy"],
    &["timothy", "tim", "timmy"],
    &["victoria", "vicky", "tori"],
    &["walter", "walt", "wally"],
    &["william", "will", "bill", "billy", "willie", "liam"],
    &["zachary", "zach", "zack"],
];

fn index() -> &'static HashMap<&'static str, Vec<u16>> {
    static INDEX: OnceLock<HashMap<&'static str, Vec<u16>>> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut map: HashMap<&'static str, Vec<u16>> = HashMap::new();
        for (group, names) in GROUPS.iter().enumerate() {
            for name in *names {
                map.entry(name).or_default().push(group as u16);
            }
        }
        map
    })
}

/// Whether two normalised given names are the same name in formal and familiar form.
pub(crate) fn equivalent(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let index = index();
    match (index.get(a), index.get(b)) {
        (Some(ga), Some(gb)) => ga.iter().any(|g| gb.contains(g)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formal_and_familiar_forms_match_both_ways() {
        assert!(equivalent("william", "bill"));
        assert!(equivalent("bill", "william"));
        assert!(equivalent("bob", "robbie"));
        assert!(!equivalent("william", "robert"));
        assert!(!equivalent("zorro", "william"));
    }
}
