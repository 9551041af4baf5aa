package nodes

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/iotest"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
)

// encodeProtobuf encodes obj as the API server does for a client that accepts protobuf.
func encodeProtobuf(obj runtime.Object) []byte {
	info, ok := runtime.SerializerInfoForMediaType(scheme.Codecs.SupportedMediaTypes(), runtime.ContentTypeProtobuf)
	if !ok {
		panic("no protobuf serializer")
	}
	b, err := runtime.Encode(scheme.Codecs.EncoderForVersion(info.Serializer, corev1.SchemeGroupVersion), obj)
	if err != nil {
		panic(err)
	}
	return b
}

// typedNodes is what client-go's typed decoding of body makes of it, kept as FromCoreV1 keeps it:
// the reference decodeNodeList must agree with.
func typedNodes(t testing.TB, body []byte) ([]Node, string) {
	t.Helper()
	obj, err := runtime.Decode(scheme.Codecs.UniversalDeserializer(), body)
	require.NoError(t, err)
	list, ok := obj.(*corev1.NodeList)
	require.True(t, ok, "a %T", obj)
	var out []Node
	for i := range list.Items {
		out = append(out, FromCoreV1(&list.Items[i]))
	}
	return out, list.Continue
}

// kubeletNode is a node as a kubelet registers it, with everything kmm skips (images, managed
// fields, conditions, annotations) and every field it keeps.
func kubeletNode(i int) corev1.Node {
	images := make([]corev1.ContainerImage, 50)
	for j := range images {
		images[j] = corev1.ContainerImage{Names: []string{fmt.Sprintf("registry.example/img-%d@sha256:%064d", j, j), fmt.Sprintf("registry.example/img-%d:v%d", j, j)}, SizeBytes: int64(j) << 20}
	}
	since := metav1.NewTime(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))
	return corev1.Node{
		TypeMeta: metav1.TypeMeta{Kind: "Node", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("ip-10-0-0-%d.ec2.internal", i), UID: "0a1b2c", ResourceVersion: "4711",
			CreationTimestamp: since,
			Labels: map[string]string{
				"kubernetes.io/os": "linux", "kubernetes.io/arch": "arm64", "kubernetes.io/hostname": fmt.Sprintf("ip-10-0-0-%d", i),
				"feature.node.kubernetes.io/kernel-version.full": "6.1.112-122.189.amzn2023.aarch64",
				"empty.example/value":                            "",
			},
			Annotations: map[string]string{"node.alpha.kubernetes.io/ttl": "0", "note": "ünïcödé"},
			Finalizers:  []string{"example.com/keep"},
			ManagedFields: []metav1.ManagedFieldsEntry{{
				Manager: "kubelet", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1", Time: &since,
				FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:status":{"f:images":{}}}`)},
			}},
		},
		Spec: corev1.NodeSpec{
			PodCIDR: "10.244.1.0/24", PodCIDRs: []string{"10.244.1.0/24"},
			ProviderID: fmt.Sprintf("aws:///us-east-1a/i-%017d", i),
			Taints: []corev1.Taint{
				{Key: "nvidia.com/gpu", Value: "present", Effect: corev1.TaintEffectNoSchedule},
				{Key: "node.kubernetes.io/unreachable", Effect: corev1.TaintEffectNoExecute, TimeAdded: &metav1.Time{Time: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}},
			},
		},
		Status: corev1.NodeStatus{
			Capacity:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourcePods: resource.MustParse("110")},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: since, Reason: "KubeletReady"}},
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}},
			NodeInfo: corev1.NodeSystemInfo{
				MachineID: "m", KernelVersion: "6.1.112-122.189.amzn2023.aarch64", OSImage: "Amazon Linux 2023.6.20241106",
				ContainerRuntimeVersion: "containerd://1.7.23", KubeletVersion: "v1.31.2", OperatingSystem: "linux", Architecture: "arm64",
			},
			Images: images,
		},
	}
}

func nodeList(cont string, items ...corev1.Node) *corev1.NodeList {
	return &corev1.NodeList{
		TypeMeta: metav1.TypeMeta{Kind: "NodeList", APIVersion: "v1"},
		ListMeta: metav1.ListMeta{ResourceVersion: "4712", Continue: cont},
		Items:    items,
	}
}

