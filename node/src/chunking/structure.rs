//! A document's structure, from its text: Markdown (ATX and setext headings, fenced code, tables,
//! lists) and man pages as `man` renders them (unindented upper-case section names, option items).
//! Plain text falls out as paragraphs. Pure and linear in the text; nothing here can fail.

/// What a block is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    Paragraph,
    /// A list item or a man page's option entry.
    Item,
    /// Fenced code or a table: split only between lines.
    Verbatim,
}

/// A run of lines that belongs together, under a section path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub kind: BlockKind,
    pub lines: Vec<String>,
    /// Index into [`Structure::sections`].
    pub section: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Structure {
    pub title: Option<String>,
    /// Section paths (outermost first); index 0 is the part before any heading (empty path).
    pub sections: Vec<Vec<String>>,
    pub blocks: Vec<Block>,
}

/// Longest heading kept, in characters (a longer "heading" is prose).
const MAX_HEADING_CHARS: usize = 120;

fn atx_heading(line: &str) -> Option<(usize, String)> {
    let t = line.trim_start();
    if line.len() - t.len() > 3 {
        return None;
    }
    let level = t.bytes().take_while(|&b| b == b'#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &t[level..];
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return None;
    }
    let title = rest.trim().trim_end_matches('#').trim();
    (!title.is_empty()).then(|| (level, clip(title)))
}

fn setext_level(line: &str) -> Option<usize> {
    let t = line.trim();
    if t.len() >= 3 && t.bytes().all(|b| b == b'=') {
        Some(1)
    } else if t.len() >= 3 && t.bytes().all(|b| b == b'-') {
        Some(2)
    } else {
        None
    }
}

/// A man page section name: unindented, upper case, short ("NAME", "SEE ALSO", "EXIT STATUS").
fn man_section(line: &str) -> Option<String> {
    if line.starts_with([' ', '\t']) || line.len() > 40 {
        return None;
    }
    let t = line.trim();
    let letters = t.chars().filter(|c| c.is_alphabetic()).count();
    let ok = letters >= 3
        && t.chars().all(|c| c.is_uppercase() || c.is_ascii_digit() || matches!(c, ' ' | '-' | '/' | '&'))
        && t.chars().any(|c| c.is_uppercase());
    ok.then(|| t.to_string())
}

/// A man page's first line: `CP(1)   User Commands   CP(1)`.
fn man_header(line: &str) -> Option<String> {
    let first = line.split_whitespace().next()?;
    let open = first.find('(')?;
    (first.ends_with(')') && open > 0 && line.split_whitespace().last() == Some(first)).then(|| first.to_string())
}

fn is_item_start(line: &str) -> bool {
    let t = line.trim_start();
    if t.starts_with("- ") || t.starts_with("* ") || t.starts_with("+ ") {
        return true;
    }
    // An option entry of a man page or a help text: an indented line starting with a dash.
    if line.starts_with([' ', '\t']) && t.starts_with('-') && t.len() > 1 && !t.starts_with("--- ") {
        return true;
    }
    let digits = t.bytes().take_while(|b| b.is_ascii_digit()).count();
    digits > 0 && digits < 4 && (t[digits..].starts_with(". ") || t[digits..].starts_with(") "))
}

fn clip(s: &str) -> String {
    s.chars().take(MAX_HEADING_CHARS).collect()
}

