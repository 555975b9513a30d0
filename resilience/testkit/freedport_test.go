package testkit

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// No code of the module listens on a kernel-chosen port (":0"), closes it
// and gives its address on: until that address is bound again, any
// outgoing connection or another test process may take it, and the later
// bind fails with "address already in use" (it failed CI so). Such an
// address comes from Port, or the listener is kept and handed over.
func TestNoFreedKernelPortIsGivenOn(t *testing.T) {
	root := moduleRoot(t)
	fset := token.NewFileSet()
	var found []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "testout") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		// Each function, and each function literal (a subtest) on its own.
		ast.Inspect(f, func(n ast.Node) bool {
			var body *ast.BlockStmt
			switch n := n.(type) {
			case *ast.FuncDecl:
				body = n.Body
			case *ast.FuncLit:
				body = n.Body
			}
			if body != nil {
				for _, v := range freedKernelPorts(body) {
					pos := fset.Position(n.Pos())
					rel, _ := filepath.Rel(root, pos.Filename)
					found = append(found, fmt.Sprintf("%s:%d: closes %s and uses its address", rel, pos.Line, v))
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		t.Error(f)
	}
}

// The checker itself finds the pattern, and leaves a kept listener alone.
func TestFreedKernelPortChecker(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want int
	}{
		{`c, _ := net.ListenPacket("udp", "127.0.0.1:0"); defer c.Close(); return c.LocalAddr().String()`, 1},
		{`ln, _ := net.Listen("tcp", ":0"); addr := ln.Addr().String(); ln.Close(); return addr`, 1},
		{`ln, _ := net.Listen("tcp", "127.0.0.1:0"); go serve(ln); t.Cleanup(func() { ln.Close() }); return ln.Addr().String()`, 0},
		{`ln, _ := net.Listen("tcp", "127.0.0.1:4000"); ln.Close(); return ln.Addr().String()`, 0},
		{`ln, _ := net.Listen("tcp", "127.0.0.1:0"); return ln.Addr().String()`, 0},
		{`ln := must(net.Listen("tcp", "127.0.0.1:0")); defer ln.Close(); return ln.Addr().String()`, 1},
		{`ln, _ := net.Listen("tcp", "127.0.0.1:0"); port := ln.Addr().(*net.TCPAddr).Port; p := strconv.Itoa(port); ln.Close(); start(p)`, 1},
		{`ln, _ := net.Listen("tcp", "127.0.0.1:0"); defer ln.Close(); c, _ := net.Dial("tcp", ln.Addr().String()); return c`, 0},
	} {
		f, err := parser.ParseFile(token.NewFileSet(), "x.go", "package x\nfunc f() any {\n"+tc.src+"\n}", 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := freedKernelPorts(f.Decls[0].(*ast.FuncDecl).Body); len(got) != tc.want {
			t.Errorf("%s: found %v, want %d", tc.src, got, tc.want)
		}
	}
}

// listener is what freedKernelPorts learns of a listener on port 0.
type listener struct {
	closedAt  token.Pos // the first direct close; 0 when none
	deferred  bool
	addrUses  []token.Pos // reads of its address (or an alias) outside returns
	returned  bool
	aliasedBy map[string]bool // variables holding its address or port
}

// freedKernelPorts names the listeners of body that listen on port 0 and
// are closed in body itself (not in a cleanup or another function
// literal), while their address is used on: returned, or read after a
// direct close. A deferred close in a test keeps the port to its end.
func freedKernelPorts(body *ast.BlockStmt) []string {
	ls := map[string]*listener{}
	// uses reports the listeners whose address e mentions.
	uses := func(e ast.Node) []*listener {
		var out []*listener
		ast.Inspect(e, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				// A connection dialed to the address is not the address.
				if sel, ok := n.Fun.(*ast.SelectorExpr); ok && strings.HasPrefix(sel.Sel.Name, "Dial") {
					return false
				}
			case *ast.SelectorExpr:
				if id, ok := n.X.(*ast.Ident); ok && (n.Sel.Name == "Addr" || n.Sel.Name == "LocalAddr") && ls[id.Name] != nil {
					out = append(out, ls[id.Name])
				}
			case *ast.Ident:
				for _, l := range ls {
					if l.aliasedBy[n.Name] {
						out = append(out, l)
					}
				}
			}
			return true
		})
		return out
	}
	ast.Inspect(body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.AssignStmt:
			if len(n.Rhs) == 1 && listensOnPortZero(n.Rhs[0]) {
				if id, ok := n.Lhs[0].(*ast.Ident); ok {
					ls[id.Name] = &listener{aliasedBy: map[string]bool{}}
				}
				return true
			}
			for _, rhs := range n.Rhs {
				for _, l := range uses(rhs) {
					for _, lhs := range n.Lhs {
						if id, ok := lhs.(*ast.Ident); ok {
							l.aliasedBy[id.Name] = true
						}
					}
				}
			}
		case *ast.ExprStmt:
			if l := closeOf(n.X, ls); l != nil && l.closedAt == 0 {
				l.closedAt = n.Pos()
			}
		case *ast.DeferStmt:
			if l := closeOf(n.Call, ls); l != nil {
				l.deferred = true
			}
		case *ast.FuncLit:
			return false // a close there runs later: at cleanup, or by another goroutine
		case *ast.ReturnStmt:
			for _, l := range uses(n) {
				l.returned = true
			}
			return false
		case *ast.SelectorExpr, *ast.Ident:
			for _, l := range uses(n) {
				l.addrUses = append(l.addrUses, n.Pos())
			}
			return false
		}
		return true
	})
	var names []string
	for v, l := range ls {
		freed := (l.deferred || l.closedAt != 0) && l.returned
		for _, p := range l.addrUses {
			freed = freed || (l.closedAt != 0 && p > l.closedAt)
		}
		if freed {
			names = append(names, v)
		}
	}
	return names
}

// closeOf is the listener e closes, if it is a Close call on one of ls.
func closeOf(e ast.Expr, ls map[string]*listener) *listener {
	if call, ok := e.(*ast.CallExpr); ok {
		if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Close" {
			if id, ok := sel.X.(*ast.Ident); ok {
				return ls[id.Name]
			}
		}
	}
	return nil
}

func listensOnPortZero(e ast.Expr) bool {
	call, ok := e.(*ast.CallExpr)
	if ok && len(call.Args) == 1 {
		return listensOnPortZero(call.Args[0]) // must(net.Listen(...))
	}
	if !ok || len(call.Args) != 2 {
		return false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok || !strings.HasPrefix(sel.Sel.Name, "Listen") {
		return false
	}
	lit, ok := call.Args[1].(*ast.BasicLit)
	return ok && lit.Kind == token.STRING && strings.HasSuffix(strings.Trim(lit.Value, "\"`"), ":0")
}

// moduleRoot is the directory of the module's go.mod, above the test's.
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
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}
