//! Shared inputs for PRAG's criterion benchmarks: texts, the embedder and seeded collections.
// A benchmark's fixture that cannot be built stops the run, loudly.
#![allow(clippy::expect_used, clippy::panic)]

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

pub use prag_testkit::model_dir;

/// One matmul thread per embedder worker, as `prag node` sets it. Call it first thing on the
/// benchmark's main thread: it sets an environment variable, which is sound only while no other
/// thread runs (criterion runs benchmarks on that thread).
pub fn one_matmul_thread_per_worker() {
    // SAFETY: the caller is the only thread (above).
    #[allow(unsafe_code)]
    unsafe {
        prag_embedder::use_one_matmul_thread_per_worker()
    };
}

/// What a node benchmark runs on: [`one_matmul_thread_per_worker`], a 2-thread runtime (the
/// machine benchmarks quote has 2 cores) and [`cpu_embedder`].
pub fn node_setup() -> (tokio::runtime::Runtime, prag_embedder::Embedder) {
    one_matmul_thread_per_worker();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    (rt, cpu_embedder())
}

/// The embedder benchmarks use: the model on the CPU.
pub fn cpu_embedder() -> prag_embedder::Embedder {
    let mut config = prag_embedder::EmbedderConfig::new(model_dir());
    config.device = prag_embedder::DeviceSpec::Cpu;
    prag_embedder::Embedder::load(config).expect("the model loads (scripts/test fetches it)")
}

/// A collection written through the store's own API before a node opens the data directory.
pub struct Seed<'a> {
    pub name: &'a str,
    pub documents: usize,
    pub chunks_per_document: usize,
    /// Every chunk's text.
    pub text: &'a str,
    /// Documents are `{prefix}/{n}.md`.
    pub prefix: &'a str,
}

impl Seed<'_> {
    /// Writes the collection into `data` (its master key made if new), owned by `owner`, 4 shards
    /// and 2 copies; vectors are random unit vectors, since nothing measured looks at what they
    /// mean. Returns the bytes of ciphertext written.
    pub fn write(&self, data: &std::path::Path, owner: &k256::ecdsa::VerifyingKey) -> u64 {
        use prag_node::store::{CollectionMeta, CollectionStore, DocumentHeader, NewChunk};
        use rand::Rng;
        let fail = |what: &str, e: &dyn std::fmt::Display| -> ! { panic!("seeding {}: {what}: {e}", self.name) };
        let collections = data.join("collections");
        std::fs::create_dir_all(&collections).unwrap_or_else(|e| fail("data directory", &e));
        let (master, _) = prag_node::crypto::MasterKey::load_or_create(&data.join("master.key"))
            .unwrap_or_else(|e| fail("master key", &e));
        let meta = CollectionMeta {
            name: self.name.to_string(),
            owner: prag_proto::account::public_key_hex(owner),
            created_at: 0,
            shards: 4,
            replicas: 2,
            grants_version: 0,
            tombstones: Default::default(),
        };
        let store = CollectionStore::create(&master, &collections, &meta).unwrap_or_else(|e| fail("create", &e));
        let mut rng = rand::thread_rng();
        for d in 0..self.documents {
            let vectors: Vec<Vec<f32>> = (0..self.chunks_per_document)
                .map(|_| {
                    let v: Vec<f32> = (0..384).map(|_| rng.r#gen::<f32>() - 0.5).collect();
                    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                    v.into_iter().map(|x| x / n).collect()
                })
                .collect();
            let sparse = store.term_key().document_vector(self.text);
            let chunks: Vec<NewChunk<'_>> =
                vectors.iter().map(|v| NewChunk { text: self.text, vector: v, sparse: &sparse }).collect();
            let path = format!("{}/{d}.md", self.prefix);
            let header = DocumentHeader {
                path: path.clone(),
                fingerprint: store.fingerprint(&path),
                chunks: self.chunks_per_document as u32,
                created_at: 0,
                key_version: 1,
                version: 1,
            };
            store.write_document(&store.document_id(&path), &header, &chunks).unwrap_or_else(|e| fail("write", &e));
        }
        let docs = std::fs::read_dir(collections.join(&store.id).join("docs")).unwrap_or_else(|e| fail("read", &e));
        docs.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum()
    }
}

/// A standard normal sample (Box-Muller), for synthetic embeddings.
pub fn normal(rng: &mut impl rand::Rng) -> f32 {
    let (u1, u2): (f32, f32) = (rng.r#gen::<f32>().max(1e-9), rng.r#gen());
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
}

/// `v` scaled to length 1.
pub fn unit(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.into_iter().map(|x| x / n).collect()
}

/// The `q` quantile of latencies sorted ascending (nearest rank).
pub fn percentile(sorted: &[std::time::Duration], q: f64) -> std::time::Duration {
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}
