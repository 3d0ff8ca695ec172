//! Did-you-mean suggestions for misspelled keys, names and values.

/// The closest of `candidates` to `word`, if it is close enough to suggest
/// (Damerau–Levenshtein distance at most a third of the longer word, and at
/// least 2).
pub fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_near_miss_is_suggested_and_a_far_one_is_not() {
        let keys = ["epochs", "batch_size", "lr"];
        assert_eq!(closest("lrr", keys.iter().copied()), Some("lr"));
        assert_eq!(closest("epohcs", keys.iter().copied()), Some("epochs"));
        assert_eq!(closest("temperature", keys.iter().copied()), None);
    }
}
