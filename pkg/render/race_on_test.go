//go:build race

package render

// raceEnabled: built with -race, under which sync.Pool drops a share of what is put into it on
// purpose (to expose code that relies on it), so allocation counts of code that pools its
// buffers, as regexp does, say nothing.
const raceEnabled = true
