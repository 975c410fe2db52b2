package aml

import (
	"slices"
	"testing"
)

func TestPipRequirements(t *testing.T) {
	c := &CondaDependencies{
		Dependencies: []string{"python=3.8", "pip=20.2", "numpy=1.21", "conda-forge::scikit-learn>=1.0", "pytorch", "pandas 1.3.5", "scipy=1.7.3=py38_0", "joblib"},
		PipPackages:  []string{"--find-links /w", "azureml-defaults", "inference-schema[numpy-support]==1.3.0"},
	}
	want := []string{"numpy==1.21.*", "scikit-learn>=1.0", "torch", "pandas==1.3.5", "scipy==1.7.3.*", "joblib", "--find-links /w", "azureml-defaults", "inference-schema[numpy-support]==1.3.0"}
	if got := pipRequirements(c); !slices.Equal(got, want) {
		t.Errorf("pipRequirements =\n%q\nwant\n%q", got, want)
	}
}

// FuzzPipRequirements feeds arbitrary conda dependency specs: the
// translation never panics and gives one requirement line per kept entry.
func FuzzPipRequirements(f *testing.F) {
	for _, s := range []string{"numpy=1.21", "python=3.8", "a::b=1=x", "pandas 1.3", "", "=", "x y z", "pip"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dep string) {
		got := pipRequirements(&CondaDependencies{Dependencies: []string{dep}})
		if len(got) > 1 {
			t.Fatalf("%q gave %d lines", dep, len(got))
		}
	})
}
