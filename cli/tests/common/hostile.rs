//! Hostile inputs, built in the test so nothing binary is committed.
#![allow(dead_code)]

use std::io::Write;

/// A minimal PDF whose page refers to `extra` (object 5) and whose content is `content` (object 4,
/// a full stream object body).
pub fn pdf(content: &[u8], extra: &[u8]) -> Vec<u8> {
    let objs: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << >> /X 5 0 R >>".to_vec(),
        content.to_vec(),
        extra.to_vec(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objs.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(o);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes());
    for o in offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objs.len() + 1).as_bytes(),
    );
    out
}

const EMPTY_STREAM: &[u8] = b"<< /Length 0 >>\nstream\n\nendstream";

/// An object nested `depth` arrays deep (`[[[…]]]`).
pub fn deep_pdf(depth: usize) -> Vec<u8> {
    let mut nested = "[".repeat(depth).into_bytes();
    nested.extend("]".repeat(depth).into_bytes());
    pdf(EMPTY_STREAM, &nested)
}

/// Nested dictionaries, `depth` deep.
pub fn deep_dict_pdf(depth: usize) -> Vec<u8> {
    let mut nested = "<< /A ".repeat(depth).into_bytes();
    nested.extend(">>".repeat(depth).into_bytes());
    pdf(EMPTY_STREAM, &nested)
}

/// A page whose content stream inflates to `mib` MiB of zeros (a decompression bomb).
pub fn bomb_pdf(mib: usize) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..mib {
        z.write_all(&zeros).expect("deflate");
    }
    let data = z.finish().expect("deflate");
    let mut content = format!("<< /Length {} /Filter /FlateDecode >>\nstream\n", data.len()).into_bytes();
    content.extend_from_slice(&data);
    content.extend_from_slice(b"\nendstream");
    pdf(&content, b"null")
}

/// `n` nested `<div>`s.
pub fn nested_divs(n: usize) -> Vec<u8> {
    format!("{}x{}", "<div>".repeat(n), "</div>".repeat(n)).into_bytes()
}

/// One table row of `cells` cells.
pub fn wide_table(cells: usize) -> Vec<u8> {
    format!("<html><body><table><tr>{}</tr></table></body></html>", "<td>x</td>".repeat(cells)).into_bytes()
}

/// `n` tables nested in each other's cells.
pub fn nested_tables(n: usize) -> Vec<u8> {
    format!("{}x{}", "<table><tr><td>".repeat(n), "</td></tr></table>".repeat(n)).into_bytes()
}
