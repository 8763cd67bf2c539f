//! The checks a regex cannot express: checksums of the numbers that carry one and the
//! randomness of a generic secret. Each takes the matched value as written (separators
//! included) and says whether it is real enough to report.

use crate::rule::Validator;

pub(crate) fn check(v: Validator, value: &str, min_entropy: f64) -> bool {
    match v {
        Validator::Luhn => luhn(value),
        Validator::Iban => iban(value),
        Validator::Entropy => entropy(value) >= min_entropy,
        Validator::Phone => phone(value),
        Validator::UsSsn => us_ssn(value),
        Validator::UkNino => uk_nino(value),
        Validator::NlBsn => nl_bsn(value),
        Validator::EsDni => es_dni(value),
        Validator::FrNir => fr_nir(value),
        Validator::ItCodiceFiscale => it_codice_fiscale(value),
        Validator::BrCpf => br_cpf(value),
        Validator::InAadhaar => in_aadhaar(value),
    }
}

/// The decimal digits of `value`, separators dropped.
fn digits(value: &str) -> Vec<u32> {
    value.chars().filter_map(|c| c.to_digit(10)).collect()
}

fn all_same(d: &[u32]) -> bool {
    d.windows(2).all(|w| w.first() == w.get(1))
}

/// Shannon entropy in bits per character.
pub fn entropy(value: &str) -> f64 {
    let mut counts = [0u32; 256];
    let mut n = 0u32;
    for b in value.bytes() {
        if let Some(c) = counts.get_mut(usize::from(b)) {
            *c += 1;
        }
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    let n = f64::from(n);
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Luhn mod 10 over 13 to 19 digits; a run of one repeated digit passes Luhn but is
/// never a card.
pub fn luhn(value: &str) -> bool {
    let d = digits(value);
    if !(13..=19).contains(&d.len()) || all_same(&d) {
        return false;
    }
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            if i % 2 == 1 {
                let y = x * 2;
                if y > 9 {
                    y - 9
                } else {
                    y
                }
            } else {
                x
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// IBAN lengths per country (SWIFT's IBAN registry).
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BI", 27),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DJ", 27),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FK", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("LY", 25),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MN", 20),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NI", 28),
    ("NL", 18),
    ("NO", 15),
    ("OM", 23),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("RU", 33),
    ("SA", 24),
    ("SC", 31),
    ("SD", 18),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("SO", 23),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
    ("YE", 30),
];

/// The country's length, then ISO 7064 mod 97-10 over the rotated, lettered-to-number
/// string (= 1 for a valid IBAN).
pub fn iban(value: &str) -> bool {
    let s: Vec<u8> = value
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| b.to_ascii_uppercase())
        .collect();
    let Some(country) = s.get(..2) else {
        return false;
    };
    let Some(&(_, len)) = IBAN_LENGTHS.iter().find(|(c, _)| c.as_bytes() == country) else {
        return false;
    };
    if s.len() != len || !s.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    let mut rem: u32 = 0;
    for &b in s.iter().skip(4).chain(s.iter().take(4)) {
        let v = if b.is_ascii_digit() {
            u32::from(b - b'0')
        } else {
            u32::from(b - b'A') + 10
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// E.164 allows 8 to 15 digits with the country code; the North American plan (country
/// code 1, and the national formats without a +, which the rules only accept in its
/// shape) has exactly ten after it, area code and exchange starting 2-9.
pub fn phone(value: &str) -> bool {
    let d = digits(value);
    let international = value.trim_start().starts_with('+');
    let national = match (international, d.first()) {
        (true, Some(1)) => d.get(1..),
        (true, _) => return (8..=15).contains(&d.len()),
        // UK mobiles (07...) are the one non-NANP national format the rules accept.
        (false, Some(0)) => return d.len() == 11,
        (false, _) => Some(&d[..]),
    };
    national.is_some_and(|n| {
        n.len() == 10 && n.first().is_some_and(|&a| a >= 2) && n.get(3).is_some_and(|&e| e >= 2)
    })
}

/// AAA-GG-SSSS: the SSA never issues area 000, 666 or 900-999, group 00 or serial 0000,
/// and two numbers printed on sample cards are famous enough to be examples.
pub fn us_ssn(value: &str) -> bool {
    let d = digits(value);
    if d.len() != 9 {
        return false;
    }
    let num = |r: std::ops::Range<usize>| d.get(r).map(|x| x.iter().fold(0, |a, &v| a * 10 + v));
    let (Some(area), Some(group), Some(serial)) = (num(0..3), num(3..5), num(5..9)) else {
        return false;
    };
    let famous = (area, group, serial) == (78, 5, 1120) || (area, group, serial) == (219, 9, 9999);
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0 && !famous
}

/// Two prefix letters, six digits, a suffix A-D; HMRC never issues D F I Q U V as either
/// prefix letter, O as the second, nor the prefixes BG GB KN NK NT TN ZZ.
pub fn uk_nino(value: &str) -> bool {
    let s: Vec<u8> = value
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| b.to_ascii_uppercase())
        .collect();
    let (Some(&a), Some(&b), Some(&suffix)) = (s.first(), s.get(1), s.last()) else {
        return false;
    };
    let digits_ok = s.len() == 9
        && s.get(2..8)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let bad = |c: u8| b"DFIQUV".contains(&c);
    let prefix = [a, b];
    digits_ok
        && a.is_ascii_uppercase()
        && b.is_ascii_uppercase()
        && !bad(a)
        && !bad(b)
        && b != b'O'
        && ![b"BG", b"GB", b"KN", b"NK", b"NT", b"TN", b"ZZ"].contains(&&prefix)
        && (b'A'..=b'D').contains(&suffix)
}

/// Nine digits, weights 9..2 and -1, sum divisible by 11.
pub fn nl_bsn(value: &str) -> bool {
    let d = digits(value);
    if d.len() != 9 || all_same(&d) {
        return false;
    }
    let sum: i64 = d
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let w = if i == 8 { -1 } else { 9 - i as i64 };
            w * i64::from(x)
        })
        .sum();
    sum % 11 == 0
}

