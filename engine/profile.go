package engine

import (
	"context"
	"fmt"
)

// Profile runs tokens through the model, in chunks of at most the session's
// context (each from an empty cache, the first token replaced by bos when
// bos ≥ 0, as the perplexity tool does), and shows every layer's FFN input
// and activations to rec. The session's runner is left without a recorder.
func (s *Session) Profile(ctx context.Context, tokens []int32, bos int32, rec FFNRecorder, progress func(done, total int)) error {
	if len(tokens) == 0 {
		return fmt.Errorf("engine: no tokens to profile")
	}
	s.r.SetRecorder(rec)
	defer s.r.SetRecorder(nil)
	chunk := s.ctx
	buf := make([]int32, chunk)
	for off := 0; off < len(tokens); off += chunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := copy(buf, tokens[off:])
		if bos >= 0 {
			buf[0] = bos
		}
		s.Reset()
		if _, err := s.Eval(buf[:n]); err != nil {
			return err
		}
		if progress != nil {
			progress(min(off+chunk, len(tokens)), len(tokens))
		}
	}
	return nil
}
