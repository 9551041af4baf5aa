// Command chartdoc documents the kmm chart from its own sources.
//
// By default it reads the `# --` comments of charts/kmm/values.yaml, the values themselves and
// charts/kmm/values.schema.json, and writes charts/kmm/README.md: an introduction and a table of
// every documented value (key | type | default | description). It fails when a value is not
// covered by a `# --` comment (on the key or on one of its parents) or when a documented key has
// no description in the schema.
//
// With -sync-schema it instead copies the spec schema of the Module CRD
// (config/crd/bases/kmm.sigs.x-k8s.io_modules.yaml) into values.schema.json's
// definitions.kmmModuleSpec, which `via: operator` modules are validated against. The rest of
// values.schema.json is kept as it is, key order included.
//
// With -check it writes nothing and fails when the output would differ from the file on disk.
//
//	go run ./hack/chartdoc               # charts/kmm/README.md (make chart-readme)
//	go run ./hack/chartdoc -sync-schema  # values.schema.json from the CRD (hack/chart-crds.sh)
package main

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"sigs.k8s.io/yaml"
)

//go:embed readme.md.tmpl
var readmeTemplate string

func main() {
	var o options
	flag.StringVar(&o.chart, "chart", "charts/kmm/Chart.yaml", "the chart's Chart.yaml")
	flag.StringVar(&o.values, "values", "charts/kmm/values.yaml", "the chart's values.yaml")
	flag.StringVar(&o.schema, "schema", "charts/kmm/values.schema.json", "the chart's values.schema.json")
	flag.StringVar(&o.out, "out", "charts/kmm/README.md", "the README to write")
	flag.StringVar(&o.crd, "crd", "config/crd/bases/kmm.sigs.x-k8s.io_modules.yaml", "the Module CRD (-sync-schema)")
	flag.BoolVar(&o.syncSchema, "sync-schema", false, "copy the Module CRD's spec schema into values.schema.json instead of writing the README")
	flag.BoolVar(&o.check, "check", false, "write nothing; fail if the file is not up to date")
	flag.Parse()

	var err error
	if o.syncSchema {
		err = syncSchema(o)
	} else {
		err = readme(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chartdoc:", err)
		os.Exit(1)
	}
}

type options struct {
	chart, values, schema, out, crd string
	syncSchema, check               bool
}

// writeOrCheck writes data to path, or with check compares them.
func writeOrCheck(path string, data []byte, check bool) error {
	if check {
		old, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !bytes.Equal(old, data) {
			return fmt.Errorf("%s is out of date: run make generate", path)
		}
		return nil
	}
	old, err := os.ReadFile(path)
	if err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return err
	}
	fmt.Println("chartdoc: wrote", path)
	return nil
}

// ---- README ----

// doc is one documented value.
type doc struct {
	Key         string
	Type        string
	Default     string
	Description string
}

func readme(o options) error {
	valuesYAML, err := os.ReadFile(o.values)
	if err != nil {
		return err
	}
	var values map[string]any
	if err := yaml.Unmarshal(valuesYAML, &values); err != nil {
		return fmt.Errorf("%s: %w", o.values, err)
	}
	schemaJSON, err := os.ReadFile(o.schema)
	if err != nil {
		return err
	}
	var schema map[string]any
	if err := json.Unmarshal(schemaJSON, &schema); err != nil {
		return fmt.Errorf("%s: %w", o.schema, err)
	}
	chartYAML, err := os.ReadFile(o.chart)
	if err != nil {
		return err
	}
	var chart map[string]any
	if err := yaml.Unmarshal(chartYAML, &chart); err != nil {
		return fmt.Errorf("%s: %w", o.chart, err)
	}

	comments, err := parseComments(string(valuesYAML), values)
	if err != nil {
		return fmt.Errorf("%s: %w", o.values, err)
	}
	var problems []string
	for _, p := range uncovered(values, "", comments) {
		problems = append(problems, fmt.Sprintf("%s: value %s has no `# --` comment (on it or a parent)", o.values, p))
	}
	var docs []doc
	for _, c := range comments {
		v, _ := lookup(values, c.path)
		s := schemaAt(schema, c.path)
		if s == nil || s["description"] == nil {
			problems = append(problems, fmt.Sprintf("%s: %s has no description", o.schema, c.path))
		}
		docs = append(docs, doc{
			Key:         c.path,
			Type:        typeOf(s, v),
			Default:     defaultOf(v),
			Description: c.text,
		})
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return errors.New(strings.Join(problems, "\n  "))
	}

	t, err := template.New("readme").Funcs(template.FuncMap{"cell": cell}).Parse(readmeTemplate)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, map[string]any{"Chart": chart, "Values": docs}); err != nil {
		return err
	}
	return writeOrCheck(o.out, b.Bytes(), o.check)
}

// comment is the `# --` documentation of one key path.
type comment struct {
	path string
	text string
}

var keyLine = regexp.MustCompile(`^(\s*)("[^"]+"|'[^']+'|[A-Za-z0-9_.\-/]+):(\s|$)`)

