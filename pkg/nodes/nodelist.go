package nodes

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
)

// Decoding one page of `GET /api/v1/nodes` into the Nodes kmm needs.
//
// FromCluster asks for protobuf and reads it here as it arrives, node by node, keeping only what
// a Node holds (name, labels, taints, provider ID, kernel, OS image, architecture) and skipping
// everything else without decoding it: the status.images of a kubelet-registered node, its
// conditions, managed fields and annotations are most of its bytes, and decoding them into typed
// objects was most of the cost of listing a large cluster. Neither a page (megabytes for 500
// nodes) nor its typed objects are ever held in memory: one node's bytes at a time. A server
// that answers JSON (one that ignores the Accept header, or a test's fake) is decoded into typed
// objects instead.

// protobufMagic opens every protobuf body of the Kubernetes API (k8s.io/apimachinery's
// protobuf serializer); a runtime.Unknown message follows.
var protobufMagic = []byte("k8s\x00")

// decodeNodeList decodes one page of a node List held in memory: its nodes and its continue
// token.
func decodeNodeList(body []byte, in interner) ([]Node, string, error) {
	return readNodeList(bufio.NewReader(bytes.NewReader(body)), in)
}

// readNodeList reads one page of a node List from r, to its end: its nodes and its continue
// token. It returns either the whole page or an error, never part of one.
func readNodeList(r *bufio.Reader, in interner) ([]Node, string, error) {
	if magic, err := r.Peek(len(protobufMagic)); err == nil && bytes.Equal(magic, protobufMagic) {
		_, _ = r.Discard(len(protobufMagic))
		nodes, cont, err := readNodeListProtobuf(r, in)
		var re readError
		switch {
		case errors.As(err, &re):
			return nil, "", fmt.Errorf("reading the node list: %w", re.err)
		case err != nil:
			return nil, "", fmt.Errorf("decoding the node list: %w", err)
		}
		return nodes, cont, nil
	}
	body, err := io.ReadAll(r)
	if err != nil {
		return nil, "", err
	}
	var list corev1.NodeList
	if err := kjson.UnmarshalCaseSensitivePreserveInts(body, &list); err != nil {
		return nil, "", fmt.Errorf("decoding the node list: %w", err)
	}
	if list.Kind != "NodeList" || list.APIVersion != "v1" {
		return nil, "", fmt.Errorf("the server answered a %q of %q, not a v1 NodeList", list.Kind, list.APIVersion)
	}
	out := make([]Node, len(list.Items))
	for i := range list.Items {
		out[i] = FromCoreV1(&list.Items[i])
	}
	return out, list.Continue, nil
}

// Protobuf field numbers (k8s.io/api/core/v1/generated.proto and
// k8s.io/apimachinery/pkg/{runtime,apis/meta/v1}/generated.proto), of the fields read here.
const (
	unknownTypeMeta        protowire.Number = 1 // runtime.Unknown
	unknownRaw             protowire.Number = 2
	unknownContentEncoding protowire.Number = 3
	typeMetaAPIVersion     protowire.Number = 1 // runtime.TypeMeta
	typeMetaKind           protowire.Number = 2
	listMetadata           protowire.Number = 1 // NodeList
	listItems              protowire.Number = 2
	listMetaContinue       protowire.Number = 3 // metav1.ListMeta
	nodeMetadata           protowire.Number = 1 // Node
	nodeSpec               protowire.Number = 2
	nodeStatus             protowire.Number = 3
	metaName               protowire.Number = 1 // metav1.ObjectMeta
	metaLabels             protowire.Number = 11
	mapKey                 protowire.Number = 1 // a map<string, string> entry
	mapValue               protowire.Number = 2
	specProviderID         protowire.Number = 3 // NodeSpec
	specTaints             protowire.Number = 5
	taintKey               protowire.Number = 1 // Taint
	taintValue             protowire.Number = 2
	taintEffect            protowire.Number = 3
	taintTimeAdded         protowire.Number = 4
	timeSeconds            protowire.Number = 1 // metav1.Time
	timeNanos              protowire.Number = 2
	statusNodeInfo         protowire.Number = 7 // NodeStatus
	infoKernelVersion      protowire.Number = 4 // NodeSystemInfo
	infoOSImage            protowire.Number = 5
	infoOperatingSystem    protowire.Number = 9
	infoArchitecture       protowire.Number = 10
)

var errTruncated = errors.New("truncated protobuf")

// errGroup refuses the group wire types, which the Kubernetes API does not use.
func errGroup(typ protowire.Type) error {
	return fmt.Errorf("protobuf wire type %d (groups are not used by the Kubernetes API)", typ)
}

