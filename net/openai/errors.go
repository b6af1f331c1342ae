package openai

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Error types and codes, as OpenAI names them.
const (
	typeInvalidRequest = "invalid_request_error"
	typeServer         = "server_error"

	codeModelNotFound   = "model_not_found"
	codeContextExceeded = "context_length_exceeded"
	codeUnsupported     = "unsupported_parameter"
	codeInvalidValue    = "invalid_value"
	codeInvalidType     = "invalid_type"
	codeMissing         = "missing_required_parameter"
	codeQueueFull       = "server_overloaded"
)

// APIError is an error answered as OpenAI does:
// {"error": {"message", "type", "param", "code"}} with an HTTP status.
type APIError struct {
	Status  int    `json:"-"`
	Message string `json:"message"`
	Type    string `json:"type"`
	Param   any    `json:"param"` // a string, or null
	Code    any    `json:"code"`  // a string, or null
}

func (e *APIError) Error() string { return e.Message }

// invalid is a 400 about one parameter (param "" for the body as a whole).
func invalid(param, code, format string, a ...any) *APIError {
	e := &APIError{Status: http.StatusBadRequest, Type: typeInvalidRequest, Message: fmt.Sprintf(format, a...)}
	if param != "" {
		e.Param = param
	}
	if code != "" {
		e.Code = code
	}
	return e
}

func writeError(w http.ResponseWriter, e *APIError) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Status)
	b, _ := json.Marshal(struct {
		Error *APIError `json:"error"`
	}{e})
	w.Write(append(b, '\n'))
}
