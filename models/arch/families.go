package arch

// The llama family and its close relatives. They differ only in data:
// RoPE pairing, optional biases (bound when present) and per-head q/k norms.
func init() {
	// LLaMA 1/2/3, Mistral, TinyLlama, Vicuna...: llama.cpp writes them all
	// as "llama", with q/k rows permuted so adjacent-pair RoPE is right.
	//
	// ReLU llamas (ReluLLaMA, ProSparse) are "llama" files too. PowerInfer's
	// converters (convert.py, convert-hf-to-powerinfer-gguf.py) mark theirs
	// only by the magic "PWRI", which ConfigFromGGUF reads as ReLU, as
	// PowerInfer's sparse FFN does; any other file says so with
	// KeyActivation = "relu".
	Register(Family{Name: "llama", RoPE: RoPENormal, Norm: RMSNorm, Act: SiLU, Gated: true})
	// Bamboo and TurboSparse (dReLU: ReLU on gate and on up), as PowerInfer's
	// gguf-py and llama.cpp name them: a llama in every other respect
	// (LLM_FFN_SYM with LLM_FFN_RELU in its graph).
	Register(Family{Name: "bamboo", RoPE: RoPENormal, Norm: RMSNorm, Act: ReLU, Gated: true, DReLU: true})
	// Qwen2/2.5: q/k/v biases (optional tensors), NeoX RoPE.
	Register(Family{Name: "qwen2", RoPE: RoPENeoX, Norm: RMSNorm, Act: SiLU, Gated: true})
	// Qwen3: no biases, per-head RMSNorm on q and k, head size from key_length.
	Register(Family{Name: "qwen3", RoPE: RoPENeoX, Norm: RMSNorm, Act: SiLU, Gated: true, QKNorm: true})
	// OPT, as PowerInfer's convert-hf-to-powerinfer-gguf.py and gguf-py name
	// it (mainline llama.cpp has no OPT): pre-LayerNorm blocks with biases
	// on every norm and projection, ReLU FFN up→down without a gate, no
	// RoPE, learned positions whose table keeps HF's offset of 2 (the
	// converter writes context_length 2050 for OPT's 2048 positions). The
	// converter writes no head_count_kv (so KV heads = heads) and no
	// layer_norm_epsilon (so 1e-5, OPT's nn.LayerNorm default).
	Register(Family{Name: "opt", Norm: LayerNorm, Act: ReLU, NoRoPE: true, PosEmbd: true, PosOffset: 2, Biases: true})
}
