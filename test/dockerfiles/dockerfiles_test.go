// Package dockerfiles checks the Dockerfiles of examples/kmod without building them.
//
// They cannot be built where the unit tests run (no container engine, and the
// distributions' package archives are out of reach), so each one is parsed with
// BuildKit's own Dockerfile frontend, the version the chart's builder image
// (moby/buildkit:v0.34.2-rootless) runs, and checked for what an in-cluster build
// relies on: pinned base images, the build args it uses, the header packages of its
// platform, shell syntax of every RUN, and a build context (the ConfigMap made from
// examples/kmod) that holds every file it copies.
//
// It needs nothing but Go and /bin/sh.
package dockerfiles

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
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

// contextDir is examples/kmod, relative to this package: the build context (the
// ConfigMap is made from its files) and the home of the Dockerfiles.
const contextDir = "../../examples/kmod"

// The image layout KMM loads from: modprobe.dirName and modprobe.firmwarePath of the
// example's module (examples/kmod/README.md).
const (
	modulesDir  = "/opt"
	firmwareDir = "/firmware"
)

// kmmArgs are the build args KMM passes to every build.
var kmmArgs = []string{"KERNEL_VERSION", "KERNEL_FULL_VERSION", "MOD_NAME", "MOD_NAMESPACE"}

type dockerfileCase struct {
	// file is the Dockerfile's name in examples/kmod.
	file string
	// headers is what the builder's RUN instructions must name to get the kernel
	// headers. Each entry lists the accepted spellings, one of which has to appear in
	// the command text BuildKit parsed; "$NAME" in a spelling matches "${NAME}" too.
	headers [][]string
	// required are the build args without which the build must stop: the builder
	// declares them with no default, and the first RUN that uses one fails when it is
	// empty.
	required []string
	// builderArgs are more ARGs (users' build args) the builder stage must declare.
	builderArgs []string
	// globalArgs are the ARGs before the first FROM, with their defaults: exactly
	// these.
	globalArgs map[string]string
}

// cases has one row per examples/kmod/Dockerfile.*; TestDockerfileTable fails when a
// Dockerfile is added or removed without its row.
var cases = []dockerfileCase{
	{
		file:     "Dockerfile.al2",
		headers:  [][]string{{"kernel-devel-$KERNEL_VERSION"}, {"amazon-linux-extras enable"}},
		required: []string{"KERNEL_VERSION"},
	},
	{
		file: "Dockerfile.al2023",
		headers: [][]string{
			{"kernel-devel"},
			// The kernel6.X-devel names are either spelled out or built from the
			// kernel's major.minor, as the Dockerfile does ("kernel$majmin-devel").
			{"kernel6.12-devel", "kernel$majmin-devel"},
			{"kernel6.18-devel", "kernel$majmin-devel"},
			{"--releasever=$AL2023_RELEASEVER"},
		},
		required:    []string{"KERNEL_VERSION"},
		builderArgs: []string{"AL2023_RELEASEVER"},
	},
	{
		file:       "Dockerfile.ubuntu",
		headers:    [][]string{{"linux-headers-$KERNEL_VERSION"}},
		required:   []string{"KERNEL_VERSION"},
		globalArgs: map[string]string{"UBUNTU_RELEASE": "24.04"},
	},
	{
		file:     "Dockerfile.debian",
		headers:  [][]string{{"linux-headers-$KERNEL_VERSION"}},
		required: []string{"KERNEL_VERSION"},
	},
	{
		file:     "Dockerfile.cos",
		headers:  [][]string{{"storage.googleapis.com/cos-tools/$COS_BUILD_ID"}, {"kernel-headers.tgz"}},
		required: []string{"KERNEL_VERSION", "COS_BUILD_ID"},
	},
}

// TestDockerfileTable fails when the Dockerfiles in examples/kmod and the rows of
// cases differ.
func TestDockerfileTable(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(contextDir, "Dockerfile.*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatalf("no Dockerfile.* in %s", contextDir)
	}
	found := map[string]bool{}
	for _, p := range paths {
		found[filepath.Base(p)] = true
	}
	listed := map[string]bool{}
	for _, tc := range cases {
		if listed[tc.file] {
			t.Errorf("%s has two rows in cases", tc.file)
		}
		listed[tc.file] = true
		if !found[tc.file] {
			t.Errorf("cases has a row for %s, which is not in examples/kmod: remove the row", tc.file)
		}
	}
	for name := range found {
		if !listed[name] {
			t.Errorf("examples/kmod/%s has no row in cases (test/dockerfiles): add one naming its header packages and build args", name)
		}
	}
}