/// Reads `text`'s structure.
pub fn parse(text: &str) -> Structure {
    let lines: Vec<&str> = text.lines().collect();
    let mut st = Structure { title: None, sections: vec![Vec::new()], blocks: Vec::new() };
    let mut path: Vec<(usize, String)> = Vec::new();
    let mut current: Option<Block> = None;
    let mut fence: Option<String> = None;
    let flush = |current: &mut Option<Block>, st: &mut Structure| {
        if let Some(b) = current.take() {
            if b.lines.iter().any(|l| !l.trim().is_empty()) {
                st.blocks.push(b);
            }
        }
    };
    let enter = |level: usize, title: String, path: &mut Vec<(usize, String)>, st: &mut Structure| {
        while path.last().is_some_and(|(l, _)| *l >= level) {
            path.pop();
        }
        path.push((level, title));
        st.sections.push(path.iter().map(|(_, t)| t.clone()).collect());
        st.sections.len() - 1
    };
    let mut section = 0usize;
    let mut i = 0;
    if let Some(h) = lines.first().and_then(|l| man_header(l)) {
        st.title = Some(h);
        i = 1;
    }
    while i < lines.len() {
        let line = lines[i];
        if let Some(marker) = &fence {
            let block = current.get_or_insert_with(|| Block { kind: BlockKind::Verbatim, lines: Vec::new(), section });
            block.lines.push(line.to_string());
            if line.trim_start().starts_with(marker.as_str()) {
                fence = None;
                flush(&mut current, &mut st);
            }
            i += 1;
            continue;
        }
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            flush(&mut current, &mut st);
            fence = Some(trimmed[..3].to_string());
            current = Some(Block { kind: BlockKind::Verbatim, lines: vec![line.to_string()], section });
            i += 1;
            continue;
        }
        let heading = atx_heading(line)
            .or_else(|| {
                let next = lines.get(i + 1)?;
                let level = setext_level(next)?;
                let t = line.trim();
                (!t.is_empty() && current.as_ref().is_none_or(|b| b.lines.is_empty()) && t.len() <= MAX_HEADING_CHARS)
                    .then(|| {
                        i += 1;
                        (level, clip(t))
                    })
            })
            .or_else(|| man_section(line).map(|t| (1, t)));
        if let Some((level, title)) = heading {
            flush(&mut current, &mut st);
            if level == 1 && st.title.is_none() && path.is_empty() && atx_heading(line).is_some() {
                st.title = Some(title.clone());
            }
            section = enter(level, title, &mut path, &mut st);
            i += 1;
            continue;
        }
        if trimmed.is_empty() {
            // A blank line ends a paragraph; inside an item it ends the item only if what
            // follows is not indented (a continuation).
            let continues = current.as_ref().is_some_and(|b| b.kind == BlockKind::Item)
                && lines.get(i + 1).is_some_and(|n| n.starts_with([' ', '\t']) && !is_item_start(n));
            if !continues {
                flush(&mut current, &mut st);
            } else if let Some(b) = current.as_mut() {
                b.lines.push(String::new());
            }
            i += 1;
            continue;
        }
        let table = trimmed.starts_with('|');
        let kind = if table {
            BlockKind::Verbatim
        } else if is_item_start(line) {
            BlockKind::Item
        } else {
            BlockKind::Paragraph
        };
        let starts_new = match &current {
            None => true,
            Some(b) => (kind == BlockKind::Item) || (b.kind == BlockKind::Verbatim) != table,
        };
        if starts_new {
            flush(&mut current, &mut st);
            current = Some(Block { kind, lines: Vec::new(), section });
        }
        if let Some(b) = current.as_mut() {
            b.lines.push(line.to_string());
        }
        i += 1;
    }
    flush(&mut current, &mut st);
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(st: &Structure) -> Vec<(BlockKind, Vec<String>, String)> {
        st.blocks.iter().map(|b| (b.kind, st.sections[b.section].clone(), b.lines.join("\n"))).collect()
    }

    #[test]
    fn markdown_headings_give_section_paths_and_the_title() {
        let md = "# Tar guide\n\nIntro text.\n\n## Create\n\nMake one.\n\n### Options\n\n- `-c` create\n- `-f` file\n\n## Extract\nSetext\n------\nbody\n";
        let st = parse(md);
        assert_eq!(st.title.as_deref(), Some("Tar guide"));
        let t = texts(&st);
        assert_eq!(t[0], (BlockKind::Paragraph, vec!["Tar guide".into()], "Intro text.".into()));
        assert_eq!(t[1].1, ["Tar guide", "Create"]);
        assert_eq!(
            t[2],
            (BlockKind::Item, vec!["Tar guide".into(), "Create".into(), "Options".into()], "- `-c` create".into())
        );
        assert_eq!(t[3].2, "- `-f` file");
        // A setext "----" heading is level 2: it replaces "Extract", like "## Setext" would.
        assert_eq!(t[4], (BlockKind::Paragraph, vec!["Tar guide".into(), "Setext".into()], "body".into()));
    }

    #[test]
    fn code_fences_and_tables_are_verbatim_and_keep_their_lines() {
        let md = "text\n```sh\n# not a heading\n\nls -l\n```\n| a | b |\n|---|---|\n| 1 | 2 |\nafter\n";
        let t = texts(&parse(md));
        assert_eq!(t[0].2, "text");
        assert_eq!(t[1], (BlockKind::Verbatim, vec![], "```sh\n# not a heading\n\nls -l\n```".into()));
        assert_eq!(t[2], (BlockKind::Verbatim, vec![], "| a | b |\n|---|---|\n| 1 | 2 |".into()));
        assert_eq!(t[3].2, "after");
    }

    #[test]
    fn man_pages_give_sections_and_option_items() {
        let man = "CP(1)                  User Commands                  CP(1)\n\nSYNOPSIS\n       cp [OPTION]... SOURCE DEST\n\nDESCRIPTION\n       Copy SOURCE to DEST.\n\n       -a, --archive\n              same as -dR --preserve=all\n\n              more about it\n\n       -b     like --backup\n\nSEE ALSO\n       mv(1)\n";
        let st = parse(man);
        assert_eq!(st.title.as_deref(), Some("CP(1)"));
        let t = texts(&st);
        assert_eq!(t[0].1, ["SYNOPSIS"]);
        assert_eq!(t[1], (BlockKind::Paragraph, vec!["DESCRIPTION".into()], "       Copy SOURCE to DEST.".into()));
        assert_eq!(t[2].0, BlockKind::Item);
        assert!(t[2].2.contains("--archive") && t[2].2.contains("more about it"), "{:?}", t[2]);
        assert_eq!(t[3].2.trim(), "-b     like --backup");
        assert_eq!(t[4].1, ["SEE ALSO"]);
    }

    #[test]
    fn plain_text_is_paragraphs_and_hostile_text_does_not_panic() {
        let t = texts(&parse("one\ntwo\n\nthree"));
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].2, "one\ntwo");
        for odd in ["", "\n\n\n", "```", "#", "# \n", "======\n", "|", "1. ", "\u{feff}# x", "CP(\n"] {
            let _ = parse(odd);
        }
        let unclosed = parse("```\ncode\nmore");
        assert_eq!(unclosed.blocks.len(), 1);
    }
}
