//! The Chainguard catalog as a set of names, with "did you mean" and search.

use std::collections::HashSet;

/// The catalog snapshot the simulated org and the tests start from.
pub const EMBEDDED_NAMES: &str = include_str!("../data/chainguard-images.txt");

#[derive(Debug, Clone)]
pub struct Catalog {
    names: Vec<String>,
    set: HashSet<String>,
    /// Each name's character counts, for a cheap lower bound on edit distance.
    histograms: Vec<Histogram>,
}

/// Counts of `a-z`, `0-9` and everything else: two strings' edit distance is at least the
/// larger of the characters one has that the other lacks, counted either way.
type Histogram = [u8; 37];

fn histogram(s: &str) -> Histogram {
    let mut h = [0u8; 37];
    for b in s.bytes() {
        let i = match b {
            b'a'..=b'z' => (b - b'a') as usize,
            b'0'..=b'9' => 26 + (b - b'0') as usize,
            _ => 36,
        };
        h[i] = h[i].saturating_add(1);
    }
    h
}

/// Whether the histograms alone prove an edit distance above `limit`.
fn surely_farther(a: &Histogram, b: &Histogram, limit: usize) -> bool {
    let (mut more, mut fewer) = (0usize, 0usize);
    for (x, y) in a.iter().zip(b) {
        if x > y {
            more += usize::from(x - y);
        } else {
            fewer += usize::from(y - x);
        }
        if more > limit || fewer > limit {
            return true;
        }
    }
    false
}

impl Catalog {
    pub fn embedded() -> Self {
        Self::from_names(EMBEDDED_NAMES.lines())
    }

    pub fn from_names<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Self {
        let mut names: Vec<String> = names
            .into_iter()
            .map(|s| s.as_ref().trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        names.sort();
        names.dedup();
        let set = names.iter().cloned().collect();
        let histograms = names.iter().map(|n| histogram(n)).collect();
        Catalog { names, set, histograms }
    }

    /// Every name, sorted.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.set.contains(name)
    }

    /// Names close to one that is not in the catalog, best first: names that contain it
    /// or that it contains, then small edit distances.
    pub fn suggest(&self, name: &str, max: usize) -> Vec<String> {
        let limit = (name.len() / 3).max(2);
        let wanted = histogram(name);
        let finder = memchr::memmem::Finder::new(name.as_bytes());
        let mut scored: Vec<(usize, usize, &String)> = self
            .names
            .iter()
            .zip(&self.histograms)
            .filter_map(|(c, h)| {
                let related = if c.len() >= name.len() {
                    finder.find(c.as_bytes()).is_some()
                } else {
                    name.contains(c.as_str())
                };
                // Edit distance is at least the length difference, and at least the
                // characters that differ: skip the work when it cannot fit.
                if !related && (c.len().abs_diff(name.len()) > limit || surely_farther(&wanted, h, limit)) {
                    return None;
                }
                // Optimal string alignment: typos and transpositions, without full Damerau's allocations.
                let d = strsim::osa_distance(name, c);
                (related || d <= limit).then_some((usize::from(!related), d, c))
            })
            .collect();
        scored.sort_by(|a, b| (a.0, a.1, a.2.len(), a.2).cmp(&(b.0, b.1, b.2.len(), b.2)));
        scored.into_iter().take(max).map(|(_, _, c)| c.clone()).collect()
    }

    /// Catalog names matching a search word: exact, then prefix, then substring, then near misses.
    pub fn search(&self, word: &str, max: usize) -> Vec<String> {
        let word = word.trim().to_ascii_lowercase();
        if word.is_empty() {
            return vec![];
        }
        let mut hits: Vec<(u8, usize, &String)> = self
            .names
            .iter()
            .filter_map(|c| {
                let rank = if *c == word {
                    0
                } else if c.starts_with(&word) {
                    1
                } else if c.contains(&word) {
                    2
                } else {
                    return None;
                };
                Some((rank, c.len(), c))
            })
            .collect();
        hits.sort();
        let mut out: Vec<String> = hits.into_iter().take(max).map(|(_, _, c)| c.clone()).collect();
        if out.len() < max {
            for s in self.suggest(&word, max) {
                if out.len() < max && !out.contains(&s) {
                    out.push(s);
                }
            }
        }
        out
    }
}

/// The tags closest to one an image does not have, best first: the same letters in
/// another case, then the fewest edits, then the longest shared beginning (`1.2x` finds
/// `1.27` and `1.26`). Tags are case-sensitive, so `Latest` is never taken for `latest`;
/// it is only suggested.
pub fn closest_tags(wanted: &str, tags: &[String], max: usize) -> Vec<String> {
    let lower = wanted.to_ascii_lowercase();
    let limit = (wanted.len() / 2).max(2);
    let mut scored: Vec<(usize, usize, usize, &String)> = tags
        .iter()
        .filter_map(|t| {
            let d = strsim::osa_distance(&lower, &t.to_ascii_lowercase());
            let shared = wanted.bytes().zip(t.bytes()).take_while(|(a, b)| a == b).count();
            (d <= limit || shared >= 2).then_some((d, usize::MAX - shared, t.len(), t))
        })
        .collect();
    scored.sort();
    scored.into_iter().take(max).map(|(.., t)| t.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tag_gets_its_closest_tags_first() {
        let tags: Vec<String> = ["latest", "latest-dev", "1.27", "1.27-dev", "1.27.3", "1.26", "1"]
            .map(String::from)
            .to_vec();
        assert_eq!(closest_tags("Latest", &tags, 3)[0], "latest");
        let near = closest_tags("1.2x", &tags, 3);
        assert!(
            near[..2].contains(&"1.27".into()) && near[..2].contains(&"1.26".into()),
            "{near:?}"
        );
        assert!(closest_tags("zzzzzzzz", &tags, 3).is_empty());
    }

    #[test]
    fn embedded_catalog_holds_the_819_names() {
        let c = Catalog::embedded();
        assert_eq!(c.len(), 819);
        assert!(c.contains("busybox"));
        assert!(!c.contains("busybx"));
    }

    #[test]
    fn typos_get_the_intended_name_first() {
        let c = Catalog::embedded();
        assert_eq!(c.suggest("busybx", 3)[0], "busybox");
        assert_eq!(c.suggest("pyhton", 3)[0], "python");
        assert!(c.suggest("ngnix", 3).contains(&"nginx".to_string()));
        assert!(c.suggest("zzzzzzzzzzzzzzzzzzzzzz", 3).is_empty());
        assert!(c.suggest("python", 3).len() <= 3);
    }

    #[test]
    fn search_ranks_exact_then_prefix() {
        let c = Catalog::embedded();
        let hits = c.search("python", 5);
        assert_eq!(hits[0], "python");
        assert!(hits.iter().all(|h| h.contains("python")));
    }
}
