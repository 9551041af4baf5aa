package postrender

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// AnnotationHelm4Filename is the annotation Helm 4 puts on every document it hands a
// post-renderer, naming the template file the document came from. It must survive.
const AnnotationHelm4Filename = "postrenderer.helm.sh/postrender-filename"

// document is one YAML document of the stream: its raw bytes, kept verbatim for pass-through
// (separator line, comments, formatting), and its parsed form.
type document struct {
	// index is the 1-based position in the input; 0 marks the stream's preamble (a byte order
	// mark, blank lines before the first ---), which passes through and is no document.
	index int
	sep   string // the "---" line that opened it, with its line break if any; "" for a first document without one
	body  string // everything after the separator, up to the next one
	node  *yaml.RNode
	// sepContent is what follows "---" on the separator line when it is not a comment.
	sepContent string
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
		fmt.Fprintf(&b, " (%s)", forMessage(src))
	}
	if d.node != nil {
		if k, n := d.node.GetKind(), d.node.GetName(); k != "" || n != "" {
			fmt.Fprintf(&b, " %s %s", forMessage(k), forMessage(qualified(d.node.GetNamespace(), n)))
		}
	}
	return b.String()
}

// maxMessageField bounds how much of one input string a message repeats.
const maxMessageField = 256

// forMessage makes a string from the input safe to print in a message: quoted when it holds
// anything but printable characters (a control character could rewrite the user's terminal,
// a newline forge a line of output), and cut when it is long.
func forMessage(s string) string {
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return quoted(s)
	}
	if len(s) > maxMessageField {
		return fmt.Sprintf("%s...(%d bytes)", s[:maxMessageField], len(s))
	}
	return s
}

// quoted is s, Go-quoted, cut when long.
func quoted(s string) string {
	if len(s) > maxMessageField {
		return fmt.Sprintf("%s...(%d bytes)", strconv.Quote(s[:maxMessageField]), len(s))
	}
	return strconv.Quote(s)
}

var byteOrderMark = []byte("\ufeff")

