package image

import (
	"os"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDockerfileBuildsTheSameImage: the repository's Dockerfile, for those who build with a
// container engine, ends in the image Build makes: an empty base, the same rootfs, every binary
// at the root, the same user and entrypoint.
func TestDockerfileBuildsTheSameImage(t *testing.T) {
	f, err := os.Open("../../Dockerfile")
	require.NoError(t, err)
	defer f.Close()
	res, err := parser.Parse(f)
	require.NoError(t, err)

	var final []string // the instructions of the last stage
	for _, n := range res.AST.Children {
		line := strings.ToUpper(n.Value)
		for a := n.Next; a != nil; a = a.Next {
			line += " " + a.Value
		}
		for _, fl := range n.Flags {
			line += " " + fl
		}
		if strings.EqualFold(n.Value, "from") {
			final = nil
		}
		final = append(final, line)
	}
	want := []string{"FROM scratch", "COPY internal/image/rootfs/ /"}
	for _, b := range Binaries {
		want = append(want, "COPY /out/"+b+" /"+b+" --from=build")
	}
	want = append(want, "USER "+User, `ENTRYPOINT `+strings.Join(Entrypoint, " "))
	assert.Equal(t, want, final)
}
