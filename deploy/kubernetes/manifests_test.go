package kubernetes

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/pecet-hsm/pecet/internal/config"
	"github.com/pecet-hsm/pecet/internal/metrics"
	"github.com/pecet-hsm/pecet/internal/server"
	"github.com/pecet-hsm/pecet/softhsm"
)

type manifests struct {
	deployment appsv1.Deployment
	service    corev1.Service
	configMap  corev1.ConfigMap
	secret     corev1.Secret
	pdb        policyv1.PodDisruptionBudget
	netpol     networkingv1.NetworkPolicy
}

// load decodes each manifest strictly: an unknown field (a typo, a field
// from another API version) or a duplicate key fails the test.
func load(t *testing.T) *manifests {
	t.Helper()
	m := &manifests{}
	files := map[string]any{
		"deployment.yaml":          &m.deployment,
		"service.yaml":             &m.service,
		"configmap.yaml":           &m.configMap,
		"secret.yaml":              &m.secret,
		"poddisruptionbudget.yaml": &m.pdb,
		"networkpolicy.yaml":       &m.netpol,
	}
	yamls, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range yamls {
		if _, ok := files[f]; !ok {
			t.Errorf("%s is not checked by this test: add it to load", f)
		}
	}
	for f, obj := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.UnmarshalStrict(b, obj); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	return m
}

func TestStrictDecodingRejectsUnknownFields(t *testing.T) {
	var d appsv1.Deployment
	err := yaml.UnmarshalStrict([]byte("apiVersion: apps/v1\nkind: Deployment\nspec:\n  replica: 3\n"), &d)
	if err == nil {
		t.Fatal("a misspelt field decoded without error: the manifest test would miss typos")
	}
}