// split cuts a stream into documents at "---" lines and parses each. Documents that hold
// nothing but comments and blank lines are kept, with no object, to pass through as they are;
// so are a byte order mark that opens the stream and blank lines before the first "---".
//
// It refuses what YAML parsers read differently, since kmm-render checks and rewrites what it
// reads and Helm applies what it reads (see document.parse).
func split(in []byte) ([]*document, error) {
	var docs []*document
	if bytes.HasPrefix(in, byteOrderMark) {
		docs = append(docs, &document{body: string(byteOrderMark)})
		in = in[len(byteOrderMark):]
	}
	cur := &document{}
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
				cur = &document{}
			}
			cur.sep = string(line) // verbatim: a last "---" without a newline stays one
			cur.sepContent = separatorContent(line)
			first = false
			continue
		}
		first = false
		body.Write(line)
	}
	flush()

	out := docs[:0]
	n := 0
	for _, d := range docs {
		if d.sep == "" && (d.body == string(byteOrderMark) || isYAMLSpace(d.body)) {
			if d.body != "" {
				out = append(out, d) // the preamble: kept, byte for byte
			}
			continue
		}
		n++
		d.index = n
		if err := d.parse(); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// parse reads the document and checks that it is one Kubernetes object that every YAML parser
// reads alike: UTF-8 without a byte order mark, one YAML document, no content on its "---"
// line, and none of the YAML features whose resolution differs between parsers (see
// unambiguous). Helm writes none of these.
func (d *document) parse() error {
	if where := d.find(invalidUTF8); where != "" {
		return fmt.Errorf("%s: not UTF-8 text (%s): kmm-render reads UTF-8 only", d.name(), where)
	}
	if where := d.find(func(s string) int { return strings.Index(s, string(byteOrderMark)) }); where != "" {
		return fmt.Errorf("%s: a byte order mark (U+FEFF) inside the stream (%s): only the first byte of the input may be one, "+
			"and parsers differ on whether one inside the stream is text", d.name(), where)
	}
	if d.sepContent != "" {
		return fmt.Errorf("%s: content after --- on its separator line (%s): put the document on the lines after ---", d.name(), forMessage(d.sepContent))
	}
	n, err := parseYAML(d.body)
	if err != nil {
		return fmt.Errorf("%s: malformed YAML: %w", d.name(), err)
	}
	if n == nil {
		return nil // comments and blank lines only
	}
	if n.YNode().Kind != yaml.MappingNode {
		return fmt.Errorf("%s: not a Kubernetes object (a YAML %s)", d.name(), kindName(n.YNode().Kind))
	}
	metaErr := checkMetadata(n.YNode())
	if metaErr == nil {
		d.node = n // name() reads kind and name with kyaml, which needs that shape
	}
	if err := unambiguous(n.YNode()); err != nil {
		return fmt.Errorf("%s: %w", d.name(), err)
	}
	if metaErr != nil {
		return fmt.Errorf("%s: %w", d.name(), metaErr)
	}
	if d.node.GetKind() == "" || d.node.GetApiVersion() == "" {
		return fmt.Errorf("%s: no apiVersion or kind", d.name())
	}
	if d.node.GetName() == "" {
		return fmt.Errorf("%s: no metadata.name", d.name())
	}
	for _, f := range []struct{ path, value string }{
		{"apiVersion", d.node.GetApiVersion()}, {"kind", d.node.GetKind()},
		{"metadata.name", d.node.GetName()}, {"metadata.namespace", d.node.GetNamespace()},
	} {
		if strings.IndexFunc(f.value, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
			return fmt.Errorf("%s: %s %s holds a control or non-printable character", d.name(), f.path, quoted(f.value))
		}
	}
	return nil
}

// find says where index (an offset, or -1) finds something in the document: on its --- line,
// or at a line of its body, counted as YAML errors count them; "" when nowhere.
func (d *document) find(index func(string) int) string {
	if index(d.sep) >= 0 {
		return "on its --- line"
	}
	if i := index(d.body); i >= 0 {
		return fmt.Sprintf("line %d", 1+strings.Count(d.body[:i], "\n"))
	}
	return ""
}

// errSecondDocument: a body that holds a second YAML document, which kmm-render (and Helm,
// which splits streams where kmm-render does) would not see, and a YAML parser would: a ---
// after a line break YAML knows and Helm does not (a lone carriage return, U+0085, U+2028,
// U+2029), or a document after a ... end marker.
var errSecondDocument = errors.New(`a second YAML document starts inside this one (a --- after a line break other than "
", or after a ... end marker); separate documents with --- lines`)

// parseYAML parses one YAML document; nil when the text holds only comments and blank lines.
func parseYAML(text string) (*yaml.RNode, error) {
	dec := yaml.NewDecoder(strings.NewReader(text))
	var n yaml.Node
	if err := dec.Decode(&n); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	var more yaml.Node
	switch err := dec.Decode(&more); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, err
	default:
		return nil, errSecondDocument
	}
	return yaml.NewRNode(&n), nil
}

// plainTags are the explicit tags every parser reads alike: they do not change a value.
var plainTags = map[string]bool{"!!str": true, "!!int": true, "!!float": true, "!!bool": true, "!!null": true, "!!map": true, "!!seq": true}

