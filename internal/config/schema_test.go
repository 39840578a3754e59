package config

import (
	"bytes"
	"flag"
	"os"
	"testing"

	"github.com/invopop/jsonschema"
)

var update = flag.Bool("update", false, "rewrite golden files")

func withComments(r *jsonschema.Reflector) error {
	for _, dir := range []string{".", "../units", "../gateway", "../rollout"} {
		if err := r.AddGoComments("github.com/aideploy/aideploy/internal/config", dir); err != nil {
			return err
		}
	}
	return nil
}

// TestSchemaInSync fails when the committed schema differs from the Go types.
func TestSchemaInSync(t *testing.T) {
	got, err := GenerateSchema(withComments)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("aideploy.schema.json", got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, SchemaJSON) {
		t.Fatalf("aideploy.schema.json is out of date with the Go types; run: go test ./internal/config -run TestSchemaInSync -update")
	}
	if !bytes.Contains(got, []byte("Budget is how long a replica may take")) {
		t.Errorf("schema lacks field descriptions from doc comments")
	}
}
