package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"spoolgate/internal/version"
)

// Registry returns the registry a daemon's /metrics serves, holding the Go
// runtime and process collectors and spoolgate_build_info.
func Registry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), version.Collector())
	return reg
}

// ReadyGauge returns the spoolgate_ready gauge: 1 while ready returns nil
// (what /readyz answers 200 to), else 0, so an alert rule can see a
// daemon that runs but is not ready.
func ReadyGauge(ready func() error) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "spoolgate_ready",
		Help: "1 when the daemon is ready (/readyz answers 200), else 0.",
	}, func() float64 {
		if ready() != nil {
			return 0
		}
		return 1
	})
}

// AdminServer serves /healthz, /readyz, /metrics and optionally
// /debug/pprof on the admin address.
type AdminServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// Route is one more handler of the admin server, e.g. the web console's
// "GET /{$}"; Pattern is a net/http ServeMux pattern.
type Route struct {
	Pattern string
	Handler http.Handler
}

// Admin starts the admin HTTP server on addr. /readyz answers 200 when
// ready returns nil, else 503 with the error text; routes add handlers.
// addr "" disables it and returns (nil, nil); the methods of a nil
// *AdminServer do nothing.
func Admin(addr string, reg *prometheus.Registry, ready func() error, withPprof bool, log *slog.Logger, routes ...Route) (*AdminServer, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	for _, rt := range routes {
		mux.Handle(rt.Pattern, rt.Handler)
	}
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	a := &AdminServer{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(a.done)
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin server", "err", err)
		}
	}()
	log.Info("admin listening", "addr", ln.Addr().String(), "pprof", withPprof)
	return a, nil
}

// Addr returns the address the admin server listens on, "" when disabled.
func (a *AdminServer) Addr() string {
	if a == nil {
		return ""
	}
	return a.ln.Addr().String()
}

// Close shuts the server down, waiting for requests until ctx is done.
func (a *AdminServer) Close(ctx context.Context) error {
	if a == nil {
		return nil
	}
	err := a.srv.Shutdown(ctx)
	<-a.done
	return err
}
