package scoring

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
)

// genericSchema is what Azure ML's server uses for run() without schema
// decorators.
var genericSchema = json.RawMessage(`{"type":"object","example":{}}`)

// buildSwaggers prepares /swagger.json for versions "2", "3" and "3.1" (and
// the aliases "2.0" and "3.0"), as azmlinfsrv does. A user's file is served
// as is: swagger.json or swagger2.json for 2, swagger3.json for 3,
// swagger3.1.json for 3.1, looked for in the app root (as azmlinfsrv does)
// and then in the source directory. Otherwise the document is generated
// from the declared input and output schemas, or the generic ones.
func buildSwaggers(cfg *Config, in, out json.RawMessage, appRoot, sourceDir string) map[string][]byte {
	in, out = schemaOrGeneric(in), schemaOrGeneric(out)
	docs := map[string][]byte{}
	dirs := []string{appRoot, sourceDir}
	prefix := ""
	if p := strings.Trim(cfg.ServicePathPrefix, "/"); p != "" {
		prefix = "/" + p
	}
	v2 := userSwagger(dirs, "swagger.json", "swagger2.json")
	if v2 == nil {
		v2 = swagger2(cfg, prefix, in, out)
	}
	v3 := userSwagger(dirs, "swagger3.json")
	if v3 == nil {
		v3 = swagger3(cfg, prefix, "3.0.3", in, out)
	}
	v31 := userSwagger(dirs, "swagger3.1.json")
	if v31 == nil {
		v31 = swagger3(cfg, prefix, "3.1.0", in, out)
	}
	for _, k := range []string{"2", "2.0"} {
		docs[k] = v2
	}
	for _, k := range []string{"3", "3.0"} {
		docs[k] = v3
	}
	docs["3.1"] = v31
	return docs
}

func schemaOrGeneric(s json.RawMessage) json.RawMessage {
	if len(s) == 0 || !json.Valid(s) {
		return genericSchema
	}
	var v any
	_ = json.Unmarshal(s, &v)
	if m, ok := v.(map[string]any); !ok || len(m) == 0 {
		return genericSchema
	}
	return s
}

// userSwagger returns the first of names in the first of dirs that holds
// valid JSON.
func userSwagger(dirs []string, names ...string) []byte {
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		for _, n := range names {
			b, err := os.ReadFile(filepath.Join(dir, n))
			if err == nil && json.Valid(b) {
				return b
			}
		}
	}
	return nil
}

type obj = map[string]any

var errorResponse2 = obj{
	"description": "The service failed to execute due to an error.",
	"schema":      obj{"$ref": "#/definitions/ErrorResponse"},
}

func swagger2(cfg *Config, prefix string, in, out json.RawMessage) []byte {
	doc := obj{
		"swagger": "2.0",
		"info": obj{
			"title":       cfg.ServiceName,
			"description": "API specification for the Azure Machine Learning service " + cfg.ServiceName,
			"version":     cfg.ServiceVersion,
		},
		"schemes":  []string{"https"},
		"consumes": []string{"application/json"},
		"produces": []string{"application/json"},
		"securityDefinitions": obj{"Bearer": obj{
			"type": "apiKey", "name": "Authorization", "in": "header",
			"description": "For example: Bearer abc123",
		}},
		"paths": obj{
			prefix + "/": obj{"get": obj{
				"operationId": "ServiceHealthCheck",
				"description": "Simple health check endpoint to ensure the service is up at any given point.",
				"responses": obj{
					"200": obj{
						"description": "If service is up and running, this response will be returned with the content 'Healthy'",
						"schema":      obj{"type": "string"},
						"examples":    obj{"application/json": "Healthy"},
					},
					"default": errorResponse2,
				},
			}},
			prefix + "/score": obj{"post": obj{
				"operationId": "RunMLService",
				"description": "Run web service's model and get the prediction output",
				"security":    []obj{{"Bearer": []string{}}},
				"parameters": []obj{{
					"name": "serviceInputPayload", "in": "body",
					"description": "The input payload for executing the real-time machine learning service.",
					"schema":      obj{"$ref": "#/definitions/ServiceInput"},
				}},
				"responses": obj{
					"200": obj{
						"description": "The service processed the input correctly and provided a result prediction, if applicable.",
						"schema":      obj{"$ref": "#/definitions/ServiceOutput"},
					},
					"default": errorResponse2,
				},
			}},
			prefix + "/swagger.json": obj{"get": obj{
				"operationId": "GetSwaggerSpec",
				"description": "Get the Swagger specification.",
				"parameters": []obj{{
					"name": "version", "in": "query", "required": false,
					"type": "integer", "enum": []int{2, 3},
				}},
				"responses": obj{
					"200":     obj{"description": "The Swagger specification.", "schema": obj{"type": "string"}},
					"default": errorResponse2,
				},
			}},
		},
		"definitions": obj{
			"ServiceInput":  in,
			"ServiceOutput": out,
			"ErrorResponse": obj{"type": "object", "properties": obj{"message": obj{"type": "string"}}},
		},
	}
	b, _ := json.MarshalIndent(doc, "", "  ")
	return b
}

