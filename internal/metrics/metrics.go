// Package metrics defines pecetd's Prometheus metrics. Labels carry only the
// RPC name and the gRPC code: never an identity, a key input or personal data.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics is one registry with pecetd's collectors; each server gets its own
// (tests run several in one process).
type Metrics struct {
	Registry *prometheus.Registry
	Calls    *prometheus.CounterVec
	Latency  *prometheus.HistogramVec
	// TSA counts time-stamp answers (HTTP, gRPC and CAdES-T alike).
	TSA *prometheus.CounterVec
	// TSARefused counts requests to /tsa answered without reaching the
	// TSA, by reason (tsa.Refused*): they are not audited one by one.
	TSARefused *prometheus.CounterVec
	// StreamBytes counts the bytes EncryptStream and DecryptStream take in
	// and send out.
	StreamBytes *prometheus.CounterVec
}

// PoolStats reports the PKCS#11 session pool.
type PoolStats func() (inUse, waiting int)

// New registers the RPC collectors, the session-pool gauges and the Go
// runtime collectors.
func New(pool PoolStats) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pecet_grpc_calls_total",
			Help: "gRPC calls handled, by method and status code.",
		}, []string{"method", "code"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pecet_grpc_call_duration_seconds",
			Help: "gRPC call latency, by method.",
			// HSM operations take 0.1-50 ms; large bodies up to seconds.
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method"}),
		TSA: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pecet_tsa_responses_total",
			Help: "Time-stamp responses, by transport, PKIStatus and failure info.",
		}, []string{"transport", "status", "fail_info"}),
		TSARefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pecet_tsa_refused_total",
			Help: "Requests to /tsa refused before the TSA (not audited), by reason: rate_limited, method, content_type, too_large, body, malformed.",
		}, []string{"reason"}),
		StreamBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pecet_stream_bytes_total",
			Help: "Bytes taken in and sent out by the streaming RPCs, by method and direction (in, out).",
		}, []string{"method", "direction"}),
	}
	m.Registry.MustRegister(m.Calls, m.Latency, m.TSA, m.TSARefused, m.StreamBytes,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pecet_pkcs11_sessions_in_use",
			Help: "PKCS#11 sessions currently lent out of the pool.",
		}, func() float64 { n, _ := pool(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "pecet_pkcs11_sessions_waiting",
			Help: "Callers waiting for a PKCS#11 session.",
		}, func() float64 { _, w := pool(); return float64(w) }),
	)
	return m
}