// TestDecodeNodeList: from protobuf and from JSON, decodeNodeList keeps exactly what client-go's
// typed decoding and FromCoreV1 keep, and the continue token, whatever else the nodes hold.
func TestDecodeNodeList(t *testing.T) {
	bare := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "bare"}} // no labels, taints or nodeInfo
	repeated := kubeletNode(3)
	repeated.Spec.Taints = append(repeated.Spec.Taints, repeated.Spec.Taints...)
	tests := []struct {
		name string
		list *corev1.NodeList
	}{
		{name: "kubelet-shaped nodes and a continue token", list: nodeList("eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NDcxMiwic3RhcnQiOiJ4In0", kubeletNode(1), kubeletNode(2))},
		{name: "a node with nothing but a name", list: nodeList("", bare)},
		{name: "repeated taints", list: nodeList("", repeated)},
		{name: "no node", list: nodeList("")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pb := encodeProtobuf(tt.list)
			require.True(t, len(pb) > 4 && string(pb[:4]) == "k8s\x00", "the test encodes what the API server sends")
			want, wantCont := typedNodes(t, pb)
			got, cont, err := decodeNodeList(pb, interner{})
			require.NoError(t, err)
			assert.Equal(t, want, got, "protobuf")
			assert.Equal(t, wantCont, cont)
			assert.Equal(t, tt.list.Continue, cont)

			js, err := json.Marshal(tt.list)
			require.NoError(t, err)
			want, _ = typedNodes(t, js)
			got, cont, err = decodeNodeList(js, interner{})
			require.NoError(t, err)
			if len(got) == 0 {
				got = nil // the JSON path allocates for the items it is given
			}
			assert.Equal(t, want, got, "JSON")
			assert.Equal(t, tt.list.Continue, cont)
		})
	}

	// What is kept, spelled out, for the kubelet-shaped node.
	got, _, err := decodeNodeList(encodeProtobuf(nodeList("", kubeletNode(7))), interner{})
	require.NoError(t, err)
	require.Len(t, got, 1)
	n := got[0]
	assert.Equal(t, "ip-10-0-0-7.ec2.internal", n.Name)
	assert.Equal(t, "6.1.112-122.189.amzn2023.aarch64", n.Kernel)
	assert.Equal(t, "Amazon Linux 2023.6.20241106", n.OSImage)
	assert.Equal(t, "arm64", n.Architecture)
	assert.Equal(t, "aws:///us-east-1a/i-00000000000000007", n.ProviderID)
	assert.Len(t, n.Labels, 5)
	assert.Equal(t, "", n.Labels["empty.example/value"])
	require.Len(t, n.Taints, 2)
	assert.Equal(t, corev1.Taint{Key: "nvidia.com/gpu", Value: "present", Effect: corev1.TaintEffectNoSchedule}, n.Taints[0])
	require.NotNil(t, n.Taints[1].TimeAdded)
	assert.True(t, n.Taints[1].TimeAdded.Equal(&metav1.Time{Time: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}))
}

// TestDecodeNodeListInterns: equal label keys and values of different nodes share one string.
func TestDecodeNodeListInterns(t *testing.T) {
	in := interner{}
	got, _, err := decodeNodeList(encodeProtobuf(nodeList("", kubeletNode(1), kubeletNode(2))), in)
	require.NoError(t, err)
	require.Len(t, got, 2)
	a, b := got[0].Labels["kubernetes.io/os"], got[1].Labels["kubernetes.io/os"]
	assert.Equal(t, "linux", a)
	assert.Same(t, unsafe.StringData(a), unsafe.StringData(b), "one copy of a value both nodes carry")
	assert.Contains(t, in, "kubernetes.io/os")
	assert.NotContains(t, in, got[0].Name, "names are not interned: each node has its own")
}

func TestDecodeNodeListRefuses(t *testing.T) {
	pods := encodeProtobuf(&corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}})
	good := encodeProtobuf(nodeList("", kubeletNode(1)))
	tests := []struct {
		name    string
		body    []byte
		wantErr string
	}{
		{name: "another kind (protobuf)", body: pods, wantErr: `the server answered a "PodList" of "v1", not a v1 NodeList`},
		{name: "another kind (JSON)", body: []byte(`{"kind":"PodList","apiVersion":"v1","items":[]}`), wantErr: `the server answered a "PodList" of "v1", not a v1 NodeList`},
		{name: "not JSON", body: []byte(`<html>`), wantErr: "decoding the node list"},
		{name: "envelope only", body: []byte("k8s\x00"), wantErr: `the server answered a "" of "", not a v1 NodeList`},
		{name: "type but no list", body: []byte("k8s\x00\x0a\x0e\x0a\x02v1\x12\x08NodeList"), wantErr: "the server's v1 NodeList holds no list"},
		{name: "truncated in the middle", body: good[:len(good)/2], wantErr: "truncated protobuf"},
		{name: "group wire type", body: []byte("k8s\x00\x0b"), wantErr: "protobuf wire type 3"},
		{name: "field number 0", body: []byte("k8s\x00\x02"), wantErr: "protobuf field number 0"},
		{
			// A NodeList whose first item's metadata is a varint, not a message.
			name:    "a message field with a varint's wire type",
			body:    append([]byte("k8s\x00\x0a\x0e\x0a\x02v1\x12\x08NodeList\x12\x04"), 0x12, 0x02, 0x08, 0x01),
			wantErr: "items[0]: field 1 of the node has protobuf wire type 0, not a message",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns, cont, err := decodeNodeList(tt.body, interner{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.Nil(t, ns)
			assert.Empty(t, cont)
		})
	}

	// Cut anywhere, a body never panics the decoder, and gives either an error or the whole
	// list (cut after the list, among the envelope's last fields): never part of a list.
	whole, _, err := decodeNodeList(good, interner{})
	require.NoError(t, err)
	require.Len(t, whole, 1)
	errs := 0
	for i := 0; i < len(good); i++ {
		ns, _, err := decodeNodeList(good[:i], interner{})
		if err != nil {
			errs++
			assert.Nil(t, ns)
			continue
		}
		require.Equal(t, whole, ns, "cut at %d of %d", i, len(good))
	}
	assert.Greater(t, errs, len(good)-10, "nearly every cut is an error")
}

