package nodes

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"

	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// LoadFile reads a node snapshot: what `kubectl get nodes -o yaml` or `-o json` prints (a
// NodeList or a List of Nodes), or Node objects as a multi-document YAML stream. A file that
// cannot be read, does not parse, holds something other than Nodes, or holds no node at all is
// an error naming the file. The nodes come back sorted by name.
func LoadFile(path string) ([]Node, error) {
	objs, err := LoadObjects(path)
	if err != nil {
		return nil, err
	}
	return fromObjects(objs), nil
}

// LoadObjects reads a node snapshot like LoadFile, and returns the full Node objects, in the
// order the file lists them.
func LoadObjects(path string) ([]corev1.Node, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading node file: %w", err)
	}
	objs, err := ParseObjects(data)
	if err != nil {
		return nil, fmt.Errorf("node file %s: %w", path, err)
	}
	return objs, nil
}

// Parse reads nodes from YAML or JSON bytes; see LoadFile.
func Parse(data []byte) ([]Node, error) {
	objs, err := ParseObjects(data)
	if err != nil {
		return nil, err
	}
	return fromObjects(objs), nil
}

func fromObjects(objs []corev1.Node) []Node {
	out := make([]Node, 0, len(objs))
	for i := range objs {
		out = append(out, FromCoreV1(&objs[i]))
	}
	return Sort(out)
}

// ParseObjects is the node snapshot parser behind LoadFile, LoadObjects and Parse: it reads
// Node objects from YAML or JSON bytes, in document and list order. Every Node must have a
// name and a status.nodeInfo.kernelVersion, and no name may appear twice; errors name the
// document (and list item).
func ParseObjects(data []byte) ([]corev1.Node, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []corev1.Node
	for doc := 0; ; doc++ {
		var v any
		if err := dec.Decode(&v); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("document %d: %w", doc+1, err)
		}
		if v == nil {
			continue
		}
		raw, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("document %d is %s, not a Node, NodeList or List", doc+1, describe(v))
		}
		kind, _ := raw["kind"].(string)
		switch kind {
		case "Node":
			n, err := decodeNode(raw)
			if err != nil {
				return nil, fmt.Errorf("document %d: %w", doc+1, err)
			}
			out = append(out, n)
		case "NodeList", "List":
			items, ok := raw["items"].([]any)
			if !ok && raw["items"] != nil {
				return nil, fmt.Errorf("document %d: items is %s, not a list", doc+1, describe(raw["items"]))
			}
			for i, it := range items {
				obj, ok := it.(map[string]any)
				if !ok || obj["kind"] != nil && obj["kind"] != "Node" {
					return nil, fmt.Errorf("document %d: items[%d] is %v, not a Node", doc+1, i, describe(it))
				}
				n, err := decodeNode(obj)
				if err != nil {
					return nil, fmt.Errorf("document %d: items[%d]: %w", doc+1, i, err)
				}
				out = append(out, n)
			}
		default:
			return nil, fmt.Errorf("document %d is %s, not a Node, NodeList or List", doc+1, describe(raw))
		}
	}
	if len(out) == 0 {
		return nil, errors.New("holds no nodes")
	}
	seen := map[string]bool{}
	for _, n := range out {
		if seen[n.Name] {
			return nil, fmt.Errorf("node %q is listed twice", n.Name)
		}
		seen[n.Name] = true
	}
	return out, nil
}

func decodeNode(obj map[string]any) (corev1.Node, error) {
	b, err := yaml.Marshal(obj)
	if err != nil {
		return corev1.Node{}, err
	}
	var n corev1.Node
	if err := yaml.UnmarshalStrict(b, &n); err != nil {
		// Newer clusters may carry fields this client does not know; fall back to lenient.
		n = corev1.Node{}
		if err2 := yaml.Unmarshal(b, &n); err2 != nil {
			return corev1.Node{}, fmt.Errorf("decoding Node: %w", err2)
		}
	}
	if n.Name == "" {
		return corev1.Node{}, errors.New("a Node has no metadata.name")
	}
	if n.Status.NodeInfo.KernelVersion == "" {
		return corev1.Node{}, fmt.Errorf("node %q has no status.nodeInfo.kernelVersion", n.Name)
	}
	if err := FromCoreV1(&n).Check(); err != nil {
		return corev1.Node{}, err
	}
	return n, nil
}

func describe(v any) string {
	var m map[string]any
	switch v := v.(type) {
	case map[string]any:
		m = v
	case []any:
		return "a list"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64, int64:
		return "a number"
	default:
		return fmt.Sprintf("a %T", v)
	}
	kind, _ := m["kind"].(string)
	if kind == "" {
		return "an object without kind"
	}
	if strings.IndexFunc(kind, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return "kind " + Quote(kind)
	}
	return "kind " + kind
}
