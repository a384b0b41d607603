package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"spoolgate/internal/version"
)

// Registry returns the registry a daemon's /metrics serves, holding the Go
// runtime and process collectors and spoolgate_build_info of instance
// (conf.Config.Instance).
func Registry(instance string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), version.Collector(instance))
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
// Every request must name the server in its Host header (see
// HostAllowed; hosts is admin.hosts), else it is answered 421: a web page
// whose name was rebound to this address (DNS rebinding) cannot read it.
// addr "" disables it and returns (nil, nil); the methods of a nil
// *AdminServer do nothing.
func Admin(addr string, reg *prometheus.Registry, ready func() error, withPprof bool, hosts []string, log *slog.Logger, routes ...Route) (*AdminServer, error) {
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
		srv: &http.Server{Handler: hostGuard(adminNames(addr, hosts), mux, log), ReadHeaderTimeout: 5 * time.Second,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)},
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

// adminNames are the host names an admin server on addr answers besides IP
// addresses: localhost, this host's name (as the kernel has it, and its
// first label), the host of addr when it is a name, and hosts (admin.hosts).
// None of them can be rebound by a stranger's DNS.
func adminNames(addr string, hosts []string) map[string]bool {
	names := map[string]bool{"localhost": true}
	add := func(h string) {
		if h = strings.TrimSuffix(strings.ToLower(h), "."); h != "" {
			names[h] = true
		}
	}
	if h, err := os.Hostname(); err == nil {
		add(h)
		first, _, _ := strings.Cut(h, ".")
		add(first)
	}
	if h, _, err := net.SplitHostPort(addr); err == nil {
		add(h)
	}
	for _, h := range hosts {
		add(h)
	}
	return names
}

// HostAllowed reports whether host, a request's Host header (with or
// without a port), may reach an admin server whose names are names: an IP
// address (no DNS name, so nothing to rebind), a name of names, or empty
// (HTTP/1.0 without Host; a browser always sends one).
func HostAllowed(host string, names map[string]bool) bool {
	if host == "" {
		return true
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	return names[strings.ToLower(host)]
}

// hostGuard answers 421 Misdirected Request to a request whose Host is not
// allowed (HostAllowed), saying which key lets it through; it logs such a
// request at debug (a rebinding page polls).
func hostGuard(names map[string]bool, next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !HostAllowed(r.Host, names) {
			log.Debug("admin: refused a request for another host name (add it to admin.hosts if it is this host's)", "host", r.Host, "from", r.RemoteAddr, "path", r.URL.Path)
			http.Error(w, "421 misdirected request: host "+strconv.Quote(r.Host)+" is not a name of this admin address; "+
				"use its IP address, localhost or this host's name, or list the name in admin.hosts", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}
