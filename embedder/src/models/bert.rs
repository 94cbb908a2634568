//! BERT encoder forward pass (the architecture of all-MiniLM-L6-v2 and most sentence-transformers).
//!
//! Written here rather than taken from candle-transformers for two reasons: the attention mask is
//! built with a *finite* large negative value selected per position (candle-transformers multiplies
//! by `f32::MIN`, which is −inf in f16 and turns 0 × −inf into NaN), and Q, K and V are one fused
//! projection, so each layer runs one large matmul instead of three.
//!
//! Two forward passes: [`Bert::forward`] over a padded `[batch, seq]` batch with candle's ops
//! (every device and dtype), and, for f32 on the CPU, [`Bert::forward_packed`] over the texts'
//! tokens laid end to end with no padding: the linear layers then compute no padding rows at all
//! and attention is one kernel per text and head (`attention`).

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Embedding, LayerNorm, VarBuilder};

use crate::error::Result;
use crate::model_dir::BertConfig;
use crate::models::attention::PackedAttention;
use crate::models::cpu_ops::{BiasResidual, BiasThen};
use crate::models::int8::{QuantizedLinear, QuantizedWeight};

/// A linear layer kept as weight and bias so the bias can be fused into the next element-wise step.
struct Dense {
    weight: Tensor,
    bias: Tensor,
    /// The weight in 8-bit integers, when the model runs in int8 (`--dtype int8`).
    int8: Option<QuantizedWeight>,
}

impl Dense {
    fn load(vb: VarBuilder<'_>, input: usize, output: usize) -> candle_core::Result<Self> {
        Ok(Dense { weight: vb.get((output, input), "weight")?, bias: vb.get(output, "bias")?, int8: None })
    }

    /// Quantizes the weight; from then on [`Dense::matmul`] runs in int8.
    fn quantize(&mut self) -> candle_core::Result<()> {
        let (outputs, inputs) = self.weight.dims2()?;
        let values = self.weight.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        self.int8 = Some(QuantizedWeight::quantize(&values, outputs, inputs).map_err(candle_core::Error::Msg)?);
        Ok(())
    }

