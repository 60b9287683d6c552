//! Identity noise: how the same person is recorded differently by two systems (typos,
//! transpositions, nicknames, moves, new phone numbers), what record linkage must see through.

use chrono::{Datelike, NaiveDate};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::network::pick;
use crate::reference::*;

#[derive(Clone)]
pub(crate) struct Identity {
    pub(crate) first: String,
    pub(crate) last: String,
    pub(crate) sex: &'static str,
    pub(crate) birth: NaiveDate,
    pub(crate) ssn: String,
    pub(crate) street: String,
    pub(crate) city: usize,
    pub(crate) zip: String,
    pub(crate) phone: String,
}

/// A clerk's version of an identity in another system: typos, nicknames, moves.
pub(crate) fn corrupt(rng: &mut ChaCha8Rng, id: &Identity) -> Identity {
    let mut out = id.clone();
    let changes = 1 + rng.random_range(0..2);
    for _ in 0..changes {
        match rng.random_range(0..7) {
            0 => out.last = typo(rng, &out.last),
            1 => out.first = transpose(rng, &out.first),
            2 => {
                if let Some((_, nick)) = NICKNAMES.iter().find(|(full, _)| *full == out.first) {
                    out.first = (*nick).to_string();
                } else {
                    out.first = typo(rng, &out.first);
                }
            }
            3 => {
                out.street = format!("{} {}", rng.random_range(1..9999), pick(rng, STREETS));
                out.zip = format!("{}{:02}", CITIES[out.city].2, rng.random_range(1..99));
                out.phone = phone(rng, CITIES[out.city].3);
            }
            4 => {
                // Day and month swapped when both are valid months.
                if out.birth.day() <= 12
                    && let Some(d) = NaiveDate::from_ymd_opt(
                        out.birth.year(),
                        out.birth.day(),
                        out.birth.month(),
                    )
                {
                    out.birth = d;
                }
            }
            5 => out.ssn = String::new(),
            _ => out.last = out.last.to_uppercase(),
        }
    }
    out
}

pub(crate) fn typo(rng: &mut ChaCha8Rng, s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    if chars.len() < 3 {
        return s.to_string();
    }
    let i = rng.random_range(1..chars.len());
    match rng.random_range(0..3) {
        0 => {
            chars.remove(i);
        }
        1 => chars.insert(i, (b'a' + rng.random_range(0..26u8)) as char),
        _ => chars[i] = (b'a' + rng.random_range(0..26u8)) as char,
    }
    chars.into_iter().collect()
}

pub(crate) fn transpose(rng: &mut ChaCha8Rng, s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    if chars.len() < 3 {
        return s.to_string();
    }
    let i = rng.random_range(1..chars.len() - 1);
    chars.swap(i, i + 1);
    chars.into_iter().collect()
}

pub(crate) fn phone(rng: &mut ChaCha8Rng, area: &str) -> String {
    format!(
        "({area}) {:03}-{:04}",
        rng.random_range(200..999),
        rng.random_range(0..10000)
    )
}
