// Package predictor holds Stoke's activation-sparsity machinery: what the
// engine's profiler records while it runs text, the per-layer predictors that
// guess which FFN neurons a token will fire, and their training and
// evaluation. It computes no layer and places no weights.
//
// # Profiles
//
// A Profile holds, per layer, how often each neuron fired (|a_i| > the
// layer's threshold) and a bounded reservoir sample of FFN inputs x (after
// the FFN norm) with their activation magnitudes |a|. Record is called by the
// engine once per token per layer and allocates nothing. Profiles are written
// as GGUF sidecars (keys stoke.profile.*, tensors blk.N.profile_count,
// blk.N.profile_x, blk.N.profile_a).
//
// # Predictors
//
// A LayerPredictor is the low-rank MLP of Deja Vu and PowerInfer:
//
//	s = FC2 · ReLU(FC1 · x + B1) + B2        FC1: Rank×Dim, FC2: FFN×Rank
//	neuron i is predicted active ⇔ s_i ≥ Threshold
//
// stored under PowerInfer's tensor names blk.N.fc1.weight (GGUF shape
// [Dim, Rank]) and blk.N.fc2.weight ([Rank, FFN]), with the key
// powerinfer.sparse_threshold. PowerInfer's predictors have no biases; the
// ones Train produces do (blk.N.fc1.bias, blk.N.fc2.bias) unless
// TrainOptions.NoBias asks for PowerInfer's exact form.
//
// Predict reads FC2 rank-major (W2T, built by RankMajor, which the
// engine calls) where it can: s = Σ_j h_j·FC2[:, j] over the j that ReLU
// left nonzero, about half, in long rows. Quantized re-encodes a
// predictor in Q8_0 or Q4_0 (stoke run --predictor-type), for a half or
// about a quarter of F16's bytes per token.
//
// For SwiGLU models, whose activations are never exactly zero, Calibrate
// picks a per-layer threshold on |a| that makes a target fraction of neurons
// inactive (TEAL-style); the predictor is then trained to predict which
// neurons pass it.
//
// # Training
//
// Train fits one predictor per layer on the profile's samples with Adam on a
// weighted binary cross-entropy. Recall is what matters: a missed neuron
// changes the layer's output, an extra one only costs time. The samples
// are split three ways: training samples; validation samples, on which
// the learning rate is decayed and training stopped, the rank chosen and
// the output threshold set (folded into B2) for a recall above the target
// (CalibrationRecall, 0.995 for a 0.99 target, since recall on unseen
// tokens scatters around the calibrated value); and test samples, used
// for nothing but the report. Ranks are tried in ascending order and the
// smallest whose validation sparsity at that threshold is within
// TrainOptions.SparsityLoss of the true sparsity is kept. Evaluate
// measures a predictor on any other tokens.
package predictor