/// DNI: eight digits and the letter of their value mod 23; NIE: X, Y or Z standing for
/// 0, 1 or 2 before seven digits.
pub fn es_dni(value: &str) -> bool {
    const LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";
    let s: Vec<u8> = value
        .bytes()
        .filter(|b| b.is_ascii_alphanumeric())
        .map(|b| b.to_ascii_uppercase())
        .collect();
    let Some((&letter, body)) = s.split_last() else {
        return false;
    };
    let lead = match body.first() {
        Some(b'X') => Some(0),
        Some(b'Y') => Some(1),
        Some(b'Z') => Some(2),
        _ => None,
    };
    let rest = if lead.is_some() {
        body.get(1..)
    } else {
        Some(body)
    };
    let Some(rest) = rest else {
        return false;
    };
    if body.len() != 8 || !rest.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let n = rest.iter().fold(u64::from(lead.unwrap_or(0u8)), |a, &b| {
        a * 10 + u64::from(b - b'0')
    });
    LETTERS.get((n % 23) as usize) == Some(&letter)
}

/// Thirteen characters (Corsica's departments 2A and 2B count as 19 and 18) and a key of
/// 97 minus their value mod 97.
pub fn fr_nir(value: &str) -> bool {
    let s: Vec<u8> = value
        .bytes()
        .filter(|b| b.is_ascii_alphanumeric())
        .map(|b| b.to_ascii_uppercase())
        .collect();
    if s.len() != 15 {
        return false;
    }
    let (Some(body), Some(key)) = (s.get(..13), s.get(13..)) else {
        return false;
    };
    let mut text: Vec<u8> = body.to_vec();
    let corsica = match body.get(5..7) {
        Some(b"2A") => Some(*b"19"),
        Some(b"2B") => Some(*b"18"),
        _ => None,
    };
    if let (Some(c), Some(dept)) = (corsica, text.get_mut(5..7)) {
        dept.copy_from_slice(&c);
    }
    if !text.iter().chain(key).all(u8::is_ascii_digit) {
        return false;
    }
    let n = text.iter().fold(0u64, |a, &b| a * 10 + u64::from(b - b'0'));
    let k = key.iter().fold(0u64, |a, &b| a * 10 + u64::from(b - b'0'));
    n > 0 && 97 - n % 97 == k
}

