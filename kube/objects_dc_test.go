package kube

import (
	"testing"

	"github.com/aksml/aksml/compute/driver"
)

// A version with collect_model_data on gets v1's variable and the
// directory its records go under; one with it off gets neither.
func TestContainerCollectModelDataEnv(t *testing.T) {
	c := &Cluster{}
	for _, on := range []bool{true, false} {
		spec := &driver.ServiceSpec{Name: "svc"}
		v := &driver.VersionSpec{Name: "svc", Replica: driver.ReplicaTemplate{EntryScript: "/src/score.py",
			CollectModelData: on, ModelDataDir: "/ws"}}
		got := map[string]string{}
		for _, e := range c.container(spec, v).Env {
			got[*e.Name] = *e.Value
		}
		if on && (got["AML_MODEL_DC_STORAGE_ENABLED"] != "true" || got["AKSML_MODEL_DATA_DIR"] != "/ws") {
			t.Errorf("collection on: env %v", got)
		}
		if _, ok := got["AML_MODEL_DC_STORAGE_ENABLED"]; !on && ok {
			t.Errorf("collection off: env %v", got)
		}
	}
}