// parseComments returns the documented keys of values.yaml in file order. A `# --` comment,
// continued by the `#` lines right under it at the same indentation, documents the next key.
// Keys that are not paths of nested maps in values (keys of list items, commented-out
// examples) are skipped.
func parseComments(src string, values map[string]any) ([]comment, error) {
	type frame struct {
		indent int
		key    string
	}
	var (
		stack      []frame
		out        []comment
		pending    []string
		pendingInd = -1
	)
	for n, line := range strings.Split(src, "\n") {
		trimmed := strings.TrimSpace(line)
		indent := len(line) - len(strings.TrimLeft(line, " "))
		switch {
		case trimmed == "":
			pending, pendingInd = nil, -1
			continue
		case strings.HasPrefix(trimmed, "# --"):
			pending = []string{strings.TrimSpace(strings.TrimPrefix(trimmed, "# --"))}
			pendingInd = indent
			continue
		case strings.HasPrefix(trimmed, "#"):
			if pending != nil && indent == pendingInd {
				pending = append(pending, strings.TrimSpace(strings.TrimPrefix(trimmed, "#")))
			}
			continue
		case strings.HasPrefix(trimmed, "-"):
			pending, pendingInd = nil, -1
			continue
		}
		m := keyLine.FindStringSubmatch(line)
		if m == nil {
			pending, pendingInd = nil, -1
			continue
		}
		key := strings.Trim(m[2], `"'`)
		for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		parts := make([]string, 0, len(stack)+1)
		for _, f := range stack {
			parts = append(parts, f.key)
		}
		parts = append(parts, key)
		path := strings.Join(parts, ".")
		if _, ok := lookup(values, path); !ok {
			if pending != nil {
				return nil, fmt.Errorf("line %d: `# --` comment on %s, which is not a value", n+1, path)
			}
			continue
		}
		stack = append(stack, frame{indent, key})
		if pending != nil {
			out = append(out, comment{path: path, text: strings.Join(pending, " ")})
		}
		pending, pendingInd = nil, -1
	}
	return out, nil
}

// lookup finds a dotted path in nested maps.
func lookup(values map[string]any, path string) (any, bool) {
	var cur any = values
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// uncovered lists the leaf values (anything but a non-empty map) that neither they nor a parent
// are documented.
func uncovered(v any, prefix string, comments []comment) []string {
	documented := map[string]bool{}
	for _, c := range comments {
		documented[c.path] = true
	}
	var out []string
	var walk func(v any, path string)
	walk = func(v any, path string) {
		if path != "" && documented[path] {
			return
		}
		if m, ok := v.(map[string]any); ok && len(m) > 0 {
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				p := k
				if path != "" {
					p = path + "." + k
				}
				walk(m[k], p)
			}
			return
		}
		out = append(out, path)
	}
	walk(v, prefix)
	return out
}

// schemaAt finds the schema of a dotted path through "properties".
func schemaAt(schema map[string]any, path string) map[string]any {
	cur := schema
	for _, k := range strings.Split(path, ".") {
		props, _ := cur["properties"].(map[string]any)
		next, ok := props[k].(map[string]any)
		if !ok {
			// A map of named entries (build.osDefaults.<family>): the schema of every value.
			if next, ok = cur["additionalProperties"].(map[string]any); !ok {
				return nil
			}
		}
		cur = next
	}
	return cur
}

// typeOf is the schema's type of a value, else the YAML type of its default.
func typeOf(s map[string]any, v any) string {
	switch t := s["type"].(type) {
	case string:
		return t
	case []any:
		var parts []string
		for _, p := range t {
			parts = append(parts, fmt.Sprint(p))
		}
		return strings.Join(parts, " or ")
	}
	if e, ok := s["enum"].([]any); ok && len(e) > 0 {
		return "string"
	}
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "list"
	case bool:
		return "bool"
	case float64:
		return "number"
	case string:
		return "string"
	}
	return "any"
}

