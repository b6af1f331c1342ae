package coord

import (
	"strings"

	"github.com/stokehq/stoke/models/tokenizer"
)

// textStream turns the token ids of one answer into text exactly as the
// engine's generation loop does (streaming UTF-8, stop strings held back
// and cut), over the whole answer, whichever nodes produced its parts:
// nodes send ids only, so an answer resumed on a second node reads the
// same as one generated on a single node.
type textStream struct {
	dec  *tokenizer.StreamDecoder
	st   stopper
	text strings.Builder
}

func newTextStream(tok *tokenizer.Tokenizer, stops []string) *textStream {
	return &textStream{dec: tok.NewStreamDecoder(), st: stopper{stops: stops}}
}

// add takes the next token; it returns the text now released and whether
// a stop string ended the answer.
func (t *textStream) add(id int32) (string, bool) {
	out, hit := t.st.push(t.dec.Add(id))
	t.text.WriteString(out)
	return out, hit
}

// finish releases held text (unless a stop string cut it).
func (t *textStream) finish() string {
	if t.st.hit {
		return ""
	}
	r, _ := t.st.push(t.dec.Flush())
	rest := r + t.st.flush()
	t.text.WriteString(rest)
	return rest
}

// stopper is engine's: it holds back text that might be the start of a
// stop string and cuts the output at the first complete one.
type stopper struct {
	stops   []string
	pending string
	hit     bool
}

func (s *stopper) push(t string) (string, bool) {
	switch {
	case s.hit:
		return "", true
	case len(s.stops) == 0:
		return t, false
	}
	s.pending += t
	cut := -1
	for _, st := range s.stops {
		if st == "" {
			continue
		}
		if i := strings.Index(s.pending, st); i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	if cut >= 0 {
		out := s.pending[:cut]
		s.pending = ""
		s.hit = true
		return out, true
	}
	keep := 0
	for _, st := range s.stops {
		for k := min(len(st)-1, len(s.pending)); k > keep; k-- {
			if strings.HasSuffix(s.pending, st[:k]) {
				keep = k
				break
			}
		}
	}
	out := s.pending[:len(s.pending)-keep]
	s.pending = s.pending[len(s.pending)-keep:]
	return out, false
}

func (s *stopper) flush() string {
	out := s.pending
	s.pending = ""
	return out
}
