//! Text → terms, for keyword search. Tuned for technical text: option names (`--chunk-tokens`),
//! identifiers (`max_file_bytes`, `std::fs`), versions (`3.11`) and error codes stay whole *and*
//! also give their parts, so `chunk tokens` finds `--chunk-tokens` and the exact spelling ranks
//! higher. Lowercased, English stop words dropped, plurals folded (a light "s" stemmer: heavier
//! stemming merges technical terms that differ).

/// Longest term kept, in bytes (longer runs are hashes, base64 and the like).
pub const MAX_TERM_BYTES: usize = 64;

/// Characters that join a compound term (`a-b`, `a_b`, `a.b`, `a/b`, `a::b`) but are trimmed from
/// its ends.
fn is_joiner(c: char) -> bool {
    matches!(c, '-' | '_' | '.' | '/' | ':' | '@')
}

/// Characters that may end a term (`c++`, `c#`).
fn is_suffix(c: char) -> bool {
    matches!(c, '+' | '#')
}

fn in_token(c: char) -> bool {
    c.is_alphanumeric() || is_joiner(c) || is_suffix(c)
}

/// Common English words that carry no meaning for search.
const STOP_WORDS: &[&str] = &[
    "a", "about", "all", "also", "an", "and", "any", "are", "as", "at", "be", "been", "but", "by", "can", "could",
    "do", "does", "each", "for", "from", "had", "has", "have", "he", "her", "his", "how", "i", "if", "in", "into",
    "is", "it", "its", "may", "more", "most", "must", "no", "not", "of", "on", "one", "or", "other", "our", "she",
    "should", "so", "some", "such", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this",
    "those", "to", "too", "up", "us", "use", "used", "using", "very", "was", "we", "were", "what", "when", "where",
    "which", "while", "who", "will", "with", "would", "you", "your",
];

fn is_stop_word(w: &str) -> bool {
    STOP_WORDS.binary_search(&w).is_ok()
}

/// Folds English plurals ("files" → "file", "libraries" → "library", "processes" → "process"),
/// leaving words that only look plural ("status", "class", "glibc's" after `'s` is cut).
fn stem(w: &str) -> &str {
    let b = w.as_bytes();
    if b.len() <= 3 || !w.bytes().all(|c| c.is_ascii_lowercase()) {
        return w;
    }
    if w.ends_with("ies") && !w.ends_with("eies") && !w.ends_with("aies") {
        // "libraries" → "librar" + "y" is built by the caller; return the stem without "ies".
        return &w[..w.len() - 3];
    }
    if w.ends_with("sses") || w.ends_with("xes") || w.ends_with("ches") || w.ends_with("shes") {
        return &w[..w.len() - 2];
    }
    if w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") && !w.ends_with("is") {
        return &w[..w.len() - 1];
    }
    w
}

/// One normalised plain word, or `None` when it carries nothing (a stop word, too short, too
/// long).
fn word(w: &str, out: &mut Vec<String>) {
    let w = w.strip_suffix("'s").unwrap_or(w);
    if w.len() > MAX_TERM_BYTES || is_stop_word(w) {
        return;
    }
    let single = w.chars().count() == 1;
    if single && !w.chars().all(|c| c.is_ascii_digit()) {
        return;
    }
    let s = stem(w);
    if s.len() + 3 == w.len() && w.ends_with("ies") {
        out.push(format!("{s}y"));
    } else {
        out.push(s.to_string());
    }
}

/// The terms of `text`, in order, repeats kept (a document's counts are its term frequencies).
pub fn terms(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let lower = text.to_lowercase();
    for raw in lower.split(|c: char| !in_token(c) && c != '\'') {
        // An apostrophe only joins inside a word ("don't", "glibc's"); elsewhere it splits.
        for piece in raw.split('\'').enumerate().fold(Vec::<String>::new(), |mut acc, (i, p)| {
            if i > 0 && (p == "s" || p == "t") {
                if let Some(last) = acc.last_mut() {
                    last.push('\'');
                    last.push_str(p);
                    return acc;
                }
            }
            acc.push(p.to_string());
            acc
        }) {
            let token = piece.trim_matches(|c: char| is_joiner(c) || c == '\'');
            let token = token.trim_start_matches(is_suffix);
            if token.is_empty() {
                continue;
            }
            let compound = token.contains(is_joiner);
            if compound {
                if token.len() <= MAX_TERM_BYTES {
                    out.push(token.to_string());
                }
                for part in token.split(|c: char| is_joiner(c) || is_suffix(c)).filter(|p| !p.is_empty()) {
                    word(part, &mut out);
                }
            } else if token.ends_with(is_suffix) {
                // `c++`, `c#`: kept as spelled; a stop word never ends that way.
                if token.len() <= MAX_TERM_BYTES {
                    out.push(token.to_string());
                }
            } else {
                word(token, &mut out);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_word_list_is_sorted_for_binary_search() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn plain_words_are_lowercased_stemmed_and_stop_words_dropped() {
        assert_eq!(terms("The Files of the Libraries"), ["file", "library"]);
        assert_eq!(terms("copies processes; status class"), ["copy", "process", "status", "class"]);
        assert_eq!(terms("a b 7 x"), ["7"]);
    }

    #[test]
    fn technical_terms_stay_whole_and_give_their_parts() {
        assert_eq!(terms("use --chunk-tokens."), ["chunk-tokens", "chunk", "token"]);
        assert_eq!(terms("std::fs::read_dir"), ["std::fs::read_dir", "std", "fs", "read", "dir"]);
        assert_eq!(terms("Python 3.11 and C++"), ["python", "3.11", "3", "11", "c++"]);
        assert_eq!(terms("ENOENT: no such file"), ["enoent", "file"]);
    }

    #[test]
    fn apostrophes_join_only_inside_words() {
        assert_eq!(terms("glibc's 'quoted' don't"), ["glibc", "quoted", "don't"]);
    }

    #[test]
    fn hostile_text_costs_linear_work_and_no_panic() {
        let long = "x".repeat(10_000);
        assert!(terms(&long).is_empty(), "a 10 kB run is not a term");
        let odd = "\u{0130}\u{0307}--::..''++##\u{1F600}ÄÖÜ'';;";
        let _ = terms(odd);
        assert_eq!(terms("Straße ÉCOLE"), ["straße", "école"]);
    }
}
