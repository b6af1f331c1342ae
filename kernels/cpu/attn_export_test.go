package cpu

// The attention kernels and their Go forms, for attn_test.go.
var (
	AttnScores   = attnScores
	AttnScoresGo = attnScoresGo
	AttnValues   = attnValues
	AttnValuesGo = attnValuesGo
)

// Softmax's exponentials (silu.go).
var (
	ExpSub   = expSub
	ExpSubGo = expSubGo
)
