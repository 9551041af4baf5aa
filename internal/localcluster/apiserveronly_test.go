package localcluster

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestStartAPIServerOnlyRefusesNodes: nodes from a snapshot wait for kwok to make them Ready,
// and APIServerOnly starts no kwok; Start says so before starting anything.
func TestStartAPIServerOnlyRefusesNodes(t *testing.T) {
	dir := t.TempDir()
	c, err := Start(context.Background(), Options{AssetsDir: fakeAssets(t), WorkDir: dir, APIServerOnly: true, Nodes: "nodes.yaml"})
	require.ErrorContains(t, err, "Options.Nodes waits for kwok to make the nodes Ready, and APIServerOnly starts no kwok")
	require.Nil(t, c)
	require.NoDirExists(t, dir+"/etcd", "nothing started")
}
