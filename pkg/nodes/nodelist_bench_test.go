package nodes

import (
	"encoding/json"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// BenchmarkDecodeNodeList decodes one page of 500 kubelet-shaped nodes (labels, taints, 50
// images, conditions), as the API server sends it, in protobuf and in JSON: what listing a
// cluster costs kmm-render per page, besides the network.
func BenchmarkDecodeNodeList(b *testing.B) {
	items := make([]corev1.Node, 500)
	for i := range items {
		items[i] = kubeletNode(i)
	}
	for _, enc := range []struct {
		name string
		body []byte
	}{
		{"protobuf", encodeProtobuf(nodeList("next", items...))},
		{"json", mustJSON(nodeList("next", items...))},
	} {
		b.Run(fmt.Sprintf("%s/nodes=%d", enc.name, len(items)), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(enc.body)))
			for b.Loop() {
				got, _, err := decodeNodeList(enc.body, interner{})
				if err != nil {
					b.Fatal(err)
				}
				if len(got) != len(items) {
					b.Fatalf("decoded %d nodes, want %d", len(got), len(items))
				}
			}
		})
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
