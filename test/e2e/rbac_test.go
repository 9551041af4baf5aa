package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"kmm.dev/kmm/pkg/nodes"
)

// rbacManifest is the shipped role, relative to the repository root.
var rbacManifest = filepath.FromSlash(nodes.RBACManifest)

// The identity of the manifest's commented example, which TestRenderRBAC applies.
const (
	exampleSANamespace = "kmm-system"
	exampleSAName      = "kmm-render"
)

// TestRenderRBAC: kmm-render needs only the shipped ClusterRole (deploy/kmm-render-rbac.yaml).
// With a ServiceAccount token bound to it (through the manifest's own example binding), every
// example renders byte-identically to a render with admin credentials, through the binary and
// through helm 3 and helm 4 (template and install, only the post-renderer restricted); without
// any one verb of the role, kmm-render refuses and names the permission; with a token bound to
// nothing, kmm-render and helm install fail, name the permission, and create nothing. The
// identity cannot write anything or read Secrets.
func TestRenderRBAC(t *testing.T) {
	ctx := testContext(t, 12*time.Minute)
	role := applyRBAC(t, ctx)

	// Least privilege on its face: read verbs only, on nodes and KMM Modules only.
	for _, r := range role.Rules {
		for _, v := range r.Verbs {
			if !slices.Contains([]string{"get", "list"}, v) {
				t.Errorf("%s grants %q on %v: kmm-render only reads", rbacManifest, v, r.Resources)
			}
		}
		for _, res := range r.Resources {
			if res != "nodes" && res != "modules" {
				t.Errorf("%s grants access to %q: kmm-render reads nodes and Modules only", rbacManifest, res)
			}
		}
	}

	// The manifest's example ServiceAccount and ClusterRoleBinding, uncommented.
	example := exampleIdentity(t)
	if err := kc.EnsureNamespace(ctx, exampleSANamespace); err != nil {
		t.Fatal(err)
	}
	if err := kc.CreateObjects(ctx, example); err != nil {
		t.Fatalf("applying the example identity of %s: %v\n%s", rbacManifest, err, example)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_ = kc.Client.RbacV1().ClusterRoleBindings().Delete(ctx, "kmm-render", metav1.DeleteOptions{})
		_ = kc.Client.CoreV1().ServiceAccounts(exampleSANamespace).Delete(ctx, exampleSAName, metav1.DeleteOptions{})
	})
	restricted := tokenKubeconfig(t, ctx, exampleSANamespace, exampleSAName)

	t.Run("the identity cannot write or read secrets", func(t *testing.T) {
		checkAccess(t, ctx, exampleSANamespace, exampleSAName)
	})

	for _, name := range []string{"eks", "gke", "ubuntu"} {
		t.Run(name, func(t *testing.T) {
			ex := loadExample(t, name)
			useExample(t, ctx, ex)
			manifests := rawManifests(t, ctx, ex)

			// The binary, fed the same manifests.
			admin := renderBinaryOK(t, ctx, manifests, "--kubeconfig", kc.Kubeconfig)
			got := renderBinaryOK(t, ctx, manifests, "--kubeconfig", restricted)
			checkLoaders(t, admin, ex)
			if !bytes.Equal(admin, got) {
				t.Errorf("kmm-render with the %s role renders differently from admin:\n%s", rbacManifest, lineDiff(string(admin), string(got)))
			}

			// helm template, kmm-render as post-renderer; cert-manager certificates make helm's own
			// output deterministic, so the two runs may differ only by what kmm-render did.
			for _, version := range []int{3, 4} {
				tmpl := func(kubeconfig string) string {
					return helm(t, ctx, version, "template", release, chartDir, "-n", releaseNamespace, "-f", ex.values,
						"--set", "certManager.enabled=true", "--post-renderer", postRendererFor(version),
						"--post-renderer-args=--kubeconfig", "--post-renderer-args="+kubeconfig)
				}
				if a, r := tmpl(kc.Kubeconfig), tmpl(restricted); a != r {
					t.Errorf("helm%d template with the restricted post-renderer differs from admin:\n%s", version, lineDiff(a, r))
				}
			}

			if name != "eks" {
				return
			}
			if len(ex.operatorModules()) == 0 {
				t.Fatal("examples/eks has no `via: operator` module: nothing would read Modules")
			}
			// With a Module in the cluster that KMM's update rule forbids changing as the chart
			// would, both identities must refuse alike: the restricted one reads the Module, it
			// does not skip it.
			t.Run("an existing Module is read, not skipped", func(t *testing.T) {
				existingModule(t, ctx)
				says := []string{"module kmm-demo/kmm-ci-b breaks KMM", `cannot change from "1.0" to ""`}
				stdout, adminSays, err := renderBinary(ctx, manifests, "--kubeconfig", kc.Kubeconfig)
				expectRenderRefused(t, stdout, adminSays, err, says)
				stdout, restrictedSays, err := renderBinary(ctx, manifests, "--kubeconfig", restricted)
				expectRenderRefused(t, stdout, restrictedSays, err, says)
				if !bytes.Equal(adminSays, restrictedSays) {
					t.Errorf("kmm-render refuses differently with the restricted identity:\nadmin:      %s\nrestricted: %s", adminSays, restrictedSays)
				}
			})
			// eks has a `via: operator` module, so kmm-render makes both reads the role grants:
			// without any one verb of the role, it must refuse and name what is missing.
			for i, r := range role.Rules {
				for _, verb := range r.Verbs {
					t.Run(fmt.Sprintf("without %s on %s", verb, r.Resources[0]), func(t *testing.T) {
						kubeconfig := withoutVerb(t, ctx, role, i, verb)
						stdout, stderr, err := renderBinary(ctx, manifests, "--kubeconfig", kubeconfig)
						wants := map[string][]string{
							"nodes": {"forbidden (403): kmm-render needs list on nodes (" + nodes.RBACManifest + ")",
								`cannot list resource "nodes"`},
							// pkg/postrender reads Modules; the API server's message names the permission.
							"modules": {"reading Module", `cannot get resource "modules" in API group "kmm.sigs.x-k8s.io"`},
						}[r.Resources[0]]
						if wants == nil {
							t.Fatalf("no expected message for a missing %s on %s", verb, r.Resources[0])
						}
						expectRenderRefused(t, stdout, stderr, err, wants)
					})
				}
			}
		})
	}

	t.Run("helm install with only the post-renderer restricted", func(t *testing.T) {
		ex := loadExample(t, "gke")
		useExample(t, ctx, ex)
		for _, version := range []int{3, 4} {
			t.Run(fmt.Sprintf("helm%d", version), func(t *testing.T) {
				cleanupInstall(t)
				helm(t, ctx, version, "install", release, chartDir, "-n", releaseNamespace, "--create-namespace", "-f", ex.values,
					"--post-renderer", postRendererFor(version), "--post-renderer-args=--kubeconfig", "--post-renderer-args="+restricted,
					"--wait", "--timeout", "3m")
				waitPlacement(t, ctx, ex.helmModules(), expected(ex.helmModules(), ex.nodes))
			})
		}
	})

	t.Run("a token bound to nothing", func(t *testing.T) {
		ex := loadExample(t, "gke") // no operator module: the node listing is the only read
		useExample(t, ctx, ex)
		const unbound = "kmm-render-e2e-unbound"
		kubeconfig := newServiceAccount(t, ctx, unbound)
		says := []string{"forbidden (403): kmm-render needs list on nodes (" + nodes.RBACManifest + ")",
			`"system:serviceaccount:` + exampleSANamespace + ":" + unbound + `" cannot list resource "nodes"`}
		stdout, stderr, err := renderBinary(ctx, rawManifests(t, ctx, ex), "--kubeconfig", kubeconfig)
		expectRenderRefused(t, stdout, stderr, err, says)
		for _, version := range []int{3, 4} {
			t.Run(fmt.Sprintf("helm%d install", version), func(t *testing.T) {
				expectInstallRefused(t, ctx, version, ex.values, []string{"--kubeconfig", kubeconfig}, says)
			})
		}
	})
}

