package daemon

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pecet-hsm/pecet/internal/audit"
	"github.com/pecet-hsm/pecet/internal/config"
	"github.com/pecet-hsm/pecet/internal/metrics"
	"github.com/pecet-hsm/pecet/internal/server"
	"github.com/pecet-hsm/pecet/keystore"
	"github.com/pecet-hsm/pecet/policy"
	"github.com/pecet-hsm/pecet/tsa"
)

// PhaseReload is the audit phase of a configuration reload or a trusted
// list replaced in force. Its line names the sections that changed (never
// their contents) in Outcome.
const PhaseReload = "reload"

// ErrReloadRefused wraps every reason a reload was refused; the
// configuration in force stays.
var ErrReloadRefused = errors.New("reload refused")

// state is what a configuration put in force: the effective config (its
// restart-only sections are always those pecetd started with), the trusted
// list of each policy that has one, and the TSA. Never changed after it is
// in force; a reload makes a new one.
type state struct {
	cfg   *config.Config
	lists map[string]*policy.TrustedList
	// results are the list outcomes that made lists (listUpdated, …),
	// counted when the state is put in force.
	results   map[string]string
	engine    *policy.Engine
	authority *tsa.Authority
	guard     *tsa.ClockGuard
	live      server.Live
}

// reloader builds the reloadable part of pecetd from a config and swaps
// it into the server (docs/operations.md "Reloading the configuration").
// One reload or list refresh runs at a time (mu); calls never wait for it:
// they read the server's snapshot.
type reloader struct {
	o   Options
	log *slog.Logger
	ks  *keystore.Store
	al  *audit.Log
	m   *metrics.Metrics
	// devRequired are the dev keys /readyz waits for in dev mode.
	devRequired []string
	// transport fetches trusted lists (nil: the default; tests set one).
	transport http.RoundTripper
	// now is the daemon's clock (Options.Now), never nil.
	now func() time.Time

	mu sync.Mutex
	// cur is the state in force: written under mu, read by the metrics
	// without it (a reload may take a list fetch's timeout).
	cur atomic.Pointer[state]
	srv *server.Server
	// bg is Run's context; the loops of the state in force run under
	// children of it, cancelled when a reload replaces them.
	bg          context.Context
	stopRefresh context.CancelFunc
	stopGuard   context.CancelFunc
}

// effective is next with the sections that cannot change live taken from
// the config in force: what a reload actually applies.
func effective(cur, next *config.Config) *config.Config {
	eff := *cur
	eff.Clients, eff.Trust, eff.Policies, eff.DefaultPolicy, eff.TSA, eff.Keys =
		next.Clients, next.Trust, next.Policies, next.DefaultPolicy, next.TSA, next.Keys
	return &eff
}

// build makes a state from cfg. prev (nil at start) supplies the trusted
// lists in force: a list that cannot be loaded, or may not replace the one
// in force (policy.CheckReplacement), leaves that one in place, and a TSA
// whose section did not change keeps running as it is. At start, or for a
// policy new in cfg, a list that fails is an error.
func (r *reloader) build(ctx context.Context, cfg *config.Config, prev *state) (*state, error) {
	st := &state{cfg: cfg, lists: map[string]*policy.TrustedList{}, results: map[string]string{}}
	for name, pc := range cfg.Policies {
		if pc.TrustedList == nil {
			continue
		}
		var old *policy.TrustedList
		if prev != nil {
			old = prev.lists[name]
		}
		l, result, err := r.nextList(ctx, name, *pc.TrustedList, old)
		if err != nil {
			return nil, fmt.Errorf("policies: policy %s: %w", name, err)
		}
		st.lists[name], st.results[name] = l, result
	}
	var fetcher *policy.Fetcher
	if prev != nil {
		fetcher = prev.engine.Fetcher
	}
	var err error
	if st.engine, err = buildEngine(cfg, st.lists, fetcher, r.now); err != nil {
		return nil, fmt.Errorf("policies: %w", err)
	}
	var tsaCerts []*x509.Certificate
	if prev != nil && reflect.DeepEqual(prev.cfg.TSA, cfg.TSA) {
		st.authority, st.guard, tsaCerts = prev.authority, prev.guard, prev.live.TSACertificates
	} else if st.authority, tsaCerts, st.guard, err = buildTSA(ctx, cfg.TSA, cfg.Token.RSACheckEvery, r.ks, r.now); err != nil {
		return nil, err
	}
	auth, err := clientAuth(cfg.GRPC.TLS, cfg.Clients)
	if err != nil {
		return nil, err
	}
	required := slices.Concat(cfg.Token.RequiredKeys, r.devRequired, []string{cfg.Audit.Key})
	if cfg.TSA != nil {
		required = append(required, cfg.TSA.Key)
	}
	st.live = server.Live{
		Auth:            auth,
		Validator:       st.engine,
		Policies:        st.engine,
		TSA:             st.authority,
		TSACertificates: tsaCerts,
		KeyPolicy:       cfg.Keys,
		RequiredKeys:    required,
	}
	return st, nil
}

