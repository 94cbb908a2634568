//! Packing a document's blocks into chunks under a token budget. A chunk holds whole blocks of
//! one section; a block larger than the budget is split between lines, and a line larger than the
//! budget by tokens. Consecutive chunks of one section overlap by up to `overlap` tokens of whole
//! lines. Each chunk begins with its context line, `title › section › subsection`.

use prag_embedder::{TextTokenizer, TokenSpan};

use super::structure::{Structure, parse};

/// What packing needs of a tokenizer (the model's, or a stand-in in tests).
pub trait Tokens {
    type Error;
    fn count(&self, text: &str) -> Result<usize, Self::Error>;
    /// Spans of at most `max` tokens overlapping by `overlap`.
    fn spans(&self, text: &str, max: usize, overlap: usize) -> Result<Vec<TokenSpan>, Self::Error>;
}

impl Tokens for TextTokenizer {
    type Error = prag_embedder::EmbedError;
    fn count(&self, text: &str) -> Result<usize, Self::Error> {
        self.count_tokens(text)
    }
    fn spans(&self, text: &str, max: usize, overlap: usize) -> Result<Vec<TokenSpan>, Self::Error> {
        self.token_spans(text, max, overlap)
    }
}

/// The longest context line, in characters.
const MAX_CONTEXT_CHARS: usize = 200;

/// The title a document gets when its text names none: its file name without the extension.
fn title_from_path(path: &str) -> String {
    let name = path.rsplit(['/', '#']).next().unwrap_or(path);
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    if stem.is_empty() { name.to_string() } else { stem.to_string() }
}

fn context_line(title: &str, section: &[String]) -> String {
    let mut parts: Vec<&str> = vec![title];
    parts.extend(section.iter().map(String::as_str).filter(|s| *s != title));
    parts.join(" › ").chars().take(MAX_CONTEXT_CHARS).collect()
}

/// A line with its token count.
struct Line {
    text: String,
    tokens: usize,
}

/// Chunks of `text` (the document at `path`), each at most `max_tokens` tokens plus its context
/// line. Empty when the text holds nothing but blank space.
pub fn chunk_document<T: Tokens>(
    path: &str,
    text: &str,
    max_tokens: usize,
    overlap: usize,
    tok: &T,
) -> Result<Vec<String>, T::Error> {
    let max_tokens = max_tokens.max(1);
    let overlap = overlap.min(max_tokens / 2);
    let Structure { title, sections, blocks } = parse(text);
    let title = title.unwrap_or_else(|| title_from_path(path));
    // Each section's blocks (consecutive), and its size.
    let mut spans: Vec<(usize, std::ops::Range<usize>)> = Vec::new();
    for (k, b) in blocks.iter().enumerate() {
        match spans.last_mut() {
            Some((s, r)) if *s == b.section => r.end = k + 1,
            _ => spans.push((b.section, k..k + 1)),
        }
    }
    let mut block_tokens = Vec::with_capacity(blocks.len());
    for b in &blocks {
        block_tokens.push(tok.count(&b.lines.join("\n"))?);
    }
    let mut chunks = Vec::new();
    let mut next = 0;
    while next < spans.len() {
        // A run: one section, followed by as many next sections as fit whole in the same chunk
        // (each under its own heading line), so short sections do not become tiny chunks.
        let first = spans[next].0;
        let (context, context_tokens) = fitting_context(&title, &sections[first], max_tokens, tok)?;
        let budget = max_tokens - context_tokens;
        let size = |(s, r): &(usize, std::ops::Range<usize>)| -> Result<usize, T::Error> {
            let heading = tok.count(sections[*s].last().map_or("", String::as_str))?;
            Ok(heading + block_tokens[r.clone()].iter().sum::<usize>())
        };
        let mut run = vec![spans[next].clone()];
        let mut used = block_tokens[spans[next].1.clone()].iter().sum::<usize>();
        next += 1;
        if used <= budget {
            while next < spans.len() {
                let n = size(&spans[next])?;
                if used + n > budget {
                    break;
                }
                used += n;
                run.push(spans[next].clone());
                next += 1;
            }
        }
        // The run's context is the path its sections share; the others' headings go inline.
        let mut shared: &[String] = &sections[first];
        for (s, _) in &run[1..] {
            let p = &sections[*s];
            let common = shared.iter().zip(p).take_while(|(a, b)| a == b).count();
            shared = &shared[..common];
        }
        let context = if run.len() > 1 { fitting_context(&title, shared, max_tokens, tok)?.0 } else { context };
        // Blocks become units: a block that fits is one unit; one that does not is its lines,
        // and a line that does not fit is its token spans.
        let mut units: Vec<Unit> = Vec::new();
        for (k, (s, range)) in run.iter().enumerate() {
            if k > 0 {
                let heading = sections[*s][shared.len()..].join(" › ");
                let n = tok.count(&heading)?;
                units.push(Unit::Text(Line { text: heading, tokens: n }, true));
            }
            for (b, &n) in blocks[range.clone()].iter().zip(&block_tokens[range.clone()]) {
                if n <= budget {
                    units.push(Unit::Text(Line { text: b.lines.join("\n"), tokens: n }, true));
                    continue;
                }
                // A block too large for one chunk starts a chunk of its own.
                units.push(Unit::Break);
                for l in &b.lines {
                    let n = tok.count(l)?;
                    if n <= budget {
                        units.push(Unit::Text(Line { text: l.clone(), tokens: n }, false));
                    } else {
                        for sp in tok.spans(l, budget, overlap)? {
                            units.push(Unit::Text(
                                Line { text: l[sp.start..sp.end].to_string(), tokens: sp.tokens },
                                false,
                            ));
                        }
                    }
                }
            }
        }
        pack_units(&context, units, budget, overlap, &mut chunks);
    }
    Ok(chunks)
}

