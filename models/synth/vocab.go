package synth

import "fmt"

// Token types as llama.cpp numbers them (tokenizer.ggml.token_type).
const (
	TokenNormal  = 1
	TokenUnknown = 2
	TokenControl = 3
	TokenByte    = 6
)

// spmSpace is SentencePiece's word-boundary mark, U+2581.
const spmSpace = "▁"

// MinVocab is the smallest vocabulary Vocab builds: <unk>, <s>, </s> and
// the 256 byte tokens, plus one piece.
const MinVocab = 3 + 256 + 1

// commonWords seed the vocabulary with whole words, so short English text
// takes few tokens (the TinyStories register in particular).
var commonWords = []string{
	"the", "and", "a", "to", "was", "he", "she", "it", "of", "in", "her", "his",
	"they", "with", "on", "that", "said", "you", "for", "is", "one", "day",
	"once", "upon", "time", "there", "little", "girl", "boy", "named", "very",
	"happy", "big", "play", "played", "wanted", "went", "saw", "had", "were",
	"not", "but", "so", "all", "be", "at", "we", "can", "do", "what", "when",
	"mom", "dad", "friend", "friends", "dog", "cat", "bird", "tree", "park",
	"sun", "ball", "toy", "fun", "help", "good", "sad", "new", "like", "loved",
	"red", "blue", "home", "look", "see", "up", "out", "then", "them", "from",
	"an", "are", "my", "me", "him", "this", "have", "by", "or", "if",
	"will", "would", "could", "about", "into", "more", "some", "no", "yes",
	"lily", "tim", "ben", "sue", "asked", "smiled", "learned", "together",
}

// capitalWords start sentences and names.
var capitalWords = []string{"Once", "The", "He", "She", "It", "They", "One", "Lily", "Tim", "Ben", "But", "I"}

// Vocab returns a deterministic SentencePiece-style ("llama") vocabulary
// of n pieces: 0 <unk>, 1 <s>, 2 </s>, 3..258 the byte tokens <0x00> to
// <0xFF>, then normal pieces: the printable ASCII characters and the
// space mark ▁, ▁ followed by each of them, common English words (▁the,
// ▁once, ...), then lowercase n-grams of growing length, each bare and
// after ▁. Every piece of several characters is added after its prefix one
// character shorter, so the SentencePiece merge procedure can build each
// piece from two others. Scores are 0 for the special and byte tokens and
// -(id) for normal pieces, so earlier pieces are preferred.
func Vocab(n int) (tokens []string, scores []float32, types []int32, err error) {
	if n < MinVocab {
		return nil, nil, nil, fmt.Errorf("synth: vocabulary of %d tokens is below the minimum %d", n, MinVocab)
	}
	tokens = make([]string, 0, n)
	types = make([]int32, 0, n)
	seen := make(map[string]bool, n)
	push := func(s string, typ int32) {
		if len(tokens) < n && !seen[s] {
			seen[s] = true
			tokens = append(tokens, s)
			types = append(types, typ)
		}
	}
	push("<unk>", TokenUnknown)
	push("<s>", TokenControl)
	push("</s>", TokenControl)
	for b := range 256 {
		push(fmt.Sprintf("<0x%02X>", b), TokenByte)
	}
	// withPrefixes adds s after its prefixes (in runes), shortest first.
	withPrefixes := func(s string) {
		r := []rune(s)
		for k := 2; k <= len(r); k++ {
			push(string(r[:k]), TokenNormal)
		}
	}
	push(spmSpace, TokenNormal)
	for c := byte('!'); c <= '~'; c++ {
		push(string(c), TokenNormal)
	}
	for c := byte('!'); c <= '~'; c++ {
		push(spmSpace+string(c), TokenNormal)
	}
	for _, w := range commonWords {
		withPrefixes(spmSpace + w)
	}
	for _, w := range capitalWords {
		withPrefixes(spmSpace + w)
	}
	// n-grams of lowercase letters, length 2, 3, ...: all bare ones (their
	// prefixes are the previous length's), then all after ▁.
	for length := 2; len(tokens) < n; length++ {
		buf := make([]byte, length)
		for _, mark := range []string{"", spmSpace} {
			for i := range buf {
				buf[i] = 'a'
			}
			for len(tokens) < n {
				withPrefixes(mark + string(buf))
				if !nextGram(buf) {
					break
				}
			}
		}
	}
	scores = make([]float32, n)
	for id := range scores {
		if types[id] == TokenNormal {
			scores[id] = -float32(id)
		}
	}
	return tokens, scores, types, nil
}

// nextGram advances buf to the next lowercase string in lexicographic
// order, reporting false after "zz...z".
func nextGram(buf []byte) bool {
	for i := len(buf) - 1; i >= 0; i-- {
		if buf[i] < 'z' {
			buf[i]++
			return true
		}
		buf[i] = 'a'
	}
	return false
}