// List outcomes, the result label of pecet_trusted_list_loads_total.
const (
	listUpdated   = "updated"
	listUnchanged = "unchanged"
	listRefused   = "refused"
)

// nextList loads a policy's trusted list and decides whether it replaces
// old (nil: none in force). When it may not, old stays (and is returned,
// with listRefused; the reason is logged); without old the failure is an
// error. The outcome is counted by record once the state is in force.
func (r *reloader) nextList(ctx context.Context, name string, tl config.TrustedList, old *policy.TrustedList) (*policy.TrustedList, string, error) {
	l, err := loadTrustedList(ctx, tl, r.transport)
	if err == nil {
		err = policy.CheckReplacement(old, l, r.now(), tl.Grace)
	}
	switch {
	case err != nil && old == nil:
		r.m.TrustedListLoads.WithLabelValues(name, listRefused).Inc()
		return nil, listRefused, err
	case err != nil:
		r.log.Error("trusted list refused: the list in force stays", "policy", name, "in_force", old.SequenceNumber, "err", err.Error())
		return old, listRefused, nil
	case old != nil && old.SequenceNumber == l.SequenceNumber:
		return old, listUnchanged, nil
	}
	return l, listUpdated, nil
}

// record counts and logs a list outcome once its state is in force.
func (r *reloader) record(name, result string, old, l *policy.TrustedList) {
	r.m.TrustedListLoads.WithLabelValues(name, result).Inc()
	if result != listUpdated {
		return
	}
	prevSeq := ""
	if old != nil {
		prevSeq = old.SequenceNumber
	}
	r.log.Info("trusted list in force", "policy", name, "sequence", l.SequenceNumber, "previous", prevSeq,
		"issued", l.IssueDate.UTC().Format(time.RFC3339), "next_update", l.NextUpdate.UTC().Format(time.RFC3339))
}

// start puts the first state in force and starts its loops.
func (r *reloader) start(ctx context.Context, srv *server.Server, st *state) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bg, r.srv = ctx, srv
	r.apply(st)
}

// apply swaps st in; r.mu is held. The TSA's clock guard restarts only
// when the TSA changed, and its first check runs before the swap, so a new
// TSA never serves on an unchecked clock; the list refresh loops always
// restart, for the intervals and sources st names.
func (r *reloader) apply(st *state) {
	prev := r.cur.Load()
	if prev == nil || prev.guard != st.guard {
		if r.stopGuard != nil {
			r.stopGuard()
			r.stopGuard = nil
		}
		if g := st.guard; g != nil {
			gctx, stop := context.WithCancel(r.bg)
			r.stopGuard = stop
			// A wrong clock is reported at once, and /readyz is false
			// from the start.
			if err := g.Check(gctx); err != nil {
				r.log.Error("TSA clock not trusted: time-stamps refused until it is", "err", err)
			}
			go g.Run(gctx, st.cfg.TSA.TimeReference.Interval, func(err error) {
				if err != nil {
					r.log.Error("TSA clock not trusted: time-stamps refused", "err", err)
				} else {
					r.log.Info("TSA clock trusted again")
				}
			})
		}
	}
	r.cur.Store(st)
	r.srv.Swap(st.live)
	for _, name := range slices.Sorted(maps.Keys(st.results)) {
		var old *policy.TrustedList
		if prev != nil {
			old = prev.lists[name]
		}
		r.record(name, st.results[name], old, st.lists[name])
	}
	if r.stopRefresh != nil {
		r.stopRefresh()
	}
	rctx, stop := context.WithCancel(r.bg)
	r.stopRefresh = stop
	for name, pc := range st.cfg.Policies {
		if tl := pc.TrustedList; tl != nil && tl.Refresh > 0 {
			go r.refreshLoop(rctx, name, tl.Refresh)
		}
	}
}

func (r *reloader) refreshLoop(ctx context.Context, name string, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.refresh(ctx, name)
		}
	}
}

