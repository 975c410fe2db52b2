package scoring

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/aksml/aksml/errcode"
)

// fileConfig is what an azmlinfsrv configuration file (--config_file,
// $AZUREML_CONFIG_FILE, or config.json in the app root) sets: the keys are
// the names of the environment variables they stand for.
type fileConfig struct {
	values  map[string]string // honoured keys with a value (null drops the key)
	ignored []string          // known keys aksml-score accepts but does not use
	unknown []string          // keys azmlinfsrv does not know either
	timeout int               // SCORING_TIMEOUT_MS, 0 when unset
}

// Keys of the configuration file and the kind of value each takes.
var fileConfigKeys = map[string]string{
	"AZUREML_ENTRY_SCRIPT":     "string",
	"AZUREML_SOURCE_DIRECTORY": "string",
	"AZUREML_MODEL_DIR":        "string",
	"SERVICE_NAME":             "string",
	"SERVICE_PATH_PREFIX":      "string",
	"SERVICE_VERSION":          "string",
	"AML_CORS_ORIGINS":         "string",
	"SCORING_TIMEOUT_MS":       "int",
	// Accepted and ignored (see docs/inference-server.md).
	"WORKSPACE_NAME":                    "string-ignored",
	"AZUREML_LOG_LEVEL":                 "string-ignored",
	"HOSTNAME":                          "string-ignored",
	"AML_APP_INSIGHTS_KEY":              "string-ignored",
	"AZUREML_DEBUG_PORT":                "int-ignored",
	"AML_APP_INSIGHTS_ENABLED":          "bool-ignored",
	"APP_INSIGHTS_LOG_RESPONSE_ENABLED": "bool-ignored",
	"AML_MODEL_DC_STORAGE_ENABLED":      "bool-ignored",
}

// parseFileConfig reads an azmlinfsrv configuration file: a JSON object
// whose keys are environment variable names. A known key with a value of the
// wrong kind is an error naming the key, the value and the rule; unknown
// keys are reported (azmlinfsrv logs them) but not refused.
func parseFileConfig(name string, b []byte) (*fileConfig, error) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil || raw == nil {
		if err == nil {
			err = fmt.Errorf("it is null")
		}
		return nil, errcode.Errorf(errcode.InvalidArgument, "config file %s is not a JSON object: %v", name, err)
	}
	if dec.More() {
		return nil, errcode.Errorf(errcode.InvalidArgument, "config file %s holds more than one JSON value", name)
	}
	fc := &fileConfig{values: map[string]string{}}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []string
	for _, k := range keys {
		v := bytes.TrimSpace(raw[k])
		kind, known := fileConfigKeys[k]
		if !known {
			fc.unknown = append(fc.unknown, k)
			continue
		}
		if string(v) == "null" {
			continue
		}
		ignored := strings.HasSuffix(kind, "-ignored")
		switch strings.TrimSuffix(kind, "-ignored") {
		case "string":
			var s string
			if json.Unmarshal(v, &s) != nil {
				errs = append(errs, fmt.Sprintf("%s: %s is not a string", k, v))
				continue
			}
			if !ignored {
				fc.values[k] = s
			}
		case "int":
			n, err := jsonInt(v)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %s %v", k, v, err))
				continue
			}
			if k == "SCORING_TIMEOUT_MS" {
				if n <= 0 {
					errs = append(errs, fmt.Sprintf("SCORING_TIMEOUT_MS: %d is not a positive number of milliseconds", n))
					continue
				}
				fc.timeout = n
			}
		case "bool":
			var x bool
			if json.Unmarshal(v, &x) != nil {
				var s string
				if json.Unmarshal(v, &s) != nil || !validBoolText(s) {
					errs = append(errs, fmt.Sprintf("%s: %s is not a boolean", k, v))
					continue
				}
			}
		}
		if ignored {
			fc.ignored = append(fc.ignored, k)
		}
	}
	if len(errs) > 0 {
		return nil, errcode.Errorf(errcode.InvalidArgument, "config file %s: %s", name, strings.Join(errs, "; "))
	}
	return fc, nil
}

// jsonInt reads an integer the way azmlinfsrv's settings do: a JSON number
// without a fraction, or a string holding one.
func jsonInt(v json.RawMessage) (int, error) {
	var s string
	if json.Unmarshal(v, &s) == nil {
		v = json.RawMessage(strings.TrimSpace(s))
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("is not an integer")
	}
	if f != math.Trunc(f) || f > math.MaxInt32 || f < math.MinInt32 {
		return 0, fmt.Errorf("is not an integer in range")
	}
	return int(f), nil
}

func validBoolText(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "false", "1", "0", "yes", "no", "on", "off", "t", "f", "y", "n":
		return true
	}
	return false
}