// FuzzDecodeNodeList feeds decodeNodeList arbitrary bytes: it never panics, and an error comes
// with no node and no continue token. (It is not compared with client-go's typed decoding here:
// that parses every resource quantity, and a mutated one can take it minutes; see
// FuzzDecodeNodeListFields.)
func FuzzDecodeNodeList(f *testing.F) {
	f.Add(encodeProtobuf(nodeList("c", kubeletNode(1), kubeletNode(2))))
	f.Add(encodeProtobuf(nodeList("", corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: map[string]string{"k": "v"}}})))
	f.Add([]byte(`{"kind":"NodeList","apiVersion":"v1","items":[{"metadata":{"name":"a"}}]}`))
	f.Add([]byte("k8s\x00"))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, cont, err := decodeNodeList(body, interner{})
		if err != nil && (got != nil || cont != "") {
			t.Fatalf("error %v came with %d nodes and continue %q", err, len(got), cont)
		}
	})
}

// FuzzDecodeNodeListFields builds node lists from arbitrary values of the fields kmm keeps (and
// one it skips), encodes them as the API server does, and checks that decodeNodeList keeps from
// the protobuf exactly what client-go's typed decoding and FromCoreV1 keep.
func FuzzDecodeNodeListFields(f *testing.F) {
	f.Add("node-a", "kubernetes.io/os", "linux", "nvidia.com/gpu", "present", "NoSchedule", int64(1767225600), int32(5), "6.8.0-1017-gcp", "Ubuntu 24.04.1 LTS", "amd64", "gce://p/z/node-a", "cont", "registry.example/a:1", uint8(2))
	f.Add("", "", "", "", "", "", int64(-1), int32(-1), "", "", "", "", "", "", uint8(0))
	f.Fuzz(func(t *testing.T, name, key, value, taintKey, taintValue, effect string, seconds int64, nanos int32, kernel, osImage, arch, providerID, cont, image string, count uint8) {
		var items []corev1.Node
		for i := range int(count % 4) {
			n := corev1.Node{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", name, i), Labels: map[string]string{key: value, "n": fmt.Sprint(i)}, Annotations: map[string]string{key: value}},
				Spec: corev1.NodeSpec{ProviderID: providerID, Taints: []corev1.Taint{
					{Key: taintKey, Value: taintValue, Effect: corev1.TaintEffect(effect)},
					{Key: taintKey, TimeAdded: &metav1.Time{Time: time.Unix(seconds%(1<<40), int64(nanos))}},
				}},
				Status: corev1.NodeStatus{
					NodeInfo: corev1.NodeSystemInfo{KernelVersion: kernel, OSImage: osImage, Architecture: arch, MachineID: name},
					Images:   []corev1.ContainerImage{{Names: []string{image}, SizeBytes: seconds}},
				},
			}
			if i == 1 {
				n.Labels, n.Spec.Taints = nil, nil
			}
			items = append(items, n)
		}
		body := encodeProtobuf(nodeList(cont, items...))
		want, wantCont := typedNodes(t, body)
		got, gotCont, err := decodeNodeList(body, interner{})
		require.NoError(t, err)
		assert.Equal(t, want, got)
		assert.Equal(t, wantCont, gotCont)
	})
}

// TestReadNodeListStream: read as it streams in, a page gives the same nodes however the bytes
// arrive (here one at a time), and a connection that fails part way gives an error that says
// so, and no node.
func TestReadNodeListStream(t *testing.T) {
	body := encodeProtobuf(nodeList("next", kubeletNode(1), kubeletNode(2), kubeletNode(3)))
	want, wantCont, err := decodeNodeList(body, interner{})
	require.NoError(t, err)
	require.Len(t, want, 3)

	got, cont, err := readNodeList(bufio.NewReaderSize(iotest.OneByteReader(bytes.NewReader(body)), 16), interner{})
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.Equal(t, wantCont, cont)
	assert.Equal(t, "next", cont)

	broken := io.MultiReader(bytes.NewReader(body[:len(body)/2]), iotest.ErrReader(errors.New("stream reset by peer")))
	got, cont, err = readNodeList(bufio.NewReader(broken), interner{})
	require.Error(t, err)
	assert.Equal(t, "reading the node list: stream reset by peer", err.Error())
	assert.Nil(t, got)
	assert.Empty(t, cont)
}
