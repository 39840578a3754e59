package loadslot

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The Makefile runs the load tests after the rest, alone (LOADTESTS): a test
// that takes the slot but is missing there would run beside the other
// packages again, and a name there that takes no slot would run twice or
// not be a load test at all.
func TestMakefileListsTheLoadTests(t *testing.T) {
	root := filepath.Join("..", "..", "..")
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^LOADTESTS\s*=\s*\^\(([A-Za-z0-9_|]+)\)\$\$$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("the Makefile has no LOADTESTS = ^(TestA|TestB)$$ line")
	}
	listed := strings.Split(string(m[1]), "|")
	slices.Sort(listed)

	var taking []string
	fset := token.NewFileSet()
	err = filepath.WalkDir(filepath.Join(root, "internal"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Test") || fn.Body == nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if ok && sel.Sel.Name == "Take" {
					if id, ok := sel.X.(*ast.Ident); ok && id.Name == "loadslot" {
						taking = append(taking, fn.Name.Name)
						return false
					}
				}
				return true
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(taking)
	taking = slices.Compact(taking)
	if !slices.Equal(listed, taking) {
		t.Errorf("Makefile LOADTESTS lists %v;\nthe tests that take the load slot are %v", listed, taking)
	}
}