// TestBuildScript checks build.sh, which every Dockerfile runs: its shell syntax, and
// that the sources it builds are in the build context.
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

func TestDockerfiles(t *testing.T) {
	bs := readBuildScript(t)
	ctx := contextFiles(t)
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			df := parseDockerfile(t, tc.file)
			t.Run("pinned base images", func(t *testing.T) { checkPinned(t, df) })
			b := findBuild(t, df, ctx)
			t.Run("args", func(t *testing.T) { checkArgs(t, df, tc, b) })
			t.Run("layout", func(t *testing.T) { checkLayout(t, df, b, bs) })
			t.Run("package names", func(t *testing.T) { checkHeaders(t, df, tc, b) })
			t.Run("shell syntax", func(t *testing.T) { checkShell(t, df) })
			t.Run("context files", func(t *testing.T) { checkContext(t, df, ctx) })
		})
	}
}

// dockerfile is a Dockerfile as BuildKit's frontend parsed it.
type dockerfile struct {
	name   string
	meta   []instructions.ArgCommand
	stages []instructions.Stage
}

// where names a place in the Dockerfile for messages, e.g. "Dockerfile.al2:18-40".
func (df *dockerfile) where(loc []parser.Range) string {
	return df.name + ":" + lineRange(loc)
}

func lineRange(loc []parser.Range) string {
	if len(loc) == 0 {
		return "?"
	}
	start, end := loc[0].Start.Line, loc[len(loc)-1].End.Line
	if start == end {
		return strconv.Itoa(start)
	}
	return fmt.Sprintf("%d-%d", start, end)
}

// parseDockerfile parses examples/kmod/<name> with parser.Parse and
// instructions.Parse. Errors and parser warnings fail the test.
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
	for _, w := range res.Warnings {
		line := "?"
		if w.Location != nil {
			line = lineRange([]parser.Range{*w.Location})
		}
		t.Errorf("%s:%s: BuildKit's parser warns: %s", name, line, w.Short)
	}
	stages, meta, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatalf("%s: BuildKit's instructions parser: %s", name, withLines(err))
	}
	if len(stages) == 0 {
		t.Fatalf("%s: no FROM", name)
	}
	df := &dockerfile{name: name, meta: meta, stages: stages}
	seen := map[string]bool{}
	for _, s := range stages {
		if s.Name == "" {
			continue
		}
		if seen[s.Name] {
			t.Errorf("%s: two stages are named %q", df.where(s.Location), s.Name)
		}
		seen[s.Name] = true
	}
	return df
}

// withLines formats a BuildKit error with the Dockerfile lines it carries.
func withLines(err error) string {
	var le *parser.LocationError
	if errors.As(err, &le) && len(le.Locations) > 0 && !strings.Contains(err.Error(), "line ") {
		return fmt.Sprintf("line %s: %v", lineRange(le.Locations[0]), err)
	}
	return err.Error()
}

// stageIndex resolves a stage reference (name or index, as in FROM or COPY --from) to
// one of the stages before stage before, or returns -1.
func (df *dockerfile) stageIndex(ref string, before int) int {
	if n, err := strconv.Atoi(ref); err == nil {
		if n >= 0 && n < before {
			return n
		}
		return -1
	}
	for i := 0; i < before; i++ {
		if df.stages[i].Name != "" && strings.EqualFold(df.stages[i].Name, ref) {
			return i
		}
	}
	return -1
}

// baseStage is the stage that stage i is built on, or -1 for an image.
func (df *dockerfile) baseStage(i int) int {
	base, err := expand(df.stages[i].BaseName, df.metaValues())
	if err != nil {
		return -1
	}
	return df.stageIndex(base, i)
}

// chain is stage i and the stages it is built on, the oldest first.
func (df *dockerfile) chain(i int) []int {
	var c []int
	for ; i >= 0; i = df.baseStage(i) {
		c = append([]int{i}, c...)
	}
	return c
}

