package openai

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// ServeOptions tune Serve.
type ServeOptions struct {
	// Grace is how long in-flight requests may run on after ctx is
	// cancelled before their contexts are cancelled too (0: 10 s).
	Grace  time.Duration
	Logger *slog.Logger // nil: slog.Default()
}

// DefaultGrace is ServeOptions.Grace's default.
const DefaultGrace = 10 * time.Second

// Serve listens on addr and serves h until ctx is cancelled (SIGTERM),
// then shuts down gracefully (see ServeListener).
func Serve(ctx context.Context, addr string, h http.Handler, o ServeOptions) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return ServeListener(ctx, ln, h, o)
}

// ServeListener serves h on ln until ctx is cancelled. Then it stops
// accepting connections, lets in-flight requests finish for up to
// o.Grace, cancels the contexts of those still running (their
// generations stop and free their slots), and returns once every handler
// has returned. It returns nil after a shutdown caused by ctx.
func ServeListener(ctx context.Context, ln net.Listener, h http.Handler, o ServeOptions) error {
	if o.Grace <= 0 {
		o.Grace = DefaultGrace
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	// Request contexts derive from base, not ctx: a SIGTERM must not cut
	// in-flight answers short before the grace period ends.
	base, cancelAll := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelAll()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("listening", "addr", "http://"+ln.Addr().String())

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests", "grace", o.Grace)
	graceCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.Grace)
	defer cancel()
	err := srv.Shutdown(graceCtx)
	if errors.Is(err, context.DeadlineExceeded) {
		log.Warn("grace period over: cancelling the requests still running")
		cancelAll()
		// handlers see their cancelled contexts and return; wait for them
		// so that the caller may then close the backend safely
		waitCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.Grace)
		defer cancel()
		if errors.Is(srv.Shutdown(waitCtx), context.DeadlineExceeded) {
			srv.Close()
		}
		err = nil
	}
	if e := <-served; e != nil && !errors.Is(e, http.ErrServerClosed) {
		return e
	}
	if err != nil {
		return err
	}
	return nil
}