// refresh loads the trusted list of one policy again and, when it may
// replace the one in force, swaps in an engine with it.
func (r *reloader) refresh(ctx context.Context, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ctx.Err() != nil {
		return // a reload replaced this loop while it waited
	}
	cur := r.cur.Load()
	pc, ok := cur.cfg.Policies[name]
	if !ok || pc.TrustedList == nil {
		return
	}
	old := cur.lists[name]
	l, result, err := r.nextList(ctx, name, *pc.TrustedList, old)
	if err != nil {
		return // counted by nextList
	}
	if l == old {
		r.record(name, result, old, l)
		return
	}
	lists := maps.Clone(cur.lists)
	lists[name] = l
	engine, err := buildEngine(cur.cfg, lists, cur.engine.Fetcher, r.now)
	if err != nil {
		r.log.Error("trusted list refused: the list in force stays", "policy", name, "err", err.Error())
		r.record(name, listRefused, old, old)
		return
	}
	st := *cur
	st.lists, st.engine, st.results = lists, engine, nil
	st.live.Validator, st.live.Policies = engine, engine
	r.cur.Store(&st)
	r.srv.Swap(st.live)
	r.record(name, result, old, l)
	r.auditReload("trusted list refresh", fmt.Sprintf("applied: policies.%s.trusted_list sequence %s -> %s", name, old.SequenceNumber, l.SequenceNumber))
}

// Reload reads the configuration again and puts it in force, or refuses
// it (the one in force stays) with the reason in the log, the metric
// pecet_config_reload_total{result="failure"} and the audit log.
func (r *reloader) Reload(ctx context.Context, why string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.reload(ctx, why)
	if err != nil {
		r.m.ConfigReloads.WithLabelValues("failure").Inc()
		r.log.Error("configuration reload refused: the configuration in force stays", "trigger", why, "err", err.Error())
		r.auditReload(why, "refused: "+refusal(err))
		return fmt.Errorf("%w: %w", ErrReloadRefused, err)
	}
	r.m.ConfigReloads.WithLabelValues("success").Inc()
	return nil
}

// refusal is the audit line's short reason: the kind, not the details
// (those are in the log).
func refusal(err error) string {
	switch {
	case errors.Is(err, config.ErrInvalid):
		return "invalid configuration"
	case errors.Is(err, policy.ErrTrustedListSig), errors.Is(err, policy.ErrTrustedList), errors.Is(err, policy.ErrTrustedListFetch),
		errors.Is(err, policy.ErrLOTL), errors.Is(err, policy.ErrLOTLPivot), errors.Is(err, policy.ErrLOTLTerritory):
		return "trusted list of a new policy"
	}
	return "cannot be applied"
}

func (r *reloader) reload(ctx context.Context, why string) error {
	next, err := loadConfig(r.o)
	if err != nil {
		return err
	}
	applyFlags(next, r.o)
	cur := r.cur.Load()
	live, restart := config.Changes(cur.cfg, next)
	if len(restart) > 0 {
		r.log.Warn("configuration sections changed that need a restart: ignored until pecetd restarts", "sections", strings.Join(restart, ","))
	}
	st, err := r.build(ctx, effective(cur.cfg, next), cur)
	if err != nil {
		return err
	}
	changed := slices.Clone(live)
	for _, name := range slices.Sorted(maps.Keys(st.lists)) {
		if old := cur.lists[name]; old == nil || old.SequenceNumber != st.lists[name].SequenceNumber {
			changed = append(changed, "policies."+name+".trusted_list")
		}
	}
	r.apply(st)
	outcome := "applied: "
	if len(changed) == 0 {
		outcome += "nothing changed"
	} else {
		outcome += strings.Join(changed, ",")
	}
	if len(restart) > 0 {
		outcome += "; needs restart: " + strings.Join(restart, ",")
	}
	r.log.Info("configuration reloaded", "trigger", why, "changed", strings.Join(changed, ","), "needs_restart", strings.Join(restart, ","))
	r.auditReload(why, outcome)
	return nil
}

// auditReload writes the reload's line; the log in force records what
// changed, never the values.
func (r *reloader) auditReload(why, outcome string) {
	if err := r.al.Write(audit.Event{Phase: PhaseReload, Caller: "pecetd", RPC: why, Outcome: outcome}); err != nil {
		r.log.Error("audit log: cannot record the reload", "err", err)
	}
}

// trustedLists reports the lists in force for the metrics.
func (r *reloader) trustedLists() []metrics.TrustedList {
	st := r.cur.Load()
	var out []metrics.TrustedList
	if st == nil {
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(st.lists)) {
		l := st.lists[name]
		seq, _ := l.Sequence()
		out = append(out, metrics.TrustedList{Policy: name, Sequence: seq, Issued: l.IssueDate, NextUpdate: l.NextUpdate})
	}
	return out
}