// metaValues are the global ARGs with their defaults (no value: unset).
func (df *dockerfile) metaValues() map[string]*string {
	vars := map[string]*string{}
	for _, a := range df.meta {
		for _, kv := range a.Args {
			if kv.Value == nil {
				vars[kv.Key] = nil
				continue
			}
			v, err := expand(*kv.Value, vars)
			if err != nil {
				v = *kv.Value
			}
			vars[kv.Key] = &v
		}
	}
	return vars
}

var (
	varRe    = regexp.MustCompile(`\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+])([^}$]*))?\})`)
	digestRe = regexp.MustCompile(`^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$`)
)

// expand substitutes $NAME, ${NAME}, ${NAME-word}, ${NAME:-word}, ${NAME+word} and
// ${NAME:+word} from vars (a nil value is an unset ARG). An unset variable used
// plainly, or any other form, is an error: a FROM would not name a pinned image.
func expand(s string, vars map[string]*string) (string, error) {
	var errs []error
	out := varRe.ReplaceAllStringFunc(s, func(m string) string {
		sub := varRe.FindStringSubmatch(m)
		name, op, word := sub[1]+sub[2], sub[3], sub[4]
		val, ok := vars[name]
		set := ok && val != nil
		value := ""
		if set {
			value = *val
		}
		switch op {
		case "":
			if !set {
				errs = append(errs, fmt.Errorf("$%s is not set: no ARG %s with a default before the first FROM", name, name))
			}
			return value
		case "-":
			if !set {
				return word
			}
		case ":-":
			if value == "" {
				return word
			}
		case "+":
			if set {
				return word
			}
			return ""
		case ":+":
			if value != "" {
				return word
			}
			return ""
		}
		return value
	})
	if strings.Contains(out, "$") {
		errs = append(errs, fmt.Errorf("%q: a substitution this test does not evaluate", s))
	}
	return out, errors.Join(errs...)
}