func TestManifestKinds(t *testing.T) {
	m := load(t)
	for _, c := range []struct{ got, want string }{
		{m.deployment.APIVersion + " " + m.deployment.Kind, "apps/v1 Deployment"},
		{m.service.APIVersion + " " + m.service.Kind, "v1 Service"},
		{m.configMap.APIVersion + " " + m.configMap.Kind, "v1 ConfigMap"},
		{m.secret.APIVersion + " " + m.secret.Kind, "v1 Secret"},
		{m.pdb.APIVersion + " " + m.pdb.Kind, "policy/v1 PodDisruptionBudget"},
		{m.netpol.APIVersion + " " + m.netpol.Kind, "networking.k8s.io/v1 NetworkPolicy"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func port(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return int32(n)
}

// TestManifestsMatchPecetd: what the manifests say about pecetd is what
// pecetd does.
func TestManifestsMatchPecetd(t *testing.T) {
	m := load(t)
	cfg, err := config.Parse([]byte(m.configMap.Data["pecet.yaml"]))
	if err != nil {
		t.Fatalf("the ConfigMap's pecet.yaml: %v", err)
	}
	// The ports are pecetd's defaults, listening on the pod's interfaces.
	grpcPort, httpPort := port(t, cfg.GRPC.Addr), port(t, cfg.HTTP.Addr)
	if grpcPort != port(t, config.DefaultGRPCAddr) || httpPort != port(t, config.DefaultHTTPAddr) {
		t.Errorf("config ports %d/%d differ from pecetd's defaults %s/%s", grpcPort, httpPort, config.DefaultGRPCAddr, config.DefaultHTTPAddr)
	}
	for _, a := range []string{cfg.GRPC.Addr, cfg.HTTP.Addr} {
		if h, _, _ := net.SplitHostPort(a); h != "0.0.0.0" && h != "" {
			t.Errorf("%s listens on %s only: unreachable from the kubelet and the Service", a, h)
		}
	}

	d := m.deployment
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
		t.Errorf("replicas = %v, want 3", d.Spec.Replicas)
	}
	pod := d.Spec.Template
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%d containers", len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["grpc"] != grpcPort || ports["http"] != httpPort {
		t.Errorf("container ports %v, want grpc %d, http %d", ports, grpcPort, httpPort)
	}
	resolve := func(p intstr.IntOrString) int32 {
		if p.Type == intstr.String {
			return ports[p.StrVal]
		}
		return p.IntVal
	}
	for name, pr := range map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if pr == nil || pr.HTTPGet == nil {
			t.Errorf("%s probe: want an HTTP GET", name)
			continue
		}
		if resolve(pr.HTTPGet.Port) != httpPort {
			t.Errorf("%s probe on port %v, want pecetd's HTTP port %d", name, pr.HTTPGet.Port, httpPort)
		}
	}
	if p := c.LivenessProbe.HTTPGet.Path; p != "/healthz" {
		t.Errorf("liveness path %s, want /healthz", p)
	}
	if p := c.ReadinessProbe.HTTPGet.Path; p != "/readyz" {
		t.Errorf("readiness path %s, want /readyz", p)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() ||
		c.Resources.Limits.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources: requests and limits for cpu and memory are required: %+v", c.Resources)
	}
	// The pod must outlive the drain.
	if g := pod.Spec.TerminationGracePeriodSeconds; g == nil || *g <= int64(cfg.ShutdownGrace.Seconds()) {
		t.Errorf("terminationGracePeriodSeconds %v must exceed shutdown_grace %v", g, cfg.ShutdownGrace)
	}

	// The config's files come from the mounted ConfigMap and Secret.
	mounts := map[string]string{}
	for _, vm := range c.VolumeMounts {
		mounts[vm.Name] = vm.MountPath
	}
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Spec.Volumes {
		vols[v.Name] = v
	}
	if v := vols["config"]; v.ConfigMap == nil || v.ConfigMap.Name != m.configMap.Name {
		t.Errorf("config volume does not mount ConfigMap %s", m.configMap.Name)
	}
	if v := vols["secrets"]; v.Secret == nil || v.Secret.SecretName != m.secret.Name {
		t.Errorf("secrets volume does not mount Secret %s", m.secret.Name)
	}
	if want := filepath.Join(mounts["config"], "pecet.yaml"); !slices.Contains(c.Args, want) {
		t.Errorf("args %v do not name %s", c.Args, want)
	}
	for _, f := range append([]string{cfg.GRPC.TLS.Cert, cfg.GRPC.TLS.Key, cfg.GRPC.TLS.ClientCA, cfg.Token.PINFile}, cfg.Trust.Anchors...) {
		if filepath.Dir(f) != mounts["secrets"] {
			t.Errorf("%s is not in the secrets mount %s", f, mounts["secrets"])
			continue
		}
		if _, ok := m.secret.StringData[filepath.Base(f)]; !ok {
			t.Errorf("the Secret has no key %s", filepath.Base(f))
		}
	}
	// pecetd refuses to start without an audit log, and the root file
	// system is read-only: the file must be on a writable volume of the
	// pod's own (one process per file).
	if cfg.Audit.File == "" {
		t.Error("the ConfigMap sets no audit.file: pecetd would refuse to start")
	} else {
		var vm *corev1.VolumeMount
		for i := range c.VolumeMounts {
			if c.VolumeMounts[i].MountPath == filepath.Dir(cfg.Audit.File) {
				vm = &c.VolumeMounts[i]
			}
		}
		switch {
		case vm == nil:
			t.Errorf("audit.file %s is not in a mounted volume (the root file system is read-only)", cfg.Audit.File)
		case vm.ReadOnly:
			t.Errorf("audit.file %s is in a read-only mount", cfg.Audit.File)
		case vols[vm.Name].EmptyDir == nil:
			t.Errorf("audit volume %s is shared or persistent: each replica needs a file of its own", vm.Name)
		}
	}
	if m.secret.StringData["pin"] != "" {
		t.Error("the example Secret carries a PIN")
	}

	// The Service exposes both ports by the container's port names.
	svc := map[string]corev1.ServicePort{}
	for _, p := range m.service.Spec.Ports {
		svc[p.Name] = p
	}
	for name, want := range map[string]int32{"grpc": grpcPort, "http": httpPort} {
		if p, ok := svc[name]; !ok || p.Port != want || resolve(p.TargetPort) != want {
			t.Errorf("service port %s = %+v, want %d", name, p, want)
		}
	}

	// Selectors find the pods.
	labels := pod.Labels
	match := func(what string, sel map[string]string) {
		for k, v := range sel {
			if labels[k] != v {
				t.Errorf("%s selector %s=%s does not match the pod labels %v", what, k, v, labels)
			}
		}
		if len(sel) == 0 {
			t.Errorf("%s selects nothing", what)
		}
	}
	match("deployment", d.Spec.Selector.MatchLabels)
	match("service", m.service.Spec.Selector)
	match("pdb", m.pdb.Spec.Selector.MatchLabels)
	match("networkpolicy", m.netpol.Spec.PodSelector.MatchLabels)
	if m.pdb.Spec.MinAvailable == nil || m.pdb.Spec.MinAvailable.IntValue() < 1 || m.pdb.Spec.MinAvailable.IntValue() >= int(*d.Spec.Replicas) {
		t.Errorf("pdb minAvailable %v must be between 1 and replicas-1", m.pdb.Spec.MinAvailable)
	}

	// The NetworkPolicy admits only labelled peers, on pecetd's ports.
	for i, rule := range m.netpol.Spec.Ingress {
		for _, peer := range rule.From {
			if peer.PodSelector == nil || len(peer.PodSelector.MatchLabels) == 0 {
				t.Errorf("ingress rule %d admits unlabelled peers", i)
			}
		}
		for _, p := range rule.Ports {
			if p.Port == nil || (resolve(*p.Port) != grpcPort && resolve(*p.Port) != httpPort) {
				t.Errorf("ingress rule %d opens port %v", i, p.Port)
			}
		}
	}
}

// TestProbePathsServed: the probe paths are ones pecetd's HTTP handler
// answers with 200 on a healthy token (a real SoftHSM token, not a stub).
func TestProbePathsServed(t *testing.T) {
	m := load(t)
	ks := softhsm.NewToken(t)
	srv := server.New(server.Deps{Keys: ks, Metrics: metrics.New(ks.PoolStats)})
	c := m.deployment.Spec.Template.Spec.Containers[0]
	for _, pr := range []*corev1.Probe{c.StartupProbe, c.LivenessProbe, c.ReadinessProbe} {
		rec := httptest.NewRecorder()
		srv.HTTP().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, pr.HTTPGet.Path, nil))
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", pr.HTTPGet.Path, rec.Code)
		}
	}
	// Prometheus scrapes the annotated path.
	path := m.deployment.Spec.Template.Annotations["prometheus.io/path"]
	rec := httptest.NewRecorder()
	srv.HTTP().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if rec.Code != http.StatusOK {
		t.Errorf("GET %s = %d, want 200", path, rec.Code)
	}
}
