package rpctable

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	pecetv1 "github.com/pecet-hsm/pecet/api/pecet/v1" // also registers the pecet.v1 files
)

// served are the proto packages whose services pecetd registers besides
// pecet.v1: health and both reflection versions (server.GRPC).
var served = []protoreflect.FullName{"pecet.v1", "grpc.health.v1", "grpc.reflection.v1", "grpc.reflection.v1alpha"}

// protoMethods enumerates, from the generated descriptors, every method of
// every service in the served packages, by full method name.
func protoMethods(t *testing.T) map[string]protoreflect.MethodDescriptor {
	t.Helper()
	out := map[string]protoreflect.MethodDescriptor{}
	for _, pkg := range served {
		n := 0
		protoregistry.GlobalFiles.RangeFilesByPackage(pkg, func(fd protoreflect.FileDescriptor) bool {
			for i := 0; i < fd.Services().Len(); i++ {
				sd := fd.Services().Get(i)
				for j := 0; j < sd.Methods().Len(); j++ {
					md := sd.Methods().Get(j)
					out["/"+string(sd.FullName())+"/"+string(md.Name())] = md
					n++
				}
			}
			return true
		})
		if n == 0 {
			t.Fatalf("no methods registered for package %s", pkg)
		}
	}
	return out
}

// TestEveryRPCHasOneRow: each RPC of the proto (and of health and
// reflection) has exactly one row, each row is an RPC, and the row says
// what the descriptor says (stream or unary); a pecet.v1 row has roles and
// is not open, a health or reflection row is open.
func TestEveryRPCHasOneRow(t *testing.T) {
	methods := protoMethods(t)
	count := map[string]int{}
	for _, r := range rows {
		count[r.Method]++
	}
	for m, md := range methods {
		t.Run(m, func(t *testing.T) {
			if count[m] != 1 {
				t.Fatalf("%d rows, want exactly 1", count[m])
			}
			r := Lookup(m)
			if stream := md.IsStreamingClient() || md.IsStreamingServer(); r.Stream != stream {
				t.Errorf("row says stream=%v, the proto %v", r.Stream, stream)
			}
			pecet := md.ParentFile().Package() == "pecet.v1"
			if pecet && (r.Open || len(r.Roles) == 0) {
				t.Errorf("a pecet.v1 RPC must have roles and not be open: %+v", r)
			}
			if !pecet && (!r.Open || len(r.Roles) > 0 || r.Audit != nil) {
				t.Errorf("health and reflection are open, without roles or audit: %+v", r)
			}
		})
	}
	for _, r := range rows {
		if methods[r.Method] == nil {
			t.Errorf("row %s is no RPC of the proto", r.Method)
		}
	}
}

// TestAuditSpecsFitTheRequest: each audit function takes the method's own
// request type (an empty one: no panic on a type assertion), a unary row has
// Unary, a stream row First and Input.
func TestAuditSpecsFitTheRequest(t *testing.T) {
	methods := protoMethods(t)
	for _, r := range rows {
		if r.Audit == nil {
			continue
		}
		t.Run(r.Method, func(t *testing.T) {
			md := methods[r.Method]
			mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
			if err != nil {
				t.Fatal(err)
			}
			req := mt.New().Interface()
			switch {
			case r.Stream && (r.Audit.First == nil || r.Audit.Input == nil || r.Audit.Unary != nil):
				t.Fatalf("a stream row needs First and Input only")
			case !r.Stream && (r.Audit.Unary == nil || r.Audit.First != nil || r.Audit.Input != nil):
				t.Fatalf("a unary row needs Unary only")
			case r.Stream:
				_ = r.Audit.First(req)
				_ = r.Audit.Input(req)
			default:
				_ = r.Audit.Unary(req)
			}
		})
	}
}

// TestDurableEndIsKeyService: the end lines that must be durable are those
// of the KeyService changes (docs/security.md "Audit log").
func TestDurableEndIsKeyService(t *testing.T) {
	for _, r := range rows {
		want := strings.HasPrefix(r.Method, "/"+pecetv1.KeyService_ServiceDesc.ServiceName+"/") && r.Audit != nil
		if got := r.Audit != nil && r.Audit.DurableEnd; got != want {
			t.Errorf("%s: DurableEnd %v, want %v", r.Method, got, want)
		}
	}
}

// TestNoHandTypedMethodNames: outside the generated code and this test, no
// Go string literal names a pecet.v1 method: the generated *_FullMethodName
// constants are used, so a renamed RPC breaks the build, not a check.
func TestNoHandTypedMethodNames(t *testing.T) {
	root := moduleRoot(t)
	self, err := filepath.Abs("rpctable_test.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var found []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, ".pb.go") || path == self {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING && strings.Contains(lit.Value, "/pecet.v1.") {
				found = append(found, fset.Position(lit.Pos()).String()+": "+lit.Value)
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(found)
	for _, f := range found {
		t.Errorf("hand-typed method name (use the generated *_FullMethodName constant): %s", f)
	}
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test")
		}
		dir = parent
	}
}