    /// `x @ Wᵀ` without the bias; `x` is `[rows, in]`.
    fn matmul(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match &self.int8 {
            Some(q) => x.contiguous()?.apply_op1_no_bwd(&QuantizedLinear(q)),
            None => x.matmul(&self.weight.t()?),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Activation {
    GeluErf,
    GeluTanh,
    Relu,
}

impl Activation {
    fn from_config(name: &str) -> Self {
        match name {
            "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            _ => Activation::GeluErf,
        }
    }

    fn apply(self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Activation::GeluErf => x.gelu_erf(),
            Activation::GeluTanh => x.gelu(),
            Activation::Relu => x.relu(),
        }
    }
}

struct Embeddings {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    norm: LayerNorm,
}

struct Layer {
    /// Q, K and V projections in one matrix; Q's rows are pre-scaled by 1/√head_dim.
    qkv: Dense,
    attn_out: Dense,
    attn_norm: LayerNorm,
    intermediate: Dense,
    output: Dense,
    out_norm: LayerNorm,
}

/// A loaded BERT encoder.
pub struct Bert {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
    activation: Activation,
    dtype: DType,
    device: Device,
    /// f32 on the CPU: use the fused kernels of `cpu_ops`.
    fused_cpu: bool,
    /// The linear layers run in int8 (`int8`); the rest stays f32.
    int8: bool,
}

fn layer_norm(vb: VarBuilder<'_>, size: usize, eps: f64) -> candle_core::Result<LayerNorm> {
    // Older checkpoints name the parameters gamma/beta.
    let (w, b) = if vb.contains_tensor("weight") {
        (vb.get(size, "weight")?, vb.get(size, "bias")?)
    } else {
        (vb.get(size, "gamma")?, vb.get(size, "beta")?)
    };
    Ok(LayerNorm::new(w, b, eps))
}

impl Bert {
    /// Builds the encoder from a safetensors `VarBuilder`. Accepts weights with or without the
    /// `bert.` prefix. `int8`: quantize every linear layer of the encoder (f32 on the CPU only);
    /// embeddings, norms and attention stay f32.
    pub fn load(vb: VarBuilder<'_>, c: &BertConfig, int8: bool) -> candle_core::Result<Self> {
        let vb = if vb.contains_tensor("embeddings.word_embeddings.weight") { vb } else { vb.pp("bert") };
        let h = c.hidden_size;
        let e = vb.pp("embeddings");
        let embeddings = Embeddings {
            word: Embedding::new(e.get((c.vocab_size, h), "word_embeddings.weight")?, h),
            position: Embedding::new(e.get((c.max_position_embeddings, h), "position_embeddings.weight")?, h),
            token_type: Embedding::new(e.get((c.type_vocab_size, h), "token_type_embeddings.weight")?, h),
            norm: layer_norm(e.pp("LayerNorm"), h, c.layer_norm_eps)?,
        };
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{i}"));
            let a = l.pp("attention");
            let s = a.pp("self");
            let scale = 1.0 / ((h / c.num_attention_heads) as f64).sqrt();
            let q = Dense::load(s.pp("query"), h, h)?;
            let (k, v) = (Dense::load(s.pp("key"), h, h)?, Dense::load(s.pp("value"), h, h)?);
            let qkv = Dense {
                weight: Tensor::cat(&[&(q.weight * scale)?, &k.weight, &v.weight], 0)?,
                bias: Tensor::cat(&[&(q.bias * scale)?, &k.bias, &v.bias], 0)?,
                int8: None,
            };
            let mut layer = Layer {
                qkv,
                attn_out: Dense::load(a.pp("output.dense"), h, h)?,
                attn_norm: layer_norm(a.pp("output.LayerNorm"), h, c.layer_norm_eps)?,
                intermediate: Dense::load(l.pp("intermediate.dense"), h, c.intermediate_size)?,
                output: Dense::load(l.pp("output.dense"), c.intermediate_size, h)?,
                out_norm: layer_norm(l.pp("output.LayerNorm"), h, c.layer_norm_eps)?,
            };
            if int8 {
                for dense in [&mut layer.qkv, &mut layer.attn_out, &mut layer.intermediate, &mut layer.output] {
                    dense.quantize()?;
                }
            }
            layers.push(layer);
        }
        let fused_cpu = vb.device().is_cpu() && vb.dtype() == DType::F32;
        if int8 && !fused_cpu {
            candle_core::bail!("int8 runs in f32 on the CPU only");
        }
        Ok(Bert {
            embeddings,
            layers,
            heads: c.num_attention_heads,
            head_dim: h / c.num_attention_heads,
            activation: Activation::from_config(&c.hidden_act),
            dtype: vb.dtype(),
            device: vb.device().clone(),
            fused_cpu,
            int8,
        })
    }

    /// Whether the linear layers run in int8.
    pub fn is_int8(&self) -> bool {
        self.int8
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Word + position + token-type embeddings (token type 0 throughout), normalised; `ids` and
    /// `positions` of one shape, padded `[batch, seq]` or packed `[rows]`.
    fn embed(&self, ids: &Tensor, positions: &Tensor) -> candle_core::Result<Tensor> {
        let types = ids.zeros_like()?;
        let x = self
            .embeddings
            .word
            .forward(ids)?
            .add(&self.embeddings.position.forward(positions)?)?
            .add(&self.embeddings.token_type.forward(&types)?)?;
        self.embeddings.norm.forward(&x)
    }

    /// Whether [`Bert::forward_packed`] runs here (f32 on the CPU).
    pub fn packs(&self) -> bool {
        self.fused_cpu
    }

    /// The forward pass over a packed batch: `ids` holds every text's tokens one text after
    /// another; `offsets` the row where each text starts, then `ids.len()`. Returns the last hidden
    /// state `[ids.len(), hidden]`. Only where [`Bert::packs`].
    pub fn forward_packed(&self, ids: &[u32], offsets: &[usize]) -> Result<Tensor> {
        if !self.fused_cpu {
            return Err(crate::error::EmbedError::Compute(
                "the packed forward pass runs only in f32 on the CPU".into(),
            ));
        }
        let rows = ids.len();
        let mut positions: Vec<u32> = Vec::with_capacity(rows);
        for w in offsets.windows(2) {
            positions.extend(0..w[1].saturating_sub(w[0]) as u32);
        }
        if offsets.first() != Some(&0) || positions.len() != rows {
            return Err(crate::error::EmbedError::Compute(format!(
                "packed batch offsets {offsets:?} do not cover its {rows} tokens"
            )));
        }
        let ids = Tensor::from_slice(ids, rows, &self.device)?;
        let positions = Tensor::from_vec(positions, rows, &self.device)?;
        let mut x = self.embed(&ids, &positions)?;
        let attention = PackedAttention { offsets, heads: self.heads, head_dim: self.head_dim };
        for l in &self.layers {
            let qkv = self.add_bias(&l.qkv.matmul(&x)?, &l.qkv.bias)?; // [rows, 3h]
            let ctx = qkv.apply_op1_no_bwd(&attention)?; // [rows, h]
            x = self.after_attention(l, &ctx, &x)?;
        }
        Ok(x)
    }

    /// `ids`: `[batch, seq]` u32; `mask`: `[batch, seq]` f32 of 0/1 (1 = real token).
    /// Returns the last hidden state `[batch, seq, hidden]` in the model's dtype.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (batch, seq) = ids.dims2()?;
        let positions = Tensor::arange(0u32, seq as u32, &self.device)?.unsqueeze(0)?.broadcast_as((batch, seq))?;
        let mut x = self.embed(ids, &positions)?;

        // Additive attention bias: 0 for real tokens, a finite large negative number for padding,
        // selected (not multiplied) so no 0 × −inf can appear in any dtype.
        let neg: f32 = if self.dtype == DType::F16 { -6.0e4 } else { -1.0e30 };
        let zeros = Tensor::zeros((batch, seq), DType::F32, &self.device)?;
        let negs = Tensor::full(neg, (batch, seq), &self.device)?;
        // Expanded once to the scores' shape so each layer adds two contiguous tensors.
        let bias = mask
            .ge(0.5)?
            .where_cond(&zeros, &negs)?
            .to_dtype(self.dtype)?
            .reshape((batch, 1, 1, seq))?
            .broadcast_as((batch, self.heads, seq, seq))?
            .contiguous()?;

        // Linear layers run on [batch·seq, hidden] so each is one large matmul.
        x = x.reshape((batch * seq, self.heads * self.head_dim))?;
        for layer in &self.layers {
            x = self.layer_forward(layer, &x, &bias, batch, seq)?;
        }
        Ok(x.reshape((batch, seq, self.heads * self.head_dim))?)
    }

    fn add_bias(&self, x: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
        if self.fused_cpu { x.apply_op2_no_bwd(bias, &BiasThen::Identity) } else { x.broadcast_add(bias) }
    }

    fn add_bias_residual(&self, x: &Tensor, bias: &Tensor, residual: &Tensor) -> candle_core::Result<Tensor> {
        if self.fused_cpu {
            x.apply_op3_no_bwd(bias, residual, &BiasResidual)
        } else {
            x.broadcast_add(bias)?.add(residual)
        }
    }

    fn add_bias_activate(&self, x: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
        match self.activation {
            Activation::GeluErf if self.fused_cpu => x.apply_op2_no_bwd(bias, &BiasThen::GeluErf),
            act => act.apply(&x.broadcast_add(bias)?),
        }
    }

    /// One encoder layer on `x`: `[batch·seq, hidden]`; `mask_bias`: `[batch, heads, seq, seq]`.
    fn layer_forward(&self, l: &Layer, x: &Tensor, mask_bias: &Tensor, batch: usize, seq: usize) -> Result<Tensor> {
        let (nh, hd) = (self.heads, self.head_dim);
        let hidden = nh * hd;
        let qkv = self.add_bias(&l.qkv.matmul(x)?, &l.qkv.bias)?; // [b·s, 3h]
        let qkv = qkv.reshape((batch, seq, 3, nh, hd))?.permute((2, 0, 3, 1, 4))?; // [3, b, nh, s, hd]
        let q = qkv.get(0)?.contiguous()?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        let scores = q.matmul(&k.t()?)?.add(mask_bias)?; // [b, nh, s, s]
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((batch * seq, hidden))?;
        self.after_attention(l, &ctx, x)
    }

    /// The rest of a layer once attention has given `ctx` (`[rows, hidden]`; `x`: its input):
    /// output projection, residual and norm, then the feed-forward block with its own.
    fn after_attention(&self, l: &Layer, ctx: &Tensor, x: &Tensor) -> Result<Tensor> {
        let attn = l.attn_norm.forward(&self.add_bias_residual(&l.attn_out.matmul(ctx)?, &l.attn_out.bias, x)?)?;
        let inter = self.add_bias_activate(&l.intermediate.matmul(&attn)?, &l.intermediate.bias)?;
        let out = l.out_norm.forward(&self.add_bias_residual(&l.output.matmul(&inter)?, &l.output.bias, &attn)?)?;
        Ok(out)
    }
}
