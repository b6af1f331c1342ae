// Package cuda runs the kernels.Backend ops on an NVIDIA GPU, without cgo.
//
// # Driver
//
// purego opens libcuda.so.1 at run time (Config.Library or $STOKE_LIBCUDA
// name another library) and binds the driver API: init, device count,
// name, compute capability and memory, the primary context, streams,
// events, pinned host memory, asynchronous copies, module load from PTX
// and cuLaunchKernel. Every driver call runs on one goroutine locked to
// an OS thread, which owns the context; the Backend's methods send it
// commands over a channel and return, so ops are asynchronous like CUDA
// launches, and Sync waits. Kernel parameters are marshalled into one
// block pinned with runtime.Pinner. Transfers are staged through pinned
// host memory (pageable copies run at a fraction of the bus speed).
//
// Open fails with a one-line reason, and the caller uses the CPU, when
// libcuda is missing, cuInit finds no device, the device is older than
// compute capability 5.2, or the driver is too old for the PTX (the
// message names the minimum driver). Nothing here panics or exits for
// lack of a GPU.
//
// # Kernels
//
// CUDA C in kernels.cu and the .cuh files it includes, compiled by
// `go generate` (gen.sh, nvcc 11.8) to PTX for compute_52 (Maxwell,
// Pascal, Volta, Turing) and compute_80 (Ampere and later), committed in
// ptx/ and embedded; the backend loads the one for the device's compute
// capability and the driver JIT-compiles it. The baseline obeys the old
// cards' limits: f16 and quantized weights are widened to f32 and summed
// in f32 (no f16 arithmetic), no dp4a, no tensor cores.
//
//   - Mat-vec (MatMul with one input, MatVecRows): a warp per output row,
//     8 rows per block; plain types (F32, F16, BF16) stream the row in
//     16-byte loads, four in flight per lane; Q8_0 and Q4_0 rows are
//     staged through shared memory 32 blocks at a time with coalesced
//     16-byte loads (the next tile's loads issued before the current tile
//     is computed) and decoded 4 bytes per lane, with byte-permute
//     conversions instead of I2F; warp-shuffle reductions.
//   - MatMul with n > 1: the same kernel with up to 8 inputs per pass,
//     reading the weights once per 8 inputs.
//   - AxpyRows: column tiles × row splits; each block sums its rows in
//     registers and shared memory, and the last block of a tile adds the
//     splits' partials in order.
//   - Attention: a warp per cache position with an online softmax, the
//     positions split over blocks for decode and merged in order.
//   - Norms, RoPE, activations: the CPU kernels' formulas, with f64 where
//     they use f64 and explicitly rounded operations where a fused
//     multiply-add would change the result.
//
// Every reduction has a fixed order, so results are deterministic.
// kernels/cpu defines the semantics; the test suite compares every op
// with the CPU backend, on a GPU (STOKE_GPU=1) and on a host emulator of
// the kernels (emu/, built with g++ by the tests). devrun.sh runs the GPU
// suite and benchmarks on a machine without Go.
package cuda
