package kubernetes

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
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
	if len(pod.Spec.Containers) != 2 {
		t.Fatalf("%d containers, want pecetd and audit-prune", len(pod.Spec.Containers))
	}
	c := pecetd(t, m)
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
	c := pecetd(t, m)
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

// container returns the pod's container of that name.
func container(t *testing.T, m *manifests, name string) corev1.Container {
	t.Helper()
	for _, c := range m.deployment.Spec.Template.Spec.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %s", name)
	return corev1.Container{}
}

func pecetd(t *testing.T, m *manifests) corev1.Container { return container(t, m, "pecetd") }

// TestAuditVolumeBounded: the audit log cannot fill its volume. pecetd
// rotates the file at audit.max_bytes and removes no rotated file; a full
// volume stops every key operation (the log fails closed) or gets the pod
// evicted. The audit-prune container keeps the newest AUDIT_KEEP rotated
// files (the shipped stderr copy is the record to keep:
// docs/operations.md "Logs and the audit log"), so the files never exceed
// (AUDIT_KEEP + 1) × max_bytes, which must fit twice into the emptyDir's
// sizeLimit. The pruning script itself runs here on a folder of files.
func TestAuditVolumeBounded(t *testing.T) {
	m := load(t)
	cfg, err := config.Parse([]byte(m.configMap.Data["pecet.yaml"]))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Audit.MaxBytes <= 0 {
		t.Fatal("audit.max_bytes is not set: the file grows until the volume is full")
	}
	p := container(t, m, "audit-prune")
	var vol *corev1.Volume
	for i, v := range m.deployment.Spec.Template.Spec.Volumes {
		if v.Name == "audit" {
			vol = &m.deployment.Spec.Template.Spec.Volumes[i]
		}
	}
	if vol == nil || vol.EmptyDir == nil || vol.EmptyDir.SizeLimit == nil {
		t.Fatal("the audit volume is not an emptyDir with a sizeLimit")
	}
	mounted := false
	for _, vm := range p.VolumeMounts {
		mounted = mounted || (vm.Name == "audit" && vm.MountPath == filepath.Dir(cfg.Audit.File) && !vm.ReadOnly)
	}
	if !mounted {
		t.Errorf("audit-prune does not mount the audit volume writable at %s", filepath.Dir(cfg.Audit.File))
	}
	env := map[string]string{}
	for _, e := range p.Env {
		env[e.Name] = e.Value
	}
	keep, err := strconv.Atoi(env["AUDIT_KEEP"])
	if err != nil || keep < 1 {
		t.Fatalf("AUDIT_KEEP %q: keep at least the newest rotated file (the chain continues from it)", env["AUDIT_KEEP"])
	}
	if env["AUDIT_DIR"] != filepath.Dir(cfg.Audit.File) || env["AUDIT_FILE"] != filepath.Base(cfg.Audit.File) {
		t.Errorf("AUDIT_DIR %q, AUDIT_FILE %q do not name audit.file %s", env["AUDIT_DIR"], env["AUDIT_FILE"], cfg.Audit.File)
	}
	if most := int64(keep+1) * cfg.Audit.MaxBytes; 2*most > vol.EmptyDir.SizeLimit.Value() {
		t.Errorf("the audit files reach %d bytes, more than half the volume's %s", most, vol.EmptyDir.SizeLimit)
	}
	if p.Resources.Limits.Cpu().IsZero() || p.Resources.Limits.Memory().IsZero() {
		t.Error("audit-prune has no cpu and memory limits")
	}
	if sc := p.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("audit-prune must run with a read-only root file system and no privilege escalation")
	}

	// Run the script once on a folder: audit.log.1 … .10 and bystanders.
	if len(p.Command) < 3 || p.Command[0] != "/bin/sh" || p.Command[1] != "-c" {
		t.Fatalf("command %v: want /bin/sh -c SCRIPT", p.Command)
	}
	dir := t.TempDir()
	names := []string{"audit.log", "audit.log.bak", "audit.log.1x", "other.log.1"}
	for i := 1; i <= 10; i++ {
		names = append(names, "audit.log."+strconv.Itoa(i))
	}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("/bin/sh", "-c", p.Command[2])
	cmd.Env = append(os.Environ(), "AUDIT_DIR="+dir, "AUDIT_FILE=audit.log", "AUDIT_KEEP="+strconv.Itoa(keep), "PRUNE_ONCE=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the pruning script: %v\n%s", err, out)
	}
	left, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range left {
		got = append(got, e.Name())
	}
	want := []string{"audit.log", "audit.log.1x", "audit.log.bak", "other.log.1"}
	for i := 10 - keep + 1; i <= 10; i++ {
		want = append(want, "audit.log."+strconv.Itoa(i))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("after pruning: %v, want %v", got, want)
	}
}