// existingModule creates Module kmm-demo/kmm-ci-b (examples/eks's operator module) with loader
// version "1.0", where the chart renders none, and the Module CRD if the cluster lacks it; both
// are deleted again when the test ends.
func existingModule(t *testing.T, ctx context.Context) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(kc.Config)
	if err != nil {
		t.Fatal(err)
	}
	crds := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	const crdName = "modules.kmm.sigs.x-k8s.io"
	_, err = crds.Get(ctx, crdName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		crd, err := os.ReadFile(filepath.Join(repo, "config", "crd", "bases", "kmm.sigs.x-k8s.io_modules.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if err := kc.CreateObjects(ctx, crd); err != nil {
			t.Fatal(err)
		}
		// Another test's helm install must not meet a CRD no release owns.
		t.Cleanup(func() {
			ctx := context.Background()
			_ = crds.Delete(ctx, crdName, metav1.DeleteOptions{})
			if err := poll(ctx, 60*time.Second, func() (bool, error) {
				_, err := crds.Get(ctx, crdName, metav1.GetOptions{})
				return apierrors.IsNotFound(err), nil
			}); err != nil {
				t.Errorf("deleting CRD %s: %v", crdName, err)
			}
		})
	case err != nil:
		t.Fatal(err)
	}
	if err := kc.EnsureNamespace(ctx, "kmm-demo"); err != nil {
		t.Fatal(err)
	}
	if err := kc.CreateObjects(ctx, []byte(`apiVersion: kmm.sigs.x-k8s.io/v1beta1
kind: Module
metadata:
  name: kmm-ci-b
  namespace: kmm-demo
spec:
  selector:
    eks.amazonaws.com/nodegroup: al2023-ng
  moduleLoader:
    container:
      version: "1.0"
      modprobe:
        moduleName: kmm_ci_b
      kernelMappings:
        - regexp: '^6\.1\.'
          containerImage: example.com/kmm-ci-b:${KERNEL_FULL_VERSION}
`)); err != nil {
		t.Fatal(err)
	}
	modules := dyn.Resource(schema.GroupVersionResource{Group: "kmm.sigs.x-k8s.io", Version: "v1beta1", Resource: "modules"})
	t.Cleanup(func() {
		_ = modules.Namespace("kmm-demo").Delete(context.Background(), "kmm-ci-b", metav1.DeleteOptions{})
	})
	m, err := modules.Namespace("kmm-demo").Get(ctx, "kmm-ci-b", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v, _, _ := unstructured.NestedString(m.Object, "spec", "moduleLoader", "container", "version"); v != "1.0" {
		t.Fatalf("Module kmm-demo/kmm-ci-b has loader version %q, not the test's (a leftover?)", v)
	}
}

// applyRBAC creates the ClusterRole of deploy/kmm-render-rbac.yaml (deleted again when the test
// ends) and returns it as the manifest states it.
func applyRBAC(t *testing.T, ctx context.Context) *rbacv1.ClusterRole {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo, rbacManifest))
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(data, &role); err != nil {
		t.Fatalf("%s: %v", rbacManifest, err)
	}
	if role.Kind != "ClusterRole" || role.Name != "kmm-render" || len(role.Rules) == 0 {
		t.Fatalf("%s holds %s %q with %d rules; want the ClusterRole kmm-render", rbacManifest, role.Kind, role.Name, len(role.Rules))
	}
	_ = kc.Client.RbacV1().ClusterRoles().Delete(ctx, role.Name, metav1.DeleteOptions{}) // a leftover
	if err := kc.CreateObjects(ctx, data); err != nil {
		t.Fatalf("applying %s: %v", rbacManifest, err)
	}
	t.Cleanup(func() {
		_ = kc.Client.RbacV1().ClusterRoles().Delete(context.Background(), role.Name, metav1.DeleteOptions{})
	})
	return &role
}

