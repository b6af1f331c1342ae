package tokenizer

// EncodeNoCut is Encode with SentencePiece merging the whole of each text
// fragment at once, as llama.cpp does, instead of cutting it where no
// token can span the cut (the results must be the same).
func EncodeNoCut(t *Tokenizer, text string, addSpecial, parseSpecial bool) []int32 {
	return t.encode(text, addSpecial, parseSpecial, true)
}
