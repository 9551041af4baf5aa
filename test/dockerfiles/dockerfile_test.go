// Package dockerfiles checks examples/kmod/Dockerfile and the per-OS build recipes of the chart
// (build.osDefaults in charts/kmm/values.yaml) without a container engine or a package archive.
//
// The Dockerfile is generic: both stages start FROM the build arg KMM_BASE_IMAGE, the builder
// runs the recipe kmm-os-headers.sh and the final stage kmm-os-kmod.sh, files kmm-render's
// builds put in the build context from build.osDefaults.<os>. It is parsed with BuildKit's own
// Dockerfile frontend, the version the chart's builder image (moby/buildkit:v0.34.2-rootless)
// runs, and checked for what a build relies on (dockerfile_test.go). The recipes are
// shellchecked and run, under dash and busybox sh, against fake package managers, downloaders
// and archivers (testdata/bin) in a temporary root, table-driven per OS and kernel
// (recipes_test.go).
//
// It needs Go, /bin/sh, shellcheck and busybox (`make apt-deps`); without shellcheck or busybox
// it fails.
package dockerfiles

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// contextDir is examples/kmod, relative to this package: the build context (the ConfigMap is
// made from its files) and the home of the Dockerfile.
const contextDir = "../../examples/kmod"

// dockerfileName is the example's Dockerfile in contextDir.
const dockerfileName = "Dockerfile"

// The recipes kmm-render's builds put in the build context (from build.osDefaults.<os>), and
// the env file the headers recipe writes for the build.
const (
	headersRecipe = "kmm-os-headers.sh"
	kmodRecipe    = "kmm-os-kmod.sh"
	buildEnvFile  = "/etc/kmm-build.env"
)

// baseImageArg is the build arg both stages start FROM, and defaultBaseImage its default in
// the Dockerfile: the debian recipe's image for bookworm nodes.
const (
	baseImageArg     = "KMM_BASE_IMAGE"
	defaultBaseImage = "debian:bookworm"
)

// builderArgs are the build args the builder stage declares before it runs the headers recipe:
// KMM's (KERNEL_VERSION, KERNEL_FULL_VERSION, MOD_NAME, MOD_NAMESPACE), kmm-render's (KMM_*),
// and the users' ones some recipes read.
var builderArgs = []string{
	"KERNEL_VERSION", "KERNEL_FULL_VERSION", "MOD_NAME", "MOD_NAMESPACE",
	"KMM_BASE_IMAGE", "KMM_OS", "KMM_OS_RELEASE", "KMM_OS_VARIANT", "KMM_ARCH",
	"COS_BUILD_ID", "BOTTLEROCKET_ROOT_SHA512",
}

// The image layout KMM loads from: modprobe.dirName and modprobe.firmwarePath of the example's
// module (examples/kmod/README.md), and where the builder's build.sh installs them.
const (
	destRoot    = "/out"
	modulesDir  = "/opt"
	firmwareDir = "/firmware"
)

// TestBuildScript checks build.sh, which the Dockerfile runs: its shell syntax, and that the
// sources it builds are in the build context.
func TestBuildScript(t *testing.T) {
	bs := readBuildScript(t)
	if err := shSyntax(bs.text); err != nil {
		t.Errorf("build.sh: sh -n: %v", err)
	}
	ctx := contextFiles(t)
	for _, f := range bs.sources {
		if !ctx[f] {
			t.Errorf("build.sh builds %s, which is not a file of the build context examples/kmod", f)
		}
	}
}

// TestNoRecipesInContext fails when examples/kmod holds a file named like a recipe: a ConfigMap
// made from the folder would then carry it, and a build context's own recipe wins over the
// chart's (the per-module override), so every build would use it whatever the nodes' OS.
func TestNoRecipesInContext(t *testing.T) {
	ctx := contextFiles(t)
	for _, name := range []string{headersRecipe, kmodRecipe} {
		if ctx[name] {
			t.Errorf("examples/kmod/%s exists: it would override build.osDefaults for every OS; remove it", name)
		}
	}
	paths, err := filepath.Glob(filepath.Join(contextDir, "Dockerfile*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if filepath.Base(p) != dockerfileName {
			t.Errorf("%s: examples/kmod has one generic Dockerfile; per-OS logic goes into build.osDefaults", p)
		}
	}
}

