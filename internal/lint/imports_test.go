// Package lint holds tests that enforce the project's structure.
package lint

import (
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/onceflow/onceflow"

// rule forbids packages matching from to import packages matching to.
// A pattern ending in "/..." matches the package and everything below it.
type rule struct {
	from, to string
	except   []string // importers allowed despite the rule
	why      string
}

// rules are DESIGN.md section 2 (layout and import direction).
var rules = []rule{
	{from: mod + "/checkpoint", to: mod + "/...", why: "checkpoint imports no project package"},
	{from: mod + "/engine/...", to: mod + "/operators/...", why: "engine never imports operators"},
	{from: mod + "/engine/...", to: mod + "/connectors/...", why: "engine never imports connectors"},
	{from: mod + "/engine/...", to: mod + "/checkpoint/fsstore", why: "engine never imports concrete stores"},
	{from: mod + "/engine/...", to: mod + "/checkpoint/s3store", why: "engine never imports concrete stores"},
	{from: mod + "/engine/...", to: mod + "/checkpoint/memstore", why: "engine never imports concrete stores"},
	{from: mod + "/operators/...", to: mod + "/connectors/...", why: "operators and connectors never import each other"},
	{from: mod + "/connectors/...", to: mod + "/operators/...", why: "operators and connectors never import each other"},
	{from: mod + "/runner/...", to: mod + "/connectors/...", why: "the runner runs job binaries; it never links connectors"},
	{from: mod + "/runner/...", to: mod + "/operators/...", why: "the runner runs job binaries; it never links operators"},
	{from: mod + "/engine/...", to: mod + "/runner/...", why: "the engine knows nothing of the runner (the control socket is the interface)"},
	{from: mod + "/connectors/...", to: mod + "/runner/...", why: "connectors know nothing of the runner"},
	{from: mod + "/...", to: mod + "/cmd/...", why: "nothing imports cmd"},
	{from: mod + "/...", to: mod + "/examples/...", why: "nothing imports examples"},
	{from: mod + "/...", to: mod + "/bench/...", except: []string{mod + "/bench/..."}, why: "nothing outside bench imports bench"},
	{from: mod + "/...", to: "github.com/cockroachdb/pebble/...", except: []string{mod + "/engine/state/pebblestate/...", mod + "/bench/..."},
		why: "pebblestate is the only importer of Pebble"},
	{from: mod + "/...", to: "github.com/minio/minio-go/...", except: []string{mod + "/checkpoint/s3store/...", mod + "/internal/testenv", mod + "/bench/..."},
		why: "s3store is the only importer of minio-go"},
	{from: mod + "/...", to: "github.com/twmb/franz-go/...", except: []string{mod + "/connectors/kafka/...", mod + "/internal/testenv", mod + "/bench/..."},
		why: "connectors/kafka is the only importer of franz-go outside tests"},
}

func match(pattern, pkg string) bool {
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == base || strings.HasPrefix(pkg, base+"/")
	}
	return pkg == pattern
}

func TestForbiddenImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", mod+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := 0
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, imports := fields[0], fields[1:]
		pkgs++
		for _, r := range rules {
			if !match(r.from, pkg) || exempt(r, pkg) {
				continue
			}
			for _, imp := range imports {
				if match(r.to, imp) && imp != pkg && !(r.to == mod+"/..." && !strings.HasPrefix(imp, mod+"/")) {
					t.Errorf("%s imports %s: %s", pkg, imp, r.why)
				}
			}
		}
	}
	if pkgs < 10 {
		t.Fatalf("go list found only %d packages: the test is not looking at the project", pkgs)
	}
}

func exempt(r rule, pkg string) bool {
	for _, e := range r.except {
		if match(e, pkg) {
			return true
		}
	}
	return false
}

// TestRulesCatchViolations makes sure the matcher can fail.
func TestRulesCatchViolations(t *testing.T) {
	if !match(mod+"/engine/...", mod+"/engine/state") || match(mod+"/engine/...", mod+"/enginex") {
		t.Fatal("pattern matching is wrong")
	}
	r := rules[0]
	if !match(r.from, mod+"/checkpoint") || match(r.from, mod+"/checkpoint/fsstore") {
		t.Fatal("the checkpoint rule must cover exactly the checkpoint package")
	}
}
