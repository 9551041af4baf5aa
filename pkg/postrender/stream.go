package postrender

import (
	"bytes"
	"fmt"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// AnnotationHelm4Filename is the annotation Helm 4 puts on every document it hands a
// post-renderer, naming the template file the document came from. It must survive.
const AnnotationHelm4Filename = "postrenderer.helm.sh/postrender-filename"

// document is one YAML document of the stream: its raw bytes, kept verbatim for pass-through
// (separator line, comments, formatting), and its parsed form.
type document struct {
	index int    // 1-based position in the input
	sep   string // the "---" line that opened it, with its newline; "" for a first document without one
	body  string // everything after the separator, up to the next one
	node  *yaml.RNode
}

// name tells people which document this is: its template file when Helm says so.
func (d *document) name() string {
	src := ""
	for _, line := range strings.Split(d.body, "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(line), "# Source: "); ok {
			src = s
			break
		}
	}
	if src == "" && d.node != nil {
		src = d.node.GetAnnotations()[AnnotationHelm4Filename]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "document %d", d.index)
	if src != "" {
		fmt.Fprintf(&b, " (%s)", src)
	}
	if d.node != nil {
		if k, n := d.node.GetKind(), d.node.GetName(); k != "" || n != "" {
			fmt.Fprintf(&b, " %s %s", k, qualified(d.node.GetNamespace(), n))
		}
	}
	return b.String()
}

// split cuts a stream into documents at "---" lines and parses each. Documents that hold
// nothing but comments and blank lines are kept, unparsed, to pass through as they are.
func split(in []byte) ([]*document, error) {
	var docs []*document
	cur := &document{index: 1}
	var body bytes.Buffer
	flush := func() {
		cur.body = body.String()
		docs = append(docs, cur)
		body.Reset()
	}
	rest := in
	first := true
	for len(rest) > 0 {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line = rest[:i+1]
		}
		rest = rest[len(line):]
		if isSeparator(line) {
			if !first || body.Len() > 0 {
				flush()
				cur = &document{index: len(docs) + 1}
			}
			cur.sep = string(line)
			if !bytes.HasSuffix(line, []byte("\n")) {
				cur.sep += "\n"
			}
			first = false
			continue
		}
		first = false
		body.Write(line)
	}
	flush()

	out := docs[:0]
	for _, d := range docs {
		if d.sep == "" && strings.TrimSpace(d.body) == "" {
			continue // nothing before the first separator
		}
		d.index = len(out) + 1
		if !isBlank(d.body) {
			n, err := yaml.Parse(d.body)
			if err != nil {
				return nil, fmt.Errorf("%s: malformed YAML: %w", d.name(), err)
			}
			if n.YNode().Kind != yaml.MappingNode {
				return nil, fmt.Errorf("%s: not a Kubernetes object (a YAML %s)", d.name(), kindName(n.YNode().Kind))
			}
			d.node = n
			if d.node.GetKind() == "" || d.node.GetApiVersion() == "" {
				return nil, fmt.Errorf("%s: no apiVersion or kind", d.name())
			}
			if d.node.GetName() == "" {
				return nil, fmt.Errorf("%s: no metadata.name", d.name())
			}
		}
		out = append(out, d)
	}
	return out, nil
}

func isSeparator(line []byte) bool {
	l := bytes.TrimRight(line, "\r\n")
	if !bytes.HasPrefix(l, []byte("---")) {
		return false
	}
	rest := l[3:]
	return len(rest) == 0 || rest[0] == ' ' || rest[0] == '\t'
}

// isBlank reports whether a document body holds only blank lines and comments.
func isBlank(body string) bool {
	for _, line := range strings.Split(body, "\n") {
		t := strings.TrimSpace(line)
		if t != "" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "scalar"
	default:
		return "non-mapping node"
	}
}

func qualified(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}