/// The context line of `section` and its token count, taking at most a quarter of the budget:
/// the full path, else the title alone, else nothing.
fn fitting_context<T: Tokens>(
    title: &str,
    section: &[String],
    max_tokens: usize,
    tok: &T,
) -> Result<(String, usize), T::Error> {
    for candidate in [context_line(title, section), context_line(title, &[])] {
        let n = tok.count(&candidate)?;
        if n <= max_tokens / 4 {
            return Ok((candidate, n));
        }
    }
    Ok((String::new(), 0))
}

/// What packing places: text (a whole block, or a line of a split one), or the start of a split
/// block (which begins a new chunk).
enum Unit {
    Text(Line, bool),
    Break,
}

/// Greedy packing of one section's units; whole blocks are joined by a blank line, lines of a
/// split block by a newline. A chunk continuing a split block repeats the previous one's last
/// lines up to `overlap` tokens.
fn pack_units(context: &str, units: Vec<Unit>, budget: usize, overlap: usize, out: &mut Vec<String>) {
    let mut body: Vec<(Line, bool)> = Vec::new();
    let mut used = 0usize;
    let emit = |body: &[(Line, bool)], out: &mut Vec<String>| {
        let mut s =
            String::with_capacity(context.len() + 1 + body.iter().map(|(l, _)| l.text.len() + 2).sum::<usize>());
        if !context.is_empty() {
            s.push_str(context);
            s.push('\n');
        }
        for (k, (l, whole)) in body.iter().enumerate() {
            if k > 0 {
                s.push_str(if *whole || body[k - 1].1 { "\n\n" } else { "\n" });
            }
            s.push_str(&l.text);
        }
        out.push(s);
    };
    let mut fresh = 0usize; // units in `body` not carried over from the previous chunk
    for unit in units {
        let (line, whole) = match unit {
            Unit::Text(line, whole) => (line, whole),
            Unit::Break => {
                if fresh > 0 {
                    emit(&body, out);
                }
                body.clear();
                (used, fresh) = (0, 0);
                continue;
            }
        };
        {
            if used + line.tokens > budget && fresh > 0 {
                emit(&body, out);
                // Carry the tail, whole lines only, up to `overlap` tokens.
                let mut carried = Vec::new();
                let mut t = 0;
                for (l, w) in body.drain(..).rev() {
                    if t + l.tokens > overlap || t + l.tokens + line.tokens > budget {
                        break;
                    }
                    t += l.tokens;
                    carried.push((l, w));
                }
                carried.reverse();
                body = carried;
                used = t;
                fresh = 0;
            }
            used += line.tokens;
            body.push((line, whole));
            fresh += 1;
        }
    }
    if fresh > 0 {
        emit(&body, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whitespace tokenizer: one token per word.
    struct Words;
    impl Tokens for Words {
        type Error = std::convert::Infallible;
        fn count(&self, text: &str) -> Result<usize, Self::Error> {
            Ok(text.split_whitespace().count())
        }
        fn spans(&self, text: &str, max: usize, overlap: usize) -> Result<Vec<TokenSpan>, Self::Error> {
            let words: Vec<(usize, usize)> = text
                .split_whitespace()
                .map(|w| {
                    let start = w.as_ptr() as usize - text.as_ptr() as usize;
                    (start, start + w.len())
                })
                .collect();
            let mut out = Vec::new();
            let mut first = 0;
            while first < words.len() {
                let last = (first + max).min(words.len());
                out.push(TokenSpan { start: words[first].0, end: words[last - 1].1, tokens: last - first });
                if last == words.len() {
                    break;
                }
                first = last - overlap.min(max - 1);
            }
            Ok(out)
        }
    }

    fn chunk(text: &str, max: usize, overlap: usize) -> Vec<String> {
        match chunk_document("docs/guide.md", text, max, overlap, &Words) {
            Ok(c) => c,
            Err(e) => match e {},
        }
    }

    #[test]
    fn a_section_starts_a_chunk_unless_it_fits_whole_beside_the_previous_one() {
        let ten = |w: &str| vec![w; 10].join(" ");
        let md = format!("# Guide\n\n{}\n\n## Install\n\n{}\n\n## Remove\n\n{}\n", ten("a"), ten("b"), ten("c"));
        // Room for all: one chunk, the later sections under their headings.
        let c = chunk(&md, 60, 0);
        assert_eq!(c, [format!("Guide\n{}\n\nInstall\n\n{}\n\nRemove\n\n{}", ten("a"), ten("b"), ten("c"))]);
        // Room for a section at a time (a context of 3 tokens leaves 17): each its own chunk,
        // named by its path.
        let c = chunk(&md, 20, 0);
        assert_eq!(
            c,
            [
                format!("Guide\n{}", ten("a")),
                format!("Guide › Install\n{}", ten("b")),
                format!("Guide › Remove\n{}", ten("c"))
            ]
        );
    }

    #[test]
    fn small_blocks_pack_together_and_a_large_one_splits_between_lines() {
        let md = "# T\n\na b\n\nc d\n\n```\nl1 x\nl2 x\nl3 x\nl4 x\n```\n";
        let c = chunk(md, 7, 0);
        // Context "T" is 1 token: bodies of at most 6.
        assert_eq!(c[0], "T\na b\n\nc d");
        assert!(c[1..].iter().all(|x| x.starts_with("T\n")));
        assert!(c[1..].iter().all(|x| x.split_whitespace().count() <= 7), "{c:?}");
        let rejoined: Vec<&str> = c[1..].iter().flat_map(|x| x.lines().skip(1)).collect();
        assert_eq!(rejoined, ["```", "l1 x", "l2 x", "l3 x", "l4 x", "```"], "no line split, none lost");
    }

    #[test]
    fn a_line_over_budget_is_split_by_tokens_and_overlap_repeats_whole_lines() {
        let long = (0..30).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
        let c = chunk(&long, 10, 2);
        assert!(c.len() >= 3);
        assert!(c.iter().all(|x| x.starts_with("guide\n")), "title from the path");
        assert!(c.iter().all(|x| x.split_whitespace().count() <= 10), "{c:?}");
        let lines = "p1 a\np2 b\np3 c\np4 d\np5 e\np6 f";
        let c = chunk(lines, 7, 2);
        // Body budget 6 = three lines; the next chunk repeats the last line (2 tokens).
        assert_eq!(c[0], "guide\np1 a\np2 b\np3 c");
        assert_eq!(c[1], "guide\np3 c\np4 d\np5 e");
    }

    #[test]
    fn blank_text_gives_no_chunks() {
        assert!(chunk("\n \n\t\n", 10, 0).is_empty());
    }
}