// exampleIdentity is the manifest's commented example (ServiceAccount and ClusterRoleBinding):
// the comment lines from its first "# ---", with the "# " taken off.
func exampleIdentity(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo, rbacManifest))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		if line == "# ---" {
			in = true
		}
		if !in {
			continue
		}
		if !strings.HasPrefix(line, "#") {
			break
		}
		out = append(out, strings.TrimPrefix(strings.TrimPrefix(line, "#"), " "))
	}
	if len(out) == 0 {
		t.Fatalf("%s has no commented example identity (from a line \"# ---\")", rbacManifest)
	}
	return []byte(strings.Join(out, "\n") + "\n")
}

// tokenKubeconfig writes a kubeconfig for the local API server whose user is a fresh token of
// ServiceAccount namespace/name (TokenRequest, 10 minutes: the shortest the API server allows).
func tokenKubeconfig(t *testing.T, ctx context.Context, namespace, name string) string {
	t.Helper()
	tr, err := kc.Client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(600))},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("a token for ServiceAccount %s/%s: %v", namespace, name, err)
	}
	cfg, err := clientcmd.LoadFromFile(kc.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	ctxName := cfg.CurrentContext
	cur, ok := cfg.Contexts[ctxName]
	if !ok {
		t.Fatalf("%s: no current context", kc.Kubeconfig)
	}
	cfg.AuthInfos = map[string]*clientcmdapi.AuthInfo{name: {Token: tr.Status.Token}}
	cfg.Contexts = map[string]*clientcmdapi.Context{ctxName: {Cluster: cur.Cluster, AuthInfo: name}}
	path := filepath.Join(t.TempDir(), name+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// newServiceAccount creates ServiceAccount exampleSANamespace/name (deleted when the test ends)
// and returns a kubeconfig with a token of it.
func newServiceAccount(t *testing.T, ctx context.Context, name string) string {
	t.Helper()
	if err := kc.EnsureNamespace(ctx, exampleSANamespace); err != nil {
		t.Fatal(err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: exampleSANamespace}}
	if _, err := kc.Client.CoreV1().ServiceAccounts(exampleSANamespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = kc.Client.CoreV1().ServiceAccounts(exampleSANamespace).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return tokenKubeconfig(t, ctx, exampleSANamespace, name)
}

// withoutVerb makes a ClusterRole that is role without verb in rule i, binds a new
// ServiceAccount to it, and returns a kubeconfig with a token of it.
func withoutVerb(t *testing.T, ctx context.Context, role *rbacv1.ClusterRole, i int, verb string) string {
	t.Helper()
	name := fmt.Sprintf("kmm-render-e2e-no-%s-%s", verb, role.Rules[i].Resources[0])
	cut := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}}
	for j, r := range role.Rules {
		r = *r.DeepCopy()
		if j == i {
			r.Verbs = slices.DeleteFunc(r.Verbs, func(v string) bool { return v == verb })
			if len(r.Verbs) == 0 {
				continue
			}
		}
		cut.Rules = append(cut.Rules, r)
	}
	if _, err := kc.Client.RbacV1().ClusterRoles().Create(ctx, cut, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = kc.Client.RbacV1().ClusterRoles().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	bindClusterRole(t, ctx, name, name)
	kubeconfig := newServiceAccount(t, ctx, name)
	// RBAC changes reach the authorizer through an informer: wait until the remaining rules
	// apply, so that a refusal below is the missing verb's.
	waitAllowed(t, ctx, exampleSANamespace, name, cut.Rules)
	return kubeconfig
}

// bindClusterRole binds ServiceAccount exampleSANamespace/sa to ClusterRole role, with a
// ClusterRoleBinding named after sa that is deleted when the test ends.
func bindClusterRole(t *testing.T, ctx context.Context, sa, role string) {
	t.Helper()
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: sa},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: exampleSANamespace}},
	}
	if _, err := kc.Client.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = kc.Client.RbacV1().ClusterRoleBindings().Delete(context.Background(), sa, metav1.DeleteOptions{})
	})
}

