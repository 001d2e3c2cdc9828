// Package metrics defines pecetd's Prometheus metrics. Labels carry only the
// RPC name and the gRPC code: never an identity, a key input or personal data.
package metrics

import (
	"time"

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
	// ArchiveDocuments counts the documents sealed and the records renewed
	// by the ArchiveService, by op (seal, renew); its calls count batches.
	ArchiveDocuments *prometheus.CounterVec
	// StreamBytes counts the bytes EncryptStream and DecryptStream take in
	// and send out.
	StreamBytes *prometheus.CounterVec
	// ConfigReloads counts configuration reloads (SIGHUP, `pecetd
	// reload`) by result: success or failure (the old one stays).
	ConfigReloads *prometheus.CounterVec
	// TrustedListLoads counts attempts to replace a policy's trusted list
	// (refresh interval, reload) by policy and result: updated, unchanged
	// (the same sequence number), refused (the list in force stays).
	TrustedListLoads *prometheus.CounterVec
}

// TrustedList describes the trusted list in force for one policy.
type TrustedList struct {
	Policy     string
	Sequence   uint64
	Issued     time.Time
	NextUpdate time.Time
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
	m.ArchiveDocuments = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pecet_archive_documents_total",
		Help: "Documents sealed and records renewed by the ArchiveService (one time-stamp per batch), by op: seal, renew.",
	}, []string{"op"})
	m.ConfigReloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pecet_config_reload_total",
		Help: "Configuration reloads (SIGHUP), by result: success, or failure (the configuration in force stays).",
	}, []string{"result"})
	m.TrustedListLoads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pecet_trusted_list_loads_total",
		Help: "Attempts to replace a policy's trusted list, by policy and result: updated, unchanged, refused (the list in force stays).",
	}, []string{"policy", "result"})
	// Both series exist from the start, so that an alert on failures
	// has a zero to compare with.
	m.ConfigReloads.WithLabelValues("success")
	m.ConfigReloads.WithLabelValues("failure")
	m.Registry.MustRegister(m.Calls, m.Latency, m.TSA, m.TSARefused, m.StreamBytes, m.ArchiveDocuments, m.ConfigReloads, m.TrustedListLoads,
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

// WatchTrustedLists exports, per policy, the trusted list in force as
// lists reports it at each scrape: its sequence number, issue time, next
// update and age (docs/operations.md "Trusted lists"). Call it once.
func (m *Metrics) WatchTrustedLists(lists func() []TrustedList, now func() time.Time) {
	m.Registry.MustRegister(&tlCollector{lists: lists, now: now})
}

var (
	tlSeqDesc    = prometheus.NewDesc("pecet_trusted_list_sequence_number", "TSLSequenceNumber of the trusted list in force, by policy.", []string{"policy"}, nil)
	tlIssuedDesc = prometheus.NewDesc("pecet_trusted_list_issue_timestamp_seconds", "ListIssueDateTime of the trusted list in force (Unix time), by policy.", []string{"policy"}, nil)
	tlNextDesc   = prometheus.NewDesc("pecet_trusted_list_next_update_timestamp_seconds", "NextUpdate of the trusted list in force (Unix time), by policy; past it (plus grace) its anchors give INDETERMINATE.", []string{"policy"}, nil)
	tlAgeDesc    = prometheus.NewDesc("pecet_trusted_list_age_seconds", "Seconds since the trusted list in force was issued, by policy.", []string{"policy"}, nil)
)

type tlCollector struct {
	lists func() []TrustedList
	now   func() time.Time
}

func (c *tlCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- tlSeqDesc
	ch <- tlIssuedDesc
	ch <- tlNextDesc
	ch <- tlAgeDesc
}

func (c *tlCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.now()
	for _, l := range c.lists() {
		ch <- prometheus.MustNewConstMetric(tlSeqDesc, prometheus.GaugeValue, float64(l.Sequence), l.Policy)
		if !l.Issued.IsZero() {
			ch <- prometheus.MustNewConstMetric(tlIssuedDesc, prometheus.GaugeValue, float64(l.Issued.Unix()), l.Policy)
			ch <- prometheus.MustNewConstMetric(tlAgeDesc, prometheus.GaugeValue, now.Sub(l.Issued).Seconds(), l.Policy)
		}
		if !l.NextUpdate.IsZero() {
			ch <- prometheus.MustNewConstMetric(tlNextDesc, prometheus.GaugeValue, float64(l.NextUpdate.Unix()), l.Policy)
		}
	}
}