// defaultOf renders a default as compact JSON; a multi-line string (a script) as its line count,
// since the table cannot show it (values.yaml holds it).
func defaultOf(v any) string {
	if s, ok := v.(string); ok && strings.Count(s, "\n") > 1 {
		return fmt.Sprintf("(a script of %d lines: see values.yaml)", strings.Count(strings.TrimRight(s, "\n"), "\n")+1)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSpace(b.String())
}

// cell makes text safe in a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

// ---- values.schema.json <- Module CRD ----

func syncSchema(o options) error {
	crdYAML, err := os.ReadFile(o.crd)
	if err != nil {
		return err
	}
	var crd struct {
		Spec struct {
			Names struct {
				Kind string `json:"kind"`
			} `json:"names"`
			Versions []struct {
				Name   string `json:"name"`
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(crdYAML, &crd); err != nil {
		return fmt.Errorf("%s: %w", o.crd, err)
	}
	var spec map[string]any
	for _, v := range crd.Spec.Versions {
		if v.Name == "v1beta1" {
			props, _ := v.Schema.OpenAPIV3Schema["properties"].(map[string]any)
			spec, _ = props["spec"].(map[string]any)
		}
	}
	if crd.Spec.Names.Kind != "Module" || spec == nil {
		return fmt.Errorf("%s: no v1beta1 Module spec schema", o.crd)
	}
	spec = toJSONSchema(spec).(map[string]any)
	mod, err := moduleSchema(spec)
	if err != nil {
		return err
	}
	generated, err := marshalNoEscape(mod)
	if err != nil {
		return err
	}
	genNode, err := decodeOrdered(generated)
	if err != nil {
		return err
	}

	schemaJSON, err := os.ReadFile(o.schema)
	if err != nil {
		return err
	}
	root, err := decodeOrdered(schemaJSON)
	if err != nil {
		return fmt.Errorf("%s: %w", o.schema, err)
	}
	defs := root.get("definitions")
	if defs == nil {
		defs = &node{kind: objectNode}
		root.set("definitions", defs)
	}
	for _, old := range []string{"kmmModuleSpec", "helmModule", "operatorModule"} {
		defs.del(old)
	}
	defs.set("module", genNode)
	modules := root.get("properties").get("modules")
	if modules == nil {
		return fmt.Errorf("%s: no properties.modules", o.schema)
	}
	ref, err := decodeOrdered([]byte(`{"$ref": "#/definitions/module"}`))
	if err != nil {
		return err
	}
	modules.set("items", ref)

	var compact bytes.Buffer
	root.encode(&compact)
	var out bytes.Buffer
	if err := json.Indent(&out, compact.Bytes(), "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	return writeOrCheck(o.schema, out.Bytes(), o.check)
}

// toJSONSchema turns an OpenAPI v3 structural schema into JSON Schema for Helm: descriptions and
// Kubernetes extensions are dropped, and objects that declare their properties refuse others
// (the API server would silently prune them; a typo in values should fail early instead).
func toJSONSchema(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, val := range t {
			if k == "description" || strings.HasPrefix(k, "x-kubernetes-") {
				continue
			}
			if k == "properties" {
				props := map[string]any{}
				for pk, pv := range val.(map[string]any) {
					props[pk] = toJSONSchema(pv)
				}
				out[k] = props
				continue
			}
			out[k] = toJSONSchema(val)
		}
		_, hasProps := t["properties"]
		_, hasAdditional := t["additionalProperties"]
		preserve, _ := t["x-kubernetes-preserve-unknown-fields"].(bool)
		if hasProps && !hasAdditional && !preserve {
			out["additionalProperties"] = false
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i := range t {
			out[i] = toJSONSchema(t[i])
		}
		return out
	}
	return v
}

func marshalNoEscape(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSpace(b.Bytes()), nil
}

// node is a JSON value that keeps the order of object keys.
type node struct {
	kind   nodeKind
	keys   []string
	values []*node // object values, in keys order, or array items
	scalar any     // string, json.Number, bool or nil
}

type nodeKind int

const (
	scalarNode nodeKind = iota
	objectNode
	arrayNode
)

func (n *node) get(key string) *node {
	for i, k := range n.keys {
		if k == key {
			return n.values[i]
		}
	}
	return nil
}

func (n *node) set(key string, v *node) {
	for i, k := range n.keys {
		if k == key {
			n.values[i] = v
			return
		}
	}
	n.keys = append(n.keys, key)
	n.values = append(n.values, v)
}

func (n *node) del(key string) {
	for i, k := range n.keys {
		if k == key {
			n.keys = append(n.keys[:i], n.keys[i+1:]...)
			n.values = append(n.values[:i], n.values[i+1:]...)
			return
		}
	}
}

func decodeOrdered(data []byte) (*node, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	n, err := decodeValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON value")
	}
	return n, nil
}

func decodeValue(dec *json.Decoder) (*node, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			n := &node{kind: objectNode}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("object key %v is not a string", kt)
				}
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				n.keys = append(n.keys, key)
				n.values = append(n.values, v)
			}
			_, err := dec.Token() // }
			return n, err
		case '[':
			n := &node{kind: arrayNode}
			for dec.More() {
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				n.values = append(n.values, v)
			}
			_, err := dec.Token() // ]
			return n, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	default:
		return &node{kind: scalarNode, scalar: t}, nil
	}
}

func (n *node) encode(b *bytes.Buffer) {
	switch n.kind {
	case objectNode:
		b.WriteByte('{')
		for i, k := range n.keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeScalar(b, k)
			b.WriteByte(':')
			n.values[i].encode(b)
		}
		b.WriteByte('}')
	case arrayNode:
		b.WriteByte('[')
		for i, v := range n.values {
			if i > 0 {
				b.WriteByte(',')
			}
			v.encode(b)
		}
		b.WriteByte(']')
	default:
		writeScalar(b, n.scalar)
	}
}

func writeScalar(b *bytes.Buffer, v any) {
	if num, ok := v.(json.Number); ok {
		b.WriteString(num.String())
		return
	}
	enc, _ := marshalNoEscape(v)
	b.Write(enc)
}