// waitAllowed waits until ServiceAccount namespace/name may do everything rules grant.
func waitAllowed(t *testing.T, ctx context.Context, namespace, name string, rules []rbacv1.PolicyRule) {
	t.Helper()
	err := poll(ctx, 30*time.Second, func() (bool, error) {
		for _, r := range rules {
			for _, verb := range r.Verbs {
				ok, err := saAllowed(ctx, namespace, name, authorizationv1.ResourceAttributes{Verb: verb, Group: r.APIGroups[0], Resource: r.Resources[0]})
				if err != nil || !ok {
					return false, err
				}
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("ServiceAccount %s/%s never got %v: %v", namespace, name, rules, err)
	}
}

// allowed asks the API server's authorizer whether ServiceAccount namespace/name may do attrs.
func saAllowed(ctx context.Context, namespace, name string, attrs authorizationv1.ResourceAttributes) (bool, error) {
	sar, err := kc.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
		Spec: authorizationv1.SubjectAccessReviewSpec{
			User:               "system:serviceaccount:" + namespace + ":" + name,
			Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
			ResourceAttributes: &attrs,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, err
	}
	return sar.Status.Allowed, nil
}

// checkAccess: the identity bound to the role may list nodes and get Modules, and nothing that
// writes, watches or reads Secrets.
func checkAccess(t *testing.T, ctx context.Context, namespace, name string) {
	t.Helper()
	waitAllowed(t, ctx, namespace, name, []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"list"}},
		{APIGroups: []string{"kmm.sigs.x-k8s.io"}, Resources: []string{"modules"}, Verbs: []string{"get"}},
	})
	denied := []authorizationv1.ResourceAttributes{
		{Verb: "watch", Resource: "nodes"},
		{Verb: "get", Resource: "nodes", Name: "any"},
		{Verb: "patch", Resource: "nodes", Name: "any"},
		{Verb: "update", Resource: "nodes", Subresource: "status", Name: "any"},
		{Verb: "delete", Resource: "nodes", Name: "any"},
		{Verb: "list", Resource: "secrets", Namespace: releaseNamespace},
		{Verb: "get", Resource: "secrets", Namespace: releaseNamespace, Name: "sh.helm.release.v1.kmm.v1"},
		{Verb: "list", Resource: "modules", Group: "kmm.sigs.x-k8s.io", Namespace: "kmm-gpu"},
		{Verb: "create", Resource: "modules", Group: "kmm.sigs.x-k8s.io", Namespace: "kmm-gpu"},
		{Verb: "update", Resource: "modules", Group: "kmm.sigs.x-k8s.io", Namespace: "kmm-gpu", Name: "any"},
		{Verb: "create", Resource: "daemonsets", Group: "apps", Namespace: "kmm-gpu"},
		{Verb: "create", Resource: "pods", Namespace: "kmm-gpu"},
		{Verb: "create", Resource: "clusterrolebindings", Group: "rbac.authorization.k8s.io"},
		{Verb: "impersonate", Resource: "users"},
	}
	for _, a := range denied {
		ok, err := saAllowed(ctx, namespace, name, a)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			t.Errorf("ServiceAccount %s/%s may %s %s %s/%s: the role grants more than kmm-render needs", namespace, name, a.Verb, a.Resource, a.Namespace, a.Name)
		}
	}
}

