//! Random passwords shaped like those of AWS Secrets Manager's `GetRandomPassword` (rotation uses
//! them too).
//!
//! A password is drawn from up to five character classes: lowercase letters, uppercase letters,
//! digits, the 32 ASCII punctuation characters and (only on request) the space. Each class can be
//! switched off, and single characters can be removed from all of them; a class with nothing left
//! counts as switched off. With [`PasswordRules::require_each_included_type`] every class still in
//! play contributes at least one character. All randomness comes from the operating system's
//! CSPRNG; every pick uses rejection sampling, so no character or position is favoured.

use crate::barrier::random_bytes;
use crate::error::{CoreError, Result};
use zeroize::Zeroizing;

/// Shortest password accepted.
pub const MIN_LENGTH: u32 = 1;
/// Longest password accepted (the AWS limit).
pub const MAX_LENGTH: u32 = 4096;
/// Longest `exclude_characters` accepted, in characters (the AWS limit).
pub const MAX_EXCLUDE_CHARACTERS: usize = 4096;

/// Lowercase letters.
pub const LOWERCASE: &str = "abcdefghijklmnopqrstuvwxyz";
/// Uppercase letters.
pub const UPPERCASE: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
/// Decimal digits.
pub const DIGITS: &str = "0123456789";
/// Every printable ASCII character that is neither a letter, a digit nor the space (32 of them).
pub const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// What a generated password may and must contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordRules {
    /// Number of characters, [`MIN_LENGTH`]..=[`MAX_LENGTH`].
    pub length: u32,
    /// Characters never to use, whatever class they belong to.
    pub exclude_characters: String,
    pub exclude_numbers: bool,
    pub exclude_punctuation: bool,
    pub exclude_uppercase: bool,
    pub exclude_lowercase: bool,
    /// Whether the space is a class of its own that may be used.
    pub include_space: bool,
    /// Whether each class left in play must appear at least once.
    pub require_each_included_type: bool,
}

impl Default for PasswordRules {
    /// 32 characters from letters, digits and punctuation, each kind at least once.
    fn default() -> Self {
        PasswordRules {
            length: 32,
            exclude_characters: String::new(),
            exclude_numbers: false,
            exclude_punctuation: false,
            exclude_uppercase: false,
            exclude_lowercase: false,
            include_space: false,
            require_each_included_type: true,
        }
    }
}

/// A fresh random password following `rules`.
///
/// Fails with [`CoreError::invalid`] when the length is out of range, when nothing is left to
/// draw from, or when the password is too short to hold one character of each required class;
/// fails with an internal error only if the CSPRNG does.
pub fn generate(rules: &PasswordRules) -> Result<Zeroizing<String>> {
    generate_with(rules, random_bytes)
}

/// [`generate`] with the random bytes taken from `fill` (tests feed it chosen bytes).
fn generate_with<F>(rules: &PasswordRules, fill: F) -> Result<Zeroizing<String>>
where
    F: FnMut(&mut [u8]) -> Result<()>,
{
    if !(MIN_LENGTH..=MAX_LENGTH).contains(&rules.length) {
        return Err(CoreError::invalid(format!(
            "the password length must be between {MIN_LENGTH} and {MAX_LENGTH}, not {}",
            rules.length
        )));
    }
    if rules.exclude_characters.chars().count() > MAX_EXCLUDE_CHARACTERS {
        return Err(CoreError::invalid(format!(
            "the characters to exclude must be at most {MAX_EXCLUDE_CHARACTERS} characters long"
        )));
    }
    let classes = included_classes(rules);
    if classes.is_empty() {
        return Err(CoreError::invalid(
            "no characters left to build a password from: every character type is excluded",
        ));
    }
    // Lossless: length <= MAX_LENGTH, which fits any usize.
    let length = rules.length as usize;
    if rules.require_each_included_type && classes.len() > length {
        return Err(CoreError::invalid(format!(
            "a password of {length} characters cannot hold one character of each of the {} \
             included character types",
            classes.len()
        )));
    }

    let mut rng = Rng::new(fill);
    // The password is assembled as ASCII bytes in a buffer of its final size (no reallocation
    // leaves copies behind), wiped if anything fails before it becomes the result.
    let mut out = Zeroizing::new(Vec::with_capacity(length));
    if rules.require_each_included_type {
        for class in &classes {
            out.push(rng.pick(class)?);
        }
    }
    let union: Vec<u8> = classes.concat();
    while out.len() < length {
        out.push(rng.pick(&union)?);
    }
    // Fisher–Yates, so the required characters land anywhere with equal chance.
    for i in (1..out.len()).rev() {
        let j = rng.below(i + 1)?;
        out.swap(i, j);
    }

    let bytes = std::mem::take(&mut *out);
    match String::from_utf8(bytes) {
        Ok(s) => Ok(Zeroizing::new(s)),
        Err(e) => {
            drop(Zeroizing::new(e.into_bytes()));
            Err(CoreError::internal("generated password is not ASCII"))
        }
    }
}