// swagger3 is the OpenAPI document of azmlinfsrv's swagger3 template with
// the given openapi version (3.0.3, or 3.1.0 for ?version=3.1).
func swagger3(cfg *Config, prefix, openapi string, in, out json.RawMessage) []byte {
	errResp := obj{
		"description": "The service failed to execute due to an error.",
		"content":     obj{"application/json": obj{"schema": obj{"$ref": "#/components/schemas/ErrorResponse"}}},
	}
	doc := obj{
		"openapi": openapi,
		"info": obj{
			"title":       cfg.ServiceName,
			"description": "API specification for the Azure Machine Learning service " + cfg.ServiceName,
			"version":     cfg.ServiceVersion,
		},
		"security": []obj{{"Bearer": []string{}}},
		"paths": obj{
			prefix + "/": obj{"get": obj{
				"operationId": "ServiceHealthCheck",
				"description": "Simple health check endpoint to ensure the service is up at any given point.",
				"responses": obj{
					"200": obj{
						"description": "If service is up and running, this response will be returned with the content 'Healthy'",
						"content":     obj{"text/plain": obj{"schema": obj{"type": "string", "example": "Healthy"}}},
					},
					"default": errResp,
				},
			}},
			prefix + "/score": obj{"post": obj{
				"operationId": "RunMLService",
				"description": "Run web service's model and get the prediction output",
				"security":    []obj{{"Bearer": []string{}}},
				"requestBody": obj{
					"description": "The input payload for executing the real-time machine learning service.",
					"content":     obj{"application/json": obj{"schema": obj{"$ref": "#/components/schemas/ServiceInput"}}},
				},
				"responses": obj{
					"200": obj{
						"description": "The service processed the input correctly and provided a result prediction, if applicable.",
						"content":     obj{"application/json": obj{"schema": obj{"$ref": "#/components/schemas/ServiceOutput"}}},
					},
					"default": errResp,
				},
			}},
			prefix + "/swagger.json": obj{"get": obj{
				"operationId": "GetSwaggerSpec",
				"description": "Get the Swagger specification.",
				"parameters": []obj{{
					"name": "version", "in": "query", "required": false,
					"schema": obj{"type": "integer", "enum": []int{2, 3}},
				}},
				"responses": obj{
					"200": obj{
						"description": "The Swagger specification.",
						"content":     obj{"text/plain": obj{"schema": obj{"type": "string"}}},
					},
					"default": errResp,
				},
			}},
		},
		"components": obj{
			"securitySchemes": obj{"Bearer": obj{
				"type": "apiKey", "name": "Authorization", "in": "header",
				"description": "For example: Bearer abc123",
			}},
			"schemas": obj{
				"ServiceInput":  in,
				"ServiceOutput": out,
				"ErrorResponse": obj{"type": "object", "properties": obj{"message": obj{"type": "string"}}},
			},
		},
	}
	b, _ := json.MarshalIndent(doc, "", "  ")
	return b
}
