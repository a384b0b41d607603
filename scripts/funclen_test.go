package scripts

import (
	"cmp"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// maxFuncLines is the longest a function of the tree's non-test Go code may
// be, from its func line to its closing brace (issue 22: a lifecycle is a
// type with small methods, STYLE.md rule 26; most functions stay well
// under 60 lines).
const maxFuncLines = 100

// funcLen is one function declaration and its length in lines.
type funcLen struct {
	where string // path:Name, Name as Recv.Method for a method
	lines int
}

// TestFunctionLength holds every function of the tree's non-test Go files
// to maxFuncLines and lists the ten longest (-v):
//
//	go test ./scripts -run TestFunctionLength -v
func TestFunctionLength(t *testing.T) {
	fns, err := functionLengths(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(fns, func(a, b funcLen) int {
		if c := cmp.Compare(b.lines, a.lines); c != 0 {
			return c
		}
		return strings.Compare(a.where, b.where)
	})
	for i, f := range fns[:min(10, len(fns))] {
		t.Logf("%2d. %4d lines  %s", i+1, f.lines, f.where)
	}
	for _, f := range fns {
		if f.lines > maxFuncLines {
			t.Errorf("%s is %d lines, more than %d: split it into smaller functions", f.where, f.lines, maxFuncLines)
		}
	}
}

// functionLengths parses the non-test Go files under root (but testdata
// and hidden directories) and returns the length of each function
// declaration.
func functionLengths(root string) ([]funcLen, error) {
	var out []funcLen
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (name == "testdata" || strings.HasPrefix(name, ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			lines := fset.Position(fn.End()).Line - fset.Position(fn.Pos()).Line + 1
			out = append(out, funcLen{where: filepath.ToSlash(rel) + ":" + funcName(fn), lines: lines})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk %s: %w", root, err)
	}
	return out, nil
}

// funcName is fn's name, Recv.Name for a method.
func funcName(fn *ast.FuncDecl) string {
	if fn.Recv == nil || len(fn.Recv.List) == 0 {
		return fn.Name.Name
	}
	typ := fn.Recv.List[0].Type
	if st, ok := typ.(*ast.StarExpr); ok {
		typ = st.X
	}
	switch x := typ.(type) {
	case *ast.IndexExpr: // a generic type's method
		typ = x.X
	case *ast.IndexListExpr:
		typ = x.X
	}
	if id, ok := typ.(*ast.Ident); ok {
		return id.Name + "." + fn.Name.Name
	}
	return fn.Name.Name
}