func TestDockerfile(t *testing.T) {
	df := parseDockerfile(t, dockerfileName)
	ctx := contextFiles(t)
	bs := readBuildScript(t)

	t.Run("base image", func(t *testing.T) {
		if len(df.meta) != 1 || len(df.meta[0].Args) != 1 || df.meta[0].Args[0].Key != baseImageArg {
			t.Fatalf("%s: want exactly one ARG before the first FROM, %s, got %v", df.name, baseImageArg, df.meta)
		}
		v := df.meta[0].Args[0].Value
		if v == nil || *v != defaultBaseImage {
			t.Errorf("%s: ARG %s has the default %s, want %q", df.name, baseImageArg, quoteOrNone(v), defaultBaseImage)
		} else if err := checkImageRef(*v); err != nil {
			t.Errorf("%s: ARG %s: %v", df.name, baseImageArg, err)
		}
		if len(df.stages) != 2 {
			t.Fatalf("%s: %d stages, want 2 (builder and final image)", df.name, len(df.stages))
		}
		for _, s := range df.stages {
			if s.BaseName != "${"+baseImageArg+"}" && s.BaseName != "$"+baseImageArg {
				t.Errorf("%s: FROM %s: every stage starts from ${%s}", df.where(s.Location), s.BaseName, baseImageArg)
			}
		}
		if df.stages[0].Name != "builder" {
			t.Errorf("%s: the first stage is named %q, want builder", df.where(df.stages[0].Location), df.stages[0].Name)
		}
	})
	if len(df.stages) != 2 {
		return
	}
	builder, final := &df.stages[0], &df.stages[1]

	t.Run("context files", func(t *testing.T) {
		for _, s := range df.stages {
			for _, c := range s.Commands {
				cp, ok := c.(*instructions.CopyCommand)
				if add, isAdd := c.(*instructions.AddCommand); isAdd {
					t.Errorf("%s: ADD %v: use COPY", df.where(add.Location()), add.SourcePaths)
					continue
				}
				if !ok || cp.From != "" {
					continue
				}
				for _, src := range cp.SourcePaths {
					name := strings.TrimPrefix(path.Clean(src), "./")
					if !ctx[name] && name != headersRecipe && name != kmodRecipe {
						t.Errorf("%s: COPY %s: not a file of examples/kmod (the build context is a ConfigMap of that "+
							"folder's files: no subfolders, no names starting with a dot), nor %s or %s",
							df.where(cp.Location()), src, headersRecipe, kmodRecipe)
					}
				}
			}
		}
	})

	t.Run("builder", func(t *testing.T) {
		recipe, recipeRun := runsRecipe(t, df, builder, headersRecipe)
		for _, name := range builderArgs {
			if i := df.argIndex(builder, name); i < 0 || (recipeRun >= 0 && i > recipeRun) {
				t.Errorf("%s: the builder declares no ARG %s before it runs %s: the recipe reads it from the environment",
					df.where(builder.Location), name, recipe)
			}
		}
		// build.sh runs after the recipe, with the sources beside it, and with the env file sourced.
		placed := map[string]string{}
		found := false
		for j, c := range builder.Commands {
			if cp, ok := c.(*instructions.CopyCommand); ok && cp.From == "" {
				for _, src := range cp.SourcePaths {
					dest := cp.DestPath
					if len(cp.SourcePaths) > 1 || strings.HasSuffix(dest, "/") {
						dest = path.Join(dest, path.Base(src))
					}
					placed[path.Base(src)] = path.Clean(dest)
				}
				continue
			}
			r, ok := c.(*instructions.RunCommand)
			script, copied := placed["build.sh"]
			if !ok || !copied {
				continue
			}
			text := runText(t, df, r)
			if !strings.Contains(text, script) {
				continue
			}
			found = true
			at := df.where(r.Location())
			if recipeRun < 0 || j < recipeRun {
				t.Errorf("%s: build.sh runs before %s", at, headersRecipe)
			}
			for _, f := range bs.sources {
				if p, ok := placed[f]; !ok || p != path.Join(path.Dir(script), f) {
					t.Errorf("%s: build.sh needs %s beside it in %s; it is at %q", at, f, path.Dir(script), p)
				}
			}
			source := regexp.MustCompile(`(?:^|[;&|]\s*)\.\s+` + regexp.QuoteMeta(buildEnvFile) + `(?:$|[\s;&|])`).FindStringIndex(text)
			if source == nil || source[0] > strings.Index(text, script) {
				t.Errorf("%s: the RUN does not source %s (. %s) before build.sh: KERNEL_SRC and MAKE_ARGS come from it",
					at, buildEnvFile, buildEnvFile)
			}
			for _, name := range []string{"KERNEL_SRC", "MAKE_ARGS"} {
				// Sourcing sets them in the RUN's shell only: build.sh gets them as assignments.
				if !regexp.MustCompile(`(?:^|\s)` + name + `="?\$\{?` + name + `\b`).MatchString(text) {
					t.Errorf("%s: build.sh does not get %s=\"$%s\" (a sourced variable is not exported)", at, name, name)
				}
			}
			if v, set := assignment(text, "DEST_ROOT"); !set || v != destRoot {
				t.Errorf("%s: build.sh runs with DEST_ROOT=%q, want %s (the final stage copies from there)", at, v, destRoot)
			}
		}
		if !found {
			t.Errorf("%s: the builder copies build.sh from the context and runs it nowhere", df.where(builder.Location))
		}
	})

	t.Run("final image", func(t *testing.T) {
		runsRecipe(t, df, final, kmodRecipe)
		for _, want := range [][2]string{{destRoot + modulesDir, modulesDir}, {destRoot + firmwareDir, firmwareDir}} {
			ok := slices.ContainsFunc(final.Commands, func(c instructions.Command) bool {
				cp, isCopy := c.(*instructions.CopyCommand)
				return isCopy && strings.EqualFold(cp.From, builder.Name) && len(cp.SourcePaths) == 1 &&
					path.Clean(cp.SourcePaths[0]) == want[0] && path.Clean(cp.DestPath) == want[1]
			})
			if !ok {
				t.Errorf("%s: the final stage has no COPY --from=%s %s %s: KMM loads from %s",
					df.where(final.Location), builder.Name, want[0], want[1], want[1])
			}
		}
	})

	t.Run("shell syntax", func(t *testing.T) {
		for _, s := range df.stages {
			for _, c := range s.Commands {
				switch c := c.(type) {
				case *instructions.ShellCommand:
					t.Errorf("%s: SHELL %v: the RUNs are checked as /bin/sh scripts", df.where(c.Location()), c.Shell)
				case *instructions.RunCommand:
					if !c.PrependShell {
						t.Errorf("%s: exec-form RUN: use the shell form", df.where(c.Location()))
						continue
					}
					if err := shSyntax(runText(t, df, c)); err != nil {
						t.Errorf("%s: RUN: sh -n: %v", df.where(c.Location()), err)
					}
				}
			}
		}
	})
}

