package docs

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1" // also registers the pecet.v1 services
	"github.com/pecet-hsm/pecet/internal/metrics"

	_ "google.golang.org/grpc/health/grpc_health_v1"
)

func read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestEveryMetricDocumented: each metric family in pecetd's registry has a
// row in operations.md's table.
func TestEveryMetricDocumented(t *testing.T) {
	doc := read(t, "operations.md")
	m := metrics.New(func() (int, int) { return 0, 0 })
	// Vector metrics appear once they have a child.
	m.Calls.WithLabelValues(pecetv1.SignService_Sign_FullMethodName, "OK").Inc()
	m.Latency.WithLabelValues(pecetv1.SignService_Sign_FullMethodName).Observe(0.01)
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(families) < 10 {
		t.Fatalf("only %d metric families gathered", len(families))
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
	}
	// Vector metrics with no child are not gathered: ask every collector
	// field of Metrics for its descriptions instead.
	v := reflect.ValueOf(m).Elem()
	for i := range v.NumField() {
		c, ok := v.Field(i).Interface().(prometheus.Collector)
		if !ok {
			continue
		}
		ch := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			if m := fqName.FindStringSubmatch(d.String()); m != nil {
				names[m[1]] = true
			}
		}
	}
	for name := range names {
		if !strings.Contains(doc, "| `"+name+"` |") {
			t.Errorf("metric %s has no row in operations.md (| `%s` | type | meaning |)", name, name)
		}
	}
}

var fqName = regexp.MustCompile(`fqName: "([a-z_:][a-z0-9_:]*)"`)

var (
	grpcurlLine = regexp.MustCompile("(?m)^grpcurl .*$")
	methodRe    = regexp.MustCompile(`\s((?:pecet\.v1|grpc\.health\.v1)\.[A-Za-z]+/[A-Za-z]+)\s*(?:#.*)?$`)
	shellVar    = regexp.MustCompile(`\$[A-Z]+`)
	// The dev folder's client certificates, as api.md's first block
	// defines them: client, gateway, officer and the second officer.
	certVars = []string{"$TLS", "$GW", "$OFF", "$OFF2"}
	certVar  = regexp.MustCompile(`\$(?:TLS|GW|OFF2?)\b`)
)

// payload extracts the -d argument of a grpcurl line: '…' verbatim, or
// "…" with \" unescaped and shell variables (base64 data) replaced by a
// valid base64 value.
func payload(t *testing.T, line string) string {
	t.Helper()
	i := strings.Index(line, " -d ")
	if i < 0 {
		t.Fatalf("grpcurl call without -d: %s", line)
	}
	rest := line[i+4:]
	q := rest[0]
	end := 1
	for end < len(rest) && (rest[end] != q || (q == '"' && rest[end-1] == '\\')) {
		end++
	}
	if end == len(rest) {
		t.Fatalf("unterminated -d argument: %s", line)
	}
	s := rest[1:end]
	if q == '"' {
		s = strings.ReplaceAll(s, `\"`, `"`)
		s = shellVar.ReplaceAllString(s, "AAAA")
	}
	return s
}

// TestAPIExamples: api.md calls every RPC of every pecet.v1 service, and
// each example's JSON is a valid request for its RPC.
func TestAPIExamples(t *testing.T) {
	doc := read(t, "api.md")
	called := map[string]bool{}
	for _, line := range grpcurlLine.FindAllString(doc, -1) {
		m := methodRe.FindStringSubmatch(line)
		if m == nil {
			continue // list, describe
		}
		svc, method, _ := strings.Cut(m[1], "/")
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
		if err != nil {
			t.Errorf("%s: no service %s", line, svc)
			continue
		}
		md := d.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(method))
		if md == nil {
			t.Errorf("%s: %s has no method %s", line, svc, method)
			continue
		}
		called[m[1]] = true
		req := dynamicpb.NewMessage(md.Input())
		if err := (protojson.UnmarshalOptions{}).Unmarshal([]byte(payload(t, line)), req); err != nil {
			t.Errorf("%s: the JSON is not a %s: %v", line, md.Input().FullName(), err)
		}
		if cert := certVar.FindString(line); cert == "" {
			t.Errorf("%s: no client certificate (%s)", line, strings.Join(certVars, ", "))
		} else if !strings.Contains(doc, "\n"+cert[1:]+`="-cacert `) {
			t.Errorf("%s: %s is not defined at the top of api.md", line, cert)
		}
	}
	protoregistry.GlobalFiles.RangeFilesByPackage("pecet.v1", func(f protoreflect.FileDescriptor) bool {
		for i := range f.Services().Len() {
			s := f.Services().Get(i)
			for j := range s.Methods().Len() {
				name := string(s.FullName()) + "/" + string(s.Methods().Get(j).Name())
				if !called[name] {
					t.Errorf("api.md has no grpcurl example for %s", name)
				}
			}
		}
		return true
	})
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if !strings.Contains(doc, "curl -s") || !strings.Contains(doc, "7080"+p) {
			t.Errorf("api.md has no curl example for %s", p)
		}
	}
}
