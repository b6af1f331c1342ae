package arch

// The llama family and its close relatives. They differ only in data:
// RoPE pairing, optional biases (bound when present) and per-head q/k norms.
func init() {
	// LLaMA 1/2/3, Mistral, TinyLlama, Vicuna...: llama.cpp writes them all
	// as "llama", with q/k rows permuted so adjacent-pair RoPE is right.
	Register(Family{Name: "llama", RoPE: RoPENormal, Norm: RMSNorm, Act: SiLU, Gated: true})
	// Qwen2/2.5: q/k/v biases (optional tensors), NeoX RoPE.
	Register(Family{Name: "qwen2", RoPE: RoPENeoX, Norm: RMSNorm, Act: SiLU, Gated: true})
	// Qwen3: no biases, per-head RMSNorm on q and k, head size from key_length.
	Register(Family{Name: "qwen3", RoPE: RoPENeoX, Norm: RMSNorm, Act: SiLU, Gated: true, QKNorm: true})
}
