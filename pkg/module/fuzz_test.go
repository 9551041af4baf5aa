package module_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"kmm.dev/kmm/pkg/module"
	"kmm.dev/kmm/pkg/render"
)

// FuzzModuleList feeds the chart's module list parser (DecodeList, then Validate and
// render.NewModule, as kmm-render reads the list) arbitrary JSON. Whatever it gets:
//   - it never panics;
//   - decoding is strict: once a list decodes, the same list with an unknown field added to its
//     first module is refused, naming that field;
//   - a module Validate accepts compiles (render.NewModule), and each of its kernel mappings
//     resolves an image for a well-formed kernel: Validate promises what planning relies on.
//
// The chart's module lists of the examples, as Helm rendered them, are checked-in seeds
// (testdata/fuzz/FuzzModuleList); small handcrafted ones are added here.
func FuzzModuleList(f *testing.F) {
	for _, s := range []string{
		`[]`, `null`, `{}`, `[null]`, `[{}]`, `"x"`,
		`[{"name":"m","namespace":"kmm","selector":{"kubernetes.io/os":"linux"},"moduleLoader":{"container":{"modprobe":{"moduleName":"m"},"containerImage":"r/m:${KERNEL_FULL_VERSION}","kernelMappings":[{"regexp":"^5\\."},{"literal":"6.1.100"}]}}}]`,
		`[{"name":"m","namespace":"kmm","via":"operator","selector":{"a":"b"},"moduleLoader":{"container":{"version":"v1","modprobe":{"rawArgs":{"load":["x"],"unload":["y"]}},"kernelMappings":[{"regexp":"(a+)+$","containerImage":"r/m:1"}]}}}]`,
		`[{"name":"m","namespace":"kmm","selector":{"a":"b"},"moduleLoader":{"container":{"modprobe":{"moduleName":"m"},"kernelMappings":[{"regexp":"(a)\\1","containerImage":"r/m:1"}]}}}]`,
		`[{"name":"m","namespace":"kmm","selector":{"a":"b"},"moduleLoader":{"container":{"modprobe":{"moduleName":"m","modulesLoadingOrder":["m","n"]},"containerImage":"r/m:${KERNEL_XYZ}","build":{"dockerfileConfigMap":{"name":"d"}},"sign":{"keySecret":{"name":"k"},"certSecret":{"name":"c"},"filesToSign":["/opt/lib/modules/m.ko"]},"kernelMappings":[{"literal":"5.4.1"}]}},"devicePlugin":{"container":{"image":"r/dp:1"}},"builder":{"strategy":"node"},"tolerations":[{"key":"k","operator":"Exists","effect":"NoSchedule"}]}]`,
		`[{"name":"m","namespace":"kmm","name":"n"}]`,
		`[{"name":"m","namespace":"kmm","Name":"n"}]`,
		`[{"name":"m","moduleLoader":{"container":{"kernelMappings":[{"literal":1}]}}}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		list, err := module.DecodeList(data)
		if err != nil {
			if list != nil {
				t.Fatalf("error %q came with %d modules", err, len(list))
			}
			return
		}
		if bad, ok := withUnknownField(data); ok {
			if _, err := module.DecodeList(bad); err == nil || !strings.Contains(err.Error(), `unknown field "kmmFuzzUnknown"`) {
				t.Fatalf("an unknown field was accepted or not named: %v", err)
			}
		}
		for i := range list {
			m := &list[i]
			if errs := m.Validate(module.ValuesPaths(i)); len(errs) > 0 {
				continue
			}
			rm, err := render.NewModule(m)
			if err != nil {
				t.Fatalf("modules[%d] passes Validate but does not compile: %v", i, err)
			}
			for j := range rm.Mappings {
				if _, err := rm.ImageFor(j, "1.2.3-4.kmm"); err != nil {
					t.Fatalf("modules[%d] passes Validate but mapping %d resolves no image: %v", i, j, err)
				}
			}
			rm.Mappings.Match("5.15.0-1034-gke")
		}
	})
}

// withUnknownField returns data, a JSON list, with a field no module has added to its first
// element when that is an object.
func withUnknownField(data []byte) ([]byte, bool) {
	var raw []json.RawMessage
	if json.Unmarshal(data, &raw) != nil || len(raw) == 0 {
		return nil, false
	}
	first := bytes.TrimSpace(raw[0])
	if len(first) < 2 || first[0] != '{' {
		return nil, false
	}
	body := bytes.TrimSpace(first[1 : len(first)-1])
	sep := ","
	if len(body) == 0 {
		sep = ""
	}
	var b bytes.Buffer
	b.WriteString(`[{"kmmFuzzUnknown":1` + sep)
	b.Write(body)
	b.WriteString("}")
	for _, r := range raw[1:] {
		b.WriteString(",")
		b.Write(r)
	}
	b.WriteString("]")
	return b.Bytes(), true
}
