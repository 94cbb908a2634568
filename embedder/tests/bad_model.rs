//! Broken model directories: each is a clear error naming the file, never a panic.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::Path;

use prag_embedder::{DeviceSpec, EmbedError, Embedder, EmbedderConfig};

fn copy_model(to: &Path) {
    let from = common::model_dir();
    for f in
        ["config.json", "model.safetensors", "tokenizer.json", "sentence_bert_config.json", "1_Pooling/config.json"]
    {
        let dst = to.join(f);
        std::fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir");
        std::fs::copy(from.join(f), dst).expect("copy");
    }
}

fn load(dir: &Path) -> Result<Embedder, EmbedError> {
    let mut c = EmbedderConfig::new(dir);
    c.device = DeviceSpec::Cpu;
    Embedder::load(c)
}

fn err_text(r: Result<Embedder, EmbedError>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn missing_dir_and_files() {
    let tmp = tempfile::tempdir().expect("tmp");
    let missing = tmp.path().join("nope");
    assert!(err_text(load(&missing)).contains("does not exist"));

    copy_model(tmp.path());
    std::fs::remove_file(tmp.path().join("tokenizer.json")).expect("rm");
    let e = err_text(load(tmp.path()));
    assert!(e.contains("tokenizer.json") && e.contains("missing"), "{e}");
}

#[test]
fn truncated_weights() {
    let tmp = tempfile::tempdir().expect("tmp");
    copy_model(tmp.path());
    let w = tmp.path().join("model.safetensors");
    let bytes = std::fs::read(&w).expect("read");
    std::fs::write(&w, &bytes[..bytes.len() / 2]).expect("write");
    let e = err_text(load(tmp.path()));
    assert!(e.contains("model.safetensors"), "{e}");
}

#[test]
fn garbage_config_and_tokenizer() {
    let tmp = tempfile::tempdir().expect("tmp");
    copy_model(tmp.path());
    std::fs::write(tmp.path().join("config.json"), b"{not json").expect("write");
    let e = err_text(load(tmp.path()));
    assert!(e.contains("config.json"), "{e}");

    copy_model(tmp.path());
    std::fs::write(tmp.path().join("tokenizer.json"), b"\x00\x01binary").expect("write");
    let e = err_text(load(tmp.path()));
    assert!(e.contains("tokenizer.json"), "{e}");
}

#[test]
fn tokenizer_that_does_not_match_the_model() {
    let tmp = tempfile::tempdir().expect("tmp");
    copy_model(tmp.path());
    // Shrink the model's vocabulary so the tokenizer's ids would fall outside its embedding table.
    let cfg_path = tmp.path().join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg_path).expect("read")).expect("json");
    cfg["vocab_size"] = serde_json::json!(1000);
    std::fs::write(&cfg_path, serde_json::to_vec(&cfg).expect("ser")).expect("write");
    let e = err_text(load(tmp.path()));
    assert!(e.contains("tokenizer") && e.contains("does not match"), "{e}");
}

#[test]
fn weights_that_do_not_match_config() {
    let tmp = tempfile::tempdir().expect("tmp");
    copy_model(tmp.path());
    let cfg_path = tmp.path().join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg_path).expect("read")).expect("json");
    cfg["num_hidden_layers"] = serde_json::json!(12);
    std::fs::write(&cfg_path, serde_json::to_vec(&cfg).expect("ser")).expect("write");
    let e = err_text(load(tmp.path()));
    assert!(e.contains("model.safetensors") && e.contains("do not match"), "{e}");
}

#[test]
fn unknown_device_and_cuda_on_cpu_build() {
    assert!(matches!("npu".parse::<DeviceSpec>(), Err(EmbedError::UnknownDevice(_))));
    if !cfg!(feature = "cuda") {
        let mut c = EmbedderConfig::new(common::model_dir());
        c.device = DeviceSpec::Cuda(0);
        let e = err_text(Embedder::load(c));
        assert!(e.contains("no CUDA support"), "{e}");
    }
}
