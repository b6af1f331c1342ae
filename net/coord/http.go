package coord

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Handler serves the network's state beside api (the OpenAI gateway):
//
//	GET /network/nodes   connected nodes and every ledger node record
//	GET /network/jobs    the last job records (?limit=N, default 100)
//	GET /network/checks  the last spot-check records (?limit=N)
//
// Everything else goes to api.
func (c *Coordinator) Handler(api http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /network/nodes", func(w http.ResponseWriter, r *http.Request) {
		recs, err := c.ledger.NodeRecords()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		type rec struct {
			NodeRecord
			Reputation float64 `json:"reputation"`
		}
		out := make([]rec, len(recs))
		for i := range recs {
			out[i] = rec{recs[i], recs[i].Reputation()}
		}
		writeJSON(w, map[string]any{"connected": c.Nodes(), "ledger": out, "policy": c.cfg.Policy})
	})
	mux.HandleFunc("GET /network/jobs", func(w http.ResponseWriter, r *http.Request) {
		var recs []JobRecord
		err := c.ledger.View(func(t *Tx) (err error) {
			recs, err = t.LastJobs(limit(r))
			return err
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, recs)
	})
	mux.HandleFunc("GET /network/checks", func(w http.ResponseWriter, r *http.Request) {
		var recs []CheckRecord
		err := c.ledger.View(func(t *Tx) (err error) {
			recs, err = t.LastChecks(limit(r))
			return err
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, recs)
	})
	mux.Handle("/", api)
	return mux
}

func limit(r *http.Request) int {
	if n, err := strconv.Atoi(r.URL.Query().Get("limit")); err == nil && n > 0 {
		return min(n, 10000)
	}
	return 100
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