// pbFields calls fn with each field of the protobuf message b, in order: its number, wire
// type, and value (varints in v, length-delimited fields in data, which aliases b; fixed-size
// values are skipped). The wire format is read by protowire, the protobuf module's own reader.
func pbFields(b []byte, fn func(num protowire.Number, typ protowire.Type, v uint64, data []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return pbError(protowire.ParseError(n))
		}
		b = b[n:]
		var v uint64
		var data []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			data, n = protowire.ConsumeBytes(b)
		case protowire.StartGroupType, protowire.EndGroupType:
			return errGroup(typ)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return pbError(protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(num, typ, v, data); err != nil {
			return err
		}
	}
	return nil
}

// pbError words a protowire parse error as kmm-render's messages do: a message cut short is
// "truncated protobuf" whichever field it was cut in.
func pbError(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errTruncated
	}
	return fmt.Errorf("malformed protobuf: %w", err)
}

// pbWantBytes refuses a field kmm reads that does not have the wire type of a string or message.
func pbWantBytes(what string, typ protowire.Type) error {
	if typ != protowire.BytesType {
		return fmt.Errorf("%s has protobuf wire type %d, not a string or message", what, typ)
	}
	return nil
}

// interner hands out one string for equal byte slices: node labels repeat across a cluster's
// nodes, and every node would otherwise hold its own copies.
type interner map[string]string

func (in interner) get(b []byte) string {
	if s, ok := in[string(b)]; ok { // no allocation: the compiler keys the lookup by b's bytes
		return s
	}
	s := string(b)
	in[s] = s
	return s
}

// readNodeListProtobuf reads a runtime.Unknown that holds a v1 NodeList, after the magic
// number, from r to its end. The API server writes the Unknown's fields in order: the type
// (which must say v1 NodeList before any item is read), the list, its content encoding and type.
func readNodeListProtobuf(r *bufio.Reader, in interner) ([]Node, string, error) {
	s := pbStream{r: r, left: -1}
	var apiVersion, kind string
	var nodes []Node
	var cont string
	sawList := false
	for {
		num, typ, err := s.tag()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, "", err
		}
		switch num {
		case unknownTypeMeta:
			data, err := s.bytes("typeMeta", typ)
			if err != nil {
				return nil, "", err
			}
			err = pbFields(data, func(num protowire.Number, typ protowire.Type, _ uint64, data []byte) error {
				switch num {
				case typeMetaAPIVersion:
					apiVersion = string(data)
				case typeMetaKind:
					kind = string(data)
				default:
					return nil
				}
				return pbWantBytes("typeMeta field", typ)
			})
			if err != nil {
				return nil, "", err
			}
		case unknownRaw:
			if kind != "NodeList" || apiVersion != "v1" {
				return nil, "", fmt.Errorf("the server answered a %q of %q, not a v1 NodeList", kind, apiVersion)
			}
			if err := pbWantBytes("raw", typ); err != nil {
				return nil, "", err
			}
			l, err := s.length()
			if err != nil {
				return nil, "", err
			}
			list := pbStream{r: r, left: l, buf: s.buf}
			if nodes, cont, err = list.nodeList(in, nodes); err != nil {
				return nil, "", err
			}
			s.buf, sawList = list.buf, true
		case unknownContentEncoding:
			data, err := s.bytes("contentEncoding", typ)
			if err != nil {
				return nil, "", err
			}
			if len(data) > 0 {
				return nil, "", errors.New("the server answered a node list with a content encoding kmm-render does not read")
			}
		default:
			if err := s.skip(typ); err != nil {
				return nil, "", err
			}
		}
	}
	if kind != "NodeList" || apiVersion != "v1" {
		return nil, "", fmt.Errorf("the server answered a %q of %q, not a v1 NodeList", kind, apiVersion)
	}
	if !sawList {
		// Not even an empty list (whose raw field is there, empty): a body cut short.
		return nil, "", errors.New("the server's v1 NodeList holds no list")
	}
	return nodes, cont, nil
}

// nodeList reads the fields of a NodeList message, s.left bytes long: the continue token of its
// metadata, and each item, appended to nodes.
func (s *pbStream) nodeList(in interner, nodes []Node) ([]Node, string, error) {
	var cont string
	for s.left > 0 {
		num, typ, err := s.tag()
		if err != nil {
			return nil, "", err
		}
		switch num {
		case listMetadata:
			data, err := s.bytes("metadata", typ)
			if err != nil {
				return nil, "", err
			}
			err = pbFields(data, func(num protowire.Number, typ protowire.Type, _ uint64, data []byte) error {
				if num != listMetaContinue {
					return nil
				}
				cont = string(data)
				return pbWantBytes("metadata.continue", typ)
			})
			if err != nil {
				return nil, "", err
			}
		case listItems:
			data, err := s.bytes("items", typ)
			if err != nil {
				return nil, "", err
			}
			var n Node
			if err := pbNode(data, &n, in); err != nil {
				return nil, "", fmt.Errorf("items[%d]: %w", len(nodes), err)
			}
			nodes = append(nodes, n)
		default:
			if err := s.skip(typ); err != nil {
				return nil, "", err
			}
		}
	}
	return nodes, cont, nil
}