// unambiguous refuses the YAML features that parsers resolve differently, so that what
// kmm-render reads (with kyaml, node by node) is what Helm and the API server read (converting
// to JSON): aliases (and with them alias bombs: kmm-render never expands one), merge keys,
// repeated keys (first or last wins), keys that are not scalars (no JSON equivalent), and
// explicit tags that change a value (!!binary, local tags).
func unambiguous(root *yaml.Node) error {
	const why = "kmm-render refuses YAML aliases, merge keys, repeated keys and value-changing tags: Helm never writes them, and YAML parsers resolve them differently"
	stack := []*yaml.Node{root}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n.Style&yaml.TaggedStyle != 0 && !plainTags[n.ShortTag()] {
			return fmt.Errorf("line %d: explicit YAML tag %s; %s", n.Line, forMessage(n.Tag), why)
		}
		switch n.Kind {
		case yaml.AliasNode:
			return fmt.Errorf("line %d: YAML alias *%s; %s", n.Line, forMessage(n.Value), why)
		case yaml.MappingNode:
			var seen map[string]int
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				switch {
				case k.Kind == yaml.AliasNode:
					return fmt.Errorf("line %d: YAML alias *%s as a key; %s", k.Line, forMessage(k.Value), why)
				case k.Kind != yaml.ScalarNode:
					return fmt.Errorf("line %d: a mapping key that is a YAML %s; %s", k.Line, kindName(k.Kind), why)
				case k.ShortTag() == "!!merge":
					return fmt.Errorf("line %d: YAML merge key <<; %s", k.Line, why)
				}
				if seen == nil {
					seen = make(map[string]int, len(n.Content)/2)
				}
				if first, dup := seen[k.Value]; dup {
					return fmt.Errorf("line %d: key %s is repeated (first at line %d); %s", k.Line, forMessage(k.Value), first, why)
				}
				seen[k.Value] = k.Line
			}
		}
		for i := len(n.Content) - 1; i >= 0; i-- {
			stack = append(stack, n.Content[i])
		}
	}
	return nil
}

// checkMetadata refuses metadata that is not shaped as Kubernetes metadata is (a mapping, whose
// labels and annotations map strings to strings): kmm-render reads names and annotations with
// kyaml, which takes these shapes for granted.
func checkMetadata(obj *yaml.Node) error {
	md := mappingValue(obj, "metadata")
	if md == nil {
		return nil
	}
	if err := isMapping("metadata", md); err != nil {
		return err
	}
	for _, f := range []string{"labels", "annotations"} {
		m := mappingValue(md, f)
		if m == nil {
			continue
		}
		if err := isMapping("metadata."+f, m); err != nil {
			return err
		}
		for i := 1; i < len(m.Content); i += 2 {
			if v := m.Content[i]; v.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: metadata.%s.%s is a YAML %s, not a string", v.Line, f, forMessage(m.Content[i-1].Value), kindName(v.Kind))
			}
		}
	}
	return nil
}

// mappingValue is the value of key in mapping node n, or nil.
func mappingValue(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// isMapping accepts a mapping or null.
func isMapping(path string, n *yaml.Node) error {
	if n.Kind == yaml.MappingNode || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil
	}
	return fmt.Errorf("line %d: %s is a YAML %s, not a mapping", n.Line, path, kindName(n.Kind))
}

// invalidUTF8 is the offset of the first byte of s that is not UTF-8, or -1.
func invalidUTF8(s string) int {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return -1
}

func isSeparator(line []byte) bool {
	l := bytes.TrimRight(line, "\r\n")
	if !bytes.HasPrefix(l, []byte("---")) {
		return false
	}
	rest := l[3:]
	return len(rest) == 0 || rest[0] == ' ' || rest[0] == '\t'
}

// separatorContent is what follows "---" on a separator line, unless that is only blanks and a
// comment.
func separatorContent(line []byte) string {
	rest := strings.Trim(string(bytes.TrimRight(line, "\r\n")[3:]), " \t")
	if rest == "" || strings.HasPrefix(rest, "#") {
		return ""
	}
	return rest
}

// isYAMLSpace reports whether s holds only YAML white space and line breaks.
func isYAMLSpace(s string) bool {
	return strings.Trim(s, " \t\r\n") == ""
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "scalar"
	case yaml.MappingNode:
		return "mapping"
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
