// Package cpu holds Stoke's CPU kernels: math on buffers, with no knowledge
// of models or layers.
//
//   - Pool runs data-parallel loops on persistent worker goroutines; a call
//     allocates nothing, so a decode step can be allocation-free.
//   - MatVec, MatMul and MatVecRows multiply GGUF-layout weight matrices
//     (rows of whole quantization blocks) of any computable dtype by float32
//     vectors; they are built on the per-dtype row kernels DotRow, DotRows
//     and DequantizeRow.
//   - RMSNorm, LayerNorm, Softmax, the activations and the vector
//     arithmetic in ops.go; RoPE; causal grouped-query Attention over an
//     f32 or f16 KV cache.
//
// Every kernel's doc comment states what it computes as a formula; the
// tests in package cpu_test check each one against a float64 reference.
// Everything here is pure Go; amd64 assembly with generic twins comes later.
package cpu