// runsRecipe checks that stage s copies the recipe name from the context and then runs it with
// `sh -eu <where it was copied>`, as kmm-render's recipes expect. It returns the recipe's path
// in the stage and the index of the RUN (-1 if none).
func runsRecipe(t *testing.T, df *dockerfile, s *instructions.Stage, name string) (string, int) {
	t.Helper()
	dest := ""
	for j, c := range s.Commands {
		if cp, ok := c.(*instructions.CopyCommand); ok && cp.From == "" && slices.Contains(cp.SourcePaths, name) {
			dest = cp.DestPath
			if strings.HasSuffix(dest, "/") || len(cp.SourcePaths) > 1 {
				dest = path.Join(dest, name)
			}
			dest = path.Clean(dest)
			continue
		}
		r, ok := c.(*instructions.RunCommand)
		if !ok || dest == "" {
			continue
		}
		text := runText(t, df, r)
		if regexp.MustCompile(`(?:^|[;&|]\s*)sh\s+-eu\s+` + regexp.QuoteMeta(dest) + `(?:$|[\s;&|])`).MatchString(text) {
			return dest, j
		}
	}
	if dest == "" {
		t.Errorf("%s: the stage FROM %s does not COPY %s from the build context", df.where(s.Location), s.BaseName, name)
	} else {
		t.Errorf("%s: the stage FROM %s copies %s to %s but no RUN runs `sh -eu %s`", df.where(s.Location), s.BaseName, name, dest, dest)
	}
	return dest, -1
}

// dockerfile is a Dockerfile as BuildKit's frontend parsed it.
type dockerfile struct {
	name   string
	meta   []instructions.ArgCommand
	stages []instructions.Stage
}

// where names a place in the Dockerfile for messages, e.g. "Dockerfile:18-40".
func (df *dockerfile) where(loc []parser.Range) string {
	if len(loc) == 0 {
		return df.name
	}
	start, end := loc[0].Start.Line, loc[len(loc)-1].End.Line
	if start == end {
		return fmt.Sprintf("%s:%d", df.name, start)
	}
	return fmt.Sprintf("%s:%d-%d", df.name, start, end)
}

// argIndex is the index of the command of stage s that declares the ARG name, or -1.
func (df *dockerfile) argIndex(s *instructions.Stage, name string) int {
	for j, c := range s.Commands {
		if a, ok := c.(*instructions.ArgCommand); ok {
			for _, kv := range a.Args {
				if kv.Key == name {
					return j
				}
			}
		}
	}
	return -1
}

