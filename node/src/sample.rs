//! A small fictional corpus (clinic leaflets, a records-retention policy, an archive log) that
//! `prag demo` searches and the benchmarks ingest.

/// (file name, text) of each sample document.
pub const CORPUS: &[(&str, &str)] = &[
    ("mri-preparation.md", include_str!("../assets/demo/mri-preparation.md")),
    ("records-retention.md", include_str!("../assets/demo/records-retention.md")),
    ("guest-wifi.md", include_str!("../assets/demo/guest-wifi.md")),
    ("lab-results.md", include_str!("../assets/demo/lab-results.md")),
    ("archive-digitisation.md", include_str!("../assets/demo/archive-digitisation.md")),
    ("discharge-advice.md", include_str!("../assets/demo/discharge-advice.md")),
];