// readError is a failure to read the stream (the connection), as opposed to what it holds.
type readError struct{ err error }

func (e readError) Error() string { return e.err.Error() }
func (e readError) Unwrap() error { return e.err }

// pbStream reads protobuf fields from a stream: the fields of a message left bytes long, or of
// one that ends with the stream when left is negative.
type pbStream struct {
	r    *bufio.Reader
	left int64
	buf  []byte // the last length-delimited field read; reused
}

// ReadByte reads one byte of the message (an io.ByteReader, for binary.ReadUvarint).
func (s *pbStream) ReadByte() (byte, error) {
	if s.left == 0 {
		return 0, errTruncated
	}
	b, err := s.r.ReadByte()
	if err != nil {
		if err == io.EOF {
			return 0, errTruncated
		}
		return 0, readError{err}
	}
	if s.left > 0 {
		s.left--
	}
	return b, nil
}

// varint reads a base-128 varint.
func (s *pbStream) varint() (uint64, error) {
	v, err := binary.ReadUvarint(s)
	if err != nil && !errors.Is(err, errTruncated) && !errors.As(err, new(readError)) {
		return 0, fmt.Errorf("malformed protobuf: %w", err) // longer than 64 bits
	}
	return v, err
}

// tag reads a field's number and wire type: io.EOF when a message that ends with the stream
// has ended.
func (s *pbStream) tag() (protowire.Number, protowire.Type, error) {
	if s.left < 0 {
		if _, err := s.r.Peek(1); err == io.EOF {
			return 0, 0, io.EOF
		} else if err != nil {
			return 0, 0, readError{err}
		}
	}
	key, err := s.varint()
	if err != nil {
		return 0, 0, err
	}
	num, typ := protowire.DecodeTag(key)
	if num == 0 {
		return 0, 0, errors.New("protobuf field number 0")
	}
	return num, typ, nil
}

// length reads the length of a length-delimited field, which must fit in the message.
func (s *pbStream) length() (int64, error) {
	l, err := s.varint()
	if err != nil {
		return 0, err
	}
	if l > math.MaxInt32 || s.left >= 0 && int64(l) > s.left {
		return 0, errTruncated
	}
	return int64(l), nil
}

// bytes reads a length-delimited field into s.buf. The buffer grows only as the bytes arrive,
// so that a length the stream does not hold cannot make it allocate that much.
func (s *pbStream) bytes(what string, typ protowire.Type) ([]byte, error) {
	if err := pbWantBytes(what, typ); err != nil {
		return nil, err
	}
	l, err := s.length()
	if err != nil {
		return nil, err
	}
	s.buf = s.buf[:0]
	for l > 0 {
		chunk := min(l, 64<<10)
		start := len(s.buf)
		s.buf = slices.Grow(s.buf, int(chunk))[:start+int(chunk)]
		if _, err := io.ReadFull(s.r, s.buf[start:]); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return nil, errTruncated
			}
			return nil, readError{err}
		}
		l -= chunk
		if s.left > 0 {
			s.left -= chunk
		}
	}
	return s.buf, nil
}

// skip reads past a field of wire type typ, its tag read.
func (s *pbStream) skip(typ protowire.Type) error {
	var n int64
	switch typ {
	case protowire.VarintType:
		_, err := s.varint()
		return err
	case protowire.Fixed64Type:
		n = 8
	case protowire.Fixed32Type:
		n = 4
	case protowire.BytesType:
		l, err := s.length()
		if err != nil {
			return err
		}
		n = l
	default:
		return errGroup(typ)
	}
	if s.left >= 0 && n > s.left {
		return errTruncated
	}
	for n > 0 {
		d, err := s.r.Discard(int(min(n, 1<<30)))
		n -= int64(d)
		if s.left > 0 {
			s.left -= int64(d)
		}
		if err != nil {
			if err == io.EOF {
				return errTruncated
			}
			return readError{err}
		}
	}
	return nil
}

// pbNode reads a v1 Node's fields that Node keeps into n, as FromCoreV1 would from the
// typed object: metadata.name and labels, spec.providerID and taints, and status.nodeInfo's
// kernelVersion, osImage, operatingSystem and architecture. Should a field repeat, the last value wins and
// messages merge, as protobuf decoders do.
func pbNode(b []byte, n *Node, in interner) error {
	return pbFields(b, func(num protowire.Number, typ protowire.Type, _ uint64, data []byte) error {
		var decode func([]byte, *Node, interner) error
		switch num {
		case nodeMetadata:
			decode = pbNodeMeta
		case nodeSpec:
			decode = pbNodeSpec
		case nodeStatus:
			decode = pbNodeStatus
		default:
			return nil
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("field %d of the node has protobuf wire type %d, not a message", num, typ)
		}
		return decode(data, n, in)
	})
}

