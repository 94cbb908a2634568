//! Which device and number format the model runs in, as users spell them (`--device`, `--dtype`).

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device};

use crate::error::{EmbedError, Result};

/// `auto | cpu | cuda | cuda:N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// CUDA device 0 when this build has CUDA and a GPU answers, otherwise the CPU.
    #[default]
    Auto,
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = EmbedError;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceSpec::Auto),
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<usize>().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(|| EmbedError::UnknownDevice(s.to_string())),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Auto => f.write_str("auto"),
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceSpec {
    /// Opens the device. `Auto` never fails: it falls back to the CPU.
    pub fn open(self) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Auto => {
                if cfg!(feature = "cuda") {
                    Ok(open_cuda(0).unwrap_or(Device::Cpu))
                } else {
                    Ok(Device::Cpu)
                }
            }
            DeviceSpec::Cuda(ordinal) => {
                if !cfg!(feature = "cuda") {
                    return Err(EmbedError::CudaNotCompiled(self.to_string()));
                }
                open_cuda(ordinal)
            }
        }
    }
}

/// Opens a CUDA device. cudarc loads libcuda at run time and panics when the driver library is
/// absent; that panic is caught here (with the default hook's message silenced) and becomes an
/// error naming the cause.
fn open_cuda(ordinal: usize) -> Result<Device> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let opened = std::panic::catch_unwind(|| Device::new_cuda(ordinal));
    std::panic::set_hook(hook);
    match opened {
        Ok(Ok(device)) => Ok(device),
        Ok(Err(e)) => Err(EmbedError::CudaUnavailable { ordinal, reason: e.to_string() }),
        Err(panic) => {
            let detail = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown error");
            let reason = if detail.contains("shared library") {
                "the NVIDIA driver library (libcuda.so) could not be loaded; is a GPU driver installed? \
                 cuBLAS and cuRAND must also be on LD_LIBRARY_PATH"
                    .to_string()
            } else {
                detail.chars().take(300).collect()
            };
            Err(EmbedError::CudaUnavailable { ordinal, reason })
        }
    }
}

/// `auto | f32 | f16 | bf16 | int8`. `auto` is f32 on the CPU and f16 on CUDA. `int8` (CPU only)
/// runs the encoder's linear layers in 8-bit integers and the rest in f32 (`models::int8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DTypeSpec {
    #[default]
    Auto,
    F32,
    F16,
    BF16,
    Int8,
}

impl FromStr for DTypeSpec {
    type Err = EmbedError;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(DTypeSpec::Auto),
            "f32" | "float32" => Ok(DTypeSpec::F32),
            "f16" | "float16" | "half" => Ok(DTypeSpec::F16),
            "bf16" | "bfloat16" => Ok(DTypeSpec::BF16),
            "int8" | "i8" | "q8" => Ok(DTypeSpec::Int8),
            _ => Err(EmbedError::UnknownDType(s.to_string())),
        }
    }
}

impl fmt::Display for DTypeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DTypeSpec::Auto => "auto",
            DTypeSpec::F32 => "f32",
            DTypeSpec::F16 => "f16",
            DTypeSpec::BF16 => "bf16",
            DTypeSpec::Int8 => "int8",
        })
    }
}

impl DTypeSpec {
    /// The dtype to run in on `device` (int8's tensors between layers are f32). Half precision is
    /// refused on the CPU: candle's CPU matmul has no bf16 kernel and f16 there is slower and less
    /// exact than f32; int8 is refused on CUDA, which has no int8 kernel here.
    pub fn resolve(self, device: &Device) -> Result<DType> {
        match (self, device.is_cpu()) {
            (DTypeSpec::Auto, true) | (DTypeSpec::F32, _) | (DTypeSpec::Int8, true) => Ok(DType::F32),
            (DTypeSpec::Int8, false) => Err(EmbedError::UnsupportedDType {
                dtype: self.to_string(),
                device: "cuda".into(),
                reason: "int8 runs on the CPU only; use f16 or bf16 on CUDA".into(),
            }),
            (DTypeSpec::Auto, false) | (DTypeSpec::F16, false) => Ok(DType::F16),
            (DTypeSpec::BF16, false) => Ok(DType::BF16),
            (DTypeSpec::F16 | DTypeSpec::BF16, true) => Err(EmbedError::UnsupportedDType {
                dtype: self.to_string(),
                device: "cpu".into(),
                reason: "half precision runs on CUDA only; use f32 on the CPU".into(),
            }),
        }
    }
}

/// A short human name for a candle device.
pub fn device_name(device: &Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(_) => "cuda".into(),
        Device::Metal(_) => "metal".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!("auto".parse::<DeviceSpec>().ok(), Some(DeviceSpec::Auto));
        assert_eq!("CPU".parse::<DeviceSpec>().ok(), Some(DeviceSpec::Cpu));
        assert_eq!("cuda".parse::<DeviceSpec>().ok(), Some(DeviceSpec::Cuda(0)));
        assert_eq!("cuda:3".parse::<DeviceSpec>().ok(), Some(DeviceSpec::Cuda(3)));
        assert!(matches!(
            "tpu".parse::<DeviceSpec>(),
            Err(EmbedError::UnknownDevice(s)) if s == "tpu"
        ));
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
    }

    #[test]
    fn cuda_on_cpu_build_is_a_clear_error() {
        if cfg!(feature = "cuda") {
            return;
        }
        let err = DeviceSpec::Cuda(0).open().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("no CUDA support"), "{err}");
    }

    #[test]
    fn half_precision_refused_on_cpu() {
        assert!(DTypeSpec::F16.resolve(&Device::Cpu).is_err());
        assert!(DTypeSpec::BF16.resolve(&Device::Cpu).is_err());
        assert_eq!(DTypeSpec::Auto.resolve(&Device::Cpu).ok(), Some(DType::F32));
        assert!("f8".parse::<DTypeSpec>().is_err());
        assert_eq!("INT8".parse::<DTypeSpec>().ok(), Some(DTypeSpec::Int8));
        assert_eq!(DTypeSpec::Int8.resolve(&Device::Cpu).ok(), Some(DType::F32));
    }
}
