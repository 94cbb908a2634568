//! Shared inputs for PRAG's criterion benchmarks.

/// Sentences from realistic clinical and archival prose; [`paragraphs`] joins them into texts.
const SENTENCES: &[&str] = &[
    "Adult patient records are kept for eight years after the last treatment.",
    "Please arrive twenty minutes before your appointment and bring a list of your medicines.",
    "The scan itself is painless but noisy, and ear plugs are provided.",
    "Urgent abnormal results are telephoned to the requesting doctor the same day.",
    "Water damage was found in the baptism registers of 1871 and 1872.",
    "Do not drive for one week after an angioplasty.",
    "Keep the wound clean and dry for forty-eight hours and call the ward if it swells.",
    "The guest network is separate from the clinical network and cannot reach patient records.",
    "Maternity records are kept for twenty-five years.",
    "Scans are stored encrypted and the originals returned to the climate-controlled store.",
    "Your GP receives the results electronically and will contact you if follow-up is needed.",
    "Tell the radiographer if you have a pacemaker or any metal fragments in your body.",
];

/// `n` texts of about `sentences` sentences each (two sentences ≈ 40 tokens), all different.
pub fn paragraphs(n: usize, sentences: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let mut text = String::new();
            for j in 0..sentences {
                let s = SENTENCES[(i * 7 + j * 5) % SENTENCES.len()];
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(s);
            }
            format!("{text} (ref {i})")
        })
        .collect()
}

/// The model directory benchmarks use: `$PRAG_MODEL` or the cache.
pub fn model_dir() -> std::path::PathBuf {
    std::env::var_os("PRAG_MODEL").map(std::path::PathBuf::from).unwrap_or_else(prag_embedder::fetch::default_model_dir)
}