func pbNodeMeta(b []byte, n *Node, in interner) error {
	return pbFields(b, func(num protowire.Number, typ protowire.Type, _ uint64, data []byte) error {
		switch num {
		case metaName:
			if err := pbWantBytes("metadata.name", typ); err != nil {
				return err
			}
			n.Name = string(data)
		case metaLabels:
			if err := pbWantBytes("metadata.labels", typ); err != nil {
				return err
			}
			k, v, err := pbMapEntry(data, in)
			if err != nil {
				return fmt.Errorf("metadata.labels: %w", err)
			}
			if n.Labels == nil {
				n.Labels = make(map[string]string, pbCountField(b, metaLabels))
			}
			n.Labels[k] = v
		}
		return nil
	})
}

func pbNodeSpec(b []byte, n *Node, in interner) error {
	return pbFields(b, func(num protowire.Number, typ protowire.Type, _ uint64, data []byte) error {
		switch num {
		case specProviderID:
			if err := pbWantBytes("spec.providerID", typ); err != nil {
				return err
			}
			n.ProviderID = string(data)
		case specTaints:
			if err := pbWantBytes("spec.taints", typ); err != nil {
				return err
			}
			t, err := pbTaint(data, in)
			if err != nil {
				return fmt.Errorf("spec.taints[%d]: %w", len(n.Taints), err)
			}
			n.Taints = append(n.Taints, t)
		}
		return nil
	})
}

func pbNodeStatus(b []byte, n *Node, in interner) error {
	return pbFields(b, func(num protowire.Number, typ protowire.Type, _ uint64, data []byte) error {
		if num != statusNodeInfo {
			return nil // images, conditions, addresses, capacity...: skipped undecoded
		}
		if err := pbWantBytes("status.nodeInfo", typ); err != nil {
			return err
		}
		return pbFields(data, func(num protowire.Number, typ protowire.Type, _ uint64, data []byte) error {
			var dst *string
			switch num {
			case infoKernelVersion:
				dst = &n.Kernel
			case infoOSImage:
				dst = &n.OSImage
			case infoOperatingSystem:
				dst = &n.OperatingSystem
			case infoArchitecture:
				dst = &n.Architecture
			default:
				return nil
			}
			*dst = in.get(data)
			return pbWantBytes("status.nodeInfo field", typ)
		})
	})
}

// pbCountField counts the fields numbered num of message b (to size a map before filling it).
func pbCountField(b []byte, num protowire.Number) int {
	c := 0
	_ = pbFields(b, func(n protowire.Number, _ protowire.Type, _ uint64, _ []byte) error {
		if n == num {
			c++
		}
		return nil
	})
	return c
}

// pbMapEntry decodes an entry of a map<string, string>; a missing key or value is "".
func pbMapEntry(b []byte, in interner) (key, value string, err error) {
	err = pbFields(b, func(num protowire.Number, typ protowire.Type, _ uint64, data []byte) error {
		switch num {
		case mapKey:
			key = in.get(data)
		case mapValue:
			value = in.get(data)
		default:
			return nil
		}
		return pbWantBytes("map entry", typ)
	})
	return key, value, err
}

func pbTaint(b []byte, in interner) (corev1.Taint, error) {
	var t corev1.Taint
	err := pbFields(b, func(num protowire.Number, typ protowire.Type, _ uint64, data []byte) error {
		switch num {
		case taintKey:
			t.Key = in.get(data)
		case taintValue:
			t.Value = in.get(data)
		case taintEffect:
			t.Effect = corev1.TaintEffect(in.get(data))
		case taintTimeAdded:
			if err := pbWantBytes("timeAdded", typ); err != nil {
				return err
			}
			var seconds, nanos uint64
			err := pbFields(data, func(num protowire.Number, typ protowire.Type, v uint64, _ []byte) error {
				switch num {
				case timeSeconds:
					seconds = v
				case timeNanos:
					nanos = v
				default:
					return nil
				}
				if typ != protowire.VarintType {
					return fmt.Errorf("timeAdded field %d has protobuf wire type %d, not a varint", num, typ)
				}
				return nil
			})
			if err != nil {
				return err
			}
			// As metav1.Time's own protobuf decoding: int64 seconds, int32 nanos, local time.
			t.TimeAdded = &metav1.Time{Time: time.Unix(int64(seconds), int64(int32(nanos))).Local()}
			return nil
		default:
			return nil
		}
		return pbWantBytes("taint field", typ)
	})
	return t, err
}