// rawManifests is the example's chart as Helm renders it, before any post-renderer: what Helm
// hands kmm-render on standard input.
func rawManifests(t *testing.T, ctx context.Context, ex *example) []byte {
	t.Helper()
	return []byte(helm(t, ctx, 3, "template", release, chartDir, "-n", releaseNamespace, "-f", ex.values))
}

// runRender runs the kmm-render binary on manifests with args, in an environment without
// KUBECONFIG or HELM_* (args say which cluster).
func renderBinary(ctx context.Context, manifests []byte, args ...string) (stdout, stderr []byte, err error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, kmmRender, args...)
	cmd.Stdin = bytes.NewReader(manifests)
	cmd.Stdout, cmd.Stderr = &out, &errb
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k != "KUBECONFIG" && !strings.HasPrefix(k, "HELM_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	err = cmd.Run()
	return out.Bytes(), errb.Bytes(), err
}

// renderOK runs kmm-render and fails the test unless it succeeds with output.
func renderBinaryOK(t *testing.T, ctx context.Context, manifests []byte, args ...string) []byte {
	t.Helper()
	stdout, stderr, err := renderBinary(ctx, manifests, args...)
	if err != nil || len(stdout) == 0 {
		t.Fatalf("kmm-render %s: %v (%d bytes out)\nstderr:\n%s", strings.Join(args, " "), err, len(stdout), stderr)
	}
	return stdout
}

// expectRenderFailed: kmm-render exited non-zero, printed nothing on stdout, and said each of
// says on stderr.
func expectRenderRefused(t *testing.T, stdout, stderr []byte, err error, says []string) {
	t.Helper()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("kmm-render: %v; want a non-zero exit\nstderr:\n%s", err, stderr)
	}
	if len(stdout) > 0 {
		t.Errorf("kmm-render failed but printed %d bytes on stdout:\n%.2000s", len(stdout), stdout)
	}
	for _, s := range says {
		if !bytes.Contains(stderr, []byte(s)) {
			t.Errorf("kmm-render's error does not say %q:\n%s", s, stderr)
		}
	}
	t.Logf("kmm-render failed as it should: %s", bytes.TrimSpace(stderr))
}

// postRenderer is the --post-renderer value of each Helm version (see helmArgs).
func postRendererFor(version int) string {
	if version == 3 {
		return kmmRender
	}
	return "kmm-render"
}

// diffLines shows the first lines where a and b differ.
func lineDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for i := 0; i < max(len(al), len(bl)) && len(out) < 20; i++ {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			out = append(out, fmt.Sprintf("line %d:\n  - %s\n  + %s", i+1, x, y))
		}
	}
	return strings.Join(out, "\n")
}