/// The classes still in play, each as its remaining characters, none empty.
fn included_classes(rules: &PasswordRules) -> Vec<Vec<u8>> {
    let mut excluded = [false; 128];
    for c in rules.exclude_characters.chars() {
        if c.is_ascii() {
            excluded[c as usize] = true;
        }
    }
    let candidates = [
        (!rules.exclude_lowercase, LOWERCASE),
        (!rules.exclude_uppercase, UPPERCASE),
        (!rules.exclude_numbers, DIGITS),
        (!rules.exclude_punctuation, PUNCTUATION),
        (rules.include_space, " "),
    ];
    candidates
        .iter()
        .filter(|(wanted, _)| *wanted)
        .map(|(_, chars)| {
            chars
                .bytes()
                .filter(|b| !excluded[*b as usize])
                .collect::<Vec<u8>>()
        })
        .filter(|class| !class.is_empty())
        .collect()
}

/// Uniform integers from a byte source, read in blocks. The block is wiped on drop: its bytes
/// decide the password.
struct Rng<F> {
    fill: F,
    block: Zeroizing<[u8; 256]>,
    used: usize,
}

impl<F: FnMut(&mut [u8]) -> Result<()>> Rng<F> {
    fn new(fill: F) -> Self {
        Rng {
            fill,
            block: Zeroizing::new([0u8; 256]),
            used: 256,
        }
    }

    fn next_u32(&mut self) -> Result<u32> {
        if self.used + 4 > self.block.len() {
            (self.fill)(&mut self.block[..])?;
            self.used = 0;
        }
        let mut word = [0u8; 4];
        word.copy_from_slice(&self.block[self.used..self.used + 4]);
        self.used += 4;
        Ok(u32::from_le_bytes(word))
    }

    /// A uniform integer in `0..n` (`n` between 1 and 2^32). Draws that fall in the incomplete
    /// last run of `n` values below 2^32 are rejected, so every result is equally likely.
    fn below(&mut self, n: usize) -> Result<usize> {
        const RANGE: u64 = 1 << 32;
        let n = u64::try_from(n)
            .ok()
            .filter(|n| (1..=RANGE).contains(n))
            .ok_or_else(|| CoreError::internal("random range out of bounds"))?;
        let limit = RANGE - RANGE % n;
        loop {
            let x = u64::from(self.next_u32()?);
            if x < limit {
                // x % n < n <= 2^32, and n came from a usize.
                return usize::try_from(x % n)
                    .map_err(|_| CoreError::internal("random range out of bounds"));
            }
        }
    }