/// Sixteen characters; the last is the sum of the odd positions (through their own
/// table) and the even ones (their plain value), mod 26, as a letter.
pub fn it_codice_fiscale(value: &str) -> bool {
    const ODD: [u32; 26] = [
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24,
        23,
    ];
    let s: Vec<u8> = value.bytes().map(|b| b.to_ascii_uppercase()).collect();
    let Some((&check, body)) = s.split_last() else {
        return false;
    };
    if body.len() != 15 || !check.is_ascii_uppercase() {
        return false;
    }
    let mut sum = 0u32;
    for (i, &c) in body.iter().enumerate() {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A'),
            _ => return false,
        };
        sum += if i % 2 == 0 {
            ODD.get(v as usize).copied().unwrap_or(0)
        } else {
            v
        };
    }
    u32::from(check - b'A') == sum % 26
}

/// Eleven digits; the last two are mod-11 checks over the nine and ten before them.
pub fn br_cpf(value: &str) -> bool {
    let d = digits(value);
    if d.len() != 11 || all_same(&d) {
        return false;
    }
    let check = |n: usize| {
        let sum: u32 = d
            .iter()
            .take(n)
            .enumerate()
            .map(|(i, &x)| x * (n as u32 + 1 - i as u32))
            .sum();
        (sum * 10 % 11) % 10
    };
    d.get(9) == Some(&check(9)) && d.get(10) == Some(&check(10))
}

/// Twelve digits, not starting with 0 or 1, the last a Verhoeff check digit.
pub fn in_aadhaar(value: &str) -> bool {
    const D: [[u8; 10]; 10] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
        [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
        [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
        [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
        [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
        [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
        [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
        [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
        [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
    ];
    const P: [[u8; 10]; 8] = [
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
        [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
        [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
        [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
        [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
        [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
        [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
    ];
    let d = digits(value);
    if d.len() != 12 || d.first().is_none_or(|&x| x < 2) || all_same(&d) {
        return false;
    }
    let mut c = 0usize;
    for (i, &x) in d.iter().rev().enumerate() {
        let p = P
            .get(i % 8)
            .and_then(|row| row.get(x as usize))
            .copied()
            .unwrap_or(0);
        c = D
            .get(c)
            .and_then(|row| row.get(usize::from(p)))
            .map_or(0, |&v| usize::from(v));
    }
    c == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    // Published test numbers: each validator accepts them and refuses one changed digit.
    #[test]
    fn known_numbers() {
        type Check = fn(&str) -> bool;
        let cases: &[(Check, &str, &str)] = &[
            (luhn, "4111 1111 1111 1111", "4111 1111 1111 1112"),
            (phone, "+1 (415) 555-0132", "+1 555 0100"),
            (phone, "(415) 555-0132", "(415) 155-0132"),
            (phone, "+44 20 7946 0958", "+44 20 79"),
            (phone, "07700 900123", "07700 90012"),
            (
                iban,
                "GB82 WEST 1234 5698 7654 32",
                "GB82 WEST 1234 5698 7654 33",
            ),
            (iban, "DE89370400440532013000", "DE89370400440532013001"),
            (us_ssn, "123-45-6789", "666-45-6789"),
            (uk_nino, "AB123456C", "QQ123456C"),
            (nl_bsn, "111222333", "111222334"),
            (es_dni, "12345678Z", "12345678A"),
            (es_dni, "X1234567L", "X1234567A"),
            (fr_nir, "2 69 05 49 588 157 80", "2 69 05 49 588 157 81"),
            (it_codice_fiscale, "RSSMRA85T10A562S", "RSSMRA85T10A562T"),
            (br_cpf, "529.982.247-25", "529.982.247-26"),
            (in_aadhaar, "2345 6789 0124", "2345 6789 0125"),
        ];
        for (f, good, bad) in cases {
            assert!(f(good), "{good} should pass");
            assert!(!f(bad), "{bad} should fail");
        }
    }

    #[test]
    fn entropy_of_known_strings() {
        assert!(entropy("aaaa") < 0.01);
        assert!((entropy("abcd") - 2.0).abs() < 1e-9);
        assert_eq!(entropy(""), 0.0);
    }
}