// parseDockerfile parses examples/kmod/<name> with parser.Parse and instructions.Parse.
// Errors and parser warnings fail the test.
func parseDockerfile(t *testing.T, name string) *dockerfile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(contextDir, name))
	if err != nil {
		t.Fatal(err)
	}
	res, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: BuildKit's parser: %s", name, withLines(err))
	}
	df := &dockerfile{name: name}
	for _, w := range res.Warnings {
		loc := []parser.Range{}
		if w.Location != nil {
			loc = append(loc, *w.Location)
		}
		t.Errorf("%s: BuildKit's parser warns: %s", df.where(loc), w.Short)
	}
	df.stages, df.meta, err = instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatalf("%s: BuildKit's instructions parser: %s", name, withLines(err))
	}
	if len(df.stages) == 0 {
		t.Fatalf("%s: no FROM", name)
	}
	return df
}

// withLines formats a BuildKit error with the Dockerfile lines it carries.
func withLines(err error) string {
	var le *parser.LocationError
	if errors.As(err, &le) && len(le.Locations) > 0 && len(le.Locations[0]) > 0 && !strings.Contains(err.Error(), "line ") {
		return fmt.Sprintf("line %d: %v", le.Locations[0][0].Start.Line, err)
	}
	return err.Error()
}

// runText is what the shell gets from a shell-form RUN. Heredocs are refused: this test does
// not follow them.
func runText(t *testing.T, df *dockerfile, c *instructions.RunCommand) string {
	t.Helper()
	if len(c.Files) > 0 {
		t.Errorf("%s: RUN with a heredoc: this test only reads plain RUN commands", df.where(c.Location()))
	}
	return strings.Join(c.CmdLine, " ")
}

// shSyntax runs /bin/sh -n on script.
func shSyntax(script string) error {
	cmd := exec.Command("/bin/sh", "-n")
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if msg == "" {
			msg = err.Error()
		}
		return errors.New(msg)
	}
	return nil
}

// assignment returns the value shell text gives NAME=... (e.g. DEST_ROOT=/out).
func assignment(text, name string) (value string, set bool) {
	m := regexp.MustCompile(`(?:^|[\s;&|(])` + regexp.QuoteMeta(name) + `=("[^"]*"|'[^']*'|[^\s;&|)]*)`).FindStringSubmatch(text)
	if m == nil {
		return "", false
	}
	v := m[1]
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') {
		v = v[1 : len(v)-1]
	}
	return v, true
}

func quoteOrNone(v *string) string {
	if v == nil {
		return "(none)"
	}
	return strconv.Quote(*v)
}

var digestRe = regexp.MustCompile(`^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$`)

// checkImageRef accepts an image reference with a tag other than latest, or a digest.
func checkImageRef(ref string) error {
	if ref == "" || strings.ContainsAny(ref, " \t$") {
		return fmt.Errorf("%q is not an image reference", ref)
	}
	if name, digest, ok := strings.Cut(ref, "@"); ok {
		if name == "" || !digestRe.MatchString(digest) {
			return fmt.Errorf("%q: the digest is not sha256:<64 hex> or sha512:<128 hex>", ref)
		}
		return nil
	}
	last := ref[strings.LastIndex(ref, "/")+1:]
	_, tag, ok := strings.Cut(last, ":")
	switch {
	case !ok || tag == "":
		return fmt.Errorf("%q has no tag or digest (it means :latest)", ref)
	case tag == "latest":
		return fmt.Errorf("%q uses the moving tag latest", ref)
	}
	return nil
}

// configMapKeyRe is what a ConfigMap key may be.
var configMapKeyRe = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)

// configMapMax is the most a ConfigMap may hold (1 MiB).
const configMapMax = 1 << 20

// contextFiles lists the files of the build context: the regular files directly in
// examples/kmod that a ConfigMap made from the folder holds (kubectl create configmap
// --from-file=examples/kmod/ takes valid key names; the chart's build.sh skips names starting
// with a dot).
func contextFiles(t *testing.T) map[string]bool {
	t.Helper()
	entries, err := os.ReadDir(contextDir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]bool{}
	var size int64
	for _, e := range entries {
		if !e.Type().IsRegular() || !configMapKeyRe.MatchString(e.Name()) || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		size += info.Size()
		files[e.Name()] = true
	}
	if size > configMapMax {
		t.Errorf("examples/kmod holds %d bytes: more than a ConfigMap (the build context) can hold (%d)", size, configMapMax)
	}
	return files
}

type buildScript struct {
	text    string
	sources []string // build.sh's "sources": the files it needs beside it
}

var sourcesRe = regexp.MustCompile(`(?m)^sources="([^"]*)"`)

func readBuildScript(t *testing.T) *buildScript {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(contextDir, "build.sh"))
	if err != nil {
		t.Fatal(err)
	}
	m := sourcesRe.FindStringSubmatch(string(data))
	if m == nil || len(strings.Fields(m[1])) == 0 {
		t.Fatalf(`examples/kmod/build.sh has no line sources="...": this test reads the files it builds from there`)
	}
	return &buildScript{text: string(data), sources: strings.Fields(m[1])}
}