    fn pick(&mut self, chars: &[u8]) -> Result<u8> {
        let i = self.below(chars.len())?;
        chars
            .get(i)
            .copied()
            .ok_or_else(|| CoreError::internal("random index out of bounds"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use std::collections::BTreeMap;

    fn rules() -> PasswordRules {
        PasswordRules::default()
    }

    fn gen(r: &PasswordRules) -> String {
        generate(r).expect("generate").to_string()
    }

    fn invalid(r: &PasswordRules) -> String {
        let e = generate(r).expect_err("must be rejected");
        assert_eq!(e.code, ErrorCode::InvalidRequest, "{e:?}");
        e.message
    }

    fn count_in(s: &str, class: &str) -> usize {
        s.chars().filter(|c| class.contains(*c)).count()
    }

    #[test]
    fn the_classes_are_what_aws_documents() {
        assert_eq!(PUNCTUATION.len(), 32);
        assert!(PUNCTUATION.bytes().all(|b| b.is_ascii_punctuation()));
        let all_punct: String = (0u8..128)
            .filter(u8::is_ascii_punctuation)
            .map(char::from)
            .collect();
        assert_eq!(all_punct.len(), 32);
        assert!(all_punct.chars().all(|c| PUNCTUATION.contains(c)));
        assert_eq!(LOWERCASE.len(), 26);
        assert_eq!(UPPERCASE.len(), 26);
        assert_eq!(DIGITS.len(), 10);
    }

    #[test]
    fn defaults_give_32_characters_of_every_kind_and_no_space() {
        let d = rules();
        assert_eq!(d.length, 32);
        assert!(d.require_each_included_type);
        assert!(!d.include_space);
        for _ in 0..200 {
            let p = gen(&d);
            assert_eq!(p.len(), 32);
            assert!(!p.contains(' '));
            assert!(p.chars().all(|c| c.is_ascii_graphic()));
            for class in [LOWERCASE, UPPERCASE, DIGITS, PUNCTUATION] {
                assert!(count_in(&p, class) >= 1, "{class} missing");
            }
        }
    }

    #[test]
    fn lengths_at_the_bounds() {
        for length in [1, 2, 4, 5, 100, MAX_LENGTH] {
            let r = PasswordRules {
                length,
                require_each_included_type: false,
                ..rules()
            };
            assert_eq!(gen(&r).len(), length as usize);
        }
        let r = PasswordRules {
            length: MAX_LENGTH,
            ..rules()
        };
        assert_eq!(gen(&r).len(), MAX_LENGTH as usize);
    }

    #[test]
    fn lengths_out_of_range_are_invalid() {
        for length in [0, MAX_LENGTH + 1, u32::MAX] {
            let msg = invalid(&PasswordRules { length, ..rules() });
            assert!(msg.contains("between 1 and 4096"), "{msg}");
        }
    }

    #[test]
    fn each_exclusion_switch_removes_its_class() {
        type Case = (fn(&mut PasswordRules), &'static str);
        let cases: [Case; 4] = [
            (|r| r.exclude_lowercase = true, LOWERCASE),
            (|r| r.exclude_uppercase = true, UPPERCASE),
            (|r| r.exclude_numbers = true, DIGITS),
            (|r| r.exclude_punctuation = true, PUNCTUATION),
        ];
        for (switch, class) in cases {
            for require in [false, true] {
                let mut r = PasswordRules {
                    length: 512,
                    require_each_included_type: require,
                    ..rules()
                };
                switch(&mut r);
                for _ in 0..10 {
                    let p = gen(&r);
                    assert_eq!(p.len(), 512);
                    assert_eq!(count_in(&p, class), 0, "{class} in {p}");
                }
            }
        }
    }

    #[test]
    fn only_one_class_left() {
        let r = PasswordRules {
            length: 64,
            exclude_lowercase: true,
            exclude_uppercase: true,
            exclude_punctuation: true,
            ..rules()
        };
        for _ in 0..20 {
            assert!(gen(&r).bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn space_only_on_request_and_then_required() {
        let r = PasswordRules {
            length: 5,
            include_space: true,
            ..rules()
        };
        for _ in 0..200 {
            let p = gen(&r);
            assert_eq!(count_in(&p, " "), 1, "{p:?}");
            for class in [LOWERCASE, UPPERCASE, DIGITS, PUNCTUATION] {
                assert_eq!(count_in(&p, class), 1, "{p:?}");
            }
        }
        let msg = invalid(&PasswordRules {
            length: 4,
            include_space: true,
            ..rules()
        });
        assert!(msg.contains("5 included character types"), "{msg}");

        // Without the requirement a space still shows up in a long password.
        let r = PasswordRules {
            length: 4096,
            include_space: true,
            require_each_included_type: false,
            ..rules()
        };
        assert!(gen(&r).contains(' '));
    }

    #[test]
    fn excluded_characters_never_appear() {
        let excluded = "aeiouAEIOU01l|'\"\\`";
        let r = PasswordRules {
            length: 4096,
            exclude_characters: excluded.to_string(),
            ..rules()
        };
        let p = gen(&r);
        assert_eq!(p.len(), 4096);
        assert!(p.chars().all(|c| !excluded.contains(c)));
    }

    #[test]
    fn excluding_every_character_of_a_class_drops_its_requirement() {
        let r = PasswordRules {
            length: 3,
            exclude_characters: DIGITS.to_string(),
            ..rules()
        };
        for _ in 0..200 {
            let p = gen(&r);
            assert_eq!(count_in(&p, DIGITS), 0);
            for class in [LOWERCASE, UPPERCASE, PUNCTUATION] {
                assert_eq!(count_in(&p, class), 1, "{p:?}");
            }
        }
    }

    #[test]
    fn non_ascii_and_repeated_exclusions_are_harmless() {
        let r = PasswordRules {
            length: 64,
            exclude_characters: "ééé€€aaaa".to_string(),
            ..rules()
        };
        let p = gen(&r);
        assert_eq!(p.len(), 64);
        assert!(!p.contains('a'));
    }

    #[test]
    fn nothing_left_is_invalid() {
        let all_off = PasswordRules {
            exclude_lowercase: true,
            exclude_uppercase: true,
            exclude_numbers: true,
            exclude_punctuation: true,
            ..rules()
        };
        assert!(invalid(&all_off).contains("no characters left"));
        let all_off_no_requirement = PasswordRules {
            require_each_included_type: false,
            ..all_off.clone()
        };
        assert!(invalid(&all_off_no_requirement).contains("no characters left"));

        let everything = format!("{LOWERCASE}{UPPERCASE}{DIGITS}{PUNCTUATION}");
        let all_excluded = PasswordRules {
            exclude_characters: everything.clone(),
            ..rules()
        };
        assert!(invalid(&all_excluded).contains("no characters left"));

        // The space alone is still something to build from.
        let only_space = PasswordRules {
            length: 3,
            exclude_characters: everything,
            include_space: true,
            ..rules()
        };
        assert_eq!(gen(&only_space), "   ");
    }

    #[test]
    fn too_short_for_every_required_type_is_invalid() {
        let msg = invalid(&PasswordRules {
            length: 3,
            ..rules()
        });
        assert!(msg.contains("3 characters"), "{msg}");
        assert!(msg.contains("4 included character types"), "{msg}");
        // The same length is fine without the requirement.
        let r = PasswordRules {
            length: 3,
            require_each_included_type: false,
            ..rules()
        };
        assert_eq!(gen(&r).len(), 3);
    }

    #[test]
    fn too_many_excluded_characters_is_invalid() {
        let msg = invalid(&PasswordRules {
            exclude_characters: "x".repeat(MAX_EXCLUDE_CHARACTERS + 1),
            ..rules()
        });
        assert!(msg.contains("4096"), "{msg}");
        let r = PasswordRules {
            exclude_characters: "x".repeat(MAX_EXCLUDE_CHARACTERS),
            ..rules()
        };
        assert!(!gen(&r).contains('x'));
    }

    #[test]
    fn every_character_of_a_small_alphabet_is_about_equally_likely() {
        // Alphabet {a, b, c}: three characters, so a biased modulo of a byte or word would show.
        let r = PasswordRules {
            length: 4096,
            exclude_characters: LOWERCASE.replace(['a', 'b', 'c'], ""),
            exclude_uppercase: true,
            exclude_numbers: true,
            exclude_punctuation: true,
            require_each_included_type: false,
            ..rules()
        };
        let mut counts: BTreeMap<char, usize> = BTreeMap::new();
        for _ in 0..8 {
            for c in gen(&r).chars() {
                *counts.entry(c).or_default() += 1;
            }
        }
        assert_eq!(counts.keys().collect::<String>(), "abc");
        // 32768 draws, expected 10923 each, sd ~85: a margin of 600 is about 7 sd.
        for (c, n) in counts {
            assert!((10323..=11523).contains(&n), "{c}: {n}");
        }
    }

    #[test]
    fn every_character_of_the_full_alphabet_appears() {
        let r = PasswordRules {
            length: 4096,
            include_space: true,
            ..rules()
        };
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..4 {
            seen.extend(gen(&r).chars());
        }
        // 95 printable ASCII characters, space included.
        assert_eq!(seen.len(), 95);
    }

    #[test]
    fn required_characters_are_shuffled_to_every_position() {
        // One character per class in four positions: where the digit lands must be uniform.
        let r = PasswordRules {
            length: 4,
            ..rules()
        };
        let mut at = [0usize; 4];
        for _ in 0..8000 {
            let p = gen(&r);
            let pos = p
                .bytes()
                .position(|b| b.is_ascii_digit())
                .expect("a digit is required");
            at[pos] += 1;
        }
        // Expected 2000 each, sd ~39.
        for n in at {
            assert!((1700..=2300).contains(&n), "{at:?}");
        }
    }

    #[test]
    fn below_rejects_the_incomplete_last_run() {
        // For n = 3 the accepted words are 0 ..= 2^32 - 2; u32::MAX must be thrown away.
        let mut words = vec![u32::MAX, 7].into_iter();
        let mut rng = Rng::new(|buf: &mut [u8]| {
            for chunk in buf.chunks_mut(4) {
                chunk.copy_from_slice(&words.next().unwrap_or(0).to_le_bytes());
            }
            Ok(())
        });
        assert_eq!(rng.below(3).expect("below"), 7 % 3);

        let mut rng = Rng::new(|buf: &mut [u8]| {
            buf.fill(0xff);
            Ok(())
        });
        // 2^32 - 1 is accepted when n is a power of two (nothing is rejected then).
        assert_eq!(rng.below(4).expect("below"), 3);
        assert_eq!(rng.below(1).expect("below"), 0);
        assert!(rng.below(0).is_err());
    }

    #[test]
    fn below_reads_across_block_boundaries() {
        let mut next = 0u8;
        let mut rng = Rng::new(|buf: &mut [u8]| {
            for b in buf.iter_mut() {
                *b = next;
                next = next.wrapping_add(1);
            }
            Ok(())
        });
        // 200 words span four blocks of 64.
        for _ in 0..200 {
            assert!(rng.below(10).expect("below") < 10);
        }
    }

    #[test]
    fn a_failing_random_source_is_an_internal_error() {
        let e = generate_with(&rules(), |_: &mut [u8]| {
            Err(CoreError::internal("random number generator failed"))
        })
        .expect_err("must fail");
        assert_eq!(e.code, ErrorCode::Internal);
    }

    #[test]
    fn passwords_differ() {
        let r = rules();
        assert_ne!(gen(&r), gen(&r));
    }
}