// checkImageRef accepts an image reference with a tag other than latest, or a digest.
func checkImageRef(ref string) error {
	if ref == "" || strings.ContainsAny(ref, " \t") {
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

// checkPinned checks that every FROM, with the global ARGs' defaults substituted, and
// every COPY --from that is not a stage, names an image by tag (not latest) or
// digest.
func checkPinned(t *testing.T, df *dockerfile) {
	vars := df.metaValues()
	for i, s := range df.stages {
		base, err := expand(s.BaseName, vars)
		if err != nil {
			t.Errorf("%s: FROM %s: %v", df.where(s.Location), s.BaseName, err)
			continue
		}
		if df.stageIndex(base, i) < 0 && !strings.EqualFold(base, "scratch") {
			if err := checkImageRef(base); err != nil {
				t.Errorf("%s: FROM %s: %v", df.where(s.Location), s.BaseName, err)
			}
		}
		for _, c := range s.Commands {
			if cp, ok := c.(*instructions.CopyCommand); ok && cp.From != "" && df.stageIndex(cp.From, i) < 0 {
				if err := checkImageRef(cp.From); err != nil {
					t.Errorf("%s: COPY --from=%s: not an earlier stage, and as an image: %v", df.where(cp.Location()), cp.From, err)
				}
			}
		}
	}
}

// runText is a RUN's command text as BuildKit has it: for the shell form what the
// shell gets (see shellScript), for the exec form the arguments joined by blanks.
func runText(c *instructions.RunCommand) string {
	if !c.PrependShell {
		return strings.Join(c.CmdLine, " ")
	}
	s, _ := shellScript(c)
	return s
}

// shellScript is what BuildKit (dockerfile2llb's dispatchRun) hands to the shell for
// a shell-form RUN: the command line; with heredocs, the heredoc's content when the
// command line is that one heredoc, else the command line followed by each heredoc's
// body and terminator. When a lone heredoc starts with "#!", BuildKit runs it as a
// file instead: interpreter is then its "#!" line.
func shellScript(c *instructions.RunCommand) (script, interpreter string) {
	cmd := strings.Join(c.CmdLine, " ")
	if len(c.Files) == 0 {
		return cmd, ""
	}
	if parser.MustParseHeredoc(cmd) != nil {
		data := c.Files[0].Data
		if c.Files[0].Chomp {
			data = parser.ChompHeredocContent(data)
		}
		if strings.HasPrefix(data, "#!") {
			first, _, _ := strings.Cut(data, "\n")
			return data, strings.TrimSpace(strings.TrimPrefix(first, "#!"))
		}
		return data, ""
	}
	var b strings.Builder
	b.WriteString(cmd)
	for _, f := range c.Files {
		b.WriteByte('\n')
		b.WriteString(f.Data)
		b.WriteString(f.Name)
	}
	return b.String(), ""
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

// isPOSIXShell tells whether a SHELL or "#!" line runs a shell that sh -n speaks for.
func isPOSIXShell(argv []string) bool {
	if len(argv) > 0 && path.Base(argv[0]) == "env" {
		argv = argv[1:]
	}
	return len(argv) > 0 && (path.Base(argv[0]) == "sh" || path.Base(argv[0]) == "dash")
}

// checkShell runs sh -n on the shell command of every shell-form RUN.
func checkShell(t *testing.T, df *dockerfile) {
	shells := make([][]string, len(df.stages))
	for i, s := range df.stages {
		shell := []string{"/bin/sh", "-c"}
		if b := df.baseStage(i); b >= 0 {
			shell = shells[b]
		}
		for _, c := range s.Commands {
			switch c := c.(type) {
			case *instructions.ShellCommand:
				shell = c.Shell
			case *instructions.RunCommand:
				if !c.PrependShell {
					t.Logf("%s: exec-form RUN, no shell to check", df.where(c.Location()))
					continue
				}
				script, interpreter := shellScript(c)
				if interpreter != "" {
					if !isPOSIXShell(strings.Fields(interpreter)) {
						t.Logf("%s: RUN heredoc runs #!%s, not checked with sh -n", df.where(c.Location()), interpreter)
						continue
					}
				} else if !isPOSIXShell(shell) {
					t.Errorf("%s: RUN under SHELL %q: this test only checks /bin/sh scripts; extend it", df.where(c.Location()), shell)
					continue
				}
				if err := shSyntax(script); err != nil {
					t.Errorf("%s: RUN: sh -n: %v", df.where(c.Location()), err)
				}
			}
		}
		shells[i] = shell
	}
}

// argRef matches a use of the variable name in shell text: $NAME or ${NAME...}.
func argRef(name string) *regexp.Regexp {
	n := regexp.QuoteMeta(name)
	return regexp.MustCompile(`\$(?:` + n + `\b|\{#?` + n + `[}:?=+#%/-])`)
}

// declaredBefore tells whether stage i declares name with ARG or ENV before its
// command cmd (all of it for cmd < 0), or inherits it from the stage it is built on.
func (df *dockerfile) declaredBefore(i, cmd int, name string) bool {
	for j, c := range df.stages[i].Commands {
		if cmd >= 0 && j >= cmd {
			break
		}
		switch c := c.(type) {
		case *instructions.ArgCommand:
			for _, kv := range c.Args {
				if kv.Key == name {
					return true
				}
			}
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				if kv.Key == name {
					return true
				}
			}
		}
	}
	if b := df.baseStage(i); b >= 0 {
		return df.declaredBefore(b, -1, name)
	}
	return false
}

// stageArg returns the ARG of stage i that declares name.
func (df *dockerfile) stageArg(i int, name string) (*instructions.KeyValuePairOptional, bool) {
	for _, c := range df.stages[i].Commands {
		if a, ok := c.(*instructions.ArgCommand); ok {
			for k := range a.Args {
				if a.Args[k].Key == name {
					return &a.Args[k], true
				}
			}
		}
	}
	return nil, false
}

// build is where a Dockerfile runs build.sh.
type build struct {
	stage  int // the builder stage
	run    int // index of the RUN in the stage's commands
	cmd    *instructions.RunCommand
	script string            // build.sh's path in the stage
	placed map[string]string // context files copied into the stage before the RUN: their paths
}

// contextSources returns the context files a COPY or ADD from the build context
// takes (globs matched against ctx), and the sources that are not context files.
func contextSources(srcs []string, ctx map[string]bool) (files, bad []string) {
	for _, src := range srcs {
		s := strings.TrimPrefix(path.Clean(src), "./")
		if strings.ContainsAny(s, "*?[") {
			var matched []string
			for f := range ctx {
				if ok, _ := path.Match(s, f); ok {
					matched = append(matched, f)
				}
			}
			if len(matched) == 0 {
				bad = append(bad, src)
			}
			slices.Sort(matched)
			files = append(files, matched...)
			continue
		}
		if s == "." || ctx[s] {
			files = append(files, s)
			continue
		}
		bad = append(bad, src)
	}
	return files, bad
}

func isURL(s string) bool {
	return strings.Contains(s, "://") || strings.HasPrefix(s, "git@")
}

// copiesFromContext returns the sources of a COPY or ADD that come from the build
// context, with its destination; ok is false for other commands.
func copiesFromContext(c instructions.Command) (srcs []string, dest string, loc []parser.Range, ok bool) {
	switch c := c.(type) {
	case *instructions.CopyCommand:
		if c.From != "" {
			return nil, "", nil, false
		}
		return c.SourcePaths, c.DestPath, c.Location(), true
	case *instructions.AddCommand:
		for _, s := range c.SourcePaths {
			if !isURL(s) {
				srcs = append(srcs, s)
			}
		}
		return srcs, c.DestPath, c.Location(), true
	}
	return nil, "", nil, false
}

// findBuild finds the stage that copies build.sh from the context and the RUN there
// that runs it. Without one the rest of the row's checks cannot run.
func findBuild(t *testing.T, df *dockerfile, ctx map[string]bool) *build {
	t.Helper()
	var found []*build
	for i, s := range df.stages {
		workdir := "/"
		placed := map[string]string{}
		for j, c := range s.Commands {
			if w, ok := c.(*instructions.WorkdirCommand); ok {
				if path.IsAbs(w.Path) {
					workdir = path.Clean(w.Path)
				} else {
					workdir = path.Join(workdir, w.Path)
				}
				continue
			}
			if srcs, dest, _, ok := copiesFromContext(c); ok {
				files, _ := contextSources(srcs, ctx)
				if slices.Contains(files, ".") {
					files = slices.Sorted(maps.Keys(ctx))
					dest += "/"
				}
				toDir := len(files) > 1 || strings.HasSuffix(dest, "/") || dest == "." || strings.HasSuffix(dest, "/.")
				if !path.IsAbs(dest) {
					dest = path.Join(workdir, dest)
				}
				for _, f := range files {
					if toDir {
						placed[f] = path.Join(dest, f)
					} else {
						placed[f] = path.Clean(dest)
					}
				}
				continue
			}
			r, ok := c.(*instructions.RunCommand)
			script, copied := placed["build.sh"]
			if !ok || !copied {
				continue
			}
			text := runText(r)
			runs := regexp.MustCompile(`(?:^|[\s;&|(])` + regexp.QuoteMeta(script) + `(?:$|[\s;&|)])`).MatchString(text)
			if !runs && workdir == path.Dir(script) {
				runs = regexp.MustCompile(`(?:^|[\s;&|(])(?:sh\s+|\./)build\.sh(?:$|[\s;&|)])`).MatchString(text)
			}
			if runs {
				found = append(found, &build{stage: i, run: j, cmd: r, script: script, placed: maps.Clone(placed)})
			}
		}
	}
	switch len(found) {
	case 0:
		t.Fatalf("%s: no stage copies build.sh from the context and runs it: every example builds with build.sh", df.name)
	case 1:
	default:
		t.Fatalf("%s: build.sh runs in %d RUN instructions: this test expects one builder", df.name, len(found))
	}
	return found[0]
}

// emptyCheck finds in shell text the check that stops when name is empty or unset:
// "${NAME:?...}", or [ -z "$NAME" ] (also "${NAME}", "${NAME:-}", test -z) followed by
// an exit with a non-zero status before the if ends.
func emptyCheck(text, name string) (start, end int, ok bool) {
	n := regexp.QuoteMeta(name)
	if loc := regexp.MustCompile(`\$\{` + n + `:\?`).FindStringIndex(text); loc != nil {
		return loc[0], loc[1], true
	}
	loc := regexp.MustCompile(`(?:\[|\btest)\s+-z\s+"\$(?:` + n + `\b|\{` + n + `(?::-)?\})"`).FindStringIndex(text)
	if loc == nil {
		return 0, 0, false
	}
	rest := text[loc[1]:]
	exit := regexp.MustCompile(`\bexit\s+[1-9]`).FindStringIndex(rest)
	fi := regexp.MustCompile(`\bfi\b`).FindStringIndex(rest)
	if exit == nil || (fi != nil && fi[0] < exit[0]) {
		return 0, 0, false
	}
	return loc[0], loc[1], true
}

// checkArgs checks the ARGs: the global ones against the row; KERNEL_VERSION, the
// required and the row's build args declared in the builder, KERNEL_VERSION before the
// RUN that runs build.sh; required ones without a default and checked for emptiness by
// the first RUN that uses them; and every RUN that uses a build arg declares it first
// in its stage (an ARG of the global scope is not visible in a stage without one).
func checkArgs(t *testing.T, df *dockerfile, tc dockerfileCase, b *build) {
	got := map[string]*string{}
	for _, a := range df.meta {
		for _, kv := range a.Args {
			got[kv.Key] = kv.Value
		}
	}
	for name, want := range tc.globalArgs {
		v, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%s: no ARG %s before the first FROM", df.name, name)
		case v == nil || *v != want:
			t.Errorf("%s: the global ARG %s has the default %s, want %q", df.name, name, quoteOrNone(v), want)
		}
	}
	for name := range got {
		if _, ok := tc.globalArgs[name]; !ok {
			t.Errorf("%s: global ARG %s is not in the row's globalArgs: add it with its default", df.name, name)
		}
	}

	builder := df.stages[b.stage]
	needed := slices.Concat([]string{"KERNEL_VERSION"}, tc.required, tc.builderArgs)
	slices.Sort(needed)
	for _, name := range slices.Compact(needed) {
		if !df.declaredBefore(b.stage, b.run, name) {
			t.Errorf("%s: the builder stage (FROM %s) declares no ARG %s before the RUN that runs build.sh (line %s)",
				df.where(builder.Location), builder.BaseName, name, lineRange(b.cmd.Location()))
		}
	}

	for _, name := range tc.required {
		if kv, ok := df.stageArg(b.stage, name); ok && kv.Value != nil && *kv.Value != "" {
			t.Errorf("%s: ARG %s has the default %q: the build cannot notice when it is not given", df.name, name, *kv.Value)
		}
		if v, ok := got[name]; ok && v != nil && *v != "" {
			t.Errorf("%s: the global ARG %s has the default %q: the build cannot notice when it is not given", df.name, name, *v)
		}
		ref := argRef(name)
		checked := false
	runs:
		for _, si := range df.chain(b.stage) {
			for _, c := range df.stages[si].Commands {
				r, ok := c.(*instructions.RunCommand)
				if !ok {
					continue
				}
				text := runText(r)
				first := ref.FindStringIndex(text)
				if first == nil {
					continue
				}
				start, end, ok := emptyCheck(text, name)
				if !ok || first[0] < start || first[0] >= end {
					t.Errorf("%s: the first RUN that uses $%s does not first stop when it is empty "+
						`(with "${%s:?message}" or [ -z "${%s:-}" ] ... exit 1)`, df.where(r.Location()), name, name, name)
				}
				checked = true
				break runs
			}
		}
		if !checked {
			t.Errorf("%s: no RUN of the builder uses $%s, so nothing stops the build when it is empty", df.name, name)
		}
	}

	names := slices.Concat(kmmArgs, tc.required, tc.builderArgs)
	for name := range got {
		names = append(names, name)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	for i, s := range df.stages {
		for j, c := range s.Commands {
			r, ok := c.(*instructions.RunCommand)
			if !ok {
				continue
			}
			text := runText(r)
			for _, name := range names {
				if argRef(name).MatchString(text) && !df.declaredBefore(i, j, name) {
					t.Errorf("%s: RUN uses $%s, but its stage declares no ARG %s before it", df.where(r.Location()), name, name)
				}
			}
		}
	}
}

func quoteOrNone(v *string) string {
	if v == nil {
		return "(none)"
	}
	return strconv.Quote(*v)
}

// assignment returns the value a RUN's text gives NAME=... (e.g. DEST_ROOT=/out).
func assignment(text, name string) (value string, set bool, err error) {
	m := regexp.MustCompile(`(?:^|[\s;&|(])` + regexp.QuoteMeta(name) + `=("[^"]*"|'[^']*'|[^\s;&|)]*)`).FindStringSubmatch(text)
	if m == nil {
		return "", false, nil
	}
	v := m[1]
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') {
		v = v[1 : len(v)-1]
	}
	if strings.ContainsAny(v, "$`") {
		return "", true, fmt.Errorf("%s=%s: this test cannot follow a value from a variable", name, m[1])
	}
	return v, true, nil
}

var packageManagers = map[string]bool{
	"apt-get": true, "apt": true, "yum": true, "dnf": true, "microdnf": true, "tdnf": true, "apk": true, "zypper": true,
}

// installs tells whether shell text installs pkg with a package manager, e.g.
// "apt-get install -y --no-install-recommends kmod" or "yum install -y make kmod".
func installs(text, pkg string) bool {
	for _, simple := range regexp.MustCompile(`[;&|\n]`).Split(text, -1) {
		words := strings.Fields(simple)
		for i, w := range words {
			if !packageManagers[path.Base(w)] {
				continue
			}
			rest := words[i+1:]
			k := slices.IndexFunc(rest, func(s string) bool { return s == "install" || s == "add" })
			if k < 0 {
				continue
			}
			for _, a := range rest[k+1:] {
				if strings.Trim(a, `"'`) == pkg {
					return true
				}
			}
		}
	}
	return false
}

// stageInstalls tells whether stage i, or a stage it is built on, installs pkg in a
// RUN before its command before (all of it for before < 0).
func (df *dockerfile) stageInstalls(i, before int, pkg string) bool {
	for j, c := range df.stages[i].Commands {
		if before >= 0 && j >= before {
			break
		}
		if r, ok := c.(*instructions.RunCommand); ok && installs(runText(r), pkg) {
			return true
		}
	}
	if b := df.baseStage(i); b >= 0 {
		return df.stageInstalls(b, -1, pkg)
	}
	return false
}

// checkLayout checks the builder and the final image: build.sh runs from the context
// with its sources beside it (or in SRC_DIR), with kmod (depmod) installed; the final
// stage holds build.sh's output at /opt (modules in /opt/lib/modules/<kernel>) and
// /firmware, and has kmod (modprobe).
func checkLayout(t *testing.T, df *dockerfile, b *build, bs *buildScript) {
	text := runText(b.cmd)
	at := df.where(b.cmd.Location())

	srcDir := path.Dir(b.script)
	if v, set, err := assignment(text, "SRC_DIR"); err != nil {
		t.Errorf("%s: %v", at, err)
	} else if set {
		srcDir = path.Clean(v)
	}
	for _, f := range bs.sources {
		p, ok := b.placed[f]
		switch {
		case !ok:
			t.Errorf("%s: build.sh needs %s, which the builder stage does not COPY from the context before this RUN", at, f)
		case p != path.Join(srcDir, f):
			t.Errorf("%s: build.sh looks for %s in %s, but it is copied to %s", at, f, srcDir, p)
		}
	}
	if !df.stageInstalls(b.stage, b.run, "kmod") {
		t.Errorf("%s: build.sh runs depmod, but the builder stage installs no kmod before it", at)
	}

	// Where build.sh installs (its DEST_ROOT, DIR_NAME and FIRMWARE_DIR).
	dirs := map[string]string{"DEST_ROOT": "/", "DIR_NAME": modulesDir, "FIRMWARE_DIR": firmwareDir}
	for name := range dirs {
		if v, set, err := assignment(text, name); err != nil {
			t.Errorf("%s: %v", at, err)
		} else if set {
			dirs[name] = v
		}
	}
	root := strings.TrimSuffix(dirs["DEST_ROOT"], "/")
	modules := path.Clean(root + "/" + strings.Trim(dirs["DIR_NAME"], "/"))
	firmware := path.Clean(root + "/" + strings.Trim(dirs["FIRMWARE_DIR"], "/"))

	last := len(df.stages) - 1
	final := df.stages[last]
	if last == b.stage {
		if modules != modulesDir || firmware != firmwareDir {
			t.Errorf("%s: the builder is the final image, but build.sh installs to %s and %s, not %s and %s",
				at, modules, firmware, modulesDir, firmwareDir)
		}
	} else {
		for _, want := range [][2]string{{modules, modulesDir}, {firmware, firmwareDir}} {
			if !finalCopies(df, last, b.stage, want[0], want[1]) {
				t.Errorf("%s: the final stage (FROM %s) has no COPY --from=%s %s %s: KMM loads from %s",
					df.where(final.Location), final.BaseName, stageRef(df, b.stage), want[0], want[1], want[1])
			}
		}
	}
	if !df.stageInstalls(last, -1, "kmod") {
		t.Errorf("%s: the final stage (FROM %s) installs no kmod: KMM's worker runs modprobe in it",
			df.where(final.Location), final.BaseName)
	}
}

func stageRef(df *dockerfile, i int) string {
	if df.stages[i].Name != "" {
		return df.stages[i].Name
	}
	return strconv.Itoa(i)
}

// finalCopies tells whether stage i has COPY --from=<stage from> src dest.
func finalCopies(df *dockerfile, i, from int, src, dest string) bool {
	for _, c := range df.stages[i].Commands {
		cp, ok := c.(*instructions.CopyCommand)
		if !ok || cp.From == "" || df.stageIndex(cp.From, i) != from || len(cp.SourcePaths) != 1 {
			continue
		}
		if path.Clean(cp.SourcePaths[0]) == src && path.Clean(cp.DestPath) == dest {
			return true
		}
	}
	return false
}

var shellVarRe = regexp.MustCompile(`\$([A-Za-z_][A-Za-z0-9_]*)`)

// spellingRe matches a spelling of the row's headers in shell text; $NAME in it also
// matches ${NAME}.
func spellingRe(s string) *regexp.Regexp {
	var b strings.Builder
	last := 0
	for _, m := range shellVarRe.FindAllStringSubmatchIndex(s, -1) {
		b.WriteString(regexp.QuoteMeta(s[last:m[0]]))
		n := regexp.QuoteMeta(s[m[2]:m[3]])
		b.WriteString(`\$(?:` + n + `\b|\{` + n + `\})`)
		last = m[1]
	}
	b.WriteString(regexp.QuoteMeta(s[last:]))
	return regexp.MustCompile(b.String())
}

// checkHeaders checks that the RUN instructions of the builder (or the stages it is
// built on) name the header packages of the row, before the RUN that runs build.sh,
// after ARG KERNEL_VERSION.
func checkHeaders(t *testing.T, df *dockerfile, tc dockerfileCase, b *build) {
	for _, spellings := range tc.headers {
		found := false
		for _, si := range df.chain(b.stage) {
			for j, c := range df.stages[si].Commands {
				if si == b.stage && j > b.run {
					break
				}
				r, ok := c.(*instructions.RunCommand)
				if !ok {
					continue
				}
				text := runText(r)
				if !slices.ContainsFunc(spellings, func(s string) bool { return spellingRe(s).MatchString(text) }) {
					continue
				}
				found = true
				if !df.declaredBefore(si, j, "KERNEL_VERSION") {
					t.Errorf("%s: the RUN that installs the headers (%s) comes before ARG KERNEL_VERSION", df.where(r.Location()), spellings[0])
				}
			}
		}
		if !found {
			t.Errorf("%s: no RUN of the builder, up to the one that runs build.sh, names %s", df.name, strings.Join(quoteAll(spellings), " or "))
		}
	}
}

func quoteAll(s []string) []string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = strconv.Quote(v)
	}
	return q
}

// checkContext checks that every source a COPY or ADD takes from the build context is
// a file of the ConfigMap made from examples/kmod.
func checkContext(t *testing.T, df *dockerfile, ctx map[string]bool) {
	for _, s := range df.stages {
		for _, c := range s.Commands {
			srcs, _, loc, ok := copiesFromContext(c)
			if !ok {
				continue
			}
			_, bad := contextSources(srcs, ctx)
			for _, src := range bad {
				t.Errorf("%s: %s takes %s from the build context, which is not a file of examples/kmod "+
					"(the context is a ConfigMap of that folder's files: no subfolders, no names starting with a dot)",
					df.where(loc), strings.ToUpper(c.Name()), src)
			}
		}
	}
}

// configMapKeyRe is what a ConfigMap key may be.
var configMapKeyRe = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)

// configMapMax is the most a ConfigMap may hold (1 MiB).
const configMapMax = 1 << 20

// contextFiles lists the files of the build context: the regular files directly in
// examples/kmod that a ConfigMap made from the folder holds (kubectl create configmap
// --from-file=examples/kmod/ takes valid key names; the chart's build.sh skips names
// starting with a dot).
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
